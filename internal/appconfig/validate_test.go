package appconfig

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/ini"
)

// app builds an application directory from rel path -> content; a path
// ending in "/" is a directory, content "+x" makes an executable file and
// "->TARGET" a symbolic link.
func app(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for rel, content := range files {
		switch {
		case strings.HasSuffix(rel, "/"):
			if err := os.MkdirAll(filepath.Join(dir, rel), 0o755); err != nil {
				t.Fatal(err)
			}
		case strings.HasPrefix(content, "->"):
			p := filepath.Join(dir, rel)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(strings.TrimPrefix(content, "->"), p); err != nil {
				t.Fatal(err)
			}
		case content == "+x":
			writeFile(t, dir, rel, "#!/bin/sh\n", 0o755)
		default:
			writeFile(t, dir, rel, content, 0o644)
		}
	}
	return dir
}

func TestValidate(t *testing.T) {
	outside := t.TempDir()
	writeFile(t, outside, "evil.py", "", 0o644)
	for _, tc := range []struct {
		name  string
		extra string
		files map[string]string
		want  []string // error lines, "DIR" replaced by the app dir
		warn  []string
	}{
		{"python runner present", "runner = main.py\n", map[string]string{"main.py": ""}, nil, nil},
		{"python runner missing", "runner = main.py\n", nil, []string{`app.ini:3: runner: file "main.py" not found in DIR`}, nil},
		{"runner is a directory", "runner = main.py\n", map[string]string{"main.py/": ""}, []string{`app.ini:3: runner: "main.py" in DIR is not a regular file`}, nil},
		{"runner link inside", "runner = main.py\n", map[string]string{"src/real.py": "", "main.py": "->src/real.py"}, nil, nil},
		{"runner link outside", "runner = main.py\n", map[string]string{"main.py": "->" + filepath.Join(outside, "evil.py")},
			[]string{`app.ini:3: runner: "main.py" is a link to a file outside DIR`}, nil},
		{"command executable", "runner = bin/server\n", map[string]string{"bin/server": "+x"}, nil, nil},
		{"command not executable", "runner = bin/server\n", map[string]string{"bin/server": "data"},
			[]string{`app.ini:3: runner: "bin/server" is not executable; a runner is a .py file defining application, a Paste Deploy .ini file, or a program that listens on $PORT (chmod +x it)`}, nil},
		{"static with static dir", "", map[string]string{"static/index.html": "hi"}, nil, nil},
		{"static without static dir", "", nil, []string{`app.ini:1: runner: no runner and no static/ directory: set runner = (a .py, .ini or executable file) or add static/`}, nil},
		{"php root present", "platform = php\nrunner = index.php\nphp_root = www\n", map[string]string{"index.php": "", "www/": ""}, nil, nil},
		{"php root missing", "platform = php\nrunner = index.php\nphp_root = www\n", map[string]string{"index.php": ""},
			[]string{`app.ini:5: php_root: directory "www" not found in DIR`}, nil},
		{"php root is file", "platform = php\nphp_root = www\n", map[string]string{"www": ""},
			[]string{`app.ini:4: php_root: "www" in DIR is not a directory`}, nil},
		{"update_fetch scripts", "runner = a.py\nupdate_fetch =\n  /x\n  script:bin/ok.py\n  script:bin/missing.py arg\n", map[string]string{"a.py": "", "bin/ok.py": ""},
			[]string{`app.ini:7: update_fetch: file "bin/missing.py" not found in DIR`}, nil},
		{"install scripts", "runner = a.py\npackage_install_script = p.sh\nafter_install_script = q.sh\n", map[string]string{"a.py": ""},
			[]string{`app.ini:4: package_install_script: file "p.sh" not found in DIR`, `app.ini:5: after_install_script: file "q.sh" not found in DIR`}, nil},
		{"config dirs", "runner = a.py\nconfig.default = conf\nconfig.template = tmpl\n", map[string]string{"a.py": ""},
			[]string{`app.ini:4: config.default: directory "conf" not found in DIR`},
			[]string{`app.ini:5: config.template: directory "tmpl" not found in DIR`}},
		{"config dirs present", "runner = a.py\nconfig.default = conf\nconfig.template = tmpl\n", map[string]string{"a.py": "", "conf/": "", "tmpl/": ""}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := app(t, tc.files)
			c := mustParse(t, base+tc.extra)
			err := c.Validate(dir)
			if err2 := c.Validate(dir); (err == nil) != (err2 == nil) {
				t.Errorf("second Validate = %v, first %v", err2, err)
			}
			var got []string
			if err != nil {
				var ie *ini.Error
				if !errors.As(err, &ie) {
					t.Errorf("error %v is not an *ini.Error", err)
				}
				got = strings.Split(strings.ReplaceAll(err.Error(), dir, "DIR"), "\n")
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Validate errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			var warns []string
			for _, w := range c.Warnings {
				warns = append(warns, strings.ReplaceAll(w.String(), dir, "DIR"))
			}
			if !reflect.DeepEqual(warns, tc.warn) {
				t.Errorf("Warnings = %q, want %q", warns, tc.warn)
			}
		})
	}
}

func TestValidate_MissingDir(t *testing.T) {
	c := mustParse(t, base)
	if err := c.Validate(filepath.Join(t.TempDir(), "gone")); err == nil {
		t.Error("Validate(missing dir) = nil")
	}
}

func TestValidate_Testdata(t *testing.T) {
	// The sample apps under testdata/ load and validate as a user's would.
	for _, tc := range []struct {
		dir  string
		kind Kind
	}{
		{"testdata/wsgi", KindPython},
		{"testdata/static", KindStatic},
	} {
		c, err := Load(tc.dir)
		if err != nil {
			t.Fatalf("Load(%s): %v", tc.dir, err)
		}
		if err := c.Validate(tc.dir); err != nil {
			t.Errorf("Validate(%s): %v", tc.dir, err)
		}
		if c.Runner.Kind != tc.kind {
			t.Errorf("%s: kind %v, want %v", tc.dir, c.Runner.Kind, tc.kind)
		}
	}
}
