// Package agenttest runs the real agent in tests without a node: Node is
// a bare Debian node simulated behind hosttest's runner (a package
// database, accounts, systemd units, nftables and Caddy's admin API), and
// Loopback puts an agent behind deploy.Caller over pipes, so the client's
// own upload and deploy code talks to it as over SSH.
//
// It does not import the agent (the agent's own tests use it); a test
// builds the agent on a Node:
//
//	n := agenttest.NewNode(t)
//	a := &agent.Agent{Host: n.Host, Layout: n.Layout, Fingerprint: n.Fingerprint,
//		Admin: n.Admin, Setup: n.SetupHooks()}
package agenttest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/host/hosttest"
	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/agent/router"
	"github.com/toppcloud/toppcloud/internal/agent/setup"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"golang.org/x/crypto/ssh"
)

// Debian12 is the os-release of the simulated node.
const Debian12 = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n"

// FP is the fingerprint the simulated agent binary has.
const FP = "f00df00df00df00df00df00df00df00df00df00df00df00df00df00df00df00d"

// Node simulates a bare Debian node: a temporary root with its files, and
// the programs setup-node and deploys run, answered in memory.
type Node struct {
	t      testing.TB
	Host   *host.Host
	Runner *hosttest.Runner
	// Layout is the node's, but for the admin socket: a short path of its
	// own (unix socket paths are short), which the configs the agent
	// renders must name, as real ones name the real socket.
	Layout layout.Layout

	mu        sync.Mutex
	installed map[string]string
	enabled   map[string]bool
	active    map[string]bool
	nftLoaded bool
	aptFail   string // output of a failing apt-get install; "" succeeds
	visudoBad bool
	nextID    int

	// front and router are the node's two Caddy processes.
	front, router fakeCaddy
}

// fakeCaddy is a Caddy process: its admin API on socket, started with
// the config file config.
type fakeCaddy struct {
	unit, config, socket string

	srv    *http.Server
	loaded []byte // the config it runs
	loads  int
}

// NewNode returns a bare node: Debian 12 with procps and ca-certificates,
// the agent binary uploaded, nothing set up.
func NewNode(t testing.TB) *Node {
	t.Helper()
	r := hosttest.NewRunner(t)
	h := hosttest.New(t, r)
	n := &Node{
		t: t, Host: h, Runner: r, Layout: layout.Default(),
		installed: map[string]string{"procps": "2:4.0.2-3", "ca-certificates": "20230311"},
		enabled:   map[string]bool{},
		active:    map[string]bool{},
		nextID:    1000,
	}
	hosttest.WriteFile(t, h.Root, "/etc/os-release", Debian12)
	hosttest.WriteFile(t, h.Root, protocol.AgentPath, "#!agent binary\n")
	if err := os.Chmod(h.Path(protocol.AgentPath), 0o755); err != nil {
		t.Fatal(err)
	}
	hosttest.WriteFile(t, h.Root, "/proc/sys/net/ipv4/tcp_migrate_req", "0\n")
	dir, err := os.MkdirTemp("", "tca")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	n.Layout.AdminSocket = filepath.Join(dir, "admin.sock")
	n.Layout.RouterAdminSocket = filepath.Join(dir, "radmin.sock")
	n.front = fakeCaddy{unit: "caddy.service", config: n.Layout.CaddyConfig, socket: n.Layout.AdminSocket}
	n.router = fakeCaddy{unit: "toppcloud-router.service", config: n.Layout.RouterConfig, socket: n.Layout.RouterAdminSocket}
	n.handlers()
	t.Cleanup(n.stopCaddy)
	return n
}

// Fingerprint is the agent binary's (FP).
func (n *Node) Fingerprint() (string, error) { return FP, nil }

// Admin connects to the admin API of the node's router or front server,
// whichever socket (under the node's root) it is asked for.
func (n *Node) Admin(socket string) *router.Admin {
	if strings.HasSuffix(socket, n.Layout.RouterAdminSocket) {
		return router.NewAdmin(n.Layout.RouterAdminSocket)
	}
	return router.NewAdmin(n.Layout.AdminSocket)
}

// SetupHooks are setup-node's waits, short for tests.
func (n *Node) SetupHooks() setup.Hooks {
	return setup.Hooks{
		CaddyWait: 2 * time.Second,
		HTTPCheck: func(context.Context) error { return nil },
		AptPoll:   time.Millisecond,
	}
}

// State is what the simulated node's packages, units, firewall and Caddy
// are at one moment.
type State struct {
	// Installed maps packages to versions.
	Installed map[string]string
	// Enabled and Active say which units are.
	Enabled, Active map[string]bool
	FirewallLoaded  bool
	// CaddyConfig is the config the front server runs; Loads counts the
	// configs loaded through its admin API. RouterConfig and RouterLoads
	// are the router's.
	CaddyConfig  string
	Loads        int
	RouterConfig string
	RouterLoads  int
}

// State returns the node's state now.
func (n *Node) State() State {
	n.mu.Lock()
	defer n.mu.Unlock()
	return State{Installed: maps.Clone(n.installed), Enabled: maps.Clone(n.enabled), Active: maps.Clone(n.active),
		FirewallLoaded: n.nftLoaded, CaddyConfig: string(n.front.loaded), Loads: n.front.loads,
		RouterConfig: string(n.router.loaded), RouterLoads: n.router.loads}
}

// FailApt makes apt-get install fail with output; "" makes it succeed.
func (n *Node) FailApt(output string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.aptFail = output
}

// RefuseSudoers makes visudo refuse every file.
func (n *Node) RefuseSudoers() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.visudoBad = true
}

// LoadCaddyConfig makes the front server run cfg, as if loaded from
// elsewhere.
func (n *Node) LoadCaddyConfig(cfg []byte) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.front.loaded = cfg
}

// AppendFile appends line to the node's file p.
func (n *Node) AppendFile(p, line string) {
	f, err := os.OpenFile(n.Host.Path(p), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		n.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(line); err != nil {
		n.t.Fatal(err)
	}
}

func (n *Node) addGroup(name string) int {
	n.nextID++
	n.AppendFile("/etc/group", name+":x:"+strconv.Itoa(n.nextID)+":\n")
	return n.nextID
}

func (n *Node) addUser(name, home string) int {
	gid := n.addGroup(name)
	id := strconv.Itoa(gid)
	n.AppendFile("/etc/passwd", name+":x:"+id+":"+id+"::"+home+":/usr/sbin/nologin\n")
	return gid
}

func (n *Node) handlers() {
	r := n.Runner
	r.Handle("dpkg-query", n.dpkgQuery)
	r.Handle("dpkg", hosttest.OK)
	r.Handle("apt-get", n.aptGet)
	r.Handle("groupadd", func(c host.Command) (string, error) {
		n.mu.Lock()
		defer n.mu.Unlock()
		n.addGroup(c.Argv[len(c.Argv)-1])
		return "", nil
	})
	r.Handle("useradd", func(c host.Command) (string, error) {
		n.mu.Lock()
		defer n.mu.Unlock()
		name := c.Argv[len(c.Argv)-1]
		gid := n.addUser(name, "/home/"+name)
		if err := os.MkdirAll(n.Host.Path("/home/"+name), 0o700); err != nil {
			return "", err
		}
		return "", n.Host.ChownPath(n.Host.Path("/home/"+name), gid, gid)
	})
	r.Handle("visudo", func(c host.Command) (string, error) {
		n.mu.Lock()
		bad := n.visudoBad
		n.mu.Unlock()
		if bad {
			return "", hosttest.Fail(c, 1, c.Argv[len(c.Argv)-1]+":4:20: syntax error")
		}
		b, err := os.ReadFile(c.Argv[len(c.Argv)-1])
		if err != nil || !bytes.Contains(b, []byte("NOPASSWD: /usr/local/bin/toppcloud node *")) {
			return "", hosttest.Fail(c, 1, "bad sudoers")
		}
		return "", nil
	})
	r.Handle("systemd-tmpfiles", n.tmpfiles)
	r.Handle("nft", func(c host.Command) (string, error) {
		n.mu.Lock()
		defer n.mu.Unlock()
		switch {
		case c.Argv[1] == "-c":
			return "", nil
		case c.Argv[1] == "-f":
			n.nftLoaded = true
			return "", nil
		case c.Argv[1] == "list" && n.nftLoaded:
			return "table inet toppcloud {}\n", nil
		}
		return "", hosttest.Fail(c, 1, "Error: No such file or directory")
	})
	r.Handle("journalctl", func(c host.Command) (string, error) { return "caddy: started\n", nil })
	r.Handle("systemctl", n.Systemctl)
}

func (n *Node) dpkgQuery(c host.Command) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out strings.Builder
	var unknown []string
	for _, p := range c.Argv[3:] {
		if v, ok := n.installed[p]; ok {
			out.WriteString(p + "\tii \t" + v + "\n")
		} else {
			unknown = append(unknown, p)
		}
	}
	if len(unknown) > 0 {
		return out.String(), &host.CommandError{Argv: c.Argv, Status: 1, Tail: []string{"dpkg-query: no packages found matching " + unknown[0]}}
	}
	return out.String(), nil
}

// aptGet installs the packages named, as Debian's would: caddy brings
// its user and a running service, sudo its sudoers, php-fpm its service.
func (n *Node) aptGet(c host.Command) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if c.Argv[1] == "update" {
		return "Reading package lists...\n", nil
	}
	if n.aptFail != "" {
		return "", hosttest.Fail(c, 100, n.aptFail)
	}
	var out strings.Builder
	for _, p := range c.Argv[1:] {
		if strings.HasPrefix(p, "-") || strings.Contains(p, "=") || strings.Contains(p, "::") || p == "install" {
			continue
		}
		n.installed[p] = "1.0-test"
		out.WriteString("Setting up " + p + " (1.0-test) ...\n")
		switch p {
		case "caddy":
			n.addUser("caddy", "/var/lib/caddy")
			n.enabled["caddy.service"] = true
			n.active["caddy.service"] = true
		case "sudo":
			hosttest.WriteFile(n.t, n.Host.Root, "/etc/sudoers", "Defaults env_reset\nroot ALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n")
		case "php-fpm":
			n.enabled["php8.2-fpm.service"] = true
			n.active["php8.2-fpm.service"] = true
		}
	}
	return out.String(), nil
}

// tmpfiles makes the directories a tmpfiles.d file's "d" lines ask for
// (PATH MODE USER GROUP), as systemd-tmpfiles --create does.
func (n *Node) tmpfiles(c host.Command) (string, error) {
	conf, err := os.ReadFile(c.Argv[len(c.Argv)-1])
	if err != nil {
		return "", hosttest.Fail(c, 1, err.Error())
	}
	for _, line := range strings.Split(string(conf), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[0] != "d" {
			continue
		}
		mode, err := strconv.ParseUint(f[2], 8, 32)
		if err != nil {
			return "", hosttest.Fail(c, 1, "bad mode "+f[2])
		}
		perm := os.FileMode(mode & 0o777)
		if mode&0o1000 != 0 {
			perm |= os.ModeSticky
		}
		if _, err := n.Host.EnsureDir(f[1], host.Attr{Mode: perm, User: f[3], Group: f[4]}); err != nil {
			return "", err
		}
	}
	return "", nil
}

// Systemctl answers systemctl as the node's systemd would; a test that
// replaces the handler can hand on to it.
func (n *Node) Systemctl(c host.Command) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	verb, args := c.Argv[1], c.Argv[2:]
	unit := ""
	if len(args) > 0 {
		unit = args[len(args)-1]
	}
	switch verb {
	case "daemon-reload":
		return "", nil
	case "is-enabled":
		if n.enabled[unit] {
			return "enabled\n", nil
		}
		return "disabled\n", hosttest.Fail(c, 1, "")
	case "is-active":
		var out strings.Builder
		all := true
		for _, u := range args {
			if n.active[u] {
				out.WriteString("active\n")
			} else {
				out.WriteString("inactive\n")
				all = false
			}
		}
		if !all {
			return out.String(), hosttest.Fail(c, 3, "")
		}
		return out.String(), nil
	case "start", "stop":
		// Units an app's instances and jobs run; the fake runs nothing.
		for _, u := range args {
			if !strings.HasPrefix(u, "-") {
				n.active[u] = verb == "start"
			}
		}
		return "", nil
	case "clean", "kill":
		return "", nil
	case "show":
		var blocks []string
		for _, u := range args {
			if strings.HasPrefix(u, "-") {
				continue
			}
			state := "inactive"
			if n.active[u] {
				state = "active"
			}
			blocks = append(blocks, "Id="+u+"\nActiveState="+state+"\nSubState=dead\nResult=success\nNRestarts=0\n")
		}
		return strings.Join(blocks, "\n"), nil
	case "list-timers":
		return "[]\n", nil
	case "enable":
		n.enabled[unit] = true
		return "", nil
	case "disable":
		n.enabled[unit] = false
		n.active[unit] = false
		return "", nil
	case "restart":
		n.active[unit] = true
		switch unit {
		case n.front.unit:
			n.startCaddyLocked(&n.front)
		case n.router.unit:
			n.startCaddyLocked(&n.router)
		}
		return "", nil
	case "list-unit-files":
		var out strings.Builder
		for _, u := range []string{"php8.2-fpm.service"} {
			if _, ok := n.enabled[u]; ok {
				state := "disabled"
				if n.enabled[u] {
					state = "enabled"
				}
				out.WriteString(u + " " + state + " enabled\n")
			}
		}
		return out.String(), nil
	}
	return "", hosttest.Fail(c, 1, "fake systemctl: unknown verb "+verb)
}

// startCaddyLocked starts a fake admin API, which Caddy brings up with
// the config file it runs.
func (n *Node) startCaddyLocked(c *fakeCaddy) {
	c.stop()
	cfg, err := os.ReadFile(n.Host.Path(c.config))
	if err != nil {
		n.t.Errorf("%s started without its config file: %v", c.unit, err)
	}
	c.loaded = cfg
	l, err := net.Listen("unix", c.socket)
	if err != nil {
		n.t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /config/", func(w http.ResponseWriter, r *http.Request) {
		n.mu.Lock()
		defer n.mu.Unlock()
		w.Write(c.loaded)
	})
	mux.HandleFunc("POST /load", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		n.mu.Lock()
		defer n.mu.Unlock()
		c.loaded = b
		c.loads++
	})
	c.srv = &http.Server{Handler: mux}
	go c.srv.Serve(l)
}

func (c *fakeCaddy) stop() {
	if c.srv != nil {
		c.srv.Close()
		c.srv = nil
	}
}

func (n *Node) stopCaddy() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.front.stop()
	n.router.stop()
}

// AuthorizedKey returns a new authorized_keys line with comment.
func AuthorizedKey(t testing.TB, comment string) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) + " " + comment
}

// SetupArgs are setup-node's for node web1, with one key of alice's.
func SetupArgs(t testing.TB) protocol.SetupArgs {
	return protocol.SetupArgs{Name: "web1", AuthorizedKeys: []string{AuthorizedKey(t, "alice@laptop")}, SSHPort: 22}
}

// ReadFile returns the node's file p; the test fails if it cannot.
func (n *Node) ReadFile(p string) string {
	n.t.Helper()
	b, err := n.Host.ReadFile(p)
	if err != nil {
		n.t.Fatalf("read %s: %v", p, err)
	}
	return string(b)
}
