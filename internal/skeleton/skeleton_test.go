package skeleton

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/appconfig"
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
			ini, _ := os.ReadFile(filepath.Join(dir, "app.ini"))
			for _, key := range []string{"default_location", "update_fetch", "service.files", "service.writable_root", "service.postgresql",
				"service.postgis", "service.mysql", "service.redis", "packages", "config.required", "config.default", "config.template", "config.checker"} {
				if !strings.Contains(string(ini), key) {
					t.Errorf("app.ini does not show %s", key)
				}
			}
		})
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
