// Package appsocket is the path between the front server and an app
// instance's process on a node: the directory the instance's socket lives
// in, made without following anything an attacker planted and locked once
// the app listens, so that the path Caddy dials is one the app cannot
// replace; and the proxy in front of a command app's loopback port, which
// passes a connection on only to a listener of the app's own user.
//
// The agent binary runs these for the instance's units (`toppcloud
// app-socket ...`, see Command), as root before and after the app starts,
// and as the proxy's user for the proxy.
package appsocket

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Modes of an instance's socket directory: while the app starts it is the
// app's (it binds its socket there), then root's (Lock).
const (
	OpenMode   = 0o750
	LockedMode = 0o750
)

// Prepare makes dir/name the instance's socket directory, owned by uid
// and group gid (Caddy's), mode 0750, for the app to bind its socket in.
// It never follows a symlink: dir is opened with O_NOFOLLOW, the entry is
// made with mkdirat and opened again with O_NOFOLLOW|O_DIRECTORY, and its
// owner and mode are set through that descriptor. An existing entry that
// is not a directory (a symlink planted to make root chown something
// else) is an error, and nothing is changed.
func Prepare(dir, name string, uid, gid int) error {
	parent, err := openParent(dir, name)
	if err != nil {
		return err
	}
	defer unix.Close(parent)
	if err := unix.Mkdirat(parent, name, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("socket directory %s: %w", filepath.Join(dir, name), err)
	}
	fd, err := openDir(parent, dir, name)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Fchown(fd, uid, gid); err != nil {
		return fmt.Errorf("socket directory %s: %w", filepath.Join(dir, name), err)
	}
	if err := unix.Fchmod(fd, OpenMode); err != nil {
		return fmt.Errorf("socket directory %s: %w", filepath.Join(dir, name), err)
	}
	return nil
}

// Lock makes dir/name root's (group gid, 0750) once the app listens, so
// that the app can no longer replace the socket Caddy dials (with a
// symlink to another app's socket, or to Caddy's admin socket); then it
// checks that the socket there is a socket the app's user (uid) bound,
// not a symlink or another user's socket left there while the directory
// was the app's. Locking first makes the check final.
func Lock(dir, name, socket string, uid, gid int) error {
	fd, err := toRoot("lock", dir, name, gid)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstatat(fd, socket, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("the app's socket %s: %w", filepath.Join(dir, name, socket), err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK || int(st.Uid) != uid {
		return fmt.Errorf("%s is not a socket the app bound (mode %o, owner %d): refusing to let the front server dial it",
			filepath.Join(dir, name, socket), st.Mode, st.Uid)
	}
	return nil
}

// Seal makes dir/name root's again once the app has stopped and removes
// whatever is at socket there. The directory is the app's while the app
// stops (gunicorn removes its own socket), and an app stops on its own
// too, while it is still routed: without this, a process of the same app
// (a worker, a straggler) could leave a symlink to another app's socket
// where the front server keeps dialling. Nothing listens there any more,
// so nothing of value is removed.
func Seal(dir, name, socket string, gid int) error {
	fd, err := toRoot("seal", dir, name, gid)
	if errors.Is(err, unix.ENOENT) {
		return nil // removed with its instance, or never made
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	err = unix.Unlinkat(fd, socket, 0)
	if errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EPERM) {
		// A directory planted under the socket's name: Caddy cannot dial
		// it, but the next start must find the name free.
		err = removeTree(fd, socket)
	}
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("seal %s: %w", filepath.Join(dir, name, socket), err)
	}
	return nil
}

// toRoot opens dir/name without following a symlink and makes it root's
// (group gid, LockedMode) through the descriptor, which it returns open.
func toRoot(op, dir, name string, gid int) (int, error) {
	parent, err := openParent(dir, name)
	if err != nil {
		return -1, err
	}
	defer unix.Close(parent)
	fd, err := openDir(parent, dir, name)
	if err != nil {
		return -1, err
	}
	if err := unix.Fchown(fd, 0, gid); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("%s %s: %w", op, filepath.Join(dir, name), err)
	}
	if err := unix.Fchmod(fd, LockedMode); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("%s %s: %w", op, filepath.Join(dir, name), err)
	}
	return fd, nil
}

// removeTree removes parent/name and what is under it without following
// a symlink: every step goes through a descriptor opened with O_NOFOLLOW.
func removeTree(parent int, name string) error {
	fd, err := unix.Openat(parent, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return unix.Unlinkat(parent, name, 0)
	}
	f := os.NewFile(uintptr(fd), name)
	names, err := f.Readdirnames(-1)
	if err != nil {
		f.Close()
		return err
	}
	for _, n := range names {
		if err := unix.Unlinkat(fd, n, 0); err != nil {
			if err := removeTree(fd, n); err != nil {
				f.Close()
				return err
			}
		}
	}
	f.Close()
	return unix.Unlinkat(parent, name, unix.AT_REMOVEDIR)
}

// openParent checks name and opens the run directory dir, itself not
// through a symlink.
func openParent(dir, name string) (int, error) {
	if err := checkName(name); err != nil {
		return -1, err
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket directory %s: %w", dir, err)
	}
	return fd, nil
}

// openDir opens parent/name as a directory without following a symlink,
// and checks what it opened.
func openDir(parent int, dir, name string) (int, error) {
	p := filepath.Join(dir, name)
	fd, err := unix.Openat(parent, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			return -1, fmt.Errorf("%s exists and is not a directory (a symlink?): refusing to touch it; remove it", p)
		}
		return -1, fmt.Errorf("socket directory %s: %w", p, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		unix.Close(fd)
		return -1, fmt.Errorf("%s is not a directory", p)
	}
	return fd, nil
}

func checkName(name string) error {
	if name == "" || name == "." || name == ".." || filepath.Base(name) != name {
		return &fs.PathError{Op: "socket directory", Path: name, Err: fs.ErrInvalid}
	}
	return nil
}
