package setup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/instance"
	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

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
	// Command apps' loopback ports: only root (the agent's health checks
	// and update_fetch) and their proxies' user may connect.
	proxyUID, err := instance.EnsureProxyUser(ctx, s.h)
	if err != nil {
		return false, "", err
	}
	rules, err := renderFile("firewall.nft", map[string]string{"Table": FirewallTable, "Unit": layout.FirewallUnit, "Ports": strings.Join(portList, ", "),
		"AppPorts": fmt.Sprintf("%d-%d", instance.PortMin, instance.PortMax), "ProxyUID": strconv.Itoa(proxyUID), "ProxyUser": instance.ProxyUser})
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
		s.warnf("the kernel has no %s (Linux 5.14+): a Caddy config reload may reset connections waiting to be accepted", sysctlKey)
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
			s.warnf("cannot set %s now (%v): /proc/sys is read-only here (a container?); it is set at the next boot if the container allows it", sysctlKey, err)
			return changed, "saved; not applied (read-only /proc/sys)", nil
		}
		return changed, "", fmt.Errorf("set %s: %w", sysctlKey, err)
	}
	return true, sysctlKey + " = 1", nil
}

func isReadOnly(err error) bool { return errors.Is(err, syscall.EROFS) }
