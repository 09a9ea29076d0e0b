// Package host is the agent's view of the node it runs on: commands run
// through a Runner, and files written under a root directory with the
// modes and owners they must have. Agent code does all its node work
// through a *Host, so unit tests run it against a temporary root, a fake
// Runner and fake ownership (hosttest) without root or a node.
//
// File writes compare first and write only what differs, atomically, with
// the mode and owner set before the file appears under its name (a sudoers
// file or a secret is never visible with the wrong mode). Every method
// reports whether it changed the node, which is how setup-node knows a
// second run changed nothing.
package host

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/toppcloud/toppcloud/internal/atomicfile"
)

// Host is a node: its file system under Root and its commands.
type Host struct {
	// Root is "/" on a node, a temporary directory in tests. Paths given
	// to methods are absolute node paths, resolved under Root.
	Root string
	// Runner runs commands.
	Runner Runner
	// Owners reads and sets file owners; nil means the real ones (Lstat,
	// Lchown).
	Owners Owners
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// New returns the real node: root "/", real commands and owners.
func New() *Host { return &Host{Root: "/", Runner: Exec{}} }

// Path returns the real path of node path p.
func (h *Host) Path(p string) string {
	if h.Root == "" || h.Root == "/" {
		return filepath.Clean(p)
	}
	return filepath.Join(h.Root, p)
}

// Time returns the current time.
func (h *Host) Time() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

func (h *Host) owners() Owners {
	if h.Owners != nil {
		return h.Owners
	}
	return RealOwners{}
}

// OwnerOf returns the owner of a real path (under Root already), through
// Owners.
func (h *Host) OwnerOf(real string) (uid, gid int, err error) { return h.owners().Owner(real) }

// ChownPath sets the owner of a real path (under Root already), through
// Owners.
func (h *Host) ChownPath(real string, uid, gid int) error { return h.owners().Chown(real, uid, gid) }

// Rename renames node path from to node path to.
func (h *Host) Rename(from, to string) error {
	if err := os.Rename(h.Path(from), h.Path(to)); err != nil {
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(h.Path(to)))
}

// Attr is what a file or directory must be: permission bits (with setuid,
// setgid, sticky) and owner names. Empty names mean root.
type Attr struct {
	Mode  fs.FileMode
	User  string
	Group string
}

func (a Attr) String() string {
	return fmt.Sprintf("%s:%s %04o", orRoot(a.User), orRoot(a.Group), modeBits(a.Mode))
}

// Equal reports whether a and b are the same attributes (an empty name
// and "root" are the same).
func (a Attr) Equal(b Attr) bool {
	return a.Mode&modeMask == b.Mode&modeMask && orRoot(a.User) == orRoot(b.User) && orRoot(a.Group) == orRoot(b.Group)
}

func orRoot(s string) string {
	if s == "" {
		return "root"
	}
	return s
}

// modeBits are the permission bits chmod takes, in the classic octal
// layout (04000 setuid, 02000 setgid, 01000 sticky).
func modeBits(m fs.FileMode) uint32 {
	b := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		b |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		b |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		b |= 0o1000
	}
	return b
}

const modeMask = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// ReadFile reads node path p.
func (h *Host) ReadFile(p string) ([]byte, error) {
	return os.ReadFile(h.Path(p))
}

// Exists reports whether node path p exists (without following a final
// symlink).
func (h *Host) Exists(p string) (bool, error) {
	_, err := os.Lstat(h.Path(p))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// ids resolves an Attr's names under the host's /etc/passwd and
// /etc/group.
func (h *Host) ids(a Attr) (uid, gid int, err error) {
	uid, gid = 0, 0
	if a.User != "" && a.User != "root" {
		u, ok, err := h.LookupUser(a.User)
		if err != nil {
			return 0, 0, err
		}
		if !ok {
			return 0, 0, fmt.Errorf("no user %s", a.User)
		}
		uid = u.UID
	}
	if a.Group != "" && a.Group != "root" {
		g, ok, err := h.LookupGroup(a.Group)
		if err != nil {
			return 0, 0, err
		}
		if !ok {
			return 0, 0, fmt.Errorf("no group %s", a.Group)
		}
		gid = g.GID
	}
	return uid, gid, nil
}

// fixAttr makes the existing path p have a, and reports whether it had to.
func (h *Host) fixAttr(real string, fi fs.FileInfo, a Attr, uid, gid int) (bool, error) {
	changed := false
	ouid, ogid, err := h.owners().Owner(real)
	if err != nil {
		return false, err
	}
	if ouid != uid || ogid != gid {
		if err := h.owners().Chown(real, uid, gid); err != nil {
			return false, err
		}
		changed = true
		// chown clears setuid/setgid bits; read the mode again.
		if fi, err = os.Lstat(real); err != nil {
			return true, err
		}
	}
	if fi.Mode()&modeMask != a.Mode&modeMask {
		if err := os.Chmod(real, a.Mode&modeMask); err != nil {
			return changed, err
		}
		changed = true
	}
	return changed, nil
}

// EnsureDir makes node path p a directory with a (creating missing
// parents 0755 root), and reports whether anything changed.
func (h *Host) EnsureDir(p string, a Attr) (changed bool, err error) {
	real := h.Path(p)
	uid, gid, err := h.ids(a)
	if err != nil {
		return false, fmt.Errorf("directory %s: %w", p, err)
	}
	fi, err := os.Lstat(real)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(filepath.Dir(real), 0o755); err != nil {
			return false, fmt.Errorf("create %s: %w", filepath.Dir(p), err)
		}
		if err := os.Mkdir(real, 0o700); err != nil {
			return false, fmt.Errorf("create %s: %w", p, err)
		}
		if fi, err = os.Lstat(real); err != nil {
			return true, fmt.Errorf("create %s: %w", p, err)
		}
		if _, err := h.fixAttr(real, fi, a, uid, gid); err != nil {
			return true, fmt.Errorf("create %s: %w", p, err)
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("directory %s: %w", p, err)
	case !fi.IsDir():
		return false, fmt.Errorf("%s exists and is not a directory: move it away and re-run", p)
	}
	changed, err = h.fixAttr(real, fi, a, uid, gid)
	if err != nil {
		return changed, fmt.Errorf("directory %s: %w", p, err)
	}
	return changed, nil
}

// WriteFile makes node path p a regular file holding data with a. An
// equal file is left alone (only its mode and owner are corrected); a
// different one is replaced atomically: a temporary file in the same
// directory gets the data, fsync, the mode and owner, then is renamed over
// p. It reports whether anything changed. Missing parent directories are
// made 0755 (owned by whoever runs the agent: root).
func (h *Host) WriteFile(p string, data []byte, a Attr) (changed bool, err error) {
	real := h.Path(p)
	uid, gid, err := h.ids(a)
	if err != nil {
		return false, fmt.Errorf("write %s: %w", p, err)
	}
	fi, err := os.Lstat(real)
	switch {
	case err == nil && fi.Mode().IsRegular():
		old, err := os.ReadFile(real)
		if err != nil {
			return false, fmt.Errorf("write %s: %w", p, err)
		}
		if bytes.Equal(old, data) {
			changed, err := h.fixAttr(real, fi, a, uid, gid)
			if err != nil {
				return changed, fmt.Errorf("write %s: %w", p, err)
			}
			return changed, nil
		}
	case err == nil:
		return false, fmt.Errorf("write %s: it exists and is not a regular file: move it away and re-run", p)
	case !errors.Is(err, fs.ErrNotExist):
		return false, fmt.Errorf("write %s: %w", p, err)
	}
	if err := os.MkdirAll(filepath.Dir(real), 0o755); err != nil {
		return false, fmt.Errorf("write %s: %w", p, err)
	}
	if err := h.replace(real, data, a, uid, gid); err != nil {
		return false, fmt.Errorf("write %s: %w", p, err)
	}
	return true, nil
}

func (h *Host) replace(real string, data []byte, a Attr, uid, gid int) error {
	return atomicfile.Write(real, data, atomicfile.Options{
		Perm:    a.Mode & modeMask,
		Prepare: func(tmp string) error { return h.owners().Chown(tmp, uid, gid) },
	})
}

// Symlink makes node path link a symlink to target, replacing whatever
// is there in one rename: a reader sees the old link or the new one, never
// none. target is written as it is (a node path, not resolved under Root:
// the link must lead where it leads on the node). Missing parent
// directories are made 0755. It reports whether anything changed.
func (h *Host) Symlink(target, link string) (changed bool, err error) {
	real := h.Path(link)
	if cur, err := os.Readlink(real); err == nil && cur == target {
		return false, nil
	}
	if err := os.MkdirAll(filepath.Dir(real), 0o755); err != nil {
		return false, fmt.Errorf("symlink %s: %w", link, err)
	}
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return false, err
	}
	// A name of its own per call: two writers of one link never share a
	// temporary.
	tmp := filepath.Join(filepath.Dir(real), "."+filepath.Base(real)+".new-"+hex.EncodeToString(rnd[:]))
	if err := os.Symlink(target, tmp); err != nil {
		return false, fmt.Errorf("symlink %s: %w", link, err)
	}
	if err := os.Rename(tmp, real); err != nil {
		os.Remove(tmp)
		return false, fmt.Errorf("switch %s: %w", link, err)
	}
	return true, nil
}

// AppendFile appends data to node path p, creating it with a.
func (h *Host) AppendFile(p string, data []byte, a Attr) error {
	real := h.Path(p)
	exists, err := h.Exists(p)
	if err != nil {
		return err
	}
	if !exists {
		_, err := h.WriteFile(p, data, a)
		return err
	}
	f, err := os.OpenFile(real, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("append to %s: %w", p, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("append to %s: %w", p, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("append to %s: %w", p, err)
	}
	return nil
}

// Remove removes node path p (a file or an empty directory) and reports
// whether it existed.
func (h *Host) Remove(p string) (bool, error) {
	err := os.Remove(h.Path(p))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("remove %s: %w", p, err)
	}
	return true, nil
}

// Stat describes node path p: its attributes as names when they resolve
// (numbers otherwise).
func (h *Host) Stat(p string) (Attr, fs.FileInfo, error) {
	real := h.Path(p)
	fi, err := os.Lstat(real)
	if err != nil {
		return Attr{}, nil, err
	}
	uid, gid, err := h.owners().Owner(real)
	if err != nil {
		return Attr{}, fi, err
	}
	a := Attr{Mode: fi.Mode() & modeMask, User: fmt.Sprint(uid), Group: fmt.Sprint(gid)}
	if users, err := h.users(); err == nil {
		for _, u := range users {
			if u.UID == uid {
				a.User = u.Name
				break
			}
		}
	}
	if groups, err := h.groups(); err == nil {
		for _, g := range groups {
			if g.GID == gid {
				a.Group = g.Name
				break
			}
		}
	}
	return a, fi, nil
}

// IsDiskFull reports whether err comes from a full disk, as a write error
// or in a failed command's output.
func IsDiskFull(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	var ce *CommandError
	if errors.As(err, &ce) {
		for _, l := range ce.Tail {
			// The second is apt's own check before it downloads.
			if strings.Contains(l, "No space left on device") || strings.Contains(l, "You don't have enough free space") {
				return true
			}
		}
	}
	return false
}
