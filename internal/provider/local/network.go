package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"crypto/rand"
)

// Each node gets its own network namespace and a veth pair: eth0 inside
// with the node's address as a /32, the host end (tcl-ID) with the
// subnet's first address (the gateway) as a /32, and a host route to the
// node's /32 over that veth. Routing per node instead of a shared bridge
// means nothing host-wide has to exist before the first node or be removed
// after the last one, and the host route doubles as the host-wide
// reservation of the address: adding a route that exists fails, so two
// processes (or two roots) can never plumb the same address.
//
// Traffic from nodes to anywhere but another node is masqueraded by one
// rule per node in our own nftables table, which goes away with the last
// rule.

const (
	nftTable = "toppcloud_local"
	nftChain = "postrouting"
)

// netConfig is the validated network setting.
type netConfig struct {
	subnet netip.Prefix
}

// parseSubnet accepts an IPv4 network between /8 and /24 written with its
// network address.
func parseSubnet(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a network like %s", s, DefaultSubnet)
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("%q: only IPv4 subnets are supported", s)
	}
	if p.Bits() < 8 || p.Bits() > 24 {
		return netip.Prefix{}, fmt.Errorf("%q: use a /24 or bigger network, at most /8", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set; did you mean %s?", s, p.Masked())
	}
	return p, nil
}

// gateway is the host side's address: the subnet's first address.
func gateway(p netip.Prefix) netip.Addr {
	return p.Addr().Next()
}

// allocateIP picks a free node address: not the network, gateway or
// broadcast address and not in used. It scans from offset (reduced modulo
// the number of candidates) and wraps, so a random offset spreads
// addresses and a destroyed node's address is not handed out again at once
// (stale known_hosts entries, conntrack and ARP entries are keyed by it).
func allocateIP(p netip.Prefix, used map[netip.Addr]bool, offset uint64) (netip.Addr, error) {
	size := uint64(1) << (32 - p.Bits())
	if size < 4 {
		return netip.Addr{}, fmt.Errorf("subnet %s is too small", p)
	}
	count := size - 3 // network, gateway and broadcast are not for nodes
	base := addrToUint(p.Addr())
	for i := uint64(0); i < count; i++ {
		a := uintToAddr(base + 2 + (offset+i)%count)
		if !used[a] {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no free address left in %s: destroy nodes or set a bigger subnet", p)
}

func addrToUint(a netip.Addr) uint64 {
	b := a.As4()
	return uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
}

func uintToAddr(v uint64) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func randomOffset() uint64 {
	n, err := rand.Int(rand.Reader, big.NewInt(1<<24))
	if err != nil {
		return 0
	}
	return n.Uint64()
}

// ipRoute is one entry of `ip -j route`.
type ipRoute struct {
	Dst string `json:"dst"`
	Dev string `json:"dev"`
}

// SubnetClashError says the configured subnet overlaps a network the host
// already routes elsewhere.
type SubnetClashError struct {
	Subnet netip.Prefix
	Route  string
	Dev    string
}

func (e *SubnetClashError) Error() string {
	return fmt.Sprintf("subnet %s overlaps the host's route %s dev %s; set another subnet (option subnet) in the provider section", e.Subnet, e.Route, e.Dev)
}

// usedAddrs returns the node addresses routed on this host (by any root)
// and fails if the subnet overlaps any route that is not one of ours.
func usedAddrs(routes []ipRoute, subnet netip.Prefix) (map[netip.Addr]bool, error) {
	used := map[netip.Addr]bool{}
	for _, r := range routes {
		if r.Dst == "" || r.Dst == "default" {
			continue
		}
		dst := r.Dst
		if !strings.Contains(dst, "/") {
			dst += "/32"
		}
		p, err := netip.ParsePrefix(dst)
		if err != nil || !p.Addr().Is4() || !p.Overlaps(subnet) {
			continue
		}
		if p.Bits() == 32 && strings.HasPrefix(r.Dev, hostIfPrefix) {
			used[p.Addr()] = true
			continue
		}
		return nil, &SubnetClashError{Subnet: subnet, Route: r.Dst, Dev: r.Dev}
	}
	return used, nil
}

func hostRoutes(ctx context.Context) ([]ipRoute, error) {
	out, err := run(ctx, nil, "ip", "-j", "-4", "route", "show", "table", "main")
	if err != nil {
		return nil, err
	}
	var routes []ipRoute
	if err := json.Unmarshal(out, &routes); err != nil {
		return nil, fmt.Errorf("parse ip route output: %w", err)
	}
	return routes, nil
}

// uplinkMTU is the MTU of the default route's interface: nodes' links use
// it too, so their packets need no fragmentation or path MTU discovery on
// the way out.
func uplinkMTU(routes []ipRoute) int {
	for _, r := range routes {
		if r.Dst == "default" && r.Dev != "" {
			b, err := os.ReadFile("/sys/class/net/" + r.Dev + "/mtu")
			if err != nil {
				break
			}
			if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n >= 576 && n <= 1500 {
				return n
			}
		}
	}
	return 1500
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// allocateNetwork chooses a short id and an address for a new node and
// plumbs its network, all under the host-wide network lock. rootUsed are
// addresses recorded by this root's nodes (stopped ones have no route after
// a reboot but keep their address). record is called with the choice
// before anything is made, so that even if this process is killed half way
// the node's record names what destroy must remove.
func (d *Driver) allocateNetwork(ctx context.Context, m *nodeMeta, rootUsed map[netip.Addr]bool, record func(nodeMeta) error) error {
	l, err := lockNet(ctx)
	if err != nil {
		return err
	}
	defer l.unlock()
	routes, err := hostRoutes(ctx)
	if err != nil {
		return err
	}
	used, err := usedAddrs(routes, d.net.subnet)
	if err != nil {
		return err
	}
	for a := range rootUsed {
		used[a] = true
	}
	used[gateway(d.net.subnet)] = true
	addr, err := allocateIP(d.net.subnet, used, randomOffset())
	if err != nil {
		return err
	}
	id := ""
	for range 10 {
		c := newShortID()
		if !exists(netnsPath(c)) && !exists("/sys/class/net/"+hostIfName(c)) {
			id = c
			break
		}
	}
	if id == "" {
		return errors.New("could not find an unused short id for the node's interfaces")
	}
	m.ShortID = id
	m.IP = addr.String()
	m.Gateway = gateway(d.net.subnet).String()
	m.MTU = uplinkMTU(routes)
	if err := record(*m); err != nil {
		return err
	}
	return d.plumb(ctx, *m)
}

// ensureNetwork brings an existing node's network back if any part is
// missing (after a host reboot /run/netns, the veth, the route and the
// nftables table are all gone).
func (d *Driver) ensureNetwork(ctx context.Context, m nodeMeta) error {
	l, err := lockNet(ctx)
	if err != nil {
		return err
	}
	defer l.unlock()
	if exists(netnsPath(m.ShortID)) && exists("/sys/class/net/"+hostIfName(m.ShortID)) {
		if err := enableForwarding(); err != nil {
			return err
		}
		return natEnsure(ctx, m.ShortID, m.IP)
	}
	if err := teardownNetworkLocked(ctx, m); err != nil {
		return err
	}
	if err := d.plumb(ctx, m); err != nil {
		if stderrSays(err, "File exists") {
			return fmt.Errorf("node %s: its address %s is in use by another node on this host: %w", m.Name, m.IP, err)
		}
		return err
	}
	return nil
}

// plumb creates the namespace, veth pair, addresses, routes and NAT rule
// of a node. The caller holds the network lock. On failure it removes what
// it made.
func (d *Driver) plumb(ctx context.Context, m nodeMeta) (err error) {
	ns, hostIf := netnsName(m.ShortID), hostIfName(m.ShortID)
	mtu := strconv.Itoa(m.MTU)
	if m.MTU == 0 {
		mtu = "1500"
	}
	defer func() {
		if err != nil {
			_ = teardownNetworkLocked(context.WithoutCancel(ctx), m)
		}
	}()
	steps := [][]string{
		{"ip", "netns", "add", ns},
		{"ip", "link", "add", hostIf, "mtu", mtu, "type", "veth", "peer", "name", nodeIfName, "mtu", mtu, "netns", ns},
		{"ip", "addr", "add", m.Gateway + "/32", "dev", hostIf},
		{"ip", "link", "set", hostIf, "up"},
		// Fails if another node (of any root) has this address: the
		// route is the host-wide reservation.
		{"ip", "route", "add", m.IP + "/32", "dev", hostIf},
		{"ip", "-n", ns, "link", "set", "lo", "up"},
		{"ip", "-n", ns, "addr", "add", m.IP + "/32", "dev", nodeIfName},
		{"ip", "-n", ns, "link", "set", nodeIfName, "up"},
		{"ip", "-n", ns, "route", "add", m.Gateway, "dev", nodeIfName, "scope", "link"},
		{"ip", "-n", ns, "route", "add", "default", "via", m.Gateway, "dev", nodeIfName},
	}
	for _, argv := range steps {
		if _, err := run(ctx, nil, argv...); err != nil {
			return fmt.Errorf("node network: %w", err)
		}
	}
	if err := enableForwarding(); err != nil {
		return err
	}
	return natEnsure(ctx, m.ShortID, m.IP)
}

// enableForwarding turns on IPv4 forwarding, without which nodes reach
// only the host. It is never turned off again: other things on the host
// may rely on it by then.
func enableForwarding() error {
	const p = "/proc/sys/net/ipv4/ip_forward"
	b, err := os.ReadFile(p)
	if err == nil && strings.TrimSpace(string(b)) == "1" {
		return nil
	}
	if err := os.WriteFile(p, []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("enable IPv4 forwarding: %w", err)
	}
	return nil
}

// teardownNetwork removes a node's NAT rule, veth pair and namespace.
// Every step tolerates the object being gone already.
func teardownNetwork(ctx context.Context, m nodeMeta) error {
	if m.ShortID == "" {
		return nil
	}
	l, err := lockNet(ctx)
	if err != nil {
		return err
	}
	defer l.unlock()
	return teardownNetworkLocked(ctx, m)
}

func teardownNetworkLocked(ctx context.Context, m nodeMeta) error {
	if !validShortID(m.ShortID) {
		return nil
	}
	var errs []error
	if err := natRemove(ctx, m.ShortID); err != nil {
		errs = append(errs, err)
	}
	// Deleting the host end deletes the pair and the route with it, at
	// once; deleting only the namespace would leave the veth until the
	// kernel's asynchronous namespace cleanup runs.
	if exists("/sys/class/net/" + hostIfName(m.ShortID)) {
		if _, err := run(ctx, nil, "ip", "link", "del", hostIfName(m.ShortID)); err != nil && !stderrSays(err, "Cannot find device") {
			errs = append(errs, err)
		}
	}
	if exists(netnsPath(m.ShortID)) {
		if _, err := run(ctx, nil, "ip", "netns", "del", netnsName(m.ShortID)); err != nil && !stderrSays(err, "No such file") {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove network of node %s: %w", m.Name, err)
	}
	return nil
}

// natRule is one rule of our chain as `nft -j` lists it.
type natRule struct {
	Handle  int    `json:"handle"`
	Comment string `json:"comment"`
}

// parseNftRules reads the rules out of `nft -j list chain` output.
func parseNftRules(b []byte) ([]natRule, error) {
	var out struct {
		Nftables []struct {
			Rule *natRule `json:"rule"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("parse nft output: %w", err)
	}
	var rules []natRule
	for _, e := range out.Nftables {
		if e.Rule != nil {
			rules = append(rules, *e.Rule)
		}
	}
	return rules, nil
}

// natRules lists our chain's rules and says whether the chain exists.
func natRules(ctx context.Context) ([]natRule, bool, error) {
	out, err := run(ctx, nil, "nft", "-j", "list", "chain", "ip", nftTable, nftChain)
	if err != nil {
		if stderrSays(err, "No such file or directory") {
			return nil, false, nil
		}
		return nil, false, err
	}
	rules, err := parseNftRules(out)
	return rules, true, err
}

// natScript creates the table and chain if needed and adds the node's
// masquerade rule. Traffic to other nodes (out through a tcl- interface)
// keeps its source address.
func natScript(id, ip string) string {
	return fmt.Sprintf(`table ip %[1]s {
	chain %[2]s {
		type nat hook postrouting priority srcnat; policy accept;
	}
}
add rule ip %[1]s %[2]s ip saddr %[3]s oifname != "%[4]s*" masquerade comment "%[5]s"
`, nftTable, nftChain, ip, hostIfPrefix, natComment(id))
}

func natEnsure(ctx context.Context, id, ip string) error {
	rules, _, err := natRules(ctx)
	if err != nil {
		return err
	}
	for _, r := range rules {
		if r.Comment == natComment(id) {
			return nil
		}
	}
	if _, err := netip.ParseAddr(ip); err != nil || !validShortID(id) {
		return fmt.Errorf("nat rule: bad address %q or id %q", ip, id)
	}
	if _, err := run(ctx, []byte(natScript(id, ip)), "nft", "-f", "-"); err != nil {
		return fmt.Errorf("add NAT rule: %w", err)
	}
	return nil
}

// natRemove deletes the node's rule, and the table when no rule is left.
func natRemove(ctx context.Context, id string) error {
	rules, found, err := natRules(ctx)
	if err != nil || !found {
		return err
	}
	left := 0
	for _, r := range rules {
		if r.Comment != natComment(id) {
			left++
			continue
		}
		if _, err := run(ctx, nil, "nft", "delete", "rule", "ip", nftTable, nftChain, "handle", strconv.Itoa(r.Handle)); err != nil {
			return fmt.Errorf("remove NAT rule: %w", err)
		}
	}
	if left == 0 {
		if _, err := run(ctx, nil, "nft", "delete", "table", "ip", nftTable); err != nil && !stderrSays(err, "No such file") {
			return fmt.Errorf("remove nftables table %s: %w", nftTable, err)
		}
	}
	return nil
}
