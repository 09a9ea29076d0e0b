package host

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Owners reads and sets the owner of a real path (not a node path).
type Owners interface {
	Owner(path string) (uid, gid int, err error)
	Chown(path string, uid, gid int) error
}

// RealOwners uses lstat and lchown.
type RealOwners struct{}

// Owner returns path's owner.
func (RealOwners) Owner(path string) (int, int, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return 0, 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, fmt.Errorf("%s: no owner information", path)
	}
	return int(st.Uid), int(st.Gid), nil
}

// Chown sets path's owner.
func (RealOwners) Chown(path string, uid, gid int) error { return os.Lchown(path, uid, gid) }

// User is an /etc/passwd entry.
type User struct {
	Name     string
	UID, GID int
	Home     string
	Shell    string
}

// Group is an /etc/group entry.
type Group struct {
	Name    string
	GID     int
	Members []string
}

// The account databases are read from the host's root rather than through
// os/user: under a test root they are the test's files, and on a node this
// is what os/user does without cgo anyway. Accounts from NSS modules (LDAP)
// are not seen, which is fine for the system accounts the agent manages.

func (h *Host) users() ([]User, error) {
	data, err := h.ReadFile("/etc/passwd")
	if err != nil {
		return nil, fmt.Errorf("read /etc/passwd: %w", err)
	}
	var out []User
	for _, f := range records(data, 7) {
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, User{Name: f[0], UID: uid, GID: gid, Home: f[5], Shell: f[6]})
	}
	return out, nil
}

func (h *Host) groups() ([]Group, error) {
	data, err := h.ReadFile("/etc/group")
	if err != nil {
		return nil, fmt.Errorf("read /etc/group: %w", err)
	}
	var out []Group
	for _, f := range records(data, 4) {
		gid, err := strconv.Atoi(f[2])
		if err != nil {
			continue
		}
		var members []string
		if f[3] != "" {
			members = strings.Split(f[3], ",")
		}
		out = append(out, Group{Name: f[0], GID: gid, Members: members})
	}
	return out, nil
}

// records splits colon-separated lines with n fields, skipping comments
// and lines of another shape (NIS "+" entries).
func records(data []byte, n int) [][]string {
	var out [][]string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || line[0] == '+' || line[0] == '-' {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) != n {
			continue
		}
		out = append(out, f)
	}
	return out
}

// LookupUser finds a user by name.
func (h *Host) LookupUser(name string) (User, bool, error) {
	users, err := h.users()
	if err != nil {
		return User{}, false, err
	}
	for _, u := range users {
		if u.Name == name {
			return u, true, nil
		}
	}
	return User{}, false, nil
}

// LookupGroup finds a group by name.
func (h *Host) LookupGroup(name string) (Group, bool, error) {
	groups, err := h.groups()
	if err != nil {
		return Group{}, false, err
	}
	for _, g := range groups {
		if g.Name == name {
			return g, true, nil
		}
	}
	return Group{}, false, nil
}

// LookupGroupByID returns the name of the group with gid, or "".
func (h *Host) LookupGroupByID(gid int) (string, error) {
	groups, err := h.groups()
	if err != nil {
		return "", err
	}
	for _, g := range groups {
		if g.GID == gid {
			return g.Name, nil
		}
	}
	return "", nil
}
