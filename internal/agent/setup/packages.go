package setup

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/system"
	"github.com/toppcloud/toppcloud/internal/filestat"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

// supportedOS says which systems setup-node accepts: Debian and Ubuntu,
// which share the apt path. Differences between them are data here, not
// code paths.
var supportedOS = []struct {
	id, name string
	minMajor int
}{
	{"debian", "Debian", 12},
	{"ubuntu", "Ubuntu", 22},
}

// parseOSRelease reads os-release's KEY=value lines (values may be
// quoted).
func parseOSRelease(data []byte) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		} else {
			v = strings.Trim(v, `"'`)
		}
		m[k] = v
	}
	return m
}

func (s *setupRun) checkOS(ctx context.Context, st *protocol.Step) (bool, string, error) {
	data, err := s.h.ReadFile("/etc/os-release")
	if errors.Is(err, os.ErrNotExist) {
		data, err = s.h.ReadFile("/usr/lib/os-release")
	}
	if err != nil {
		return false, "", &protocol.Error{Code: protocol.CodeUnsupportedOS,
			Message: "cannot tell which operating system this is (no /etc/os-release): toppcloud supports Debian 12+ and Ubuntu 22.04+"}
	}
	m := parseOSRelease(data)
	s.os = protocol.OSInfo{ID: m["ID"], VersionID: m["VERSION_ID"], PrettyName: m["PRETTY_NAME"]}
	found := s.os.PrettyName
	if found == "" {
		found = strings.TrimSpace(s.os.ID + " " + s.os.VersionID)
	}
	for _, o := range supportedOS {
		if s.os.ID != o.id {
			continue
		}
		major, _, _ := strings.Cut(s.os.VersionID, ".")
		n, err := strconv.Atoi(major)
		if err != nil || n < o.minMajor {
			return false, "", &protocol.Error{Code: protocol.CodeUnsupportedOS,
				Message: fmt.Sprintf("this node runs %s; toppcloud needs %s %d or newer", found, o.name, o.minMajor)}
		}
		return false, found, nil
	}
	return false, "", &protocol.Error{Code: protocol.CodeUnsupportedOS,
		Message: fmt.Sprintf("this node runs %s (ID=%s); toppcloud supports only Debian 12+ and Ubuntu 22.04+", orUnknown(found), orUnknown(s.os.ID))}
}

func (s *setupRun) waitForApt(ctx context.Context, st *protocol.Step) (bool, string, error) {
	start := time.Now()
	var last time.Time
	for {
		holder, busy, err := s.hooks.AptBusy(ctx, s.h)
		if err != nil {
			return false, "", err
		}
		if !busy {
			if waited := time.Since(start); waited > time.Second {
				return false, fmt.Sprintf("waited %s", waited.Round(time.Second)), nil
			}
			return false, "apt is free", nil
		}
		if time.Since(start) > s.hooks.AptWait {
			return false, "", fmt.Errorf("apt is still busy after %s: %s; wait for it to finish (or stop it), then run setup-node again", s.hooks.AptWait, holder)
		}
		if last.IsZero() || time.Since(last) > 5*time.Second {
			st.Progress(fmt.Sprintf("%s; waiting (%s)", holder, time.Since(start).Round(time.Second)))
			last = time.Now()
		}
		select {
		case <-ctx.Done():
			return false, "", ctx.Err()
		case <-time.After(s.hooks.AptPoll):
		}
	}
}

// apt installs packages for setup-node.
func (s *setupRun) apt() system.Apt {
	return system.Apt{Host: s.h, Line: s.commandLine, Again: "run setup-node again", Hint: func(tail []string) string {
		if s.os.ID != "ubuntu" {
			return ""
		}
		for _, l := range tail {
			if strings.Contains(l, "Unable to locate package caddy") {
				return "this Ubuntu release has no caddy package: add Caddy's apt repository (caddyserver.com/docs/install), then run setup-node again"
			}
		}
		return ""
	}}
}

func (s *setupRun) installPackages(ctx context.Context, st *protocol.Step) (bool, string, error) {
	pkgs := RolePackages(s.args.Site)
	apt := s.apt()
	changed := false
	if pending, err := apt.Interrupted(); err != nil {
		return false, "", err
	} else if pending {
		st.Progress("finishing an interrupted dpkg run (dpkg --configure -a)")
		if err := apt.FinishInterrupted(ctx); err != nil {
			return false, "", err
		}
		changed = true
	}
	did, versions, err := apt.Install(ctx, pkgs, st.Progress)
	if err != nil {
		return changed || len(did) > 0, "", err
	}
	s.packages = versions
	if len(did) == 0 {
		return changed, fmt.Sprintf("all %d present", len(pkgs)), nil
	}
	return true, "installed " + strings.Join(did, " "), nil
}

// checkAgent makes sure the installed agent binary is root's and
// executable. The client uploaded it before starting this operation.
func (s *setupRun) checkAgent(ctx context.Context, st *protocol.Step) (bool, string, error) {
	exists, err := s.h.Exists(s.l.Agent)
	if err != nil {
		return false, "", err
	}
	if !exists {
		return false, "", fmt.Errorf("%s is missing: the client installs it before setup; run setup-node again", s.l.Agent)
	}
	a, fi, err := s.h.Stat(s.l.Agent)
	if err != nil {
		return false, "", err
	}
	if !fi.Mode().IsRegular() {
		return false, "", fmt.Errorf("%s is not a regular file", s.l.Agent)
	}
	changed := false
	want := host.Attr{Mode: 0o755}
	if a.Mode != want.Mode || a.User != "root" || a.Group != "root" {
		data, err := s.h.ReadFile(s.l.Agent)
		if err != nil {
			return false, "", err
		}
		if changed, err = s.h.WriteFile(s.l.Agent, data, want); err != nil {
			return false, "", err
		}
	}
	bin := s.h.Path(s.l.Agent)
	fp, _, err := filestat.SumFile(bin, filestat.SidecarPath(bin), true)
	if err != nil {
		return changed, "", err
	}
	return changed, fmt.Sprintf("%s, sha256 %s", filepath.Base(s.l.Agent), fp[:12]), nil
}
