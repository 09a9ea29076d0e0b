package manifest

import (
	"context"
	"crypto/sha256"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/protocol/wire"
)

// writeTree creates files: "name/" is a directory, content "-> target"
// a symlink, anything else a file with that content (mode 0755 if the name
// ends in "*").
func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		if target, ok := strings.CutPrefix(content, "-> "); ok {
			p := filepath.Join(root, name)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(filepath.Join(root, name), 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		mode := os.FileMode(0o644)
		if n, ok := strings.CutSuffix(name, "*"); ok {
			name, mode = n, 0o755
		}
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
	}
}

// later is a clock an hour ahead, so no file of a test is "racily clean".
func later() time.Time { return time.Now().Add(time.Hour) }

func build(t *testing.T, dir string, opts Options) (*wire.Manifest, Stats) {
	t.Helper()
	m, st, err := Build(context.Background(), dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return m, st
}

func paths(m *wire.Manifest) []string {
	var out []string
	for _, e := range m.Entries {
		s := e.Path
		switch e.Type {
		case wire.EntryDir:
			s += "/"
		case wire.EntrySymlink:
			s += " -> " + e.Target
		case wire.EntryFile:
			if e.Exec {
				s += "*"
			}
		}
		out = append(out, s)
	}
	return out
}

func TestBuild_Tree(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"app.ini":               "[production]\napp_name = x\n",
		"bin/run*":              "#!/bin/sh\n",
		"a.txt":                 "a",
		"a/b.txt":               "b",
		"empty/":                "",
		"static/logo":           "-> ../a.txt",
		"static/index.html":     "<p>",
		"static/dir":            "-> ../a",
		".git/HEAD":             "ref",
		"pkg/__pycache__/m.pyc": "x",
		"pkg/m.py":              "",
		"pkg/m.pyc":             "x",
		"silver-logs/x.log":     "",
		"notes.txt~":            "",
		"build/out":             "",
		"keep.log":              "",
		"drop.log":              "",
		".toppcloudignore":      "# local\n/build/\n*.log\n!keep.log\n",
	})
	m, st := build(t, dir, Options{})
	want := []string{
		".toppcloudignore", "a/", "a.txt", "a/b.txt", "app.ini", "bin/", "bin/run*", "empty/",
		"keep.log", "pkg/", "pkg/m.py", "static/", "static/dir -> ../a", "static/index.html", "static/logo -> ../a.txt",
	}
	if got := paths(m); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if st.Files != 8 || st.Dirs != 5 || st.Symlinks != 2 || st.Ignored != 7 {
		t.Errorf("stats = %+v", st)
	}
	for _, e := range m.Entries {
		if e.Path == "a.txt" && (e.Size != 1 || e.Hash != wire.Hash(sha256.Sum256([]byte("a")))) {
			t.Errorf("a.txt = %+v", e)
		}
	}
}

func TestBuild_Deterministic(t *testing.T) {
	files := map[string]string{}
	for i := range 300 {
		files[filepath.Join("d"+string(rune('a'+i%7)), "f"+strings.Repeat("x", i%13)+string(rune('a'+i%26)))] = strings.Repeat("y", i)
	}
	d1, d2 := t.TempDir(), t.TempDir()
	writeTree(t, d1, files)
	writeTree(t, d2, files)
	m1, _ := build(t, d1, Options{Workers: 1})
	m2, _ := build(t, d2, Options{Workers: 4})
	g1, _ := m1.Digest()
	g2, _ := m2.Digest()
	if g1 != g2 {
		t.Fatal("same tree, different digests")
	}
	os.WriteFile(filepath.Join(d2, "da", "new"), nil, 0o644)
	m3, _ := build(t, d2, Options{})
	if g3, _ := m3.Digest(); g3 == g1 {
		t.Fatal("added file, same digest")
	}
}

func TestBuild_Refusals(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		path  string
		want  string
		n     int // refusals in all (0 means 1)
	}{
		{"absolute symlink", func(t *testing.T, d string) { os.Symlink("/etc/passwd", filepath.Join(d, "pw")) }, "pw", "absolute", 1},
		{"escaping symlink", func(t *testing.T, d string) { os.Symlink("../outside", filepath.Join(d, "out")) }, "out", "out of the directory", 1},
		{"deep escaping symlink", func(t *testing.T, d string) {
			os.MkdirAll(filepath.Join(d, "a/b"), 0o755)
			os.Symlink("../../../x", filepath.Join(d, "a/b/l"))
		}, "a/b/l", "out of the directory", 1},
		{"escape through another symlink", func(t *testing.T, d string) {
			os.Symlink("..", filepath.Join(d, "up"))
			os.Symlink("up/etc", filepath.Join(d, "sneaky"))
		}, "sneaky", "out of the directory", 2},
		{"escape through an absolute symlink", func(t *testing.T, d string) {
			os.Symlink("/", filepath.Join(d, "root"))
			os.Symlink("root/etc", filepath.Join(d, "sneaky"))
		}, "sneaky", "outside the directory", 2},
		{"symlink loop", func(t *testing.T, d string) {
			os.Symlink("b", filepath.Join(d, "a"))
			os.Symlink("a", filepath.Join(d, "b"))
		}, "a", "too many levels", 2},
		{"fifo", func(t *testing.T, d string) {
			if err := syscall.Mkfifo(filepath.Join(d, "pipe"), 0o644); err != nil {
				t.Skip(err)
			}
		}, "pipe", "named pipe", 1},
		{"socket", func(t *testing.T, d string) {
			l, err := net.Listen("unix", filepath.Join(d, "sock"))
			if err != nil {
				t.Skip(err)
			}
			t.Cleanup(func() { l.Close() })
		}, "sock", "socket", 1},
		{"newline in name", func(t *testing.T, d string) { os.WriteFile(filepath.Join(d, "a\nb"), nil, 0o644) }, `"a\nb"`, "newline", 1},
		{"invalid utf-8", func(t *testing.T, d string) { os.WriteFile(filepath.Join(d, "a\xffb"), nil, 0o644) }, `"a\xffb"`, "UTF-8", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, map[string]string{"app.ini": "x", "ok/inside": "y"})
			tt.setup(t, dir)
			_, _, err := Build(context.Background(), dir, Options{})
			var re *RefusedError
			if !errors.As(err, &re) {
				t.Fatalf("err = %v, want *RefusedError", err)
			}
			found := false
			for _, r := range re.Refusals {
				found = found || r.Path == tt.path && strings.Contains(r.Reason, tt.want)
			}
			if len(re.Refusals) != max(tt.n, 1) || !found {
				t.Fatalf("refusals = %+v, want %d with one for %s containing %q", re.Refusals, max(tt.n, 1), tt.path, tt.want)
			}
			if !strings.Contains(err.Error(), IgnoreFile) {
				t.Errorf("message does not say how to fix: %v", err)
			}
		})
	}
	// An ignored problem is not a problem.
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{".toppcloudignore": "pw\n"})
	os.Symlink("/etc/passwd", filepath.Join(dir, "pw"))
	build(t, dir, Options{})
	// All problems are reported at once.
	os.Symlink("/etc/group", filepath.Join(dir, "gr"))
	os.Symlink("../x", filepath.Join(dir, "up"))
	_, _, err := Build(context.Background(), dir, Options{})
	var re *RefusedError
	if !errors.As(err, &re) || len(re.Refusals) != 2 {
		t.Fatalf("err = %v, want two refusals", err)
	}
}

func TestBuild_SymlinksInsideKept(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"a/b/c": "x"})
	links := map[string]string{
		"l1":     "a/b/c",
		"a/l2":   "../a/b",
		"a/b/l3": "../../l1",
		"l4":     "missing/file",
		"l5":     "a/./b/../b",
	}
	for p, target := range links {
		if err := os.Symlink(target, filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	m, st := build(t, dir, Options{})
	if st.Symlinks != len(links) {
		t.Fatalf("symlinks = %d, want %d: %v", st.Symlinks, len(links), paths(m))
	}
	for _, e := range m.Entries {
		if e.Type == wire.EntrySymlink && links[e.Path] != e.Target {
			t.Errorf("%s -> %q, want %q", e.Path, e.Target, links[e.Path])
		}
	}
}

func TestBuild_BadIgnoreFile(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{IgnoreFile: "ok\n[oops\n"})
	_, _, err := Build(context.Background(), dir, Options{})
	if err == nil || !strings.Contains(err.Error(), IgnoreFile+":2") {
		t.Fatalf("err = %v, want one naming %s:2", err, IgnoreFile)
	}
}

func TestBuild_NotADirectory(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	os.WriteFile(f, nil, 0o644)
	for _, p := range []string{f, filepath.Join(dir, "missing")} {
		if _, _, err := Build(context.Background(), p, Options{}); err == nil {
			t.Errorf("%s: want error", p)
		}
	}
}

func TestBuild_Cache(t *testing.T) {
	dir, cache := t.TempDir(), t.TempDir()
	// "x/1" is walked before "x.1" but sorted after it.
	writeTree(t, dir, map[string]string{"a": "aaaa", "b": "bbbb", "sub/c": "cccc", "d": "dddd", "e": "eeee", "f": "ffff",
		"x/1": "walked first", "x.1": "sorted first", "x/2": "2"})
	opts := Options{CacheDir: cache, Now: later}
	get := func() (map[string]wire.Hash, Stats) {
		m, st := build(t, dir, opts)
		h := map[string]wire.Hash{}
		for _, e := range m.Entries {
			h[e.Path] = e.Hash
		}
		return h, st
	}
	sum := func(s string) wire.Hash { return sha256.Sum256([]byte(s)) }

	_, st := get()
	if st.Hashed != 9 || st.Cached != 0 {
		t.Fatalf("first build: %+v", st)
	}
	_, st = get()
	if st.Hashed != 0 || st.Cached != 9 {
		t.Fatalf("unchanged: %+v", st)
	}

	past := time.Now().Add(-time.Hour)
	// touch: same content, new mtime.
	os.Chtimes(filepath.Join(dir, "a"), past, past)
	// size change.
	os.WriteFile(filepath.Join(dir, "b"), []byte("bbbbb"), 0o644)
	// same size, other content, mtime changed.
	os.WriteFile(filepath.Join(dir, "sub/c"), []byte("CCCC"), 0o644)
	// same size, other content, mtime put back: ctime still moves.
	fi, _ := os.Stat(filepath.Join(dir, "d"))
	os.WriteFile(filepath.Join(dir, "d"), []byte("DDDD"), 0o644)
	os.Chtimes(filepath.Join(dir, "d"), fi.ModTime(), fi.ModTime())
	// replaced by another file (new inode), everything else restored.
	fi, _ = os.Stat(filepath.Join(dir, "e"))
	os.WriteFile(filepath.Join(dir, "e.new"), []byte("EEEE"), 0o644)
	os.Rename(filepath.Join(dir, "e.new"), filepath.Join(dir, "e"))
	os.Chtimes(filepath.Join(dir, "e"), fi.ModTime(), fi.ModTime())

	h, st := get()
	if st.Hashed != 5 || st.Cached != 4 {
		t.Fatalf("after changes: %+v", st)
	}
	want := map[string]wire.Hash{"a": sum("aaaa"), "b": sum("bbbbb"), "sub/c": sum("CCCC"), "d": sum("DDDD"), "e": sum("EEEE"), "f": sum("ffff")}
	for p, w := range want {
		if h[p] != w {
			t.Errorf("%s: stale hash", p)
		}
	}
	// A deleted file leaves the cache; a new one with its name is hashed.
	os.Remove(filepath.Join(dir, "f"))
	if _, st = get(); st.Files != 8 || st.Hashed != 0 {
		t.Fatalf("after delete: %+v", st)
	}
	c := loadCache(cache, dir)
	if _, ok := c.Files["f"]; ok || len(c.Files) != 8 {
		t.Fatalf("cache still has deleted file: %d entries", len(c.Files))
	}

	// A broken cache file is ignored, not fatal.
	os.WriteFile(cachePath(cache, dir), []byte("{broken"), 0o600)
	if _, st = get(); st.Hashed != 8 {
		t.Fatalf("broken cache: %+v", st)
	}
}

func TestBuild_CacheRacy(t *testing.T) {
	dir, cache := t.TempDir(), t.TempDir()
	writeTree(t, dir, map[string]string{"a": "1", "b": "2"})
	// With the real clock the files were written just now: they may still
	// change within the same timestamp tick, so the cache does not vouch
	// for them on the next build.
	build(t, dir, Options{CacheDir: cache})
	if _, st := build(t, dir, Options{CacheDir: cache}); st.Cached != 0 {
		t.Fatalf("racy entries trusted: %+v", st)
	}
	// Once the cache was written well after the last change, it does.
	build(t, dir, Options{CacheDir: cache, Now: later})
	if _, st := build(t, dir, Options{CacheDir: cache}); st.Cached != 2 {
		t.Fatalf("settled entries not trusted: %+v", st)
	}
}

func TestBuild_Canceled(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"a": "x"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := Build(ctx, dir, Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}
