// Package atomicfile replaces small files so that a reader sees either the
// old or the new content, never a mix, and serializes read-modify-write
// cycles between goroutines and processes with an advisory lock.
//
// It is the one place toppcloud writes such files, on the client
// (~/.toppcloud.conf, nodes.json, known_hosts, /etc/hosts) and on nodes
// (routes, Caddy's config, node files): no package grows its own copy.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// Options say how Write replaces a file. The zero value writes a new file
// with mode 0, fsyncs it and its directory, and replaces whatever is at path.
type Options struct {
	// Perm is the permission of the file written.
	Perm fs.FileMode
	// KeepAttrs keeps the permission bits and, when we are allowed to set
	// it, the owner of the file being replaced; Perm then applies only to
	// a new file. Symlinks in the last element of path are followed, so
	// the file they point to is replaced and the link kept.
	KeepAttrs bool
	// Exclusive fails with an error satisfying errors.Is(err, fs.ErrExist)
	// when path exists, instead of replacing it.
	Exclusive bool
	// NoSync skips both fsyncs, for files whose loss in a crash only costs
	// work (caches): a reader still sees a whole file or none.
	NoSync bool
	// MkdirAll makes missing parent directories with mode 0755.
	MkdirAll bool
	// Prepare, when set, is called with the temporary file's path after
	// its data is written and before its mode is set and it is renamed,
	// for work such as setting an owner through a test double.
	Prepare func(tmp string) error
}

// WriteFile replaces the file at path with data: it writes a temporary file
// in the same directory, fsyncs it, renames it over path and fsyncs the
// directory, so a crash or a failed step leaves either the old or the new
// file. perm is used when the file does not exist yet; an existing file
// keeps its permission bits and, when we are allowed to set it, its owner.
// If path is a symlink, the file it points to is replaced and the link is
// kept.
//
// On failure the temporary file is removed and the error wraps the cause,
// so callers can test for it (errors.Is(err, syscall.EBUSY) when path is a
// mount point).
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	return Write(path, data, Options{Perm: perm, KeepAttrs: true})
}

// Write replaces (or, with o.Exclusive, creates) the file at path with
// data through a temporary file in the same directory, as o says. It is
// the one implementation of "write a file so a reader never sees part of
// it" in toppcloud: every package that writes such files calls it.
func Write(path string, data []byte, o Options) error {
	return write(path, data, o, os.Rename)
}

// write is Write with the rename step injectable, so tests can prove a
// failed rename leaves the old file intact.
func write(path string, data []byte, o Options, rename func(oldpath, newpath string) error) (err error) {
	target := path
	if o.KeepAttrs {
		if target, err = resolve(path); err != nil {
			return err
		}
	}
	mode := o.Perm.Perm()
	uid, gid := -1, -1
	if o.Exclusive {
		if _, err := os.Lstat(target); err == nil {
			return fmt.Errorf("write %s: %w", path, fs.ErrExist)
		}
	} else if o.KeepAttrs {
		if fi, err := os.Stat(target); err == nil {
			mode = fi.Mode().Perm()
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				uid, gid = int(st.Uid), int(st.Gid)
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}

	dir, base := filepath.Split(target)
	if dir == "" {
		dir = "."
	}
	if o.MkdirAll {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// Prepare (an owner, say) comes before the mode: a chown clears the
	// setuid and setgid bits.
	if o.Prepare != nil {
		if err := o.Prepare(tmp.Name()); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	// CreateTemp makes the file 0600 whatever the umask; set the mode we
	// want explicitly, and the owner of the file we replace (only possible
	// as root, which is when it matters: /etc/hosts).
	if err := tmp.Chmod(mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if uid >= 0 && (uid != os.Getuid() || gid != os.Getgid()) {
		if err := tmp.Chown(uid, gid); err != nil && !errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	if !o.NoSync {
		if err := tmp.Sync(); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if o.Exclusive {
		err = link(tmp.Name(), target, rename)
	} else {
		err = rename(tmp.Name(), target)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if o.NoSync {
		return nil
	}
	return SyncDir(dir)
}

// link puts tmp at path only if path does not exist: a hard link fails if
// path appeared since the caller checked, where a rename would silently
// replace it. File systems without hard links (some network and FUSE
// ones) fall back to rename after the check.
func link(tmp, path string, rename func(oldpath, newpath string) error) error {
	err := os.Link(tmp, path)
	switch {
	case errors.Is(err, fs.ErrExist):
		return fs.ErrExist
	case err != nil:
		return rename(tmp, path)
	}
	return os.Remove(tmp)
}

// resolve follows symlinks in the last element of path so that renaming
// replaces the file, not the link. A missing file resolves to itself.
func resolve(path string) (string, error) {
	target, err := filepath.EvalSymlinks(path)
	if err == nil {
		return target, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		// A dangling link would be replaced by a regular file; writing
		// through it is what the user asked for.
		if dest, lerr := os.Readlink(path); lerr == nil {
			if !filepath.IsAbs(dest) {
				dest = filepath.Join(filepath.Dir(path), dest)
			}
			return dest, nil
		}
		return path, nil
	}
	return "", fmt.Errorf("write %s: %w", path, err)
}

// SyncDir makes the creations, renames and removals in dir durable
// (fsync of the directory). File systems that cannot fsync a directory
// are not an error.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		// Some file systems cannot fsync a directory (EINVAL); the rename
		// has happened and there is nothing better to do.
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// Lock takes an exclusive advisory lock for path by flock(2) on the file
// path+".lock", waiting while another process or goroutine holds it, and
// returns the function that releases it. The lock file is never removed:
// removing it would let two holders lock different inodes.
//
// Each call opens the lock file afresh, so Lock also excludes goroutines of
// the same process (flock locks belong to the open file description).
func Lock(path string) (unlock func() error, err error) {
	name := path + ".lock"
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := flock(f, unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() error {
		// Closing the descriptor releases the lock.
		return f.Close()
	}, nil
}

// LockExisting takes an exclusive advisory lock on the file at path itself,
// for files that live where we must not create lock files (/etc/hosts).
// Because WriteFile replaces the inode, a waiter that finally gets the lock
// may hold it on a file that is no longer at path; it then retries on the
// new file, so holders always agree on one inode.
func LockExisting(path string) (unlock func() error, err error) {
	for {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if err := flock(f, unix.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		held, err1 := f.Stat()
		now, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(held, now) {
			return f.Close, nil
		}
		f.Close()
		if err2 != nil && !errors.Is(err2, fs.ErrNotExist) {
			return nil, fmt.Errorf("lock %s: %w", path, err2)
		}
	}
}

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			return err
		}
	}
}
