package sshx

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"":                 "''",
		"abc":              "abc",
		"/usr/local/bin/x": "/usr/local/bin/x",
		"a b":              "'a b'",
		"it's":             `'it'\''s'`,
		"'":                `''\'''`,
		"$HOME":            "'$HOME'",
		"a=b":              "'a=b'",
		"~root":            "'~root'",
		"#x":               "'#x'",
		"*":                "'*'",
		"a\nb":             "'a\nb'",
		"-rf":              "-rf",
	} {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestCommand_Errors(t *testing.T) {
	if _, err := Command(nil); err == nil {
		t.Error("empty argv accepted")
	}
	if _, err := Command([]string{"echo", "a\x00b"}); !errors.Is(err, ErrNULInArg) {
		t.Errorf("NUL: err = %v", err)
	}
}

// TestCommand_RoundTripThroughShell checks the property that matters: a
// real POSIX shell turns the string back into exactly the argv we quoted.
// The helper prints each argument followed by a NUL byte.
func TestCommand_RoundTripThroughShell(t *testing.T) {
	shells := []string{}
	for _, sh := range []string{"sh", "dash", "bash"} {
		if p, err := exec.LookPath(sh); err == nil && !slices.Contains(shells, p) {
			shells = append(shells, p)
		}
	}
	if len(shells) == 0 {
		t.Skip("no POSIX shell found")
	}
	cases := [][]string{
		{"a=b", "c"},
		{"", "x", ""},
		{"it's", `"double"`, `back\slash`, "$(echo pwned)", "`echo pwned`", "${HOME}", "$1"},
		{"semi;colon", "pipe|x", "amp&x", "<in", ">out", "(paren)", "{brace}", "[glob]*?"},
		{"~", "~root", "#comment", "!bang", "tab\there", "new\nline", "cr\rx"},
		{"\x01\x02\x1b[31m", "\xff\xfe invalid utf8", "ünïcödé ✓", "\x7f"},
		{"-n", "-e", "--", "-"},
	}
	// Random byte strings (no NUL) catch anything the list above forgot.
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		var argv []string
		for range 1 + r.IntN(4) {
			b := make([]byte, r.IntN(12))
			for i := range b {
				b[i] = byte(1 + r.IntN(255))
			}
			argv = append(argv, string(b))
		}
		cases = append(cases, argv)
	}
	for _, sh := range shells {
		for _, argv := range cases {
			cmd, err := Command(append([]string{"printf", `%s\0`}, argv...))
			if err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(sh, "-c", cmd).Output()
			if err != nil {
				t.Fatalf("%s -c %q: %v", sh, cmd, err)
			}
			got := strings.Split(string(bytes.TrimSuffix(out, []byte{0})), "\x00")
			if len(argv) == 0 {
				got = nil
			}
			if !slices.Equal(got, argv) {
				t.Errorf("%s: %q\n got  %q\n want %q", sh, cmd, got, argv)
			}
		}
	}
}
