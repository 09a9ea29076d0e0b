package manifest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

type ignoreCase struct {
	patterns string // lines of .toppcloudignore
	path     string
	dir      bool
	want     bool
}

// ignoreCases are gitignore(5) semantics; TestIgnore_AgainstGit checks
// the same table against git itself.
var ignoreCases = []ignoreCase{
	// Plain names match at any depth.
	{"foo", "foo", false, true},
	{"foo", "a/b/foo", false, true},
	{"foo", "a/foo/b", false, true}, // under an ignored directory
	{"foo", "foobar", false, false},
	{"foo", "a/xfoo", false, false},
	// Comments, blank lines, escapes, trailing spaces.
	{"# foo", "# foo", false, false},
	{"\\#foo", "#foo", false, true},
	{"\n\nfoo\n\n", "foo", false, true},
	{"foo   ", "foo", false, true},
	{"foo\\ ", "foo ", false, true},
	{"foo\\ ", "foo", false, false},
	{"\\!imp", "!imp", false, true},
	// Wildcards do not cross "/".
	{"*.txt", "a.txt", false, true},
	{"*.txt", "d/e/a.txt", false, true},
	{"*.txt", "a.txt/b", false, true},
	{"a*", "abc", false, true},
	{"a*c", "abxc", false, true},
	{"a*c", "abxd", false, false},
	{"d/*.txt", "d/a.txt", false, true},
	{"d/*.txt", "d/e/a.txt", false, false},
	{"d/*", "d/e/a.txt", false, true},
	{"?.py", "a.py", false, true},
	{"?.py", "ab.py", false, false},
	{"[ab].c", "a.c", false, true},
	{"[ab].c", "c.c", false, false},
	{"[!ab].c", "c.c", false, true},
	{"[^ab].c", "a.c", false, false},
	{"[a-c]x", "bx", false, true},
	{"[a-c]x", "dx", false, false},
	{"[]]x", "]x", false, true},
	{"\\*x", "*x", false, true},
	{"\\*x", "ax", false, false},
	// Trailing slash: directories only.
	{"build/", "build", true, true},
	{"build/", "build", false, false},
	{"build/", "src/build", true, true},
	{"build/", "build/x", false, true},
	// A slash at the start or in the middle anchors.
	{"/top", "top", false, true},
	{"/top", "a/top", false, false},
	{"a/b", "a/b", false, true},
	{"a/b", "x/a/b", false, false},
	{"/a/b/", "a/b", true, true},
	{"/a/b/", "a/b", false, false},
	// Double asterisks.
	{"**/foo", "foo", false, true},
	{"**/foo", "a/b/foo", false, true},
	{"**/a/b", "x/a/y/a/b", false, true},
	{"a/**/b", "a/b", false, true},
	{"a/**/b", "a/x/y/b", false, true},
	{"a/**/b", "c/a/x/b", false, false},
	{"a/**", "a/x", false, true},
	{"a/**", "a/x/y", false, true},
	{"a/**", "a", true, false},
	{"a/**", "a", false, false},
	{"**.log", "x/y.log", false, true},
	{"a**b", "axxb", false, true},
	// Negation: the last match wins; an ignored directory cannot be
	// re-opened from inside.
	{"*.log\n!keep.log", "keep.log", false, false},
	{"*.log\n!keep.log", "other.log", false, true},
	{"!keep.log\n*.log", "keep.log", false, true},
	{"logs/\n!logs/keep", "logs/keep", false, true},
	{"logs/*\n!logs/keep", "logs/keep", false, false},
	{"logs/*\n!logs/keep", "logs/other", false, true},
	// Non-ASCII names.
	{"café", "café", false, true},
	{"caf*", "café", false, true},
}

func TestIgnore_Table(t *testing.T) {
	for _, tc := range ignoreCases {
		ig, err := NewIgnore("test", strings.Split(tc.patterns, "\n"))
		if err != nil {
			t.Fatalf("%q: %v", tc.patterns, err)
		}
		if got := ig.Match(tc.path, tc.dir); got != tc.want {
			t.Errorf("patterns %q, path %q (dir %v): ignored = %v, want %v", tc.patterns, tc.path, tc.dir, got, tc.want)
		}
	}
}

// TestIgnore_AgainstGit runs the table through `git check-ignore`, so
// the table itself is known to say what git does.
func TestIgnore_AgainstGit(t *testing.T) {
	git, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git not installed")
	}
	// One repository; each case in its own subdirectory with its own
	// .gitignore (patterns are relative to the directory of their file,
	// so the semantics are those of a top-level file); one check-ignore.
	repo := t.TempDir()
	var stdin strings.Builder
	for i, tc := range ignoreCases {
		sub := filepath.Join(repo, fmt.Sprintf("c%03d", i))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sub, ".gitignore"), []byte(tc.patterns+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(sub, filepath.FromSlash(tc.path))
		if tc.dir {
			os.MkdirAll(p, 0o755)
		} else {
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.WriteFile(p, nil, 0o644)
		}
		fmt.Fprintf(&stdin, "c%03d/%s\x00", i, tc.path)
	}
	run := func(stdin string, args ...string) (string, error) {
		cmd := exec.Command(git, args...)
		cmd.Stdin = strings.NewReader(stdin)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+repo)
		out, err := cmd.Output()
		return string(out), err
	}
	if out, err := run("", "init", "-q"); err != nil {
		t.Fatalf("git init: %v %s", err, out)
	}
	out, err := run(stdin.String(), "check-ignore", "--no-index", "--stdin", "-z")
	if ee, ok := err.(*exec.ExitError); err != nil && !(ok && ee.ExitCode() == 1) {
		t.Fatalf("git check-ignore: %v", err)
	}
	ignored := map[string]bool{}
	for p := range strings.SplitSeq(out, "\x00") {
		ignored[p] = true
	}
	for i, tc := range ignoreCases {
		if got := ignored[fmt.Sprintf("c%03d/%s", i, tc.path)]; got != tc.want {
			t.Errorf("patterns %q, path %q (dir %v): git says ignored = %v, table says %v", tc.patterns, tc.path, tc.dir, got, tc.want)
		}
	}
}

func TestIgnore_Defaults(t *testing.T) {
	ig, err := ParseIgnore(IgnoreFile, strings.NewReader("!important.bak\n"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		dir  bool
		want bool
	}{
		{".git", true, true},
		{".git", false, true}, // a worktree's .git file
		{"sub/.hg", true, true},
		{".svn", true, true},
		{".bzr", true, true},
		{"m.pyc", false, true},
		{"pkg/m.pyo", false, true},
		{"pkg/__pycache__", true, true},
		{"silver-logs", true, true},
		{"sub/silver-logs", true, false},
		{"a.py~", false, true},
		{".#a.py", false, true},
		{"#a.py#", false, true},
		{"#notes", false, false},
		{".a.py.swp", false, true},
		{"x.orig", false, true},
		{"x.rej", false, true},
		{"x.bak", false, true},
		{"X.BAK", false, true},
		{"important.bak", false, false},
		{"x.old", false, false},
		{"app.ini", false, false},
		{".toppcloudignore", false, false},
		{"static/.well-known", true, false},
	}
	for _, tt := range tests {
		if got := ig.Match(tt.path, tt.dir); got != tt.want {
			t.Errorf("%q (dir %v): ignored = %v, want %v", tt.path, tt.dir, got, tt.want)
		}
	}
}

func TestIgnore_BadPatterns(t *testing.T) {
	for _, p := range []string{"[abc", "a//b", "x/[", "[!"} {
		_, err := ParseIgnore(IgnoreFile, strings.NewReader("ok\n"+p+"\n"))
		if err == nil || !strings.Contains(err.Error(), IgnoreFile+":2") {
			t.Errorf("%q: err = %v, want one naming %s:2", p, err, IgnoreFile)
		}
	}
}
