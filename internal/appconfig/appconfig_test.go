package appconfig

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/ini"
)

func mustParse(t *testing.T, text string) *Config {
	t.Helper()
	c, err := Parse("app.ini", []byte(text))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

const base = "[production]\napp_name = blog\n"

func TestParse_Keys(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra string // appended to base
		check func(t *testing.T, c *Config)
	}{
		{"minimal is a static app", "", func(t *testing.T, c *Config) {
			want := &Config{File: "app.ini", AppName: "blog", Platform: PlatformPython, Runner: Runner{Kind: KindStatic}}
			c.lines, c.sectionLine = nil, 0
			if !reflect.DeepEqual(c, want) {
				t.Errorf("got %+v\nwant %+v", c, want)
			}
		}},
		{"py runner", "runner = main.py\n", func(t *testing.T, c *Config) {
			if want := (Runner{Path: "main.py", Name: "application", Kind: KindPython, Line: 3}); c.Runner != want {
				t.Errorf("Runner = %+v, want %+v", c.Runner, want)
			}
		}},
		{"py runner with name", "runner = src/app.py#wsgi_app\n", func(t *testing.T, c *Config) {
			if want := (Runner{Path: "src/app.py", Name: "wsgi_app", Kind: KindPython, Line: 3}); c.Runner != want {
				t.Errorf("Runner = %+v, want %+v", c.Runner, want)
			}
		}},
		{"paste runner cleaned", "runner = ./conf/../config.ini#blog-app\n", func(t *testing.T, c *Config) {
			if want := (Runner{Path: "config.ini", Name: "blog-app", Kind: KindPaste, Line: 3}); c.Runner != want {
				t.Errorf("Runner = %+v, want %+v", c.Runner, want)
			}
		}},
		{"paste runner without name", "runner = config.INI\n", func(t *testing.T, c *Config) {
			if c.Runner.Kind != KindPaste || c.Runner.Name != "" {
				t.Errorf("Runner = %+v", c.Runner)
			}
		}},
		{"command runner", "runner = bin/server\n", func(t *testing.T, c *Config) {
			if c.Runner.Kind != KindCommand || c.Runner.Path != "bin/server" {
				t.Errorf("Runner = %+v", c.Runner)
			}
		}},
		{"php platform", "platform = PHP\nrunner = index.php\nphp_root = www/\n", func(t *testing.T, c *Config) {
			if c.Platform != PlatformPHP || c.Runner.Kind != KindPHP || c.Runner.Path != "index.php" || c.PHPRoot != "www" {
				t.Errorf("got platform %q runner %+v php_root %q", c.Platform, c.Runner, c.PHPRoot)
			}
		}},
		{"php without runner", "platform = php\n", func(t *testing.T, c *Config) {
			if c.Runner.Kind != KindPHP || c.Runner.Path != "" {
				t.Errorf("Runner = %+v", c.Runner)
			}
		}},
		{"empty runner is static", "runner =\n", func(t *testing.T, c *Config) {
			if c.Runner.Kind != KindStatic || c.Runner.Line != 3 {
				t.Errorf("Runner = %+v", c.Runner)
			}
		}},
		{"update_fetch", "update_fetch =\n    /setup?x=1\n    # comment\n\n    script:bin/migrate.py --all 'two words' \"a\\\"b\"\n    /second\n",
			func(t *testing.T, c *Config) {
				want := []Fetch{
					{URL: "/setup?x=1", Line: 4},
					{Script: &Command{Path: "bin/migrate.py", Args: []string{"--all", "two words", `a"b`}, Line: 7}, Line: 7},
					{URL: "/second", Line: 8},
				}
				if !reflect.DeepEqual(c.UpdateFetch, want) {
					t.Errorf("UpdateFetch = %s", jsonString(c.UpdateFetch))
				}
			}},
		{"update_fetch one line", "update_fetch = /init\n", func(t *testing.T, c *Config) {
			if len(c.UpdateFetch) != 1 || c.UpdateFetch[0].URL != "/init" || c.UpdateFetch[0].Line != 3 {
				t.Errorf("UpdateFetch = %s", jsonString(c.UpdateFetch))
			}
		}},
		{"default_location", "default_location = blog.example.com/path\n", func(t *testing.T, c *Config) {
			if c.DefaultLocation != "blog.example.com/path" || len(c.Warnings) != 0 {
				t.Errorf("DefaultLocation = %q, warnings %v", c.DefaultLocation, c.Warnings)
			}
		}},
		{"services in order", "service.postgis =\nservice.files = opt\nservice.writable_root =\n", func(t *testing.T, c *Config) {
			want := []Service{{"postgis", "", 3}, {"files", "opt", 4}, {"writable_root", "", 5}}
			if !reflect.DeepEqual(c.Services, want) {
				t.Errorf("Services = %+v", c.Services)
			}
		}},
		{"packages", "packages = libxml2\n    libxslt1.1 python3-lxml\n    # no\n    g++\n", func(t *testing.T, c *Config) {
			if want := []string{"libxml2", "libxslt1.1", "python3-lxml", "g++"}; !reflect.DeepEqual(c.Packages, want) {
				t.Errorf("Packages = %q", c.Packages)
			}
		}},
		{"install scripts", "package_install_script = setup/apt-repo.sh key\nafter_install_script =\n    bin/a\n    bin/b --x\n", func(t *testing.T, c *Config) {
			if want := []Command{{Path: "setup/apt-repo.sh", Args: []string{"key"}, Line: 3}}; !reflect.DeepEqual(c.PackageInstallScripts, want) {
				t.Errorf("PackageInstallScripts = %+v", c.PackageInstallScripts)
			}
			if want := []Command{{Path: "bin/a", Args: []string{}, Line: 5}, {Path: "bin/b", Args: []string{"--x"}, Line: 6}}; !reflect.DeepEqual(c.AfterInstallScripts, want) {
				t.Errorf("AfterInstallScripts = %+v", c.AfterInstallScripts)
			}
		}},
		{"config keys", "config.required = yes\nconfig.default = conf/default/\nconfig.template = conf/tmpl\nconfig.checker = blog.config:check_dir\n", func(t *testing.T, c *Config) {
			if !c.ConfigRequired || c.ConfigDefault != "conf/default" || c.ConfigTemplate != "conf/tmpl" ||
				c.ConfigChecker != (Checker{"blog.config", "check_dir"}) || c.ConfigChecker.String() != "blog.config:check_dir" {
				t.Errorf("got %v %q %q %+v", c.ConfigRequired, c.ConfigDefault, c.ConfigTemplate, c.ConfigChecker)
			}
		}},
		{"config.required false", "config.required = off\n", func(t *testing.T, c *Config) {
			if c.ConfigRequired || !c.ConfigChecker.IsZero() {
				t.Errorf("ConfigRequired = %v", c.ConfigRequired)
			}
		}},
		{"DEFAULT keys apply", "[DEFAULT]\nrunner = main.py\n", func(t *testing.T, c *Config) {
			if c.Runner.Kind != KindPython || c.Runner.Line != 4 {
				t.Errorf("Runner = %+v", c.Runner)
			}
		}},
		{"other sections ignored", "[devel]\nwhatever = 1\n", func(t *testing.T, c *Config) {
			if len(c.Warnings) != 0 {
				t.Errorf("Warnings = %v", c.Warnings)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.check(t, mustParse(t, base+tc.extra))
		})
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestParse_Warnings(t *testing.T) {
	for _, tc := range []struct {
		name  string
		text  string
		want  []string
		check func(t *testing.T, c *Config)
	}{
		{"version", base + "version = 1\n", []string{"app.ini:3: version: is no longer used and is ignored; remove it"}, nil},
		{"default_host", base + "default_host = example.com\n",
			[]string{"app.ini:3: default_host: renamed to default_location; please rename it"},
			func(t *testing.T, c *Config) {
				if c.DefaultLocation != "example.com" {
					t.Errorf("DefaultLocation = %q", c.DefaultLocation)
				}
			}},
		{"default_hostname loses to default_location", base + "default_hostname = old.example.com\ndefault_location = new.example.com\n",
			[]string{"app.ini:3: default_hostname: renamed to default_location; please rename it"},
			func(t *testing.T, c *Config) {
				if c.DefaultLocation != "new.example.com" {
					t.Errorf("DefaultLocation = %q", c.DefaultLocation)
				}
			}},
		{"unknown key", base + "runer = main.py\n", []string{"app.ini:3: runer: unknown key, ignored"}, nil},
		{"unknown limit", base + "limit.io = 10M\n", []string{"app.ini:3: limit.io: unknown key, ignored (the limit keys are limit.memory, limit.tasks, limit.cpu_weight and limit.file_size)"}, nil},
		{"unknown config key", base + "config.requried = true\n",
			[]string{"app.ini:3: config.requried: unknown key, ignored (the config keys are config.required, config.default, config.template and config.checker)"},
			func(t *testing.T, c *Config) {
				if c.ConfigRequired {
					t.Error("the misspelt key was read")
				}
			}},
		{"upper-case app name", "[production]\napp_name = MyBlog\n", []string{`app.ini:2: app_name: "MyBlog" is used as "myblog" (app names are lower case)`},
			func(t *testing.T, c *Config) {
				if c.AppName != "myblog" {
					t.Errorf("AppName = %q", c.AppName)
				}
			}},
		{"service.php", base + "service.php =\nrunner = index.php\n", []string{"app.ini:3: service.php: is the old way to say platform = php; use that instead"},
			func(t *testing.T, c *Config) {
				if c.Platform != PlatformPHP || c.Runner.Kind != KindPHP || len(c.Services) != 0 {
					t.Errorf("platform %q runner %+v services %v", c.Platform, c.Runner, c.Services)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustParse(t, tc.text)
			var got []string
			for _, w := range c.Warnings {
				got = append(got, w.String())
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Warnings = %q, want %q", got, tc.want)
			}
			if tc.check != nil {
				tc.check(t, c)
			}
		})
	}
}

func TestParse_Errors(t *testing.T) {
	for _, tc := range []struct {
		name string
		text string
		want []string // each error's text, in order
	}{
		{"no production section", "[devel]\nx = 1\n", []string{"app.ini: no [production] section (app.ini keeps its settings there: [production] then app_name = ..., runner = ...)"}},
		{"ini syntax", "[production]\napp_name\n", []string{`app.ini:2: expected "key = value", a [section] header or a comment (a value continued on the next line must be indented)`}},
		{"missing app_name", "\n[production]\nrunner = main.py\n", []string{"app.ini:2: app_name: missing: every app needs a name (app_name = blog); its data, logs and services are kept under it"}},
		{"empty app_name", "[production]\napp_name =\n", []string{"app.ini:2: app_name: the app name is empty"}},
		{"dot in app_name", "[production]\napp_name = my.blog\n", []string{`app.ini:2: app_name: app name "my.blog" contains ".", which separates the app name from the date in instance names`}},
		{"slash in app_name", "[production]\napp_name = ../etc\n", []string{`app.ini:2: app_name: app name "../etc" contains ".", which separates the app name from the date in instance names`}},
		{"bad char in app_name", "[production]\napp_name = my blog\n", []string{`app.ini:2: app_name: app name "my blog" may only use lower-case letters, digits, - and _, and must start with a letter or digit`}},
		{"leading dash", "[production]\napp_name = -x\n", []string{`app.ini:2: app_name: app name "-x" may only use lower-case letters, digits, - and _, and must start with a letter or digit`}},
		{"long app_name", "[production]\napp_name = " + strings.Repeat("a", 29) + "\n", []string{`app.ini:2: app_name: app name "` + strings.Repeat("a", 29) + `" is longer than 28 characters`}},
		{"absolute runner", base + "runner = /srv/app.py\n", []string{`app.ini:3: runner: path "/srv/app.py" must be relative to the application directory`}},
		{"runner escapes", base + "runner = lib/../../app.py\n", []string{`app.ini:3: runner: path "lib/../../app.py" points outside the application directory`}},
		{"runner is dir", base + "runner = ./\n", []string{`app.ini:3: runner: "./" is a directory, not a file`}},
		{"runner only name", base + "runner = #app\n", []string{`app.ini:3: runner: "#app" names no file`}},
		{"bad python name", base + "runner = main.py#my-app\n", []string{"app.ini:3: runner: #my-app: the name after # must be the Python name of the WSGI application"}},
		{"name on command", base + "runner = bin/server#x\n", []string{"app.ini:3: runner: a #name suffix only applies to .py and .ini runners"}},
		{"php file without platform", base + "runner = index.php\n", []string{`app.ini:3: runner: "index.php" is a PHP file: add platform = php`}},
		{"bad platform", base + "platform = ruby\n", []string{`app.ini:3: platform: "ruby" is not a platform (use python or php)`}},
		{"php_root outside", base + "platform = php\nphp_root = ../www\n", []string{`app.ini:4: php_root: directory "../www" points outside the application directory`}},
		{"update_fetch relative url", base + "update_fetch =\n    /ok\n    setup\n", []string{`app.ini:5: update_fetch: "setup": an entry is a URL path starting with / (such as /setup) or script:PATH ARGS`}},
		{"update_fetch full url", base + "update_fetch = http://example.com/x\n", []string{`app.ini:3: update_fetch: "http://example.com/x": an entry is a URL path starting with / (such as /setup) or script:PATH ARGS`}},
		{"update_fetch space", base + "update_fetch = /a b\n", []string{`app.ini:3: update_fetch: "/a b": a URL path cannot contain spaces (write %20)`}},
		{"update_fetch empty script", base + "update_fetch = script:\n", []string{`app.ini:3: update_fetch: "script:" names no script`}},
		{"update_fetch script quote", base + "update_fetch =\n  script:bin/x 'open\n", []string{`app.ini:4: update_fetch: "script:bin/x 'open": a quote is not closed`}},
		{"update_fetch script outside", base + "update_fetch =\n\n  script:/bin/rm -rf\n", []string{`app.ini:5: update_fetch: path "/bin/rm" must be relative to the application directory`}},
		{"bad package", base + "packages = libfoo\n    foo;rm\n    Bar\n", []string{
			`app.ini:4: packages: "foo;rm" is not a Debian package name (lower-case letters, digits, + - and .)`,
			`app.ini:5: packages: "Bar" is not a Debian package name (lower-case letters, digits, + - and .)`}},
		{"option-like package", base + "packages = --allow-unauthenticated\n", []string{`app.ini:3: packages: "--allow-unauthenticated" is not a Debian package name (lower-case letters, digits, + - and .)`}},
		{"bad service", base + "service. = x\nservice.a-b =\n", []string{
			`app.ini:3: service.: "" is not a service name (service.postgis, service.files, ...)`,
			`app.ini:4: service.a-b: "a-b" is not a service name (service.postgis, service.files, ...)`}},
		{"bad config.required", base + "config.required = maybe\n", []string{`app.ini:3: config.required: "maybe" is not a boolean (use yes or no)`}},
		{"bad config.checker", base + "config.checker = check\n", []string{`app.ini:3: config.checker: "check": write module:function (such as myapp.config:check)`}},
		{"config.default outside", base + "config.default = /etc\n", []string{`app.ini:3: config.default: directory "/etc" must be relative to the application directory`}},
		{"bad location", base + "default_location = a b\n", []string{`app.ini:3: default_location: "a b": a location is HOST or HOST/PATH, without spaces`}},
		{"install script outside", base + "after_install_script = ../x\n", []string{`app.ini:3: after_install_script: path "../x" points outside the application directory`}},
		{"memory limit", base + "limit.memory = lots\n", []string{`app.ini:3: limit.memory: "lots" is not a size (write it as 512M or 2G)`}},
		{"memory limit too small", base + "limit.memory = 1M\n", []string{`app.ini:3: limit.memory: 1M is less than the least an app gets, 32M (write it as 512M or 2G)`}},
		{"tasks limit", base + "\nlimit.tasks = 3\n", []string{`app.ini:4: limit.tasks: "3" is not a number of processes and threads from 16 to 1048576`}},
		{"cpu weight", base + "limit.cpu_weight = 0\n", []string{`app.ini:3: limit.cpu_weight: "0" is not a CPU weight from 1 to 10000 (100 is a system service's)`}},
		{"file size limit", base + "limit.file_size = -5G\n", []string{`app.ini:3: limit.file_size: "-5G" is not a size (write it as 100M or 4G)`}},
		{"several at once", "[production]\napp_name = A.B\nrunner = /x.py\n", []string{
			`app.ini:2: app_name: app name "a.b" contains ".", which separates the app name from the date in instance names`,
			`app.ini:3: runner: path "/x.py" must be relative to the application directory`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("app.ini", []byte(tc.text))
			if err == nil {
				t.Fatalf("no error; config %+v", c)
			}
			var ie *ini.Error
			if !errors.As(err, &ie) {
				t.Errorf("error %v is not an *ini.Error", err)
			}
			if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestCheckAppName(t *testing.T) {
	for _, ok := range []string{"blog", "a", "2048", "my-blog_2", strings.Repeat("x", MaxAppNameLen)} {
		if err := CheckAppName(ok); err != nil {
			t.Errorf("CheckAppName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Blog", "a.b", "a/b", ".x", "-x", "_x", "a b", "a\nb", "é", strings.Repeat("x", MaxAppNameLen+1)} {
		if CheckAppName(bad) == nil {
			t.Errorf("CheckAppName(%q) accepted", bad)
		}
	}
}

func TestKind(t *testing.T) {
	for k, want := range map[Kind]string{KindPython: "python", KindPaste: "paste", KindPHP: "php", KindCommand: "command", KindStatic: "static", KindUnknown: "unknown", Kind(99): "Kind(99)"} {
		if k.String() != want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), k.String(), want)
		}
	}
	b, err := json.Marshal(struct{ K Kind }{KindPaste})
	if err != nil || string(b) != `{"K":"paste"}` {
		t.Errorf("Marshal = %s, %v", b, err)
	}
	var v struct{ K Kind }
	if err := json.Unmarshal([]byte(`{"K":"command"}`), &v); err != nil || v.K != KindCommand {
		t.Errorf("Unmarshal = %v, %v", v.K, err)
	}
	if err := json.Unmarshal([]byte(`{"K":"unknown"}`), &v); err == nil {
		t.Error("Unmarshal(unknown) accepted")
	}
	if _, err := json.Marshal(struct{ K Kind }{}); err == nil {
		t.Error("Marshal(KindUnknown) accepted")
	}
}

func TestSplitArgs(t *testing.T) {
	// Expected values are what Python's shlex.split returns.
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"  a  b\tc ", []string{"a", "b", "c"}},
		{`a 'b c' "d e"`, []string{"a", "b c", "d e"}},
		{`a'b'"c"d`, []string{"abcd"}},
		{`'' ""`, []string{"", ""}},
		{`a\ b \'x`, []string{"a b", "'x"}},
		{`"a\"b\\c\d\$"`, []string{`a"b\c\d\$`}},
		{`'a\b'`, []string{`a\b`}},
		{`x #not-a-comment`, []string{"x", "#not-a-comment"}},
		{`$HOME`, []string{"$HOME"}},
	} {
		got, err := splitArgs(tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("splitArgs(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{`'a`, `"a`, `a\`, `"a\"`} {
		if _, err := splitArgs(bad); err == nil {
			t.Errorf("splitArgs(%q) accepted", bad)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(dir)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "no app.ini in "+dir) {
		t.Errorf("Load(empty dir) = %v", err)
	}
	_, err = Load(filepath.Join(dir, "nope"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "application directory") {
		t.Errorf("Load(missing dir) = %v", err)
	}
	writeFile(t, dir, "app.ini", base+"runner = main.py\n", 0o644)
	c, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.File != filepath.Join(dir, "app.ini") || c.AppName != "blog" {
		t.Errorf("Load = %+v", c)
	}
}

func writeFile(t *testing.T, dir, rel, content string, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func TestParse_Limits(t *testing.T) {
	c := mustParse(t, base+"limit.memory = 512M\nlimit.tasks = 64\nlimit.cpu_weight = 20\nlimit.file_size = 2GiB\nlimit.disk = 1G\n")
	want := Limits{MemoryMax: 512 << 20, TasksMax: 64, CPUWeight: 20, FileSizeMax: 2 << 30}
	if c.Limits != want {
		t.Errorf("limits = %+v, want %+v", c.Limits, want)
	}
	if len(c.Warnings) != 1 || c.Warnings[0].Key != "limit.disk" {
		t.Errorf("warnings = %v", c.Warnings)
	}
	if c := mustParse(t, base); c.Limits != (Limits{}) {
		t.Errorf("no limit.* keys: %+v", c.Limits)
	}
	for in, want := range map[string]int64{"1024": 1024, "64k": 64 << 10, "1.5G": 0, "3T": 3 << 40, "7MB": 7 << 20, "": 0, "G": 0} {
		got, err := ParseBytes(in)
		if got != want || (err == nil) != (want != 0) {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}
