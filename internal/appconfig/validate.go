package appconfig

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/toppcloud/toppcloud/internal/ini"
)

// Validate checks the config against the application directory: the
// runner, scripts and directories it names exist inside appDir (symbolic
// links included), a command runner is executable, and an app without a
// runner has a static/ directory. It may add Warnings. Problems are
// *ini.Error values, joined.
func (c *Config) Validate(appDir string) error {
	root, err := filepath.EvalSymlinks(appDir)
	if err != nil {
		return fmt.Errorf("application directory: %w", err)
	}
	v := &validation{c: c, dir: appDir, root: root}

	switch r := c.Runner; {
	case r.Path != "":
		fi := v.file("runner", r.Line, r.Path)
		if fi != nil && r.Kind == KindCommand && fi.Mode()&0o111 == 0 {
			v.fail("runner", r.Line, fmt.Sprintf(
				"%q is not executable; a runner is a .py file defining %s, a Paste Deploy .ini file, or a program that listens on $PORT (chmod +x it)",
				r.Path, DefaultPythonAttr))
		}
	case r.Kind == KindStatic:
		line := r.Line
		if line == 0 {
			line = c.sectionLine
		}
		if fi, err := v.stat("static"); err != nil || !fi.IsDir() {
			v.fail("runner", line,
				"no runner and no static/ directory: set runner = (a .py, .ini or executable file) or add static/")
		}
	}
	if c.PHPRoot != "" {
		v.directory("php_root", c.lines["php_root"], c.PHPRoot)
	}
	for _, f := range c.UpdateFetch {
		if f.Script != nil {
			v.file("update_fetch", f.Line, f.Script.Path)
		}
	}
	for _, cr := range c.Crons {
		if cr.Script != nil {
			v.program("cron."+cr.Name, cr.Line, cr.Script.Path)
		}
	}
	for _, w := range c.Workers {
		v.program("worker."+w.Name, w.Line, w.Command.Path)
	}
	for _, cmd := range c.PackageInstallScripts {
		v.file("package_install_script", cmd.Line, cmd.Path)
	}
	for _, cmd := range c.AfterInstallScripts {
		v.file("after_install_script", cmd.Line, cmd.Path)
	}
	if c.ConfigDefault != "" {
		v.directory("config.default", c.lines["config.default"], c.ConfigDefault)
	}
	if c.ConfigTemplate != "" {
		// Only create-config reads it, so a missing one does not stop a
		// deploy.
		if fi, err := v.stat(c.ConfigTemplate); err != nil || !fi.IsDir() {
			c.warnOnce(Warning{File: c.File, Line: c.lines["config.template"], Key: "config.template",
				Msg: fmt.Sprintf("directory %q not found in %s", c.ConfigTemplate, appDir)})
		}
	}
	return errors.Join(v.errs...)
}

// warnOnce adds w unless it is there already, so that calling Validate
// again does not repeat warnings.
func (c *Config) warnOnce(w Warning) {
	for _, have := range c.Warnings {
		if have == w {
			return
		}
	}
	c.Warnings = append(c.Warnings, w)
}

type validation struct {
	c    *Config
	dir  string // as given, for messages
	root string // symlinks resolved
	errs []error
}

func (v *validation) fail(key string, line int, msg string) {
	v.errs = append(v.errs, &ini.Error{File: v.c.File, Line: line, Key: key, Msg: msg})
}

// stat follows symbolic links but refuses a target outside the app
// directory: only the directory is uploaded, so such a file would be
// missing on the node.
func (v *validation) stat(rel string) (fs.FileInfo, error) {
	real, err := filepath.EvalSymlinks(filepath.Join(v.root, filepath.FromSlash(rel)))
	if err != nil {
		return nil, err
	}
	if inside, err := filepath.Rel(v.root, real); err != nil || inside == ".." || strings.HasPrefix(inside, ".."+string(filepath.Separator)) {
		return nil, errOutside
	}
	return os.Stat(real)
}

var errOutside = errors.New("outside the application directory")

func (v *validation) file(key string, line int, rel string) fs.FileInfo {
	fi, err := v.stat(rel)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		v.fail(key, line, fmt.Sprintf("file %q not found in %s", rel, v.dir))
	case errors.Is(err, errOutside):
		v.fail(key, line, fmt.Sprintf("%q is a link to a file outside %s", rel, v.dir))
	case err != nil:
		v.fail(key, line, fmt.Sprintf("%q: %v", rel, err))
	case !fi.Mode().IsRegular():
		v.fail(key, line, fmt.Sprintf("%q in %s is not a regular file", rel, v.dir))
	default:
		return fi
	}
	return nil
}

// program checks that a job's command can run: a Python script, or an
// executable file.
func (v *validation) program(key string, line int, rel string) {
	fi := v.file(key, line, rel)
	if fi == nil || fi.Mode()&0o111 != 0 {
		return
	}
	if real, err := filepath.EvalSymlinks(filepath.Join(v.root, filepath.FromSlash(rel))); err == nil && PythonScript(real) {
		return
	}
	v.fail(key, line, fmt.Sprintf("%q is not executable: make it executable (chmod +x), or make it a Python script (.py, or a #! line naming python)", rel))
}

func (v *validation) directory(key string, line int, rel string) {
	fi, err := v.stat(rel)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		v.fail(key, line, fmt.Sprintf("directory %q not found in %s", rel, v.dir))
	case errors.Is(err, errOutside):
		v.fail(key, line, fmt.Sprintf("%q is a link to a directory outside %s", rel, v.dir))
	case err != nil:
		v.fail(key, line, fmt.Sprintf("%q: %v", rel, err))
	case !fi.IsDir():
		v.fail(key, line, fmt.Sprintf("%q in %s is not a directory", rel, v.dir))
	}
}
