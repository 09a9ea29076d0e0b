package setup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"regexp"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

// ensureUsers makes the apps group, the deploy user with its keys, and
// the deploy user's sudo rule.
func (s *setupRun) ensureUsers(ctx context.Context, st *protocol.Step) (bool, string, error) {
	var did []string
	if _, ok, err := s.h.LookupGroup(layout.AppsGroup); err != nil {
		return false, "", err
	} else if !ok {
		if _, err := s.run(ctx, "groupadd", "--system", layout.AppsGroup); err != nil {
			return false, "", err
		}
		did = append(did, "group "+layout.AppsGroup)
	}

	user := protocol.DeployUser
	u, ok, err := s.h.LookupUser(user)
	if err != nil {
		return false, "", err
	}
	if !ok {
		// "*" as the password: no password login, but not "locked" in the
		// sense that makes sshd (with UsePAM no) refuse keys.
		if _, err := s.run(ctx, "useradd", "--create-home", "--user-group", "--shell", "/bin/bash",
			"--password", "*", "--comment", "toppcloud deploy user", user); err != nil {
			return false, "", err
		}
		did = append(did, "user "+user)
		if u, ok, err = s.h.LookupUser(user); err != nil || !ok {
			return true, "", fmt.Errorf("user %s missing after useradd: %v", user, err)
		}
	}
	if u.UID == 0 {
		return false, "", fmt.Errorf("user %s has uid 0; toppcloud needs it to be an ordinary user", user)
	}
	if u.Home == "" || u.Home == "/" || !path.IsAbs(u.Home) {
		return false, "", fmt.Errorf("user %s has home directory %q; give it one under /home", user, u.Home)
	}

	keysChanged, err := s.ensureAuthorizedKeys(u)
	if err != nil {
		return false, "", err
	}
	if keysChanged {
		did = append(did, "authorized keys")
	}
	sudoChanged, err := s.ensureSudoers(ctx)
	if err != nil {
		return false, "", err
	}
	if sudoChanged {
		did = append(did, "sudo rule")
	}
	if len(did) == 0 {
		return false, fmt.Sprintf("%s, group %s", user, layout.AppsGroup), nil
	}
	return true, strings.Join(did, ", "), nil
}

// ensureAuthorizedKeys adds the request's keys the user lacks to its
// authorized_keys, keeping every line it has.
func (s *setupRun) ensureAuthorizedKeys(u host.User) (bool, error) {
	owner := host.Attr{User: u.Name, Group: groupOf(s.h, u)}
	dir := path.Join(u.Home, ".ssh")
	// The home directory's mode is the system's business (login.defs);
	// only a missing one is made.
	changed := false
	if ok, err := s.h.Exists(u.Home); err != nil {
		return false, err
	} else if !ok {
		if changed, err = s.h.EnsureDir(u.Home, host.Attr{Mode: 0o750, User: owner.User, Group: owner.Group}); err != nil {
			return false, err
		}
	}
	c, err := s.h.EnsureDir(dir, host.Attr{Mode: 0o700, User: owner.User, Group: owner.Group})
	if err != nil {
		return false, err
	}
	changed = changed || c
	file := path.Join(dir, "authorized_keys")
	old, err := s.h.ReadFile(file)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	have := map[string]bool{}
	for _, line := range strings.Split(string(old), "\n") {
		if k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line)); err == nil {
			have[string(k.Marshal())] = true
		}
	}
	data := bytes.Clone(old)
	if len(data) > 0 && data[len(data)-1] != '\n' {
		data = append(data, '\n')
	}
	for _, line := range s.args.AuthorizedKeys {
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return false, err // validated before; unreachable
		}
		if have[string(k.Marshal())] {
			continue
		}
		have[string(k.Marshal())] = true
		data = append(data, strings.TrimSpace(line)+"\n"...)
	}
	c, err = s.h.WriteFile(file, data, host.Attr{Mode: 0o600, User: owner.User, Group: owner.Group})
	return changed || c, err
}

func groupOf(h *host.Host, u host.User) string {
	groups, err := h.LookupGroupByID(u.GID)
	if err != nil || groups == "" {
		return u.Name
	}
	return groups
}

var includedirRE = regexp.MustCompile(`(?m)^[#@]includedir[ \t]+/etc/sudoers\.d[ \t]*$`)

// ensureSudoers installs the deploy user's sudo rule, checked with visudo
// before it can take effect: a broken sudoers file would lock everyone
// out of sudo.
func (s *setupRun) ensureSudoers(ctx context.Context) (bool, error) {
	main, err := s.h.ReadFile("/etc/sudoers")
	if err != nil {
		return false, fmt.Errorf("read /etc/sudoers: %w (is sudo installed?)", err)
	}
	if !includedirRE.Match(main) {
		return false, errors.New("/etc/sudoers does not read /etc/sudoers.d: add the line \"@includedir /etc/sudoers.d\" with visudo and run setup-node again")
	}
	data, err := renderFile("sudoers", map[string]string{"User": protocol.DeployUser, "Agent": s.l.Agent})
	if err != nil {
		return false, err
	}
	attr := host.Attr{Mode: 0o440}
	if ok, err := s.h.Exists(path.Dir(s.l.Sudoers)); err != nil {
		return false, err
	} else if !ok {
		if _, err := s.h.EnsureDir(path.Dir(s.l.Sudoers), host.Attr{Mode: 0o755}); err != nil {
			return false, err
		}
	}
	if old, err := s.h.ReadFile(s.l.Sudoers); err == nil && bytes.Equal(old, data) {
		return s.h.WriteFile(s.l.Sudoers, data, attr) // fixes mode and owner only
	}
	// sudo skips files in sudoers.d whose names contain a dot, so the
	// candidate is inert until renamed.
	tmp := path.Join(path.Dir(s.l.Sudoers), "."+path.Base(s.l.Sudoers)+".new")
	if _, err := s.h.WriteFile(tmp, data, attr); err != nil {
		return false, err
	}
	if _, err := s.run(ctx, "visudo", "-c", "-q", "-f", s.h.Path(tmp)); err != nil {
		_, _ = s.h.Remove(tmp)
		return false, fmt.Errorf("the sudo rule for %s does not pass visudo -c: %w", protocol.DeployUser, err)
	}
	if err := s.h.Rename(tmp, s.l.Sudoers); err != nil {
		_, _ = s.h.Remove(tmp)
		return false, err
	}
	return true, nil
}
