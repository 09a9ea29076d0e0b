// Package blobstore is the node's content store for application uploads
// (/var/lib/toppcloud/blobs): file contents by sha256, which the client
// sends only when the node lacks them, and from which instance
// directories (/var/www/APP.DATE_NNN) are assembled with hard links.
//
// Layout under the root:
//
//	objects/ab/abcd...      a content, mode 0444
//	objects/ab/abcd....x    the same content for executables, mode 0555
//	manifests/DIGEST        manifests of updates under way
//	tmp/                    blobs being received
//	unsynced/BOOT-N         receives whose blobs may not be on disk yet
//
// Receive and Assemble do not wait for the disk; Sync makes their work
// durable, and Open checks what a crash may have damaged before anything
// trusts it (see Sync and durable.go).
//
// Hard links share their inode's mode, so one content used both by an
// executable and by a plain file is stored twice. Blobs are owned by root
// and read-only, and so is every instance directory: applications cannot
// change their code or, through a shared inode, another instance's.
//
// A blob whose link count is 1 is used by no instance, which makes
// garbage collection a stat per blob (see GC).
package blobstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/toppcloud/toppcloud/internal/atomicfile"
	"github.com/toppcloud/toppcloud/internal/protocol/wire"
)

// Defaults for Options fields left zero.
const (
	// DefaultTempAge: temporary files older than this belong to an
	// upload that was interrupted (a receive writes its files within
	// seconds) and are removed.
	DefaultTempAge = time.Hour
	// DefaultPendingAge: a kept manifest younger than this belongs to an
	// update that may still assemble it, so GC keeps its blobs.
	DefaultPendingAge = 6 * time.Hour
)

// Modes of what the store creates.
const (
	blobMode     = 0o444
	execBlobMode = 0o555
	dirMode      = 0o755
)

// Options configure a Store.
type Options struct {
	// NoSync makes Sync do nothing and Receive leave no unsynced marker.
	// Only for tests and for measuring what syncing costs: after a crash
	// a blob could exist with partial content, and the store would trust
	// it.
	NoSync bool
	// BootID names the current boot (see Sync); empty means the
	// kernel's. Tests set it to simulate a crash and reboot.
	BootID string
	// TempAge and PendingAge: see the defaults.
	TempAge, PendingAge time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Store is a content store on disk. Its methods are safe for concurrent
// use by several processes: every file appears by an atomic rename.
type Store struct {
	root string
	opts Options
	// boot names the current boot in unsynced markers.
	boot string
	// recovered is what Open checked after a crash.
	recovered RecoveryStats
	// dirs caches the fan-out directories known to exist.
	dirs sync.Map
}

// Open opens the store at root, creating its directories if needed. If
// the machine went down while received blobs were not yet synced, Open
// first re-checks them and removes the damaged ones (see Sync), so that
// Missing and Assemble never trust them.
func Open(root string, opts Options) (*Store, error) {
	if opts.TempAge <= 0 {
		opts.TempAge = DefaultTempAge
	}
	if opts.PendingAge <= 0 {
		opts.PendingAge = DefaultPendingAge
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.BootID == "" {
		opts.BootID = bootID()
	}
	s := &Store{root: root, opts: opts, boot: opts.BootID}
	for _, d := range []string{root, s.objectsDir(), s.manifestsDir()} {
		if err := os.MkdirAll(d, dirMode); err != nil {
			return nil, fmt.Errorf("open blob store: %w", err)
		}
	}
	// Only root works in tmp and unsynced.
	for _, d := range []string{s.tmpDir(), s.unsyncedDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("open blob store: %w", err)
		}
	}
	var err error
	if s.recovered, err = s.recoverUnsynced(); err != nil {
		return nil, fmt.Errorf("open blob store: %w", err)
	}
	return s, nil
}

// Recovered says what Open re-checked because the machine went down
// while blobs were unsynced; zero when it did not.
func (s *Store) Recovered() RecoveryStats { return s.recovered }

// Root returns the store's directory.
func (s *Store) Root() string { return s.root }

func (s *Store) objectsDir() string   { return filepath.Join(s.root, "objects") }
func (s *Store) manifestsDir() string { return filepath.Join(s.root, "manifests") }
func (s *Store) tmpDir() string       { return filepath.Join(s.root, "tmp") }

// blobPath names the file holding h, as an executable or not.
func (s *Store) blobPath(h wire.Hash, exec bool) string {
	hx := h.String()
	name := hx
	if exec {
		name += ".x"
	}
	return filepath.Join(s.objectsDir(), hx[:2], name)
}

// has reports whether the store holds h with the given size as the
// variant asked. A file of another size is damaged, and not counted.
func (s *Store) has(h wire.Hash, exec bool, size int64) bool {
	fi, err := os.Lstat(s.blobPath(h, exec))
	return err == nil && fi.Mode().IsRegular() && fi.Size() == size
}

// Missing returns the contents of m's files that the store lacks in
// either variant, each once, in manifest order: what the client must
// send. Empty files need no blob. A content held only as the other
// variant is not missing: Assemble copies it locally.
func (s *Store) Missing(m *wire.Manifest) ([]wire.Hash, error) {
	seen := map[wire.Hash]bool{}
	var missing []wire.Hash
	for _, e := range m.Entries {
		if e.Type != wire.EntryFile || e.Size == 0 || seen[e.Hash] {
			continue
		}
		seen[e.Hash] = true
		if !s.has(e.Hash, e.Exec, e.Size) && !s.has(e.Hash, !e.Exec, e.Size) {
			missing = append(missing, e.Hash)
		}
	}
	return missing, nil
}

// PutManifest keeps m until its update is assembled, so a later request
// can name it by digest instead of sending it again, and so GC keeps its
// blobs meanwhile. It returns the digest.
func (s *Store) PutManifest(m *wire.Manifest) (wire.Hash, error) {
	if err := m.Validate(); err != nil {
		return wire.Hash{}, err
	}
	b, err := m.MarshalBinary()
	if err != nil {
		return wire.Hash{}, err
	}
	d, err := m.Digest()
	if err != nil {
		return wire.Hash{}, err
	}
	if err := atomicfile.WriteFile(filepath.Join(s.manifestsDir(), d.String()), b, 0o600); err != nil {
		return d, fmt.Errorf("keep manifest: %w", err)
	}
	return d, nil
}

// ErrNoManifest is returned by Manifest for a digest the store does not
// keep.
var ErrNoManifest = errors.New("no such manifest in the blob store")

// Manifest returns the manifest kept under digest.
func (s *Store) Manifest(digest wire.Hash) (*wire.Manifest, error) {
	b, err := os.ReadFile(filepath.Join(s.manifestsDir(), digest.String()))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("manifest %s: %w (send it again)", digest, ErrNoManifest)
	}
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", digest, err)
	}
	m := new(wire.Manifest)
	if err := m.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", digest, err)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", digest, err)
	}
	if d, _ := m.Digest(); d != digest {
		return nil, fmt.Errorf("manifest %s: damaged (digest %s)", digest, d)
	}
	return m, nil
}

// RemoveManifest forgets a kept manifest (after its update assembled or
// failed). A missing one is not an error.
func (s *Store) RemoveManifest(digest wire.Hash) error {
	err := os.Remove(filepath.Join(s.manifestsDir(), digest.String()))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove manifest %s: %w", digest, err)
	}
	return nil
}

// CleanTemp removes temporary files older than the store's TempAge: what
// interrupted receives left. It returns how many it removed.
func (s *Store) CleanTemp() (int, error) {
	cutoff := s.opts.Now().Add(-s.opts.TempAge)
	n, err := removeOlder(s.tmpDir(), cutoff, func(string) bool { return true })
	// Markers a receive was killed while making.
	m, merr := removeOlder(s.unsyncedDir(), cutoff, func(name string) bool { return strings.HasPrefix(name, unsyncedNew) })
	return n + m, errors.Join(err, merr)
}

// removeOlder removes the entries of dir modified before cutoff whose
// name passes ok, directories with their contents.
func removeOlder(dir string, cutoff time.Time, ok func(name string) bool) (int, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("clean %s: %w", dir, err)
	}
	n := 0
	var errs []error
	for _, de := range des {
		if !ok(de.Name()) {
			continue
		}
		fi, err := de.Info()
		if err != nil || !fi.ModTime().Before(cutoff) {
			continue
		}
		p := filepath.Join(dir, de.Name())
		if de.IsDir() {
			err = os.RemoveAll(p)
		} else {
			err = os.Remove(p)
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		n++
	}
	if len(errs) > 0 {
		return n, fmt.Errorf("clean %s: %w", dir, errors.Join(errs...))
	}
	return n, nil
}

// isHex64 reports whether s is a hash in hex.
func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	return strings.Trim(s, "0123456789abcdef") == ""
}
