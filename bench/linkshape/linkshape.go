//go:build linux

// Package linkshape makes the path between this machine and a local node's
// SSH port behave like a slower, farther link, so that the benchmarks can
// compare toppcloud with rsync and tar the way a user on a home or office
// uplink sees them. Every tool that connects to NODE:22 goes through the
// same shaped link.
//
// The kernel here has htb and tbf but not netem, so the two halves of a
// link are made separately:
//
//   - Rate: an htb class on each end of the node's veth pair (the host's
//     tcl-ID towards the node, the node's eth0 back) with a u32 filter
//     that puts only SSH traffic in it. The node's other traffic (apt
//     downloads during setup-node, which on a real server come from its
//     data centre, not over the user's link) is not slowed. The class
//     has a short queue (about 50 ms), as a well-behaved link has, rather
//     than the veth's thousand packets, which at 10 Mbit/s would add a
//     second of bufferbloat.
//   - Latency: a TCP relay in this process. An nftables nat rule sends
//     this machine's connections to NODE:22 to the relay, which connects
//     to NODE:22 itself with a socket mark the rule skips and passes the
//     bytes on after half the round-trip time in each direction.
//
// Bytes counted on the host's output to NODE:22 (the benchmarks' nftables
// counter) are then what crosses the shaped link: the relay's side.
package linkshape

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Profile is a link: its rate in both directions and its round-trip time.
type Profile struct {
	Name string
	// Rate in bits per second; 0 means unshaped.
	Rate int64
	// RTT is the round-trip time the relay adds.
	RTT time.Duration
}

// Unshaped is the direct path to the node.
var Unshaped = Profile{Name: "unshaped"}

// Profiles are the links the benchmarks measure: the node on this
// machine, a good uplink, a poor one.
var Profiles = []Profile{
	Unshaped,
	{Name: "50mbit-20ms", Rate: 50_000_000, RTT: 20 * time.Millisecond},
	{Name: "10mbit-60ms", Rate: 10_000_000, RTT: 60 * time.Millisecond},
}

// Select returns the profiles named in a comma-separated list ("all" for
// every one).
func Select(list string) ([]Profile, error) {
	if list == "all" || list == "" {
		return Profiles, nil
	}
	var ps []Profile
	for _, name := range strings.Split(list, ",") {
		found := false
		for _, p := range Profiles {
			if p.Name == strings.TrimSpace(name) {
				ps = append(ps, p)
				found = true
			}
		}
		if !found {
			var names []string
			for _, p := range Profiles {
				names = append(names, p.Name)
			}
			return nil, fmt.Errorf("no link profile %q (have %s, all)", name, strings.Join(names, ", "))
		}
	}
	return ps, nil
}

func (p Profile) String() string {
	if p.Rate == 0 && p.RTT == 0 {
		return "unshaped (node on this machine)"
	}
	return fmt.Sprintf("%s: %d Mbit/s each way, %d ms round trip", p.Name, p.Rate/1_000_000, p.RTT.Milliseconds())
}

// relayMark is the socket mark of the relay's own connections to the
// node, which the redirect rule lets through ("tc").
const relayMark = 0x7463

// Link is a shaped path to one node. Close undoes everything it set up.
type Link struct {
	Profile Profile
	addr    string // the node's address
	hostIf  string // the host end of its veth
	netns   string // the node's network namespace (ip netns name)
	table   string // our nftables table
	ln      net.Listener

	mu     sync.Mutex
	conns  map[net.Conn]bool
	closed bool
	wg     sync.WaitGroup
}

// Apply shapes the link to the local node at addr. An unshaped profile
// sets up nothing. On error, whatever was set up is removed.
func Apply(addr string, p Profile) (l *Link, err error) {
	l = &Link{Profile: p, addr: addr, conns: map[net.Conn]bool{}}
	if p.Rate == 0 && p.RTT == 0 {
		return l, nil
	}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	if l.hostIf, err = routeDev(addr); err != nil {
		return nil, err
	}
	id, ok := strings.CutPrefix(l.hostIf, "tcl-")
	if !ok {
		return nil, fmt.Errorf("%s is reached through %s, not a local node's veth (tcl-ID)", addr, l.hostIf)
	}
	l.netns = "toppcloud-" + id
	if p.Rate > 0 {
		if err := shape(nil, l.hostIf, "dport", p.Rate); err != nil {
			return nil, err
		}
		if err := shape([]string{"ip", "netns", "exec", l.netns}, "eth0", "sport", p.Rate); err != nil {
			return nil, err
		}
	}
	if p.RTT > 0 {
		if err := l.startRelay(); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// routeDev is the interface the host reaches addr through.
func routeDev(addr string) (string, error) {
	out, err := exec.Command("ip", "-j", "route", "get", addr).Output()
	if err != nil {
		return "", fmt.Errorf("ip route get %s: %w", addr, err)
	}
	var routes []struct {
		Dev string `json:"dev"`
	}
	if err := json.Unmarshal(out, &routes); err != nil || len(routes) == 0 || routes[0].Dev == "" {
		return "", fmt.Errorf("ip route get %s: no device in %s", addr, out)
	}
	return routes[0].Dev, nil
}

// shape limits the SSH traffic leaving dev (port 22 as dir: dport towards
// the node, sport back) to rate, leaving the rest alone. prefix runs tc
// in the node's namespace.
func shape(prefix []string, dev, dir string, rate int64) error {
	// About 50 ms of queue at the rate, in full-size packets.
	limit := max(rate/8/20/1500, 16)
	cmds := [][]string{
		{"tc", "qdisc", "replace", "dev", dev, "root", "handle", "1:", "htb", "default", "2", "r2q", "1000"},
		{"tc", "class", "add", "dev", dev, "parent", "1:", "classid", "1:1", "htb", "rate", fmt.Sprint(rate), "ceil", fmt.Sprint(rate)},
		{"tc", "class", "add", "dev", dev, "parent", "1:", "classid", "1:2", "htb", "rate", "10gbit"},
		{"tc", "qdisc", "add", "dev", dev, "parent", "1:1", "handle", "10:", "pfifo", "limit", fmt.Sprint(limit)},
		{"tc", "filter", "add", "dev", dev, "parent", "1:", "protocol", "ip", "prio", "1", "u32", "match", "ip", dir, "22", "0xffff", "flowid", "1:1"},
	}
	for _, c := range cmds {
		c = append(append([]string{}, prefix...), c...)
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v\n%s", strings.Join(c, " "), err, out)
		}
	}
	return nil
}

func unshape(prefix []string, dev string) {
	c := append(append([]string{}, prefix...), "tc", "qdisc", "del", "dev", dev, "root")
	_ = exec.Command(c[0], c[1:]...).Run()
}

// startRelay listens on a loopback port and redirects the host's
// connections to the node's SSH port there.
func (l *Link) startRelay() error {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	l.ln = ln
	port := ln.Addr().(*net.TCPAddr).Port
	l.table = fmt.Sprintf("tcbenchlink%d", os.Getpid())
	rules := fmt.Sprintf(`table ip %s {
  chain out {
    type nat hook output priority -100; policy accept;
    ip daddr %s tcp dport 22 meta mark != %#x redirect to :%d
  }
}
`, l.table, l.addr, relayMark, port)
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		l.table = ""
		return fmt.Errorf("nft: %v\n%s", err, out)
	}
	l.wg.Go(l.accept)
	return nil
}

func (l *Link) accept() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.wg.Go(func() { l.relay(c) })
	}
}

func (l *Link) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return false
	}
	l.conns[c] = true
	return true
}

// relay passes one connection on to the node, each direction delayed by
// half the round trip.
func (l *Link) relay(client net.Conn) {
	if !l.track(client) {
		return
	}
	d := net.Dialer{Timeout: 10 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_MARK, relayMark)
		})
		return errors.Join(err, serr)
	}}
	node, err := d.Dial("tcp4", net.JoinHostPort(l.addr, "22"))
	if err != nil {
		client.Close()
		return
	}
	if !l.track(node) {
		client.Close()
		return
	}
	half := l.Profile.RTT / 2
	var wg sync.WaitGroup
	wg.Go(func() { delayCopy(node.(*net.TCPConn), client.(*net.TCPConn), half) })
	wg.Go(func() { delayCopy(client.(*net.TCPConn), node.(*net.TCPConn), half) })
	wg.Wait()
	client.Close()
	node.Close()
	l.mu.Lock()
	delete(l.conns, client)
	delete(l.conns, node)
	l.mu.Unlock()
}

type chunk struct {
	b  []byte
	at time.Time
}

// delayCopy copies src to dst, holding each piece until delay after it
// was read, then half-closes dst. A slow dst (the shaped veth) holds the
// reader back once a few MB are queued, as a link's buffers would.
func delayCopy(dst, src *net.TCPConn, delay time.Duration) {
	q := make(chan chunk, 256)
	go func() {
		defer close(q)
		for {
			b := make([]byte, 32<<10)
			n, err := src.Read(b)
			if n > 0 {
				q <- chunk{b[:n], time.Now().Add(delay)}
			}
			if err != nil {
				return
			}
		}
	}()
	failed := false
	for c := range q {
		if failed {
			continue
		}
		if w := time.Until(c.at); w > 0 {
			time.Sleep(w)
		}
		if _, err := dst.Write(c.b); err != nil {
			failed = true
			src.Close()
		}
	}
	_ = dst.CloseWrite()
}

// Close removes the redirect, stops the relay and its connections and
// removes the qdiscs. It may be called more than once.
func (l *Link) Close() {
	if l == nil {
		return
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	for c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	if l.table != "" {
		_ = exec.Command("nft", "delete", "table", "ip", l.table).Run()
	}
	if l.ln != nil {
		l.ln.Close()
	}
	l.wg.Wait()
	if l.hostIf != "" && l.Profile.Rate > 0 {
		unshape(nil, l.hostIf)
		unshape([]string{"ip", "netns", "exec", l.netns}, "eth0")
	}
}
