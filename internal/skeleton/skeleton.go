// Package skeleton writes a new application directory that deploys as it
// is (`toppcloud init`): an app.ini naming the app after its directory
// and showing every key and service in comments, static/, lib/python/, a
// minimal runner for the chosen kind, and a .toppcloudignore.
package skeleton

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"

	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/atomicfile"
)

// Kind is what the skeleton's runner is.
type Kind string

// The kinds init can make.
const (
	Python  Kind = "python"
	PHP     Kind = "php"
	Static  Kind = "static"
	Command Kind = "command"
)

// Kinds lists them, the default first.
var Kinds = []Kind{Python, PHP, Static, Command}

// ParseKind checks a --main value.
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds {
		if string(k) == s {
			return k, nil
		}
	}
	return "", fmt.Errorf("%q is not a kind of app (python, php, static or command)", s)
}

//go:embed files
var files embed.FS

// Options say what to write where.
type Options struct {
	// Dir is the application directory; it is created if missing.
	Dir string
	// Kind picks the runner.
	Kind Kind
	// Force overwrites files that exist with other content.
	Force bool
}

// Result says what Write did, by path relative to Dir.
type Result struct {
	// App is the app_name written to app.ini.
	App string
	// Written were created or (with Force) replaced; Unchanged already
	// had the skeleton's content.
	Written   []string
	Unchanged []string
}

// ExistsError lists the files that exist with other content, when Force
// is not set. Nothing was written.
type ExistsError struct {
	Dir   string
	Paths []string
}

func (e *ExistsError) Error() string {
	return fmt.Sprintf("%s already has %s; nothing was written (use -f to overwrite them)", e.Dir, strings.Join(e.Paths, ", "))
}

// entry is one file of the skeleton.
type entry struct {
	rel  string
	data []byte
	mode fs.FileMode
}

// Write writes the skeleton. Every file is checked before any is
// written, so a refusal leaves the directory as it was.
func Write(o Options) (Result, error) {
	abs, err := filepath.Abs(o.Dir)
	if err != nil {
		return Result{}, err
	}
	app := AppName(filepath.Base(abs))
	if err := appconfig.CheckAppName(app); err != nil {
		return Result{}, fmt.Errorf("the directory name %q gives no app name: %w (rename the directory, or edit app_name afterwards)", filepath.Base(abs), err)
	}
	entries, err := render(o.Kind, app)
	if err != nil {
		return Result{}, err
	}
	res := Result{App: app}
	var todo []entry
	var exists []string
	for _, e := range entries {
		p := filepath.Join(abs, filepath.FromSlash(e.rel))
		old, err := os.ReadFile(p)
		switch {
		case err == nil && bytes.Equal(old, e.data):
			res.Unchanged = append(res.Unchanged, e.rel)
			continue
		case err == nil:
			exists = append(exists, e.rel)
		case !errors.Is(err, fs.ErrNotExist):
			return Result{}, fmt.Errorf("%s: %w", p, err)
		}
		todo = append(todo, e)
	}
	if len(exists) > 0 && !o.Force {
		return Result{}, &ExistsError{Dir: o.Dir, Paths: exists}
	}
	for _, d := range []string{"static", "lib/python"} {
		if err := os.MkdirAll(filepath.Join(abs, filepath.FromSlash(d)), 0o755); err != nil {
			return Result{}, err
		}
	}
	for _, e := range todo {
		p := filepath.Join(abs, filepath.FromSlash(e.rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return res, err
		}
		if err := atomicfile.WriteFile(p, e.data, e.mode); err != nil {
			return res, fmt.Errorf("write %s: %w", p, err)
		}
		res.Written = append(res.Written, e.rel)
	}
	return res, nil
}

// render fills in the skeleton's templates for kind.
func render(kind Kind, app string) ([]entry, error) {
	runner := map[Kind]string{Python: "main.py", PHP: "index.php", Command: "server"}[kind]
	data := map[string]any{"App": app, "Kind": string(kind), "Runner": runner, "Module": pythonName(app)}
	var out []entry
	add := func(rel, tmpl string, mode fs.FileMode) error {
		src, err := files.ReadFile("files/" + tmpl)
		if err != nil {
			return err
		}
		t, err := template.New(tmpl).Parse(string(src))
		if err != nil {
			return err
		}
		var b bytes.Buffer
		if err := t.Execute(&b, data); err != nil {
			return err
		}
		out = append(out, entry{rel: rel, data: b.Bytes(), mode: mode})
		return nil
	}
	if err := add("app.ini", "app.ini.tmpl", 0o644); err != nil {
		return nil, err
	}
	if err := add(".toppcloudignore", "toppcloudignore.tmpl", 0o644); err != nil {
		return nil, err
	}
	var err error
	switch kind {
	case Python:
		err = add("main.py", "main.py.tmpl", 0o644)
	case PHP:
		err = add("index.php", "index.php.tmpl", 0o644)
	case Static:
		err = add("static/index.html", "index.html.tmpl", 0o644)
	case Command:
		err = add("server", "server.tmpl", 0o755)
	default:
		err = fmt.Errorf("unknown kind %q", kind)
	}
	return out, err
}

// pythonName makes a Python module name of an app name (config.checker's
// example): "-" cannot be in one, nor a digit first.
func pythonName(app string) string {
	n := strings.ReplaceAll(app, "-", "_")
	if n == "" || n[0] >= '0' && n[0] <= '9' {
		n = "app_" + n
	}
	return n
}

var notNameRE = regexp.MustCompile(`[^a-z0-9_-]+`)

// AppName makes an app name of a directory name: lower case, runs of
// other characters made "-", trimmed to appconfig.MaxAppNameLen.
func AppName(dir string) string {
	n := notNameRE.ReplaceAllString(strings.ToLower(dir), "-")
	n = strings.TrimLeft(n, "-_")
	if len(n) > appconfig.MaxAppNameLen {
		n = n[:appconfig.MaxAppNameLen]
	}
	return strings.TrimRight(n, "-_")
}
