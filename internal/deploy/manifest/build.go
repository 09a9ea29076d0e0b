// Package manifest is the client side of getting an application directory
// onto a node: Build walks the directory into a wire.Manifest (with a
// hash cache so an unchanged tree is not read again), and Plan/Send
// stream the contents the node lacks as a protocol blob stream.
//
// The update command drives it over the agent protocol in one request
// (see Plan for the flow).
package manifest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/toppcloud/toppcloud/internal/filestat"
	"github.com/toppcloud/toppcloud/internal/protocol/wire"
)

// Options configure Build.
type Options struct {
	// CacheDir holds the hash cache (one file per application
	// directory). Empty means no cache: every file is read.
	CacheDir string
	// Workers is the number of files hashed at once; zero means
	// GOMAXPROCS.
	Workers int
	// Now is the clock, for tests; nil means time.Now.
	Now func() time.Time
}

// Stats describe what Build did.
type Stats struct {
	Files, Dirs, Symlinks int
	// Ignored counts paths left out by ignore rules (an ignored directory
	// counts once).
	Ignored int
	// Bytes is the total size of the files.
	Bytes int64
	// Hashed files were read; Cached ones were known from the cache.
	Hashed, Cached int
	HashedBytes    int64
}

// Refusal is one path that cannot be uploaded and why.
type Refusal struct {
	Path   string
	Reason string
}

// RefusedError lists every path of the directory that cannot be uploaded,
// so the user can fix them all at once.
type RefusedError struct {
	Dir      string
	Refusals []Refusal
}

// Error lists the refusals, one per line, and says how to fix them.
func (e *RefusedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d path(s) cannot be uploaded:", e.Dir, len(e.Refusals))
	for _, r := range e.Refusals {
		fmt.Fprintf(&b, "\n  %s: %s", r.Path, r.Reason)
	}
	b.WriteString("\nfix them or list them in " + IgnoreFile)
	return b.String()
}

// maxRefusals bounds the list: past that the user has a different
// problem (wrong directory).
const maxRefusals = 50

// Build walks dir into a manifest: directories, regular files (size,
// sha256, executable bit) and symlinks, sorted by path, without what
// DefaultIgnores and dir/.toppcloudignore exclude. It refuses, listing
// them all in a *RefusedError: symlinks whose target is absolute or
// leads outside dir (also through other symlinks) — the original copied
// what they pointed to, we do not, because an upload should contain only
// the application directory —, sockets, devices and fifos, and names that
// are not valid UTF-8 or contain NUL, newline or carriage return.
//
// With opts.CacheDir, files whose size, mtime, ctime, inode and device
// are unchanged since the last Build of the same directory are not read
// again.
func Build(ctx context.Context, dir string, opts Options) (*wire.Manifest, Stats, error) {
	var st Stats
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, st, fmt.Errorf("manifest of %s: %w", dir, err)
	}
	if fi, err := os.Stat(abs); err != nil {
		return nil, st, fmt.Errorf("manifest of %s: %w", dir, err)
	} else if !fi.IsDir() {
		return nil, st, fmt.Errorf("manifest of %s: not a directory", dir)
	}
	ig, err := LoadIgnore(abs)
	if err != nil {
		return nil, st, err
	}

	// The snapshot time is taken before any file is looked at: a file
	// changed after it may have been hashed before the change.
	snapshot := now()
	w := walker{root: abs, ig: ig, ctx: ctx}
	if err := w.walk(""); err != nil {
		return nil, st, err
	}
	if len(w.refusals) > 0 {
		return nil, st, &RefusedError{Dir: dir, Refusals: w.refusals}
	}

	var cache *hashCache
	if opts.CacheDir != "" {
		cache = loadCache(opts.CacheDir, abs)
	}
	var todo []int
	for i := range w.entries {
		e := &w.entries[i]
		switch e.Type {
		case wire.EntryDir:
			st.Dirs++
		case wire.EntrySymlink:
			st.Symlinks++
		case wire.EntryFile:
			st.Files++
			st.Bytes += e.Size
			if h, ok := cache.lookup(e.Path, w.stats[i]); ok {
				e.Hash = h
				st.Cached++
			} else {
				todo = append(todo, i)
			}
		}
	}
	st.Ignored = w.ignored
	if err := hashFiles(ctx, abs, w.entries, todo, opts.Workers); err != nil {
		return nil, st, err
	}
	for _, i := range todo {
		st.Hashed++
		st.HashedBytes += w.entries[i].Size
	}

	// The walk's order is not the manifest's ("a/x" comes before "a.x"):
	// take the stats by path before sorting.
	stats := w.byPath()
	m := &wire.Manifest{Entries: w.entries}
	slices.SortFunc(m.Entries, func(a, b wire.Entry) int { return strings.Compare(a.Path, b.Path) })
	if err := m.Validate(); err != nil {
		// The walk checks everything Validate does; reaching this is a bug
		// here, which the node would refuse anyway.
		return nil, st, fmt.Errorf("manifest of %s: %w", dir, err)
	}
	if opts.CacheDir != "" && (len(todo) > 0 || cache.stale(st.Files)) {
		// A cache that cannot be written costs time on the next update,
		// not correctness.
		_ = saveCache(opts.CacheDir, abs, snapshot, m, stats)
	}
	return m, st, nil
}

// LoadIgnore returns the ignore rules of the application directory root:
// DefaultIgnores, then root's IgnoreFile if there is one.
func LoadIgnore(root string) (*Ignore, error) {
	name := filepath.Join(root, IgnoreFile)
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return NewIgnore("default", DefaultIgnores)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	defer f.Close()
	return ParseIgnore(name, f)
}

type walker struct {
	root     string
	ig       *Ignore
	ctx      context.Context
	entries  []wire.Entry
	stats    []filestat.ID // parallel to entries (files only)
	refusals []Refusal
	ignored  int
}

func (w *walker) refuse(path, reason string) {
	if len(w.refusals) < maxRefusals {
		w.refusals = append(w.refusals, Refusal{Path: path, Reason: reason})
	}
}

func (w *walker) byPath() map[string]filestat.ID {
	m := make(map[string]filestat.ID, len(w.entries))
	for i, e := range w.entries {
		if e.Type == wire.EntryFile {
			m[e.Path] = w.stats[i]
		}
	}
	return m
}

// walk adds the contents of the directory rel ("" for the root).
func (w *walker) walk(rel string) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	full := filepath.Join(w.root, filepath.FromSlash(rel))
	des, err := os.ReadDir(full)
	if err != nil {
		return fmt.Errorf("read directory %s: %w", full, err)
	}
	for _, de := range des {
		p := de.Name()
		if rel != "" {
			p = rel + "/" + p
		}
		typ := de.Type()
		if w.ig.matchIgnored(p, typ.IsDir()) {
			w.ignored++
			continue
		}
		if err := wire.ValidPath(p); err != nil {
			w.refuse(fmt.Sprintf("%q", p), err.Error()+": rename it")
			continue
		}
		switch {
		case typ.IsDir():
			w.add(wire.Entry{Path: p, Type: wire.EntryDir}, filestat.ID{})
			if err := w.walk(p); err != nil {
				return err
			}
		case typ.IsRegular():
			fi, err := os.Lstat(filepath.Join(w.root, filepath.FromSlash(p)))
			if err != nil {
				return fmt.Errorf("manifest: %w", err)
			}
			if !fi.Mode().IsRegular() {
				// Replaced between readdir and lstat; the next update
				// will see what it became.
				return fmt.Errorf("manifest: %s changed while reading the directory; run again", p)
			}
			// Without inode and ctime (full false) the cache compares size
			// and mtime alone.
			id, _ := filestat.Of(fi)
			w.add(wire.Entry{Path: p, Type: wire.EntryFile, Size: fi.Size(), Exec: fi.Mode().Perm()&0o111 != 0}, id)
		case typ&fs.ModeSymlink != 0:
			target, err := os.Readlink(filepath.Join(w.root, filepath.FromSlash(p)))
			if err != nil {
				return fmt.Errorf("manifest: %w", err)
			}
			if err := wire.CheckSymlink(p, target, w.readlink); err != nil {
				w.refuse(p, fmt.Sprintf("symlink to %q: %v; only links that stay inside the app are uploaded, and what a link points to is not copied: copy the file in or make the link relative", target, err))
				continue
			}
			w.add(wire.Entry{Path: p, Type: wire.EntrySymlink, Target: target}, filestat.ID{})
		default:
			w.refuse(p, fmt.Sprintf("is a %s, which cannot be uploaded", kindOf(typ)))
		}
	}
	return nil
}

func (w *walker) add(e wire.Entry, s filestat.ID) {
	w.entries = append(w.entries, e)
	w.stats = append(w.stats, s)
}

// readlink looks a path of the real tree up for CheckSymlink.
func (w *walker) readlink(p string) (string, bool) {
	full := filepath.Join(w.root, filepath.FromSlash(p))
	fi, err := os.Lstat(full)
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		return "", false
	}
	t, err := os.Readlink(full)
	if err != nil {
		return "", false
	}
	return t, true
}

func kindOf(m fs.FileMode) string {
	switch {
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

// matchIgnored is Match for a path whose parents are not ignored.
func (ig *Ignore) matchIgnored(p string, isDir bool) bool {
	ignored, _ := ig.matchOne(p, isDir)
	return ignored
}

// hashFiles fills in the hashes of entries[todo] with workers in
// parallel. A file whose size differs from what the walk saw is an error:
// it is being written to, and uploading half of it would be wrong.
func hashFiles(ctx context.Context, root string, entries []wire.Entry, todo []int, workers int) error {
	if len(todo) == 0 {
		return nil
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, len(todo))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan int)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
	for range workers {
		wg.Go(func() {
			buf := make([]byte, 128<<10)
			for i := range jobs {
				e := &entries[i]
				h, n, err := hashFile(filepath.Join(root, filepath.FromSlash(e.Path)), buf)
				if err != nil {
					fail(fmt.Errorf("hash %s: %w", e.Path, err))
					continue
				}
				if n != e.Size {
					fail(fmt.Errorf("hash %s: size changed from %d to %d bytes while reading; run again", e.Path, e.Size, n))
					continue
				}
				e.Hash = h
			}
		})
	}
feed:
	for _, i := range todo {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

func hashFile(name string, buf []byte) (wire.Hash, int64, error) {
	var h wire.Hash
	f, err := os.Open(name)
	if err != nil {
		return h, 0, err
	}
	defer f.Close()
	d := sha256.New()
	// Hide *os.File's WriteTo, which would ignore buf.
	n, err := io.CopyBuffer(d, struct{ io.Reader }{f}, buf)
	if err != nil {
		return h, n, err
	}
	d.Sum(h[:0])
	return h, n, nil
}
