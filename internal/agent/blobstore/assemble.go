package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/atomicfile"
	"github.com/toppcloud/toppcloud/internal/protocol/wire"
)

// PartialSuffix marks an instance directory being assembled, hidden by a
// leading dot: /var/www/.APP.DATE_NNN.partial.
const PartialSuffix = ".partial"

// PartialPath returns where the instance at instanceDir is assembled
// before it is renamed into place.
func PartialPath(instanceDir string) string {
	dir, name := filepath.Split(filepath.Clean(instanceDir))
	return filepath.Join(dir, "."+name+PartialSuffix)
}

// AssembleStats describe what Assemble made.
type AssembleStats struct {
	Dirs, Files, Symlinks int
	// Linked files share the store's inode; Copied ones are copies,
	// because the store is on another file system (EXDEV) or the blob
	// has as many links as the file system allows (EMLINK). Empty files
	// are created, neither linked nor copied.
	Linked, Copied int
	// CopyReason says why files were copied, if any were.
	CopyReason string
	// Variants counts blobs copied inside the store to get the other
	// variant (executable or not) of a content it held; SyncTime is the
	// time spent making those copies durable.
	Variants int
	SyncTime time.Duration
}

// ErrBlobMissing is returned by Assemble when the store lacks a content
// of the manifest: the upload did not finish.
var ErrBlobMissing = errors.New("content missing from the blob store")

// Assemble builds the instance directory instanceDir from m and the
// store: directories (mode 0755), files as hard links to the read-only
// blobs (or copies, see AssembleStats), symlinks. It works in
// PartialPath(instanceDir), created here or reserved by whoever named the
// instance (instance.NextName), and renames it into place at the end, so a
// half-assembled instance never appears under its name. instanceDir must
// not exist yet. On failure the partial directory is removed.
//
// Ownership is whoever runs it: root on a node, so that applications can
// read their instance and change nothing in it.
//
// Nothing is synced: call Sync before relying on the instance surviving a
// crash (before switching a route to it). A crash before that may leave it
// incomplete under its name.
func (s *Store) Assemble(ctx context.Context, m *wire.Manifest, instanceDir string) (st AssembleStats, err error) {
	return s.AssembleFor(ctx, m, instanceDir, Access{Group: -1, Readers: -1})
}

// Access says who besides root may read an assembled tree.
type Access struct {
	// Group, when not -1, owns the top directory, mode 0750: the tree is
	// then that group's (an app's) and root's, not every local user's.
	// Its contents keep their modes; the top directory is the gate.
	Group int
	// Readers, when not -1, is a group that may read the tree too,
	// through an ACL on the top directory (host.GrantGroupRead): Caddy's,
	// which serves the static files.
	Readers int
	// Private makes every directory 0750 and every file 0640 (0750
	// executable), all owned by root and Group, and copies files instead
	// of linking them: the store's inode is shared with other trees, so
	// its mode and owner cannot be one app's. For --config uploads, which
	// hold an app's secrets.
	Private bool
	// Chown sets owners (nil: os.Lchown); tests pass a fake.
	Chown func(path string, uid, gid int) error
}

func (a Access) chown(p string, gid int) error {
	if a.Chown != nil {
		return a.Chown(p, 0, gid)
	}
	return os.Lchown(p, 0, gid)
}

// AssembleFor is Assemble for a tree only some may read (see Access). The
// top directory is root's alone (0700) until the tree is whole; then it
// gets its owner, mode and ACL, and only then its name.
func (s *Store) AssembleFor(ctx context.Context, m *wire.Manifest, instanceDir string, a Access) (st AssembleStats, err error) {
	if a.Private && a.Group < 0 {
		return st, fmt.Errorf("assemble %s: a private tree needs a group", instanceDir)
	}
	dMode, fMode := fs.FileMode(dirMode), modeFor
	if a.Private {
		dMode, fMode = 0o750, privateMode
	}
	group := func(p string) error {
		if !a.Private {
			return nil
		}
		return a.chown(p, a.Group)
	}
	if err := m.Validate(); err != nil {
		return st, fmt.Errorf("assemble %s: %w", instanceDir, err)
	}
	instanceDir = filepath.Clean(instanceDir)
	if _, err := os.Lstat(instanceDir); err == nil {
		return st, fmt.Errorf("assemble %s: it already exists", instanceDir)
	}
	// Every content must be there, as the variant needed, before
	// anything is made: the usual failure (an interrupted upload) then
	// leaves nothing behind.
	for _, e := range m.Entries {
		if e.Type != wire.EntryFile || e.Size == 0 {
			continue
		}
		start := time.Now()
		copied, err := s.ensureVariant(e)
		if err != nil {
			return st, fmt.Errorf("assemble %s: %s: %w", instanceDir, e.Path, err)
		}
		if copied {
			st.Variants++
			st.SyncTime += time.Since(start)
		}
	}

	partial := PartialPath(instanceDir)
	if err := os.Mkdir(partial, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return st, fmt.Errorf("assemble %s: %w", instanceDir, err)
	}
	if des, err := os.ReadDir(partial); err != nil || len(des) > 0 {
		return st, fmt.Errorf("assemble %s: %s is not an empty directory (left by an interrupted update? clean-node removes it)", instanceDir, partial)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(partial)
		}
	}()
	// Nobody but root enters while the tree is made (a name reserved
	// by instance.NextName may have been made 0755).
	if err := os.Chmod(partial, 0o700); err != nil {
		return st, fmt.Errorf("assemble %s: %w", instanceDir, err)
	}
	for i, e := range m.Entries {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return st, fmt.Errorf("assemble %s: %w", instanceDir, err)
			}
		}
		dst := filepath.Join(partial, filepath.FromSlash(e.Path))
		switch e.Type {
		case wire.EntryDir:
			if err := os.Mkdir(dst, dMode); err != nil {
				return st, fmt.Errorf("assemble %s: %w", instanceDir, err)
			}
			if err := os.Chmod(dst, dMode); err != nil {
				return st, fmt.Errorf("assemble %s: %w", instanceDir, err)
			}
			if err := group(dst); err != nil {
				return st, fmt.Errorf("assemble %s: %w", instanceDir, err)
			}
			st.Dirs++
		case wire.EntrySymlink:
			if err := os.Symlink(e.Target, dst); err != nil {
				return st, fmt.Errorf("assemble %s: %w", instanceDir, err)
			}
			if err := group(dst); err != nil {
				return st, fmt.Errorf("assemble %s: %w", instanceDir, err)
			}
			st.Symlinks++
		case wire.EntryFile:
			st.Files++
			if e.Size == 0 {
				// Empty files (every __init__.py) would pile thousands
				// of links on one inode.
				if err := writeEmpty(dst, fMode(e.Exec)); err != nil {
					return st, fmt.Errorf("assemble %s: %w", instanceDir, err)
				}
				if err := group(dst); err != nil {
					return st, fmt.Errorf("assemble %s: %w", instanceDir, err)
				}
				continue
			}
			src := s.blobPath(e.Hash, e.Exec)
			if a.Private {
				if err := copyFile(src, dst, fMode(e.Exec)); err != nil {
					return st, fmt.Errorf("assemble %s: %w", instanceDir, err)
				}
				if err := group(dst); err != nil {
					return st, fmt.Errorf("assemble %s: %w", instanceDir, err)
				}
				st.Copied++
				st.CopyReason = "private (readable by its app only)"
				continue
			}
			err := os.Link(src, dst)
			if err == nil {
				st.Linked++
				continue
			}
			var reason string
			switch {
			case errors.Is(err, unix.EXDEV):
				reason = "the blob store and the instance directory are on different file systems"
			case errors.Is(err, unix.EMLINK):
				reason = "a blob has as many hard links as the file system allows"
			default:
				return st, fmt.Errorf("assemble %s: %w", instanceDir, err)
			}
			if st.CopyReason == "" {
				st.CopyReason = reason
			}
			if err := copyFile(src, dst, modeFor(e.Exec)); err != nil {
				return st, fmt.Errorf("assemble %s: %w", instanceDir, err)
			}
			st.Copied++
		}
	}
	if err := setTopAccess(partial, dMode, a); err != nil {
		return st, fmt.Errorf("assemble %s: %w", instanceDir, err)
	}
	if err := renameNoReplace(partial, instanceDir); err != nil {
		if err != errNoReplaceUnsupported {
			return st, fmt.Errorf("assemble %s: rename into place: %w", instanceDir, err)
		}
		// Checked at the start, and the caller holds the app's lock.
		if err := os.Rename(partial, instanceDir); err != nil {
			return st, fmt.Errorf("assemble %s: rename into place: %w", instanceDir, err)
		}
	}
	return st, nil
}

// ensureVariant makes sure the store holds e's content as e's variant,
// copying the other variant if that is what it has.
func (s *Store) ensureVariant(e wire.Entry) (copied bool, err error) {
	if s.has(e.Hash, e.Exec, e.Size) {
		return false, nil
	}
	if !s.has(e.Hash, !e.Exec, e.Size) {
		return false, fmt.Errorf("%w: %s (%d bytes); send it again", ErrBlobMissing, e.Hash, e.Size)
	}
	tmp, err := s.copyTemp(s.blobPath(e.Hash, !e.Exec), e.Exec, !s.opts.NoSync)
	if err != nil {
		return false, err
	}
	dst := s.blobPath(e.Hash, e.Exec)
	if _, err := s.commit(tmp, dst, e.Size); err != nil {
		os.Remove(tmp)
		return false, err
	}
	if !s.opts.NoSync {
		if err := atomicfile.SyncDir(filepath.Dir(dst)); err != nil {
			return false, err
		}
	}
	return true, nil
}

// privateMode is a private tree's file mode.
func privateMode(exec bool) fs.FileMode {
	if exec {
		return 0o750
	}
	return 0o640
}

// setTopAccess gives the top directory of a tree its owner, mode and ACL.
func setTopAccess(dir string, mode fs.FileMode, a Access) error {
	if a.Group < 0 {
		return os.Chmod(dir, mode)
	}
	if err := a.chown(dir, a.Group); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o750); err != nil {
		return err
	}
	if a.Readers >= 0 {
		return host.GrantGroupRead(dir, a.Readers)
	}
	return nil
}

func writeEmpty(p string, mode fs.FileMode) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	err = f.Chmod(mode)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Chmod(mode)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// CleanPartial removes the partial instance directories in wwwDir older
// than age: what interrupted updates left. Live instances are never
// touched (they have no partial suffix).
func CleanPartial(wwwDir string, age time.Duration, now time.Time) (int, error) {
	return removeOlder(wwwDir, now.Add(-age), func(name string) bool {
		return strings.HasPrefix(name, ".") && strings.HasSuffix(name, PartialSuffix)
	})
}
