package agent

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"crypto/rand"
	"syscall"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

// dirSpec is a directory of the node layout.
type dirSpec struct {
	path string
	attr host.Attr
}

// layoutDirs are the node's directories with their owners and modes.
// Everything is root's: the agent runs as root, apps get their own
// subdirectories (owned by their users) when they are deployed. Modes say
// who may look: 0711 lets an app reach its own entry without listing the
// others'.
func layoutDirs(l layout.Layout) []dirSpec {
	root := func(m fs.FileMode) host.Attr { return host.Attr{Mode: m} }
	return []dirSpec{
		{l.Etc, root(0o755)},
		{l.Etc + "/instances", root(0o711)},
		{l.WWW, root(0o755)},
		{l.Data, root(0o755)},
		{l.Blobs, root(0o700)},
		{l.Slots, root(0o755)},
		{l.Instances, root(0o755)},
		{l.Apps, root(0o711)},
		{l.Backups, root(0o700)},
		{l.Logs, root(0o755)},
		{l.AppLogs, root(0o755)},
		{l.Locks, root(0o700)},
	}
}

// runDirAttr is what /run/toppcloud must be (see files/tmpfiles.conf).
func runDirAttr() host.Attr {
	return host.Attr{Mode: 0o771 | fs.ModeSticky, Group: layout.CaddyGroup}
}

func (s *setupRun) ensureDirs(ctx context.Context, st *protocol.Step) (bool, string, error) {
	var made []string
	for _, d := range layoutDirs(s.l) {
		c, err := s.h.EnsureDir(d.path, d.attr)
		if err != nil {
			return len(made) > 0, "", err
		}
		if c {
			made = append(made, d.path)
		}
	}
	// /run is a tmpfs: systemd-tmpfiles makes the directory at every boot
	// from this file; running it now makes it for this boot.
	conf, err := renderFile("tmpfiles.conf", map[string]string{"Run": s.l.Run, "CaddyGroup": layout.CaddyGroup})
	if err != nil {
		return false, "", err
	}
	confChanged, err := s.h.WriteFile(s.l.Tmpfiles, conf, host.Attr{Mode: 0o644})
	if err != nil {
		return len(made) > 0, "", err
	}
	runOK := false
	if a, fi, err := s.h.Stat(s.l.Run); err == nil && fi.IsDir() && a.Equal(runDirAttr()) {
		runOK = true
	}
	if confChanged || !runOK {
		if _, err := s.run(ctx, "systemd-tmpfiles", "--create", s.h.Path(s.l.Tmpfiles)); err != nil {
			return true, "", err
		}
		made = append(made, s.l.Run)
	}
	if len(made) == 0 {
		return false, "all in place", nil
	}
	return true, "made or fixed " + strings.Join(made, " "), nil
}

// secretBytes is the entropy of the node secret.
const secretBytes = 32

func cryptoRandom(b []byte) error {
	_, err := rand.Read(b)
	return err
}

// ensureSecret makes the node secret once and never changes it (apps sign
// things with it); its content is never logged or sent anywhere.
func (s *setupRun) ensureSecret(ctx context.Context, st *protocol.Step) (bool, string, error) {
	attr := host.Attr{Mode: 0o640, Group: layout.AppsGroup}
	old, err := s.h.ReadFile(s.l.Secret)
	switch {
	case err == nil && len(strings.TrimSpace(string(old))) >= 32:
		c, err := s.h.WriteFile(s.l.Secret, old, attr)
		if err != nil {
			return false, "", err
		}
		if c {
			return true, "fixed its mode", nil
		}
		return false, "present", nil
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return false, "", err
	}
	b := make([]byte, secretBytes)
	if err := s.hooks.random(b); err != nil {
		return false, "", fmt.Errorf("random secret: %w", err)
	}
	if _, err := s.h.WriteFile(s.l.Secret, []byte(base64.RawURLEncoding.EncodeToString(b)), attr); err != nil {
		return false, "", err
	}
	return true, "created", nil
}

// FirewallTable is the nftables table toppcloud owns; no other table is
// touched.
const FirewallTable = "toppcloud"

// firewallPorts are the TCP ports open to everyone.
func firewallPorts(sshPort int) []int {
	ports := []int{22, 80, 443}
	if sshPort > 0 && sshPort != 22 && sshPort != 80 && sshPort != 443 {
		ports = append([]int{sshPort}, ports...)
	}
	return ports
}

func (s *setupRun) ensureFirewall(ctx context.Context, st *protocol.Step) (bool, string, error) {
	ports := firewallPorts(s.args.SSHPort)
	portList := make([]string, len(ports))
	for i, p := range ports {
		portList[i] = strconv.Itoa(p)
	}
	rules, err := renderFile("firewall.nft", map[string]string{"Table": FirewallTable, "Unit": layout.FirewallUnit, "Ports": strings.Join(portList, ", ")})
	if err != nil {
		return false, "", err
	}
	unit, err := renderFile("toppcloud-firewall.service", map[string]string{"Table": FirewallTable, "Rules": s.l.Firewall, "Sysctl": s.l.Sysctl})
	if err != nil {
		return false, "", err
	}
	// Check the rules before they are saved for the next boot.
	rulesChanged := false
	if old, err := s.h.ReadFile(s.l.Firewall); err != nil || string(old) != string(rules) {
		tmp := s.l.Firewall + ".new"
		if _, err := s.h.WriteFile(tmp, rules, host.Attr{Mode: 0o644}); err != nil {
			return false, "", err
		}
		if _, err := s.run(ctx, "nft", "-c", "-f", s.h.Path(tmp)); err != nil {
			_, _ = s.h.Remove(tmp)
			return false, "", fmt.Errorf("the firewall rules do not pass nft -c: %w", err)
		}
		if err := s.h.Rename(tmp, s.l.Firewall); err != nil {
			return false, "", err
		}
		rulesChanged = true
	}
	if _, err := s.h.WriteFile(s.l.Firewall, rules, host.Attr{Mode: 0o644}); err != nil {
		return false, "", err
	}
	unitChanged, err := s.h.WriteFile(s.l.FirewallUnit, unit, host.Attr{Mode: 0o644})
	if err != nil {
		return false, "", err
	}
	if unitChanged {
		s.reload = true
	}
	if err := s.daemonReload(ctx); err != nil {
		return true, "", err
	}
	enabled, err := s.systemd.Enable(ctx, layout.FirewallUnit)
	if err != nil {
		return true, "", err
	}
	// Load the rules now when they changed or are not loaded (someone
	// flushed the ruleset, or the node never booted with the unit).
	loaded := true
	if _, err := s.run(ctx, "nft", "list", "table", "inet", FirewallTable); err != nil {
		loaded = false
	}
	applied := false
	if rulesChanged || !loaded {
		if _, err := s.run(ctx, "nft", "-f", s.h.Path(s.l.Firewall)); err != nil {
			return true, "", fmt.Errorf("load the firewall: %w", err)
		}
		applied = true
	}
	detail := "tcp " + strings.Join(portList, ", ") + " open"
	changed := rulesChanged || unitChanged || enabled || applied
	return changed, detail, nil
}

// sysctlSetting is the one kernel setting setup-node makes.
const (
	sysctlKey  = "net.ipv4.tcp_migrate_req"
	sysctlPath = "/proc/sys/net/ipv4/tcp_migrate_req"
)

func (s *setupRun) ensureSysctl(ctx context.Context, st *protocol.Step) (bool, string, error) {
	conf, err := renderFile("sysctl.conf", nil)
	if err != nil {
		return false, "", err
	}
	changed, err := s.h.WriteFile(s.l.Sysctl, conf, host.Attr{Mode: 0o644})
	if err != nil {
		return false, "", err
	}
	cur, err := s.h.ReadFile(sysctlPath)
	if errors.Is(err, os.ErrNotExist) {
		s.c.Warnf("the kernel has no %s (Linux 5.14+): a Caddy config reload may reset connections waiting to be accepted", sysctlKey)
		return changed, "not supported by this kernel", nil
	}
	if err != nil {
		return changed, "", err
	}
	if strings.TrimSpace(string(cur)) == "1" {
		return changed, sysctlKey + " = 1", nil
	}
	if err := os.WriteFile(s.h.Path(sysctlPath), []byte("1\n"), 0o644); err != nil {
		if errors.Is(err, fs.ErrPermission) || isReadOnly(err) {
			s.c.Warnf("cannot set %s now (%v): /proc/sys is read-only here (a container?); it is set at the next boot if the container allows it", sysctlKey, err)
			return changed, "saved; not applied (read-only /proc/sys)", nil
		}
		return changed, "", fmt.Errorf("set %s: %w", sysctlKey, err)
	}
	return true, sysctlKey + " = 1", nil
}

func isReadOnly(err error) bool { return errors.Is(err, syscall.EROFS) }
