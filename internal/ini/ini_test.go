package ini

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

type configparserCase struct {
	name    string
	input   string
	want    []string // "[section]" then "key=<Go-quoted value>" lines
	err     string   // configparser's exception class, when it fails
	errLine int
}

// dump renders f like the generator renders configparser's result.
func dump(f *File) []string {
	var out []string
	if keys := f.Default().Keys(); len(keys) > 0 {
		out = append(out, "[DEFAULT]")
		for _, k := range keys {
			out = append(out, k.Name+"="+goQuote(k.Value))
		}
	}
	for _, s := range f.Sections() {
		out = append(out, "["+s.Name+"]")
		for _, k := range s.Keys() {
			out = append(out, k.Name+"="+goQuote(k.Value))
		}
	}
	return out
}

// goQuote quotes like the generator: \U for everything outside printable
// ASCII, so both sides produce the same text.
func goQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			b.WriteString(`\x` + leftPad(strconv.FormatInt(int64(r), 16), 2))
		case r > 0x7e:
			b.WriteString(`\U` + leftPad(strconv.FormatInt(int64(r), 16), 8))
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func leftPad(s string, n int) string { return strings.Repeat("0", n-len(s)) + s }

func TestParse_MatchesConfigparser(t *testing.T) {
	for _, tc := range configparserCases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse("test.ini", []byte(tc.input))
			if tc.err != "" {
				var ie *Error
				if !errors.As(err, &ie) {
					t.Fatalf("configparser raised %s at line %d; got err = %v", tc.err, tc.errLine, err)
				}
				if ie.Line != tc.errLine || ie.File != "test.ini" {
					t.Errorf("error %q at %s:%d, configparser's %s is at line %d", err, ie.File, ie.Line, tc.err, tc.errLine)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := dump(f); !reflect.DeepEqual(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Errorf("got\n%s\nconfigparser gives\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestParse_Lines(t *testing.T) {
	in := "[a]\n" + // 1
		"x = 1\n" + // 2
		"# c\n" + // 3
		"[b]\n" + // 4
		"k =\n" + // 5
		"  one\n" + // 6
		"\n" + // 7
		"  # skipped\n" + // 8
		"  two three\n" + // 9
		"\n" // 10
	f, err := Parse("f", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if s := f.Section("a"); s.Line != 1 || s.Key("x").Line != 2 {
		t.Errorf("section a line %d, key x line %d; want 1, 2", s.Line, s.Key("x").Line)
	}
	k := f.Section("b").Key("K")
	if k == nil || k.Line != 5 || k.Section != "b" {
		t.Fatalf("key k = %+v", k)
	}
	want := []Line{{"one", 6}, {"two three", 9}}
	if got := k.Lines(); !reflect.DeepEqual(got, want) {
		t.Errorf("Lines() = %v, want %v", got, want)
	}
	if got := f.Section("b").GetLines("k"); !reflect.DeepEqual(got, []string{"one", "two three"}) {
		t.Errorf("GetLines = %q", got)
	}
	if got := f.Section("b").GetLines("missing"); got != nil {
		t.Errorf("GetLines(missing) = %q", got)
	}
	err = k.ErrorfAt(want[1].Num, "bad %q", "two three")
	if got := err.Error(); got != `f:9: k: bad "two three"` {
		t.Errorf("ErrorfAt = %q", got)
	}
}

func TestSection_DefaultInheritance(t *testing.T) {
	f, err := Parse("f", []byte("[DEFAULT]\nd = from default\no = default o\n[a]\no = own\nx = 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	a := f.Section("a")
	if v, ok := a.Get("d"); !ok || v != "from default" {
		t.Errorf("Get(d) = %q, %v", v, ok)
	}
	if k := a.Key("d"); k.Section != DefaultSection || k.Line != 2 {
		t.Errorf("inherited key = %+v", k)
	}
	if a.Value("o") != "own" || a.Value("O") != "own" {
		t.Errorf("own value not preferred: %q", a.Value("o"))
	}
	var names []string
	for _, k := range a.Keys() {
		names = append(names, k.Name)
	}
	if want := []string{"o", "x", "d"}; !reflect.DeepEqual(names, want) {
		t.Errorf("Keys() = %v, want %v", names, want)
	}
	if f.Section("A") != nil {
		t.Error("section names must be case-sensitive")
	}
	if len(f.Sections()) != 1 {
		t.Errorf("Sections() = %d, want 1 (DEFAULT excluded)", len(f.Sections()))
	}
	if f.Section(DefaultSection) != f.Default() || f.Default().Value("d") != "from default" {
		t.Error("Section(DEFAULT) is not the defaults")
	}
	if a.Has("nope") {
		t.Error("Has(nope)")
	}
}

func TestParseBool(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    bool
		wantErr bool
	}{
		{"1", true, false}, {"yes", true, false}, {"TRUE", true, false}, {"On", true, false},
		{"0", false, false}, {"no", false, false}, {"False", false, false}, {"OFF", false, false},
		{"", false, true}, {"y", false, true}, {"2", false, true}, {"enabled", false, true},
	} {
		got, err := ParseBool(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseBool(%q) = %v, %v", tc.in, got, err)
		}
	}
}

func TestSection_GetBool(t *testing.T) {
	f, err := Parse("c.ini", []byte("[a]\nyes = on\nbad = maybe\n"))
	if err != nil {
		t.Fatal(err)
	}
	a := f.Section("a")
	if b, err := a.GetBool("yes", false); err != nil || !b {
		t.Errorf("GetBool(yes) = %v, %v", b, err)
	}
	if b, err := a.GetBool("absent", true); err != nil || !b {
		t.Errorf("GetBool(absent, true) = %v, %v", b, err)
	}
	_, err = a.GetBool("bad", false)
	var ie *Error
	if !errors.As(err, &ie) || ie.Line != 3 || ie.Key != "bad" {
		t.Fatalf("GetBool(bad) error = %#v", err)
	}
	if got, want := err.Error(), `c.ini:3: bad: "maybe" is not a boolean (use yes or no)`; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
}

func TestError_Format(t *testing.T) {
	cause := errors.New("boom")
	for _, tc := range []struct {
		err  *Error
		want string
	}{
		{&Error{File: "app.ini", Line: 12, Key: "runner", Msg: "not found"}, "app.ini:12: runner: not found"},
		{&Error{File: "app.ini", Line: 3, Msg: "bad line"}, "app.ini:3: bad line"},
		{&Error{File: "app.ini", Msg: "no [production] section"}, "app.ini: no [production] section"},
		{&Error{Line: 2, Msg: "x"}, "line 2: x"},
		{&Error{File: "f", Line: 1, Msg: "read", Err: cause}, "f:1: read: boom"},
		{&Error{File: "f", Err: cause}, "f: boom"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
	if !errors.Is(&Error{Err: fs.ErrPermission}, fs.ErrPermission) {
		t.Error("Unwrap does not expose the cause")
	}
}

func TestParse_ErrorsNeverQuoteTheLine(t *testing.T) {
	// A value line that lost its indentation is the usual mistake, and it
	// may be a secret: the error must not repeat it.
	for _, in := range []string{
		"secret = x\n[a]\n",
		"[a]\nsecret =\nhunter2-hunter2\n",
		"[a]\n= hunter2-hunter2\n",
		"[a]\nsecret = hunter2-hunter2\nsecret = hunter2-hunter2\n",
	} {
		_, err := Parse("f", []byte(in))
		if err == nil {
			t.Fatalf("no error for %q", in)
		}
		if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "= x") {
			t.Errorf("error quotes the input: %v", err)
		}
	}
}

func TestParse_Messages(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"[a]\n[b]\n[a]\n", "f:3: section [a] appears twice (first at line 1)"},
		{"[a]\nx = 1\nX = 2\n", "f:3: x: set twice in [a] (first at line 2)"},
		{"x = 1\n", "f:1: text before the first [section] header (a file starts with a header such as [production])"},
		{"[a]\nfoo\n", `f:2: expected "key = value", a [section] header or a comment (a value continued on the next line must be indented)`},
		{"[a]\n: v\n", `f:2: ":" with no key name before it`},
		{"[a]\nx = \xff\n", "f:2: not valid UTF-8 text"},
	} {
		_, err := Parse("f", []byte(tc.in))
		if err == nil || err.Error() != tc.want {
			t.Errorf("Parse(%q) error = %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestParse_ByteOrderMark(t *testing.T) {
	f, err := Parse("f", []byte("\ufeff[production]\napp_name = x\n"))
	if err != nil {
		t.Fatal(err)
	}
	if f.Section("production").Value("app_name") != "x" {
		t.Error("BOM not skipped")
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	_, err := ReadFile(filepath.Join(dir, "missing.ini"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
	path := filepath.Join(dir, "app.ini")
	if err := os.WriteFile(path, []byte("[production]\nrunner\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = ReadFile(path)
	var ie *Error
	if !errors.As(err, &ie) || ie.File != path || ie.Line != 2 {
		t.Errorf("ReadFile error = %v, want %s:2", err, path)
	}
}

func TestSection_Errorf(t *testing.T) {
	f, err := Parse("app.ini", []byte("\n[production]\nrunner = x.py\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := f.Section("production")
	if got := s.Errorf("runner", "file %q not found", "x.py").Error(); got != `app.ini:3: runner: file "x.py" not found` {
		t.Errorf("Errorf(set key) = %q", got)
	}
	if got := s.Errorf("App_Name", "required").Error(); got != "app.ini:2: app_name: required" {
		t.Errorf("Errorf(missing key) = %q", got)
	}
}
