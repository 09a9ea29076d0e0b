// Package appconfig reads and checks an application's app.ini: the
// [production] section that says what the application is called, how it
// runs, which services and Debian packages it needs and what to do on every
// update. The keys and their meaning are the original tool's, so an app.ini
// written for it reads the same here.
//
// Parse is pure: it checks values but touches no files. Validate then checks
// the parsed config against the application directory (the runner exists,
// is executable, ...). Both report problems as *ini.Error values naming the
// file and line ("app.ini:7: runner: ..."), several joined with errors.Join;
// things that are allowed but worth telling the user are Warnings.
package appconfig

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/toppcloud/toppcloud/internal/ini"
)

// FileName is the application config's file name in the app directory.
const FileName = "app.ini"

// SectionName is the section holding the settings.
const SectionName = "production"

// Platforms.
const (
	PlatformPython = "python"
	PlatformPHP    = "php"
)

// DefaultPythonAttr is the WSGI object a .py runner must define when the
// runner has no #name suffix.
const DefaultPythonAttr = "application"

// MaxAppNameLen bounds app_name so that it fits, with a short prefix, in a
// Unix user name (32 characters).
const MaxAppNameLen = 28

// Config is the parsed [production] section of an app.ini.
type Config struct {
	// File is the app.ini path as given, used in messages.
	File string
	// AppName keys everything the app keeps on a node: data, logs,
	// services, instance directories (APP.DATE_NNN).
	AppName string
	// Runner says how the application runs.
	Runner Runner
	// Platform is PlatformPython (the default) or PlatformPHP.
	Platform string
	// PHPRoot is the directory, relative to the app dir, whose files PHP
	// requests resolve against and whose non-.php files are served
	// directly; "" when not set. The original's default was "no such
	// directory" for direct serving, the app root for PHP helpers.
	PHPRoot string
	// UpdateFetch lists what to run against a new instance on every
	// update, in order.
	UpdateFetch []Fetch
	// DefaultLocation is the LOCATION for update when none is given
	// (from default_location, or the legacy default_host/default_hostname).
	DefaultLocation string
	// Services are the service.NAME keys in file order.
	Services []Service
	// Packages are Debian packages to install on every update.
	Packages []string
	// PackageInstallScripts run as root before the packages are installed;
	// AfterInstallScripts run as root after the services are installed.
	// Both are marked experimental in the original.
	PackageInstallScripts []Command
	AfterInstallScripts   []Command
	// ConfigRequired: the app refuses to run without a configuration
	// directory (uploaded with --config or config.default).
	ConfigRequired bool
	// ConfigDefault is the directory (relative) used as the app's config
	// when none was uploaded; "" when not set.
	ConfigDefault string
	// ConfigTemplate is the directory (relative) create-config renders.
	ConfigTemplate string
	// ConfigChecker is the Python callable that checks a config directory.
	ConfigChecker Checker
	// Crons and Workers are the cron.NAME and worker.NAME entries (see
	// jobs.go), in file order.
	Crons   []Cron
	Workers []Worker
	// Limits are the app's resource limits (limit.* keys); zero fields
	// take the node's defaults.
	Limits Limits
	// Warnings are problems that do not stop a deploy: deprecated and
	// unknown keys, an upper-case app_name. Validate may add more.
	Warnings []Warning

	lines       map[string]int // key -> line, for errors found by Validate
	sectionLine int
}

// Runner is the runner key: a path in the app directory with an optional
// #name suffix.
type Runner struct {
	// Path is relative to the app dir, slash-separated and cleaned; "" for
	// a static-only app and for a PHP app without a front controller.
	Path string
	// Name is the #name suffix: the WSGI object of a .py runner (default
	// DefaultPythonAttr) or the application section of a Paste .ini
	// ("" means Paste's default, main).
	Name string
	// Kind is how the runner is run.
	Kind Kind
	// Line is the runner key's line, 0 when there is no runner key.
	Line int
}

// Fetch is one update_fetch entry: either a URL path requested from the new
// instance or a script run in the app's environment.
type Fetch struct {
	// URL is the path, with an optional query, to request ("/setup"); ""
	// for a script.
	URL string
	// Script is set for a "script:PATH ARGS" entry.
	Script *Command
	// Line is where the entry is written.
	Line int
}

// Command is a script in the app directory and its arguments.
type Command struct {
	// Path is relative to the app dir, slash-separated and cleaned.
	Path string
	Args []string
	Line int
}

// Service is a service.NAME key.
type Service struct {
	Name string
	// Value is the key's value; almost always empty.
	Value string
	Line  int
}

// Checker is config.checker, "module:function".
type Checker struct {
	Module   string
	Function string
}

// IsZero reports whether no checker is set.
func (c Checker) IsZero() bool { return c.Module == "" }

func (c Checker) String() string {
	if c.IsZero() {
		return ""
	}
	return c.Module + ":" + c.Function
}

// Warning is a problem that does not stop a deploy, located like an error.
type Warning struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (w Warning) String() string {
	return (&ini.Error{File: w.File, Line: w.Line, Key: w.Key, Msg: w.Msg}).Error()
}

// Load reads and parses DIR/app.ini. It does not check the config against
// the directory: call Validate for that. A missing app.ini gives an error
// satisfying errors.Is(err, fs.ErrNotExist).
func Load(appDir string) (*Config, error) {
	file := filepath.Join(appDir, FileName)
	data, err := os.ReadFile(file)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if _, derr := os.Stat(appDir); derr != nil {
				return nil, fmt.Errorf("application directory %s: %w", appDir, derr)
			}
			return nil, fmt.Errorf("no %s in %s (every application directory needs one; see the docs for its [production] section): %w",
				FileName, appDir, err)
		}
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	return Parse(file, data)
}

// Parse parses app.ini text; name is used in messages. It checks every
// value without looking at any file.
func Parse(name string, data []byte) (*Config, error) {
	f, err := ini.Parse(name, data)
	if err != nil {
		return nil, err
	}
	s := f.Section(SectionName)
	if s == nil {
		return nil, &ini.Error{File: name, Msg: "no [production] section (app.ini keeps its settings there: [production] then app_name = ..., runner = ...)"}
	}
	p := &parse{c: &Config{File: name, Platform: PlatformPython, lines: map[string]int{}, sectionLine: s.Line}, s: s}
	p.run()
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return p.c, nil
}

type parse struct {
	c    *Config
	s    *ini.Section
	errs []error
}

func (p *parse) fail(err *ini.Error) { p.errs = append(p.errs, err) }

func (p *parse) warn(k *ini.Key, format string, args ...any) {
	p.c.Warnings = append(p.c.Warnings, Warning{File: p.c.File, Line: k.Line, Key: k.Name, Msg: fmt.Sprintf(format, args...)})
}

func (p *parse) run() {
	c := p.c
	var runner, platform, defaultHost *ini.Key
	var jobs jobKeys
	servicePHP := false
	for _, k := range p.s.Keys() {
		c.lines[k.Name] = k.Line
		if !p.known(k) {
			continue
		}
		switch {
		case k.Name == "app_name":
			p.appName(k)
		case k.Name == "runner":
			runner = k
		case k.Name == "platform":
			platform = k
		case k.Name == "php_root":
			c.PHPRoot = p.relPath(k, k.Value, true)
		case k.Name == "update_fetch":
			p.updateFetch(k)
		case k.Name == "default_location":
			c.DefaultLocation = p.location(k)
		case k.Name == "default_host" || k.Name == "default_hostname":
			p.warn(k, "renamed to default_location; please rename it")
			if defaultHost == nil {
				defaultHost = k
			}
		case k.Name == "packages":
			p.packages(k)
		case k.Name == "package_install_script":
			c.PackageInstallScripts = p.commands(k)
		case k.Name == "after_install_script":
			c.AfterInstallScripts = p.commands(k)
		case k.Name == "config.required":
			b, err := k.Bool()
			if err != nil {
				p.errs = append(p.errs, err)
			}
			c.ConfigRequired = b
		case k.Name == "config.default":
			c.ConfigDefault = p.relPath(k, k.Value, true)
		case k.Name == "config.template":
			c.ConfigTemplate = p.relPath(k, k.Value, true)
		case k.Name == "config.checker":
			p.checker(k)
		case k.Name == "version":
			p.warn(k, "is no longer used and is ignored; remove it")
		case k.Name == "service.php":
			p.warn(k, "is the old way to say platform = php; use that instead")
			servicePHP = true
		case strings.HasPrefix(k.Name, "service."):
			p.service(k)
		case strings.HasPrefix(k.Name, "cron.") || strings.HasPrefix(k.Name, "worker."):
			jobs.add(k)
		case strings.HasPrefix(k.Name, "limit."):
			p.limit(k)
		default:
			// Reached only if Keys lists a key this switch misses
			// (TestKeys catches that).
			p.warn(k, "unknown key, ignored")
		}
	}
	if p.s.Key("app_name") == nil {
		p.fail(p.s.Errorf("app_name", "missing: every app needs a name (app_name = blog); its data, logs and services are kept under it"))
	}
	if c.DefaultLocation == "" && defaultHost != nil {
		c.DefaultLocation = p.location(defaultHost)
	}
	switch {
	case platform != nil:
		switch v := strings.ToLower(platform.Value); v {
		case PlatformPython, PlatformPHP:
			c.Platform = v
		default:
			p.fail(platform.Errorf("%q is not a platform (use python or php)", platform.Value))
		}
	case servicePHP:
		c.Platform = PlatformPHP
	}
	p.runner(runner)
	p.jobs(&jobs)
}

var appNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// CheckAppName reports whether name can be an app name: lower-case letters,
// digits, "-" and "_", starting with a letter or digit, at most
// MaxAppNameLen long. The name becomes a directory name, part of a Unix
// user name and of a systemd unit name, and instance names are
// APP.DATE_NNN, so "." and "/" are out.
func CheckAppName(name string) error {
	switch {
	case name == "":
		return errors.New("the app name is empty")
	case len(name) > MaxAppNameLen:
		return fmt.Errorf("app name %q is longer than %d characters", name, MaxAppNameLen)
	case strings.Contains(name, "."):
		return fmt.Errorf("app name %q contains \".\", which separates the app name from the date in instance names", name)
	case !appNameRE.MatchString(name):
		return fmt.Errorf("app name %q may only use lower-case letters, digits, - and _, and must start with a letter or digit", name)
	}
	return nil
}

func (p *parse) appName(k *ini.Key) {
	name := k.Value
	if lower := strings.ToLower(name); lower != name {
		// The original allowed upper case; keep such apps deployable.
		p.warn(k, "%q is used as %q (app names are lower case)", name, lower)
		name = lower
	}
	if err := CheckAppName(name); err != nil {
		p.fail(k.Errorf("%v", err))
		return
	}
	p.c.AppName = name
}

// relPath returns v cleaned and slash-separated after checking that it is
// a relative path inside the app directory; a problem is reported at k.
func (p *parse) relPath(k *ini.Key, v string, dir bool) string {
	rel, err := checkRel(v, dir)
	if err != nil {
		p.fail(k.Errorf("%v", err))
	}
	return rel
}

func checkRel(v string, dir bool) (string, error) {
	if v == "" {
		return "", nil
	}
	what := "path"
	if dir {
		what = "directory"
	}
	if strings.ContainsRune(v, 0) {
		return "", fmt.Errorf("%s %q contains a NUL byte", what, v)
	}
	if path.IsAbs(v) || filepath.IsAbs(v) {
		return "", fmt.Errorf("%s %q must be relative to the application directory", what, v)
	}
	clean := path.Clean(v)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("%s %q points outside the application directory", what, v)
	}
	if !dir && clean == "." {
		return "", fmt.Errorf("%q is a directory, not a file", v)
	}
	return clean, nil
}

func (p *parse) runner(k *ini.Key) {
	c := p.c
	if k == nil || k.Value == "" {
		if c.Platform == PlatformPHP {
			c.Runner.Kind = KindPHP
		} else {
			c.Runner.Kind = KindStatic
		}
		if k != nil {
			c.Runner.Line = k.Line
		}
		return
	}
	c.Runner.Line = k.Line
	file, name, hasName := strings.Cut(k.Value, "#")
	file = strings.TrimSpace(file)
	if file == "" {
		p.fail(k.Errorf("%q names no file", k.Value))
		return
	}
	rel := p.relPath(k, file, false)
	if rel == "" {
		return
	}
	c.Runner.Path = rel
	ext := strings.ToLower(path.Ext(rel))
	switch {
	case c.Platform == PlatformPHP:
		c.Runner.Kind = KindPHP
	case ext == ".py":
		c.Runner.Kind = KindPython
	case ext == ".ini":
		c.Runner.Kind = KindPaste
	case ext == ".php":
		p.fail(k.Errorf("%q is a PHP file: add platform = php", file))
		return
	default:
		// Whether it is executable is checked by Validate.
		c.Runner.Kind = KindCommand
	}
	if !hasName {
		if c.Runner.Kind == KindPython {
			c.Runner.Name = DefaultPythonAttr
		}
		return
	}
	name = strings.TrimSpace(name)
	switch c.Runner.Kind {
	case KindPython:
		if !identRE.MatchString(name) {
			p.fail(k.Errorf("#%s: the name after # must be the Python name of the WSGI application", name))
			return
		}
	case KindPaste:
		if name == "" || strings.ContainsFunc(name, isSpaceOrControl) {
			p.fail(k.Errorf("#%s: the name after # must be a Paste Deploy application name", name))
			return
		}
	default:
		p.fail(k.Errorf("a #name suffix only applies to .py and .ini runners"))
		return
	}
	c.Runner.Name = name
}

var (
	identRE      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	dottedRE     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)
	debPackageRE = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
)

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }

// valueLines are a lines value's entries: non-empty lines that are not
// "#" comments, as the original's _parse_lines.
func valueLines(k *ini.Key) []ini.Line {
	var out []ini.Line
	for _, l := range k.Lines() {
		if !strings.HasPrefix(l.Text, "#") {
			out = append(out, l)
		}
	}
	return out
}

func (p *parse) updateFetch(k *ini.Key) {
	for _, l := range valueLines(k) {
		if rest, ok := strings.CutPrefix(l.Text, "script:"); ok {
			if cmd, ok := p.command(k, l, rest); ok {
				p.c.UpdateFetch = append(p.c.UpdateFetch, Fetch{Script: &cmd, Line: l.Num})
			}
			continue
		}
		switch {
		case !strings.HasPrefix(l.Text, "/"):
			p.fail(k.ErrorfAt(l.Num, "%q: an entry is a URL path starting with / (such as /setup) or script:PATH ARGS", l.Text))
		case strings.ContainsFunc(l.Text, isSpaceOrControl):
			p.fail(k.ErrorfAt(l.Num, "%q: a URL path cannot contain spaces (write %%20)", l.Text))
		default:
			p.c.UpdateFetch = append(p.c.UpdateFetch, Fetch{URL: l.Text, Line: l.Num})
		}
	}
}

func (p *parse) command(k *ini.Key, l ini.Line, text string) (Command, bool) {
	words, err := splitArgs(text)
	if err != nil {
		p.fail(k.ErrorfAt(l.Num, "%q: %v", l.Text, err))
		return Command{}, false
	}
	if len(words) == 0 {
		p.fail(k.ErrorfAt(l.Num, "%q names no script", l.Text))
		return Command{}, false
	}
	rel, err := checkRel(words[0], false)
	if err != nil {
		p.fail(k.ErrorfAt(l.Num, "%v", err))
		return Command{}, false
	}
	return Command{Path: rel, Args: words[1:], Line: l.Num}, true
}

func (p *parse) commands(k *ini.Key) []Command {
	var out []Command
	for _, l := range valueLines(k) {
		if cmd, ok := p.command(k, l, l.Text); ok {
			out = append(out, cmd)
		}
	}
	return out
}

func (p *parse) packages(k *ini.Key) {
	for _, l := range valueLines(k) {
		// One package per line is the original's form; several on a line
		// would have reached apt-get as one bad argument, so split them.
		for _, pkg := range strings.Fields(l.Text) {
			if !debPackageRE.MatchString(pkg) {
				p.fail(k.ErrorfAt(l.Num, "%q is not a Debian package name (lower-case letters, digits, + - and .)", pkg))
				continue
			}
			p.c.Packages = append(p.c.Packages, pkg)
		}
	}
}

func (p *parse) service(k *ini.Key) {
	name := strings.TrimPrefix(k.Name, "service.")
	if !identRE.MatchString(name) {
		p.fail(k.Errorf("%q is not a service name (service.postgis, service.files, ...)", name))
		return
	}
	p.c.Services = append(p.c.Services, Service{Name: name, Value: k.Value, Line: k.Line})
}

func (p *parse) checker(k *ini.Key) {
	if k.Value == "" {
		return
	}
	mod, fn, ok := strings.Cut(k.Value, ":")
	if !ok || !dottedRE.MatchString(mod) || !dottedRE.MatchString(fn) {
		p.fail(k.Errorf("%q: write module:function (such as myapp.config:check)", k.Value))
		return
	}
	p.c.ConfigChecker = Checker{Module: mod, Function: fn}
}

func (p *parse) location(k *ini.Key) string {
	v := k.Value
	if strings.ContainsFunc(v, isSpaceOrControl) {
		p.fail(k.Errorf("%q: a location is HOST or HOST/PATH, without spaces", v))
		return ""
	}
	return v
}
