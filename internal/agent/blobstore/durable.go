package blobstore

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/toppcloud/toppcloud/internal/atomicfile"
	"github.com/toppcloud/toppcloud/internal/protocol/wire"
)

// Durability off the critical path.
//
// Making 50 MB of new blobs durable costs a syncfs that writes them out;
// paid inside the upload it delays everything after it. So Receive and
// Assemble do not sync at all, and Sync makes everything durable at once:
// a deploy runs it while the new instance starts and waits for it before
// switching the route, the point from which the new version is what the
// node serves and what it restores after a crash.
//
// Until Sync, a crash (the machine going down, not the agent: the page
// cache survives a killed process) could leave a blob under its name whose
// content never reached the disk: empty, zeros, or stale blocks of the
// right size. The store would then trust it: Missing would say the node
// has it and Assemble would link it. To prevent that:
//
//   - Before its first blob, Receive leaves a marker in unsynced/, named
//     for the current boot, made durable (fsync of file and directory)
//     before any blob is renamed into place, and holds an flock on it until
//     it returns. One marker per receive, so concurrent uploads don't need
//     to agree on anything.
//   - Sync takes the markers of this boot whose lock is free (their receive
//     has finished, every blob of theirs was written before), runs syncfs,
//     and only then removes them. A marker whose receive still runs is left
//     for a later Sync.
//   - Open looks for markers of another boot: the machine went down while
//     blobs were unsynced. It re-hashes every blob modified since the oldest
//     such marker was made (minus clockMargin, for clock steps), removes the
//     ones whose content does not match their name, makes that durable, and
//     removes the markers. A removed blob is simply missing: the next update
//     sends it again.
//
// Instance directories assembled in the window may also be incomplete
// after a crash; they never became live (the switch waits for Sync), and
// the agent refuses to activate them (see the deploy's instance record).

// clockMargin widens the window of blobs re-checked after a crash, in case
// the clock was stepped back while they were written.
const clockMargin = time.Minute

// unsyncedNew prefixes a marker being made (not yet durable, not yet
// covering anything).
const unsyncedNew = ".new-"

// recoverLock serializes recoveries of several agents opened at once.
const recoverLock = ".recover.lock"

func (s *Store) unsyncedDir() string { return filepath.Join(s.root, "unsynced") }

// markUnsynced makes this receive's marker: created under a temporary
// name, locked, made durable, then renamed to its name, so Sync never
// sees it unlocked while the receive runs. The returned file holds the
// lock; closing it says the receive is over.
func (s *Store) markUnsynced() (*os.File, error) {
	dir := s.unsyncedDir()
	f, err := os.CreateTemp(dir, unsyncedNew+"*")
	if err != nil {
		return nil, fmt.Errorf("unsynced marker: %w", err)
	}
	name := filepath.Join(dir, s.boot+"-"+strings.TrimPrefix(filepath.Base(f.Name()), unsyncedNew))
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("unsynced marker: %w", err)
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		f.Close()
		os.Remove(name)
		return nil, fmt.Errorf("unsynced marker: %w", err)
	}
	return f, nil
}

// Sync makes durable everything the store received and everything
// Assemble made so far (in dirs too, when they are on another file system
// than the store): one syncfs per file system. A deploy calls it before
// switching to the new instance. Receives that had finished when it began
// are no longer marked unsynced after it.
func (s *Store) Sync(dirs ...string) error {
	if s.opts.NoSync {
		return nil
	}
	done, err := s.finishedMarkers()
	if err != nil {
		return err
	}
	defer func() {
		for _, f := range done {
			f.Close()
		}
	}()
	if err := syncFS(s.root); err != nil {
		return fmt.Errorf("sync the blob store: %w", err)
	}
	for _, d := range dirs {
		if sameDevice(s.root, d) {
			continue
		}
		if err := syncFS(d); err != nil {
			return fmt.Errorf("sync %s: %w", d, err)
		}
	}
	for _, f := range done {
		if err := os.Remove(f.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("sync the blob store: %w", err)
		}
	}
	return nil
}

// finishedMarkers opens and locks the markers of this boot whose receive
// is over (their lock is free). The caller closes them.
func (s *Store) finishedMarkers() ([]*os.File, error) {
	des, err := os.ReadDir(s.unsyncedDir())
	if err != nil {
		return nil, fmt.Errorf("sync the blob store: %w", err)
	}
	var done []*os.File
	for _, de := range des {
		if !strings.HasPrefix(de.Name(), s.boot+"-") {
			continue
		}
		f, err := os.Open(filepath.Join(s.unsyncedDir(), de.Name()))
		if err != nil {
			continue // removed by another Sync meanwhile
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
			f.Close() // a receive under way
			continue
		}
		done = append(done, f)
	}
	return done, nil
}

func sameDevice(a, b string) bool {
	var sa, sb unix.Stat_t
	return unix.Stat(a, &sa) == nil && unix.Stat(b, &sb) == nil && sa.Dev == sb.Dev
}

// RecoveryStats say what Open checked after a crash.
type RecoveryStats struct {
	// Since is the start of the unsynced window that was checked.
	Since time.Time
	// Checked blobs were re-hashed; Removed ones did not match their name.
	Checked, Removed int
}

// recoverUnsynced checks the blobs of receives that were not synced
// before the machine went down (markers of another boot). It returns a
// zero RecoveryStats when there was nothing to do.
func (s *Store) recoverUnsynced() (RecoveryStats, error) {
	var st RecoveryStats
	stale, err := s.staleMarkers()
	if err != nil || len(stale) == 0 {
		return st, err
	}
	lock, err := os.OpenFile(filepath.Join(s.unsyncedDir(), recoverLock), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return st, fmt.Errorf("blob store recovery: %w", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return st, fmt.Errorf("blob store recovery: %w", err)
	}
	// Another agent may have recovered while this one waited.
	if stale, err = s.staleMarkers(); err != nil || len(stale) == 0 {
		return st, err
	}
	for _, m := range stale {
		fi, err := os.Lstat(m)
		if err != nil {
			return st, fmt.Errorf("blob store recovery: %w", err)
		}
		if st.Since.IsZero() || fi.ModTime().Before(st.Since) {
			st.Since = fi.ModTime()
		}
	}
	st.Since = st.Since.Add(-clockMargin)
	if err := s.verifySince(st.Since, &st); err != nil {
		return st, err
	}
	// The removals must be on disk before the markers that call for them
	// go.
	if err := syncFS(s.root); err != nil {
		return st, fmt.Errorf("blob store recovery: %w", err)
	}
	for _, m := range stale {
		if err := os.Remove(m); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return st, fmt.Errorf("blob store recovery: %w", err)
		}
	}
	return st, atomicfile.SyncDir(s.unsyncedDir())
}

// staleMarkers lists the markers of another boot: from before a crash
// or a reboot. Temporary markers (unsyncedNew) never covered a blob;
// CleanTemp removes them.
func (s *Store) staleMarkers() ([]string, error) {
	des, err := os.ReadDir(s.unsyncedDir())
	if err != nil {
		return nil, fmt.Errorf("blob store recovery: %w", err)
	}
	var stale []string
	for _, de := range des {
		n := de.Name()
		if n == recoverLock || strings.HasPrefix(n, s.boot+"-") || strings.HasPrefix(n, unsyncedNew) {
			continue
		}
		stale = append(stale, filepath.Join(s.unsyncedDir(), n))
	}
	return stale, nil
}

// verifySince re-hashes the blobs modified at or after since and removes
// those whose content is not what their name says.
func (s *Store) verifySince(since time.Time, st *RecoveryStats) error {
	fans, err := os.ReadDir(s.objectsDir())
	if err != nil {
		return fmt.Errorf("blob store recovery: %w", err)
	}
	buf := make([]byte, 256<<10)
	for _, fan := range fans {
		dir := filepath.Join(s.objectsDir(), fan.Name())
		blobs, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("blob store recovery: %w", err)
		}
		for _, b := range blobs {
			fi, err := b.Info()
			if err != nil || fi.ModTime().Before(since) {
				continue
			}
			h, err := wire.ParseHash(strings.TrimSuffix(b.Name(), ".x"))
			if err != nil {
				continue
			}
			p := filepath.Join(dir, b.Name())
			st.Checked++
			ok, err := hashIs(p, h, buf)
			if err != nil {
				return fmt.Errorf("blob store recovery: %w", err)
			}
			if ok {
				continue
			}
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("blob store recovery: %w", err)
			}
			st.Removed++
		}
	}
	return nil
}

// hashIs reports whether the file at p has the sha256 h.
func hashIs(p string, h wire.Hash, buf []byte) (bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	d := sha256.New()
	if _, err := io.CopyBuffer(d, struct{ io.Reader }{f}, buf); err != nil {
		return false, err
	}
	return wire.Hash(d.Sum(nil)) == h, nil
}
