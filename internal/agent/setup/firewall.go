package setup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
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

// ServicePorts are the database servers' ports (PostgreSQL, MariaDB,
// Redis) a services node opens to its site's app nodes, and only to them.
var ServicePorts = []int{5432, 3306, 6379}

// siteRole is the node's part in a site as this setup-node run was told
// (SetupArgs.Site); a node of its own has the zero role.
func (s *setupRun) siteRole() protocol.SiteRole {
	if s.args.Site != nil {
		return *s.args.Site
	}
	return protocol.SiteRole{}
}

// FirewallRules is firewallRules for tests that load it on a real node.
func FirewallRules(sshPort, proxyUID int, clients []string) ([]byte, error) {
	return firewallRules(sshPort, proxyUID, clients)
}

// firewallRules renders the nft ruleset: ports open to everyone,
// command apps' loopback ports closed to all but root and the proxy user,
// and on a services node the database ports open to its clients alone.
// Clients must be IP addresses or CIDR prefixes: nothing else reaches the
// file.
func firewallRules(sshPort, proxyUID int, clients []string) ([]byte, error) {
	ports := firewallPorts(sshPort)
	var v4, v6 []string
	var prefixes []netip.Prefix
	for _, c := range clients {
		p, err := parsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("service client %q: %w", c, err)
		}
		prefixes = append(prefixes, p)
	}
	for _, p := range disjoint(prefixes) {
		if p.Addr().Is4() {
			v4 = append(v4, p.String())
		} else {
			v6 = append(v6, p.String())
		}
	}
	return renderFile("firewall.nft", map[string]any{"Table": FirewallTable, "Unit": layout.FirewallUnit, "Ports": joinInts(ports),
		"AppPorts": fmt.Sprintf("%d-%d", instance.PortMin, instance.PortMax), "ProxyUID": strconv.Itoa(proxyUID), "ProxyUser": instance.ProxyUser,
		"ServicePorts": joinInts(ServicePorts), "Clients4": strings.Join(v4, ", "), "Clients6": strings.Join(v6, ", ")})
}

// parsePrefix reads an address (a prefix of one host) or a CIDR prefix.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if a.Zone() != "" {
		return netip.Prefix{}, errors.New("an address with a zone")
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// disjoint drops the prefixes another one covers (and repeats): nft
// refuses overlapping intervals in one set.
func disjoint(ps []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for i, p := range ps {
		covered := false
		for j, q := range ps {
			if i != j && q.Bits() <= p.Bits() && q.Contains(p.Addr()) && (q.Bits() < p.Bits() || j < i) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, p)
		}
	}
	return out
}

func joinInts(ns []int) string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = strconv.Itoa(n)
	}
	return strings.Join(out, ", ")
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
	var clients []string
	if role := s.siteRole(); role.Services {
		clients = role.ServiceClients
	}
	rules, err := firewallRules(s.args.SSHPort, proxyUID, clients)
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
	if len(clients) > 0 {
		detail += "; tcp " + joinInts(ServicePorts) + " open to " + strings.Join(clients, ", ")
	}
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
