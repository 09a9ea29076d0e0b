package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/toppcloud/toppcloud/internal/protocol/wire"
)

// GCOptions configure GC.
type GCOptions struct {
	// DryRun reports what would be removed and removes nothing
	// (clean-node -n).
	DryRun bool
	// Keep, if set, keeps blobs it returns true for even when no
	// instance links them (for example the contents of instances that
	// were copied rather than linked, to spare a later upload).
	Keep func(wire.Hash) bool
}

// GCStats say what GC removed (or would remove).
type GCStats struct {
	Blobs     int
	Bytes     int64
	Temps     int
	Manifests int
	// Kept counts unlinked blobs kept for a pending update or by Keep.
	Kept int
}

// GC removes the blobs no instance uses, and stale temporary files and
// kept manifests. A blob whose link count is 1 is linked by no instance
// directory: run GC after removing instances (clean-node). Blobs named by
// a manifest kept for an update under way (younger than PendingAge) are
// kept, so GC can run beside an update that is uploading. Removing a blob
// never harms an instance: its hard link keeps the content.
func (s *Store) GC(ctx context.Context, opts GCOptions) (GCStats, error) {
	var st GCStats
	var errs []error
	cutoff := s.opts.Now().Add(-s.opts.PendingAge)

	// Pending manifests protect their blobs; stale ones go.
	pending := map[wire.Hash]bool{}
	des, err := os.ReadDir(s.manifestsDir())
	if err != nil {
		return st, fmt.Errorf("blob store gc: %w", err)
	}
	for _, de := range des {
		d, err := wire.ParseHash(de.Name())
		if err != nil {
			continue // a temporary file of PutManifest; CleanTemp's age rule below
		}
		fi, err := de.Info()
		if err != nil {
			continue
		}
		if fi.ModTime().Before(cutoff) {
			st.Manifests++
			if !opts.DryRun {
				if err := s.RemoveManifest(d); err != nil {
					errs = append(errs, err)
				}
			}
			continue
		}
		m, err := s.Manifest(d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, e := range m.Entries {
			if e.Type == wire.EntryFile {
				pending[e.Hash] = true
			}
		}
	}
	if !opts.DryRun {
		n, err := s.CleanTemp()
		st.Temps += n
		if err != nil {
			errs = append(errs, err)
		}
		n, err = removeOlder(s.manifestsDir(), s.opts.Now().Add(-s.opts.TempAge), func(name string) bool { return !isHex64(name) })
		st.Temps += n
		if err != nil {
			errs = append(errs, err)
		}
	}

	fans, err := os.ReadDir(s.objectsDir())
	if err != nil {
		return st, errors.Join(append(errs, fmt.Errorf("blob store gc: %w", err))...)
	}
	for _, fan := range fans {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		dir := filepath.Join(s.objectsDir(), fan.Name())
		blobs, err := os.ReadDir(dir)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, b := range blobs {
			h, err := wire.ParseHash(strings.TrimSuffix(b.Name(), ".x"))
			if err != nil {
				continue
			}
			fi, err := b.Info()
			if err != nil {
				continue
			}
			sys, ok := fi.Sys().(*syscall.Stat_t)
			if !ok || sys.Nlink > 1 {
				continue
			}
			if pending[h] || opts.Keep != nil && opts.Keep(h) {
				st.Kept++
				continue
			}
			st.Blobs++
			st.Bytes += fi.Size()
			if !opts.DryRun {
				if err := os.Remove(filepath.Join(dir, b.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
					errs = append(errs, err)
				}
			}
		}
	}
	return st, errors.Join(errs...)
}

// KeepManifests returns a GCOptions.Keep that keeps every content of the
// given manifests.
func KeepManifests(ms ...*wire.Manifest) func(wire.Hash) bool {
	keep := map[wire.Hash]bool{}
	for _, m := range ms {
		for _, e := range m.Entries {
			if e.Type == wire.EntryFile {
				keep[e.Hash] = true
			}
		}
	}
	return func(h wire.Hash) bool { return keep[h] }
}
