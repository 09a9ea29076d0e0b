package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/host"
)

// A backup is a directory with one subdirectory per service, named as
// the service (postgresql/postgresql.pgdump, mysql/mysql.dump,
// files/files.tar, ...; the original's shape), and manifest.json listing
// every file with its size and sha256. Restore reads nothing the manifest
// does not vouch for.
const (
	ManifestName = "manifest.json"
	// BackupFormat and BackupVersion identify the manifest.
	BackupFormat  = "toppcloud-backup"
	BackupVersion = 1
)

// Manifest describes a backup.
type Manifest struct {
	Format  string    `json:"format"`
	Version int       `json:"version"`
	App     string    `json:"app"`
	Created time.Time `json:"created"`
	// Toppcloud is the version of the agent that made it.
	Toppcloud string         `json:"toppcloud,omitempty"`
	Services  []ServiceFiles `json:"services"`
}

// ServiceFiles are one service's files in a backup.
type ServiceFiles struct {
	Name  string      `json:"name"`
	Files []FileEntry `json:"files"`
}

// FileEntry is one file of a backup; Path is relative to the backup
// directory, with slashes.
type FileEntry struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Size is the sum of the backup's file sizes.
func (m *Manifest) Size() int64 {
	var n int64
	for _, s := range m.Services {
		for _, f := range s.Files {
			n += f.Size
		}
	}
	return n
}

// ServiceNames lists the backup's services, in its order.
func (m *Manifest) ServiceNames() []string {
	var out []string
	for _, s := range m.Services {
		out = append(out, s.Name)
	}
	return out
}

// ErrBadBackup is wrapped by every reason a backup is refused.
var ErrBadBackup = errors.New("bad backup")

func badBackup(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadBackup, fmt.Sprintf(format, args...))
}

const readme = `This is a toppcloud backup of the app %q, made %s.

Each directory holds one service's data, as its own tools read it:
  postgresql/, postgis/   pg_dump -Fc (restore with pg_restore)
  mysql/                  mysqldump (restore with mysql DBNAME < mysql.dump)
  redis/                  the app's keys (toppcloud's format, see redis.README.txt)
  files/, writable_root/  tar archives
manifest.json lists every file with its size and sha256; toppcloud restore
checks them all before it changes anything.
`

// Backup writes every bound service's data into dir, a node path that
// must not exist yet, and then the manifest. On failure nothing is left
// at dir. progress, if set, hears which service is being backed up.
func Backup(ctx context.Context, h *host.Host, app string, bound []Bound, dir, version string, progress func(string)) (*Manifest, error) {
	if ok, err := h.Exists(dir); err != nil {
		return nil, err
	} else if ok {
		return nil, fmt.Errorf("backup %s already exists", dir)
	}
	if _, err := h.EnsureDir(dir, host.Attr{Mode: 0o700}); err != nil {
		return nil, err
	}
	m, err := backup(ctx, h, app, bound, dir, version, progress)
	if err != nil {
		if rerr := os.RemoveAll(h.Path(dir)); rerr != nil {
			err = errors.Join(err, fmt.Errorf("remove the partial backup %s: %w", dir, rerr))
		}
		return nil, err
	}
	return m, nil
}

func backup(ctx context.Context, h *host.Host, app string, bound []Bound, dir, version string, progress func(string)) (*Manifest, error) {
	m := &Manifest{Format: BackupFormat, Version: BackupVersion, App: app, Created: h.Time().UTC().Truncate(time.Second), Toppcloud: version}
	m.Services = make([]ServiceFiles, len(bound))
	err := forEach(ctx, bound, func(ctx context.Context, i int, b Bound) error {
		name := b.Service.Name()
		if progress != nil {
			progress(name)
		}
		sub := path.Join(dir, name)
		if _, err := h.EnsureDir(sub, host.Attr{Mode: 0o700}); err != nil {
			return err
		}
		if err := b.Service.Backup(ctx, b.App, sub); err != nil {
			return fmt.Errorf("back up %s: %w", name, err)
		}
		files, err := hashTree(h.Path(dir), name)
		if err != nil {
			return fmt.Errorf("back up %s: %w", name, err)
		}
		m.Services[i] = ServiceFiles{Name: name, Files: files}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if _, err := h.WriteFile(path.Join(dir, "README.txt"), fmt.Appendf(nil, readme, app, m.Created.Format(time.RFC3339)), host.Attr{Mode: 0o600}); err != nil {
		return nil, err
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if _, err := h.WriteFile(path.Join(dir, ManifestName), append(data, '\n'), host.Attr{Mode: 0o600}); err != nil {
		return nil, err
	}
	return m, nil
}

// hashTree lists the regular files under root/sub with their sizes and
// sums; anything else there is an error (a service writes plain files).
func hashTree(root, sub string) ([]FileEntry, error) {
	var out []FileEntry
	err := filepath.WalkDir(filepath.Join(root, sub), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file", rel)
		}
		size, sum, err := SumFile(p)
		if err != nil {
			return err
		}
		out = append(out, FileEntry{Path: filepath.ToSlash(rel), Size: size, SHA256: sum})
		return nil
	})
	return out, err
}

// SumFile returns the size and hex sha256 of the file at the real path p.
func SumFile(p string) (int64, string, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	hash := sha256.New()
	n, err := io.Copy(hash, f)
	if err != nil {
		return 0, "", fmt.Errorf("read %s: %w", p, err)
	}
	return n, hex.EncodeToString(hash.Sum(nil)), nil
}

// ReadManifest reads and checks the manifest of the backup at dir (a
// node path): see ParseManifest.
func ReadManifest(h *host.Host, dir string) (*Manifest, error) {
	data, err := h.ReadFile(path.Join(dir, ManifestName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, badBackup("no %s: this is not a toppcloud backup, or it is incomplete", ManifestName)
	}
	if err != nil {
		return nil, err
	}
	return ParseManifest(data)
}

// ParseManifest reads a backup's manifest and checks its format, and
// that every path in it is a plain relative path inside its service's
// own directory.
func ParseManifest(data []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, badBackup("%s is damaged (%v): the backup is truncated or not a toppcloud backup", ManifestName, err)
	}
	if m.Format != BackupFormat {
		return nil, badBackup("%s is not a toppcloud backup manifest", ManifestName)
	}
	if m.Version != BackupVersion {
		return nil, badBackup("backup format version %d; this toppcloud reads version %d", m.Version, BackupVersion)
	}
	seen := map[string]bool{}
	for _, s := range m.Services {
		if !nameRE.MatchString(s.Name) || seen[s.Name] {
			return nil, badBackup("bad or repeated service name %q in %s", s.Name, ManifestName)
		}
		seen[s.Name] = true
		for _, f := range s.Files {
			if path.Clean(f.Path) != f.Path || !strings.HasPrefix(f.Path, s.Name+"/") || strings.Contains(f.Path, "..") || f.Size < 0 {
				return nil, badBackup("bad file path %q for service %s in %s", f.Path, s.Name, ManifestName)
			}
		}
	}
	return &m, nil
}

// File returns the manifest's entry for path p.
func (m *Manifest) File(p string) (FileEntry, bool) {
	for _, s := range m.Services {
		for _, f := range s.Files {
			if f.Path == p {
				return f, true
			}
		}
	}
	return FileEntry{}, false
}

// VerifyBackup checks the backup at dir before anything is restored from
// it: it is a toppcloud backup of app, made for the same services the app
// has now, and every file is there, complete (size and sha256 as the
// manifest says), with nothing else in the services' directories.
func VerifyBackup(h *host.Host, dir, app string, bound []Bound) (*Manifest, error) {
	m, err := ReadManifest(h, dir)
	if err != nil {
		return nil, err
	}
	if m.App != app {
		return nil, badBackup("it is a backup of the app %q, not %q: restore it to %s's location", m.App, app, m.App)
	}
	var want []string
	for _, b := range bound {
		want = append(want, b.Service.Name())
	}
	got := slices.Sorted(slices.Values(m.ServiceNames()))
	slices.Sort(want)
	if !slices.Equal(got, want) {
		return nil, badBackup("the backup holds the services [%s], the app now uses [%s]: deploy the app with the same services first",
			strings.Join(got, " "), strings.Join(want, " "))
	}
	for _, s := range m.Services {
		listed := map[string]FileEntry{}
		for _, f := range s.Files {
			listed[f.Path] = f
		}
		found, err := hashTree(h.Path(dir), s.Name)
		if err != nil {
			return nil, badBackup("%v", err)
		}
		for _, f := range found {
			want, ok := listed[f.Path]
			switch {
			case !ok:
				return nil, badBackup("%s is not in the manifest", f.Path)
			case want.Size != f.Size:
				return nil, badBackup("%s has %d bytes, the manifest says %d: the backup is truncated or damaged", f.Path, f.Size, want.Size)
			case want.SHA256 != f.SHA256:
				return nil, badBackup("%s does not match its sha256 in the manifest: the backup is damaged", f.Path)
			}
			delete(listed, f.Path)
		}
		for p := range listed {
			return nil, badBackup("%s is missing", p)
		}
	}
	return m, nil
}

// BackupChecker is a Service that can tell whether it could restore
// from dir without changing anything.
type BackupChecker interface {
	CheckBackup(ctx context.Context, app App, dir string) error
}

// Restore verifies the backup at dir (VerifyBackup) and then restores
// every service from it. progress, if set, hears which service is being
// restored.
func Restore(ctx context.Context, h *host.Host, app string, bound []Bound, dir string, progress func(string)) (*Manifest, error) {
	m, err := VerifyBackup(h, dir, app, bound)
	if err != nil {
		return nil, err
	}
	// Every service reads its files through once before any is emptied,
	// so that a file the manifest vouches for but the service cannot use
	// (made by another version) changes nothing either.
	for _, b := range bound {
		if c, ok := b.Service.(BackupChecker); ok {
			if err := c.CheckBackup(ctx, b.App, path.Join(dir, b.Service.Name())); err != nil {
				return nil, fmt.Errorf("%w: %s: %v", ErrBadBackup, b.Service.Name(), err)
			}
		}
	}
	err = forEach(ctx, bound, func(ctx context.Context, _ int, b Bound) error {
		name := b.Service.Name()
		if progress != nil {
			progress(name)
		}
		if err := b.Service.Restore(ctx, b.App, path.Join(dir, name)); err != nil {
			return fmt.Errorf("restore %s: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// forEach runs fn for every bound service at once, and returns when all
// are done. They are separate servers and directories, so a backup or
// restore of a database and of files takes as long as the longer of the
// two, not their sum (pg_dump and pg_restore are bound by one core; tar
// by the disk). The first failure cancels the others' context.
func forEach(ctx context.Context, bound []Bound, fn func(ctx context.Context, i int, b Bound) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(bound))
	var wg sync.WaitGroup
	for i, b := range bound {
		wg.Go(func() {
			if err := fn(ctx, i, b); err != nil {
				errs[i] = err
				cancel()
			}
		})
	}
	wg.Wait()
	// A service stopped because another failed says only that.
	var first []error
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			first = append(first, err)
		}
	}
	if len(first) > 0 {
		return errors.Join(first...)
	}
	return errors.Join(errs...)
}
