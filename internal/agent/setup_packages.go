package agent

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

	"golang.org/x/sys/unix"

	"github.com/toppcloud/toppcloud/internal/agent/host"
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

// aptLocks are the files apt and dpkg hold fcntl locks on while they run.
var aptLocks = []string{
	"/var/lib/dpkg/lock-frontend",
	"/var/lib/dpkg/lock",
	"/var/lib/apt/lists/lock",
	"/var/cache/apt/archives/lock",
}

// aptLockHolder asks the kernel whether a process holds one of apt's
// locks (F_GETLK names it), without taking any.
func aptLockHolder(ctx context.Context, h *host.Host) (string, bool, error) {
	for _, p := range aptLocks {
		f, err := os.Open(h.Path(p))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", false, err
		}
		lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0}
		err = unix.FcntlFlock(f.Fd(), unix.F_GETLK, &lk)
		f.Close()
		if err != nil {
			return "", false, fmt.Errorf("check lock %s: %w", p, err)
		}
		if lk.Type != unix.F_UNLCK {
			name := "?"
			if b, err := os.ReadFile(h.Path(fmt.Sprintf("/proc/%d/comm", lk.Pid))); err == nil {
				name = strings.TrimSpace(string(b))
			}
			return fmt.Sprintf("%s (pid %d) holds %s", name, lk.Pid, p), true, nil
		}
	}
	return "", false, nil
}

func (s *setupRun) waitForApt(ctx context.Context, st *protocol.Step) (bool, string, error) {
	start := time.Now()
	var last time.Time
	for {
		holder, busy, err := s.hooks.aptBusy(ctx, s.h)
		if err != nil {
			return false, "", err
		}
		if !busy {
			if waited := time.Since(start); waited > time.Second {
				return false, fmt.Sprintf("waited %s", waited.Round(time.Second)), nil
			}
			return false, "apt is free", nil
		}
		if time.Since(start) > s.hooks.aptWait {
			return false, "", fmt.Errorf("apt is still busy after %s: %s; wait for it to finish (or stop it), then run setup-node again", s.hooks.aptWait, holder)
		}
		if last.IsZero() || time.Since(last) > 5*time.Second {
			st.Progress(fmt.Sprintf("%s; waiting (%s)", holder, time.Since(start).Round(time.Second)))
			last = time.Now()
		}
		select {
		case <-ctx.Done():
			return false, "", ctx.Err()
		case <-time.After(s.hooks.aptPoll):
		}
	}
}

// dpkgQueryFormat lists name, status abbreviation and version.
const dpkgQueryFormat = "${Package}\\t${db:Status-Abbrev}\\t${Version}\\n"

// queryPackages returns the installed version of each package in pkgs
// that is installed ("ii"); the others are missing.
func (s *setupRun) queryPackages(ctx context.Context, pkgs []string) (installed map[string]string, missing []string, err error) {
	argv := append([]string{"dpkg-query", "-W", "-f=" + dpkgQueryFormat}, pkgs...)
	out, err := s.run(ctx, argv...)
	// Status 1 means some package is unknown to dpkg; the known ones are
	// still listed.
	if err != nil && host.ExitStatus(err) != 1 {
		return nil, nil, err
	}
	installed = map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 3 {
			continue
		}
		if strings.HasPrefix(f[1], "ii") {
			installed[f[0]] = f[2]
		}
	}
	for _, p := range pkgs {
		if _, ok := installed[p]; !ok {
			missing = append(missing, p)
		}
	}
	return installed, missing, nil
}

func (s *setupRun) installPackages(ctx context.Context, st *protocol.Step) (bool, string, error) {
	pkgs := NodePackages()
	changed := false
	// A dpkg run that was cut short (an earlier setup-node interrupted,
	// a full disk) must be finished before apt will do anything.
	if pending, err := s.dpkgInterrupted(); err != nil {
		return false, "", err
	} else if pending {
		st.Progress("finishing an interrupted dpkg run (dpkg --configure -a)")
		if _, err := s.h.Runner.Run(ctx, host.Command{Argv: []string{"dpkg", "--configure", "-a", "--force-confdef", "--force-confold"}, Line: s.logLine}); err != nil {
			return false, "", s.aptError("dpkg --configure -a", err)
		}
		changed = true
	}
	installed, missing, err := s.queryPackages(ctx, pkgs)
	if err != nil {
		return false, "", err
	}
	if len(missing) == 0 {
		s.packages = installed
		return changed, fmt.Sprintf("all %d present", len(pkgs)), nil
	}
	st.Progress("apt-get update")
	if _, err := s.h.Runner.Run(ctx, host.Command{
		Argv: []string{"apt-get", "update", "-q", "-o", "DPkg::Lock::Timeout=120"},
		Line: s.logLine,
	}); err != nil {
		return false, "", s.aptError("apt-get update", err)
	}
	st.Progress("installing " + strings.Join(missing, " "))
	argv := []string{"apt-get", "install", "-y", "-q", "--no-install-recommends",
		"-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold",
		"-o", "DPkg::Lock::Timeout=120"}
	argv = append(argv, missing...)
	if _, err := s.h.Runner.Run(ctx, host.Command{Argv: argv, Line: func(line string) {
		s.logLine(line)
		if strings.HasPrefix(line, "Setting up ") || strings.HasPrefix(line, "Unpacking ") {
			st.Progress(line)
		}
	}}); err != nil {
		return false, "", s.aptError("apt-get install", err)
	}
	installed, still, err := s.queryPackages(ctx, pkgs)
	if err != nil {
		return true, "", err
	}
	if len(still) > 0 {
		return true, "", fmt.Errorf("apt-get install succeeded but %s still not installed", strings.Join(still, ", "))
	}
	s.packages = installed
	return true, "installed " + strings.Join(missing, " "), nil
}

// dpkgInterrupted reports whether dpkg left work pending
// (/var/lib/dpkg/updates has journal files).
func (s *setupRun) dpkgInterrupted() (bool, error) {
	entries, err := os.ReadDir(s.h.Path("/var/lib/dpkg/updates"))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			return true, nil
		}
	}
	return false, nil
}

// aptError says what apt's failure means for the user; the output's tail
// rides along in the error.
func (s *setupRun) aptError(what string, err error) error {
	var ce *host.CommandError
	if !errors.As(err, &ce) {
		return fmt.Errorf("%s: %w", what, err)
	}
	hint := "fix the cause (apt's output is below) and run setup-node again"
	if host.IsDiskFull(err) {
		hint = "the node's disk is full: free space (df -h shows where) and run setup-node again"
	}
	if s.os.ID == "ubuntu" {
		for _, l := range ce.Tail {
			if strings.Contains(l, "Unable to locate package caddy") {
				hint = "this Ubuntu release has no caddy package: add Caddy's apt repository (caddyserver.com/docs/install), then run setup-node again"
			}
		}
	}
	return &protocol.Error{Code: codeFor(err), Tail: ce.Tail,
		Message: fmt.Sprintf("%s failed (exit status %d): %s; %s", what, ce.Status, aptErrorLine(ce), hint)}
}

// aptErrorLine picks apt's own error from its output: the last "E:" line
// (apt writes errors to stderr unbuffered, so they may come before the
// last lines of stdout), else the last line.
func aptErrorLine(ce *host.CommandError) string {
	for i := len(ce.Tail) - 1; i >= 0; i-- {
		l := strings.TrimSpace(ce.Tail[i])
		if strings.HasPrefix(l, "E: ") || strings.HasPrefix(l, "dpkg: error") {
			return l
		}
	}
	return ce.LastLine()
}

func codeFor(err error) string {
	if host.IsDiskFull(err) {
		return protocol.CodeDiskFull
	}
	return protocol.CodeCommandFailed
}

// logLine forwards a command's output line to the client when it asked
// for detail (-v).
func (s *setupRun) logLine(line string) {
	if s.c.Req.Verbose > 0 {
		_ = s.c.Out.Log(protocol.StreamStdout, line)
	}
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
