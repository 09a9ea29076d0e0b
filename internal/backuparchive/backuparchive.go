// Package backuparchive moves a backup (a directory of per-service files
// and manifest.json, see internal/service) as one tar stream, both ways
// and on both ends: the agent sends a kept backup and unpacks an uploaded
// one; the client writes what it receives into a directory or a .tar.gz
// and sends a local backup. Whatever receives a backup checks every file
// against the manifest (size and sha256) while it reads, so a backup cut
// short or damaged in transit is refused before it is used.
package backuparchive

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/toppcloud/toppcloud/internal/service"
)

// Kind is what a backup argument names.
type Kind int

// Kinds of backup places.
const (
	// Dir is a local directory.
	Dir Kind = iota
	// Archive is a local .tar.gz (or .tgz) file.
	Archive
	// Remote is remote:NAME, a backup kept on the node.
	Remote
)

// RemotePrefix marks a backup kept on the node.
const RemotePrefix = "remote:"

// Parse says what a backup argument names; for Remote it returns NAME.
func Parse(arg string) (Kind, string, error) {
	if name, ok := strings.CutPrefix(arg, RemotePrefix); ok {
		if err := CheckName(name); err != nil {
			return Remote, "", err
		}
		return Remote, name, nil
	}
	if arg == "" {
		return Dir, "", errors.New("empty backup path")
	}
	if strings.HasSuffix(arg, ".tar.gz") || strings.HasSuffix(arg, ".tgz") {
		return Archive, arg, nil
	}
	if strings.HasSuffix(arg, ".zip") || strings.HasSuffix(arg, ".tar.bz2") || strings.HasSuffix(arg, ".tbz2") {
		return Dir, "", fmt.Errorf("%s: toppcloud writes and reads backups as directories or .tar.gz files", arg)
	}
	if i := strings.Index(arg, ":"); i > 0 && !strings.ContainsAny(arg[:i], "/.") {
		return Dir, "", fmt.Errorf("%s: unknown kind of backup place %q (use a directory, a .tar.gz file, or remote:NAME)", arg, arg[:i+1])
	}
	return Dir, arg, nil
}

// CheckName checks the NAME of remote:NAME.
func CheckName(name string) error {
	if name == "" || len(name) > 100 || strings.HasPrefix(name, ".") {
		return fmt.Errorf("remote:%s: a backup name is 1-100 letters, digits, '.', '_' or '-', not starting with '.'", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("remote:%s: a backup name is letters, digits, '.', '_' or '-'", name)
		}
	}
	return nil
}

// WriteDir writes the backup directory dir (a real path) to w as a tar
// stream: manifest.json first (so a receiver knows what to expect), then
// every regular file, sorted. Anything that is not a directory or a
// regular file is an error.
func WriteDir(w io.Writer, dir string) error {
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		switch {
		case d.IsDir():
		case d.Type().IsRegular():
			names = append(names, filepath.ToSlash(rel))
		default:
			return fmt.Errorf("%s is not a regular file", rel)
		}
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortStableFunc(names, func(a, b string) int {
		switch {
		case a == service.ManifestName:
			return -1
		case b == service.ManifestName:
			return 1
		}
		return strings.Compare(a, b)
	})
	tw := tar.NewWriter(w)
	for _, name := range names {
		if err := writeFile(tw, filepath.Join(dir, filepath.FromSlash(name)), name); err != nil {
			return err
		}
	}
	return tw.Close()
}

func writeFile(tw *tar.Writer, real, name string) error {
	f, err := os.Open(real)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	hdr := &tar.Header{Name: name, Mode: 0o600, Size: fi.Size(), ModTime: fi.ModTime(), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	n, err := io.Copy(tw, f)
	if err == nil && n != hdr.Size {
		err = fmt.Errorf("%s changed size while it was sent", name)
	}
	return err
}

// checker checks a backup's files against its manifest as they stream
// past.
type checker struct {
	m    *service.Manifest
	seen map[string]bool
}

func (c *checker) header(hdr *tar.Header, first bool) (string, error) {
	name := hdr.Name
	if hdr.Typeflag == tar.TypeDir {
		return "", nil
	}
	if hdr.Typeflag != tar.TypeReg {
		return "", fmt.Errorf("%w: %s is not a regular file", service.ErrBadBackup, name)
	}
	if path.Clean(name) != name || strings.HasPrefix(name, "/") || strings.HasPrefix(name, "../") || name == ".." {
		return "", fmt.Errorf("%w: %q is not a plain relative path", service.ErrBadBackup, name)
	}
	if first && name != service.ManifestName {
		return "", fmt.Errorf("%w: the stream does not start with %s", service.ErrBadBackup, service.ManifestName)
	}
	return name, nil
}

// sum copies r to w (w may be nil) and returns its size and sha256.
func sum(w io.Writer, r io.Reader) (int64, string, error) {
	h := sha256.New()
	dst := io.Writer(h)
	if w != nil {
		dst = io.MultiWriter(h, w)
	}
	n, err := io.Copy(dst, r)
	return n, hex.EncodeToString(h.Sum(nil)), err
}

func (c *checker) file(name string, size int64, digest string) error {
	if name == "README.txt" {
		return nil
	}
	want, ok := c.m.File(name)
	switch {
	case !ok:
		return fmt.Errorf("%w: %s is not in the manifest", service.ErrBadBackup, name)
	case want.Size != size:
		return fmt.Errorf("%w: %s has %d bytes, the manifest says %d: the backup is truncated or damaged", service.ErrBadBackup, name, size, want.Size)
	case want.SHA256 != digest:
		return fmt.Errorf("%w: %s does not match its sha256 in the manifest: the backup is damaged", service.ErrBadBackup, name)
	}
	c.seen[name] = true
	return nil
}

func (c *checker) done() error {
	for _, s := range c.m.Services {
		for _, f := range s.Files {
			if !c.seen[f.Path] {
				return fmt.Errorf("%w: %s is missing: the backup is incomplete", service.ErrBadBackup, f.Path)
			}
		}
	}
	return nil
}

// readTar reads a backup's tar stream, calls file for every regular
// file's contents (with the reader positioned at them) and checks it all
// against the manifest, which must come first.
func readTar(r io.Reader, file func(name string, r io.Reader) (int64, string, error)) (*service.Manifest, error) {
	tr := tar.NewReader(r)
	var c *checker
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v (the backup is truncated or not a tar archive)", service.ErrBadBackup, err)
		}
		name, err := (&checker{}).header(hdr, c == nil && hdr.Typeflag != tar.TypeDir)
		if err != nil {
			return nil, err
		}
		if name == "" {
			continue
		}
		if c == nil {
			if hdr.Size > 16<<20 {
				return nil, fmt.Errorf("%w: %s is too large", service.ErrBadBackup, name)
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				return nil, fmt.Errorf("%w: %v", service.ErrBadBackup, err)
			}
			m, err := service.ParseManifest(data)
			if err != nil {
				return nil, err
			}
			c = &checker{m: m, seen: map[string]bool{}}
			if _, _, err := file(name, strings.NewReader(string(data))); err != nil {
				return nil, err
			}
			continue
		}
		n, digest, err := file(name, tr)
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: %s ends early: the backup is truncated", service.ErrBadBackup, name)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if err := c.file(name, n, digest); err != nil {
			return nil, err
		}
	}
	if c == nil {
		return nil, fmt.Errorf("%w: no %s: this is not a toppcloud backup", service.ErrBadBackup, service.ManifestName)
	}
	return c.m, c.done()
}

// ExtractDir reads a backup's tar stream into dir (a real path that must
// not exist; it is made 0700), checking it against its manifest. On
// failure nothing is left at dir.
func ExtractDir(r io.Reader, dir string) (m *service.Manifest, err error) {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	return readTar(r, func(name string, r io.Reader) (int64, string, error) {
		if d := path.Dir(name); d != "." {
			if err := root.MkdirAll(d, 0o700); err != nil {
				return 0, "", err
			}
		}
		f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return 0, "", err
		}
		bw := bufio.NewWriterSize(f, 1<<20)
		n, digest, err := sum(bw, r)
		if err == nil {
			err = bw.Flush()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return n, digest, err
	})
}

// Check reads a backup's tar stream to its end and checks it against its
// manifest.
func Check(r io.Reader) (*service.Manifest, error) {
	return readTar(r, func(_ string, r io.Reader) (int64, string, error) { return sum(nil, r) })
}

// ReceiveArchive writes a backup's tar stream, as it arrives, gzipped to
// the file p (made through a temporary file renamed into place once all
// of it was checked against its manifest).
func ReceiveArchive(r io.Reader, p string) (*service.Manifest, error) {
	tmp, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".part-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	bw := bufio.NewWriterSize(tmp, 1<<20)
	// The dumps inside are mostly compressed already: the fastest level
	// keeps up with the link.
	gz, err := gzip.NewWriterLevel(bw, gzip.BestSpeed)
	if err != nil {
		tmp.Close()
		return nil, err
	}
	m, err := Check(io.TeeReader(r, gz))
	if err == nil {
		// The tar's end blocks the checker did not need to read.
		_, err = io.Copy(gz, r)
	}
	if err == nil {
		err = gz.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return nil, err
	}
	return m, os.Rename(tmp.Name(), p)
}

// ReceiveDir writes a backup's tar stream into the directory p (which
// must not exist or be empty), checked against its manifest; it is made
// beside p and renamed into place when complete.
func ReceiveDir(r io.Reader, p string) (*service.Manifest, error) {
	if entries, err := os.ReadDir(p); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("%s exists and is not empty", p)
	}
	tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".part")
	if err := os.RemoveAll(tmp); err != nil {
		return nil, err
	}
	m, err := ExtractDir(r, tmp)
	if err != nil {
		return nil, err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		os.RemoveAll(tmp)
		return nil, err
	}
	if err := os.Rename(tmp, p); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	return m, nil
}

// Local is a backup on the client's disk, checked.
type Local struct {
	Kind     Kind
	Path     string
	Manifest *service.Manifest
}

// OpenLocal reads and checks the local backup at p (a directory or a
// .tar.gz) without sending anything: every file against the manifest.
func OpenLocal(p string) (*Local, error) {
	kind, _, err := Parse(p)
	if err != nil {
		return nil, err
	}
	l := &Local{Kind: kind, Path: p}
	err = l.each(func(r io.Reader) error {
		m, err := Check(r)
		l.Manifest = m
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", p, err)
	}
	return l, nil
}

// each calls fn with the backup as a tar stream.
func (l *Local) each(fn func(io.Reader) error) error {
	if l.Kind == Archive {
		f, err := os.Open(l.Path)
		if err != nil {
			return err
		}
		defer f.Close()
		gz, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<20))
		if err != nil {
			return fmt.Errorf("%w: not a gzip file: %v", service.ErrBadBackup, err)
		}
		if err := fn(gz); err != nil {
			return err
		}
		// Read to the end: gzip checks its own sum there.
		if _, err := io.Copy(io.Discard, gz); err != nil {
			return fmt.Errorf("%w: %v (the file is truncated)", service.ErrBadBackup, err)
		}
		return nil
	}
	if fi, err := os.Stat(l.Path); err != nil {
		return err
	} else if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory or a .tar.gz file", l.Path)
	}
	if _, err := os.Stat(filepath.Join(l.Path, service.ManifestName)); err != nil {
		return fmt.Errorf("%w: no %s: this is not a toppcloud backup", service.ErrBadBackup, service.ManifestName)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(WriteDir(pw, l.Path)) }()
	err := fn(pr)
	pr.CloseWithError(errors.New("reader done"))
	return err
}

// Send writes the backup to w as a tar stream.
func (l *Local) Send(w io.Writer) error {
	if l.Kind == Archive {
		return l.each(func(r io.Reader) error {
			_, err := io.Copy(w, r)
			return err
		})
	}
	return WriteDir(w, l.Path)
}
