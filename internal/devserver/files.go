package devserver

import (
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// fileDir serves the files of one directory the way a node's router
// serves static/ and the writable root before the application: an
// existing file, or a directory holding index.html (with the slash added
// by a redirect, and .../index.html redirected to .../); anything else
// falls through to the next handler. Symlinks that leave the directory
// are not followed (os.Root), so a link the app planted in its writable
// root cannot serve files from elsewhere.
type fileDir struct {
	dir string
}

// serve answers r from the directory and reports whether it did.
func (d fileDir) serve(w http.ResponseWriter, r *http.Request) bool {
	if d.dir == "" {
		return false
	}
	root, err := os.OpenRoot(d.dir)
	if err != nil {
		return false
	}
	defer root.Close()
	rel := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	if rel == "" {
		rel = "."
	}
	st, err := root.Stat(rel)
	switch {
	case err != nil:
		return false
	case st.Mode().IsRegular():
		if strings.HasSuffix(r.URL.Path, "/") {
			return false
		}
	case st.IsDir():
		ist, err := root.Stat(path.Join(rel, "index.html"))
		if err != nil || !ist.Mode().IsRegular() {
			return false
		}
	default:
		return false
	}
	http.FileServerFS(root.FS()).ServeHTTP(w, r)
	return true
}

// hostDir is the writable root's per-host directory for r's host, or ""
// when the host cannot name a directory.
func hostDir(writableRoot string, r *http.Request) string {
	if writableRoot == "" {
		return ""
	}
	host := strings.ToLower(r.Host)
	if h, _, ok := strings.Cut(host, ":"); ok && !strings.HasPrefix(host, "[") {
		host = h
	}
	if !safeHostRE.MatchString(host) {
		return ""
	}
	return filepath.Join(writableRoot, host)
}

// safeHostRE is what may name a per-host directory: a DNS name.
var safeHostRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$`)

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
