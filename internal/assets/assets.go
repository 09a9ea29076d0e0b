// Package assets holds the files the node agent lays on every node, under
// InstallDir: the Python WSGI bootstrap that gunicorn loads, the script
// runner for update_fetch `script:` entries, the silversupport
// compatibility package, and the PHP prelude.
//
// The files are part of the binary (go:embed), so the agent that runs on a
// node always installs the bootstrap that matches it.
package assets

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/toppcloud/toppcloud/internal/atomicfile"
)

// InstallDir is where Install puts the files on a node.
const InstallDir = "/usr/local/share/toppcloud"

// Paths of the installed files, relative to the install directory.
const (
	// PythonDir is the directory on gunicorn's --pythonpath: it holds
	// PythonModule and the silversupport package.
	PythonDir = "python"
	// PythonModule is the bootstrap's module; gunicorn serves
	// PythonModule:PythonApp.
	PythonModule = "toppcloud_wsgi"
	// PythonApp is the bootstrap's WSGI object.
	PythonApp = "application"
	// ScriptRunner runs an update_fetch `script:` entry:
	// python3 DIR/ScriptRunner SCRIPT ARGS...
	ScriptRunner = "python/toppcloud_script.py"
	// ConfigChecker runs app.ini's config.checker:
	// python3 DIR/ConfigChecker MODULE:FUNCTION CONFIG_DIR.
	ConfigChecker = "python/toppcloud_check_config.py"
	// GunicornConfig is the (empty) config file given to gunicorn with
	// --config, so an application's own gunicorn.conf.py is not read.
	GunicornConfig = "python/toppcloud_gunicorn_conf.py"
	// PHPPrepend is php-fpm's auto_prepend_file for PHP instances.
	PHPPrepend = "php/prepend.php"
)

//go:embed python/*.py python/silversupport/*.py php/*.php
var files embed.FS

// FS returns the files, rooted like InstallDir (python/..., php/...).
func FS() fs.FS { return files }

// Path returns the installed location of rel (one of the constants above)
// under dir; dir "" means InstallDir.
func Path(dir, rel string) string {
	if dir == "" {
		dir = InstallDir
	}
	return filepath.Join(dir, filepath.FromSlash(rel))
}

// Install writes every file under dir (InstallDir when ""), creating
// directories 0755 and files 0644, each file replaced atomically and only
// when its content differs, and removes files it does not know from the
// directories it manages (python/, php/) so a renamed module cannot linger.
// It reports whether anything changed. Python's byte-code caches
// (__pycache__) are left alone.
func Install(dir string) (changed bool, err error) {
	if dir == "" {
		dir = InstallDir
	}
	want := map[string]bool{}
	err = fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(dir, filepath.FromSlash(p))
		if d.IsDir() {
			want[target] = true
			return os.MkdirAll(target, 0o755)
		}
		want[target] = true
		data, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		if old, err := os.ReadFile(target); err == nil && bytes.Equal(old, data) {
			return nil
		}
		changed = true
		return atomicfile.WriteFile(target, data, 0o644)
	})
	if err != nil {
		return changed, fmt.Errorf("install assets in %s: %w", dir, err)
	}
	for _, top := range []string{"python", "php"} {
		root := filepath.Join(dir, top)
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == "__pycache__" {
				return filepath.SkipDir
			}
			if want[p] {
				return nil
			}
			changed = true
			if d.IsDir() {
				if err := os.RemoveAll(p); err != nil {
					return err
				}
				return filepath.SkipDir
			}
			return os.Remove(p)
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return changed, fmt.Errorf("install assets in %s: %w", dir, err)
		}
	}
	return changed, nil
}
