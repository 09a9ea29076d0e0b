package skeleton

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/service"
	_ "github.com/toppcloud/toppcloud/internal/service/all" // registers every service
)

func TestWrite_EachKindIsADeployableApp(t *testing.T) {
	for _, kind := range Kinds {
		t.Run(string(kind), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "My Blog")
			res, err := Write(Options{Dir: dir, Kind: kind})
			if err != nil {
				t.Fatal(err)
			}
			if res.App != "my-blog" {
				t.Errorf("app = %q", res.App)
			}
			cfg, err := appconfig.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := cfg.Validate(dir); err != nil {
				t.Fatal(err)
			}
			if len(cfg.Warnings) > 0 {
				t.Errorf("warnings: %v", cfg.Warnings)
			}
			want := map[Kind]appconfig.Kind{Python: appconfig.KindPython, PHP: appconfig.KindPHP, Static: appconfig.KindStatic, Command: appconfig.KindCommand}[kind]
			if cfg.AppName != "my-blog" || cfg.Runner.Kind != want {
				t.Errorf("app.ini: %s %v", cfg.AppName, cfg.Runner.Kind)
			}
			for _, d := range []string{"static", "lib/python"} {
				if st, err := os.Stat(filepath.Join(dir, d)); err != nil || !st.IsDir() {
					t.Errorf("%s: %v", d, err)
				}
			}
			for _, f := range []string{".toppcloudignore", "app.ini"} {
				if !slices.Contains(res.Written, f) {
					t.Errorf("%s not written: %v", f, res.Written)
				}
			}
		})
	}
}

// TestAppINI_ShowsEveryKey keeps init's app.ini in step with the parser:
// every key appconfig reads (appconfig.Keys) and every service there is
// appears as a line that works once uncommented, and all of them
// uncommented together make an app.ini that parses without a warning.
func TestAppINI_ShowsEveryKey(t *testing.T) {
	services := service.Names()
	if len(services) == 0 {
		t.Fatal("no services registered")
	}
	for _, kind := range Kinds {
		t.Run(string(kind), func(t *testing.T) {
			// A name that is no Python module name as it is
			// (config.checker's example).
			entries, err := render(kind, "2nd-blog")
			if err != nil {
				t.Fatal(err)
			}
			text := uncommentExamples(string(entries[0].data))
			for _, key := range appconfig.Keys {
				re := regexp.MustCompile(`(?m)^` + strings.ReplaceAll(regexp.QuoteMeta(key), "NAME", `[a-z0-9_-]+`) + ` =`)
				if !re.MatchString(text) {
					t.Errorf("app.ini shows no %s: add a commented example", key)
				}
			}
			for _, name := range services {
				if !regexp.MustCompile(`(?m)^service\.` + name + ` =`).MatchString(text) {
					t.Errorf("app.ini shows no service.%s", name)
				}
			}
			c, err := appconfig.Parse("app.ini", []byte(text))
			if err != nil {
				t.Fatalf("app.ini with every example uncommented:\n%s\n%v", text, err)
			}
			for _, w := range c.Warnings {
				t.Errorf("app.ini with every example uncommented: %s", w)
			}
		})
	}
}

var (
	exampleRE      = regexp.MustCompile(`^# [a-z][a-z0-9_.]* =`)
	continuationRE = regexp.MustCompile(`^# {4,}\S`)
)

// uncommentExamples makes every "# key = value" line of an app.ini live,
// with the "#     value" lines under it.
func uncommentExamples(ini string) string {
	lines := strings.Split(ini, "\n")
	inExample := false
	for i, l := range lines {
		switch {
		case exampleRE.MatchString(l):
			lines[i], inExample = strings.TrimPrefix(l, "# "), true
		case inExample && continuationRE.MatchString(l):
			lines[i] = strings.TrimPrefix(l, "#")
		default:
			inExample = false
		}
	}
	return strings.Join(lines, "\n")
}

func TestPythonName(t *testing.T) {
	for app, want := range map[string]string{"blog": "blog", "my-blog": "my_blog", "2nd": "app_2nd"} {
		if got := pythonName(app); got != want {
			t.Errorf("pythonName(%q) = %q, want %q", app, got, want)
		}
	}
}

func TestWrite_NeverOverwritesWithoutForce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "site")
	if _, err := Write(Options{Dir: dir, Kind: Python}); err != nil {
		t.Fatal(err)
	}
	// Again: nothing differs, nothing is written.
	res, err := Write(Options{Dir: dir, Kind: Python})
	if err != nil || len(res.Written) != 0 || len(res.Unchanged) != 3 {
		t.Fatalf("second Write = %+v, %v", res, err)
	}
	mine := "[production]\napp_name = mine\nrunner = main.py\n"
	if err := os.WriteFile(filepath.Join(dir, "app.ini"), []byte(mine), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, ".toppcloudignore")); err != nil {
		t.Fatal(err)
	}
	_, err = Write(Options{Dir: dir, Kind: Python})
	var ee *ExistsError
	if !errors.As(err, &ee) || !slices.Equal(ee.Paths, []string{"app.ini"}) || !strings.Contains(err.Error(), "-f") {
		t.Fatalf("Write over a changed app.ini = %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "app.ini")); string(b) != mine {
		t.Error("app.ini was overwritten")
	}
	if _, err := os.Stat(filepath.Join(dir, ".toppcloudignore")); err == nil {
		t.Error("a refused Write wrote .toppcloudignore")
	}
	res, err = Write(Options{Dir: dir, Kind: Python, Force: true})
	if err != nil || !slices.Contains(res.Written, "app.ini") {
		t.Fatalf("-f: %+v %v", res, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "app.ini")); string(b) == mine {
		t.Error("-f did not overwrite")
	}
}

func TestAppName(t *testing.T) {
	for in, want := range map[string]string{
		"blog":                    "blog",
		"My Blog!":                "my-blog",
		"_x.y":                    "x-y",
		"...":                     "",
		"a_b-c":                   "a_b-c",
		strings.Repeat("abc", 20): strings.Repeat("abc", 9) + "a",
	} {
		if got := AppName(in); got != want {
			t.Errorf("AppName(%q) = %q, want %q", in, got, want)
		}
	}
	if _, err := Write(Options{Dir: filepath.Join(t.TempDir(), "..."), Kind: Static}); err == nil || !strings.Contains(err.Error(), "rename the directory") {
		t.Errorf("Write in ... = %v", err)
	}
}

func TestParseKind(t *testing.T) {
	if k, err := ParseKind("php"); err != nil || k != PHP {
		t.Error(k, err)
	}
	if _, err := ParseKind("ruby"); err == nil {
		t.Error("ruby accepted")
	}
}
