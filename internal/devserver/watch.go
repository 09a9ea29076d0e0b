package devserver

import (
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/deploy/manifest"
)

// fileSig is what a poll compares: a change of any of these is an edit.
type fileSig struct {
	size  int64
	mtime time.Time
	mode  fs.FileMode
}

// watchedExt are the files of a Python app whose edits reload it: its
// code, Paste Deploy configs, and .pth files that change sys.path.
var watchedExt = map[string]bool{".py": true, ".ini": true, ".pth": true}

// watchList is what a change of reloads the app: app.ini and the ignore
// file always; for Python apps every .py/.ini/.pth file of the directory
// (lib/python included; static/ and ignored paths not); for a command app
// its runner; and the configuration directory.
func (s *Server) watchList(cfg *appconfig.Config) []string {
	list := []string{filepath.Join(s.appDir, appconfig.FileName), filepath.Join(s.appDir, manifest.IgnoreFile)}
	switch cfg.Runner.Kind {
	case appconfig.KindPython, appconfig.KindPaste:
		list = append(list, s.appDir+string(filepath.Separator))
	case appconfig.KindCommand:
		list = append(list, filepath.Join(s.appDir, filepath.FromSlash(cfg.Runner.Path)))
	}
	switch {
	case s.o.ConfigDir != "":
		list = append(list, s.o.ConfigDir+string(filepath.Separator))
	case cfg.ConfigDefault != "":
		list = append(list, filepath.Join(s.appDir, filepath.FromSlash(cfg.ConfigDefault))+string(filepath.Separator))
	}
	return list
}

// scan takes a snapshot of the watched files. Entries ending in a
// separator are directory trees.
func (s *Server) scan(list []string) map[string]fileSig {
	snap := map[string]fileSig{}
	add := func(p string, st fs.FileInfo) {
		snap[p] = fileSig{size: st.Size(), mtime: st.ModTime(), mode: st.Mode()}
	}
	for _, w := range list {
		if !strings.HasSuffix(w, string(filepath.Separator)) {
			if st, err := os.Stat(w); err == nil {
				add(w, st)
			}
			continue
		}
		root := strings.TrimSuffix(w, string(filepath.Separator))
		appTree := root == s.appDir
		var ig *manifest.Ignore
		if appTree {
			ig, _ = manifest.LoadIgnore(root)
		}
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			rel, _ := filepath.Rel(root, p)
			rel = filepath.ToSlash(rel)
			if d.IsDir() {
				if rel != "." && appTree && (rel == "static" || strings.HasPrefix(d.Name(), ".") || ig != nil && ig.Match(rel, true)) {
					return filepath.SkipDir
				}
				return nil
			}
			if appTree && (!watchedExt[filepath.Ext(p)] || ig != nil && ig.Match(rel, false)) {
				return nil
			}
			if st, err := d.Info(); err == nil {
				add(p, st)
			}
			return nil
		})
	}
	return snap
}

// changes scans the current instance's files and names the first that
// changed since the last scan ("" for none).
func (s *Server) changes() string {
	inst := s.current()
	if inst == nil {
		return ""
	}
	snap := s.scan(inst.watch)
	old := s.snapshot
	s.snapshot = snap
	if old == nil {
		return ""
	}
	var changed []string
	for p, sig := range snap {
		if o, ok := old[p]; !ok || o != sig {
			changed = append(changed, p)
		}
	}
	for p := range old {
		if _, ok := snap[p]; !ok {
			changed = append(changed, p)
		}
	}
	if len(changed) == 0 {
		return ""
	}
	sort.Strings(changed)
	name, err := filepath.Rel(s.appDir, changed[0])
	if err != nil || strings.HasPrefix(name, "..") {
		name = changed[0]
	}
	if len(changed) > 1 {
		name += " and others"
	}
	return filepath.ToSlash(name)
}
