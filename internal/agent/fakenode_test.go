package agent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/host/hosttest"
	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/agent/router"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/version"
)

const (
	debian12 = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n"
	testFP   = "f00df00df00df00df00df00df00df00df00df00df00df00df00df00df00df00d"
)

// fakeNode simulates a bare Debian node behind hosttest's runner: a
// package database, accounts, systemd units, nftables and Caddy's admin
// API (a real HTTP server on a unix socket).
type fakeNode struct {
	t     *testing.T
	h     *host.Host
	r     *hosttest.Runner
	agent *Agent

	mu        sync.Mutex
	installed map[string]string
	enabled   map[string]bool
	active    map[string]bool
	nftLoaded bool
	aptFail   string // output of a failing apt-get install; "" succeeds
	visudoBad bool
	nextID    int

	adminSock string
	adminSrv  *http.Server
	loaded    []byte // config Caddy runs
	loads     int
}

func newFakeNode(t *testing.T) *fakeNode {
	t.Helper()
	r := hosttest.NewRunner(t)
	h := hosttest.New(t, r)
	n := &fakeNode{
		t: t, h: h, r: r,
		installed: map[string]string{"procps": "2:4.0.2-3", "ca-certificates": "20230311"},
		enabled:   map[string]bool{},
		active:    map[string]bool{},
		nextID:    1000,
	}
	hosttest.WriteFile(t, h.Root, "/etc/os-release", debian12)
	hosttest.WriteFile(t, h.Root, protocol.AgentPath, "#!agent binary\n")
	if err := os.Chmod(h.Path(protocol.AgentPath), 0o755); err != nil {
		t.Fatal(err)
	}
	hosttest.WriteFile(t, h.Root, sysctlPath, "0\n")
	dir, err := os.MkdirTemp("", "tca")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	n.adminSock = filepath.Join(dir, "admin.sock")

	n.agent = &Agent{
		Host:        h,
		Layout:      layout.Default(),
		Fingerprint: func() (string, error) { return testFP, nil },
		setup: setupHooks{
			admin:     func(string) *router.Admin { return router.NewAdmin(n.adminSock) },
			caddyWait: 2e9,
			httpCheck: func(context.Context) error { return nil },
			aptPoll:   1e6,
		},
	}
	n.handlers()
	t.Cleanup(n.stopCaddy)
	return n
}

func (n *fakeNode) appendFile(p, line string) {
	f, err := os.OpenFile(n.h.Path(p), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		n.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(line); err != nil {
		n.t.Fatal(err)
	}
}

func (n *fakeNode) addGroup(name string) int {
	n.nextID++
	n.appendFile("/etc/group", name+":x:"+itoa(n.nextID)+":\n")
	return n.nextID
}

func itoa(i int) string { return strconv.Itoa(i) }

func ed25519Key() (ed25519.PublicKey, ed25519.PrivateKey, error) {
	return ed25519.GenerateKey(rand.Reader)
}

func (n *fakeNode) handlers() {
	r := n.r
	r.Handle("dpkg-query", func(c host.Command) (string, error) {
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
	})
	r.Handle("dpkg", hosttest.OK)
	r.Handle("apt-get", func(c host.Command) (string, error) {
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
				gid := n.addGroup("caddy")
				n.appendFile("/etc/passwd", "caddy:x:"+itoa(gid)+":"+itoa(gid)+"::/var/lib/caddy:/usr/sbin/nologin\n")
				n.enabled["caddy.service"] = true
				n.active["caddy.service"] = true
			case "sudo":
				hosttest.WriteFile(n.t, n.h.Root, "/etc/sudoers", "Defaults env_reset\nroot ALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n")
			case "php-fpm":
				n.enabled["php8.2-fpm.service"] = true
				n.active["php8.2-fpm.service"] = true
			}
		}
		return out.String(), nil
	})
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
		gid := n.addGroup(name)
		n.appendFile("/etc/passwd", name+":x:"+itoa(gid)+":"+itoa(gid)+"::/home/"+name+":/bin/bash\n")
		if err := os.MkdirAll(n.h.Path("/home/"+name), 0o700); err != nil {
			return "", err
		}
		return "", n.h.ChownPath(n.h.Path("/home/"+name), gid, gid)
	})
	r.Handle("visudo", func(c host.Command) (string, error) {
		if n.visudoBad {
			return "", hosttest.Fail(c, 1, c.Argv[len(c.Argv)-1]+":4:20: syntax error")
		}
		b, err := os.ReadFile(c.Argv[len(c.Argv)-1])
		if err != nil || !bytes.Contains(b, []byte("NOPASSWD: /usr/local/bin/toppcloud node *")) {
			return "", hosttest.Fail(c, 1, "bad sudoers")
		}
		return "", nil
	})
	r.Handle("systemd-tmpfiles", func(c host.Command) (string, error) {
		_, err := n.h.EnsureDir("/run/toppcloud", runDirAttr())
		return "", err
	})
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
	r.Handle("systemctl", n.systemctl)
}

func (n *fakeNode) systemctl(c host.Command) (string, error) {
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
		if n.active[unit] {
			return "active\n", nil
		}
		return "inactive\n", hosttest.Fail(c, 3, "")
	case "enable":
		n.enabled[unit] = true
		return "", nil
	case "disable":
		n.enabled[unit] = false
		n.active[unit] = false
		return "", nil
	case "restart":
		n.active[unit] = true
		if unit == "caddy.service" {
			n.startCaddyLocked()
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

// startCaddyLocked starts the fake admin API, which Caddy brings up with
// the config file it runs.
func (n *fakeNode) startCaddyLocked() {
	n.stopCaddyLocked()
	cfg, err := os.ReadFile(n.h.Path(layout.Default().CaddyConfig))
	if err != nil {
		n.t.Errorf("caddy started without its config file: %v", err)
	}
	n.loaded = cfg
	l, err := net.Listen("unix", n.adminSock)
	if err != nil {
		n.t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /config/", func(w http.ResponseWriter, r *http.Request) {
		n.mu.Lock()
		defer n.mu.Unlock()
		w.Write(n.loaded)
	})
	mux.HandleFunc("POST /load", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		n.mu.Lock()
		defer n.mu.Unlock()
		n.loaded = b
		n.loads++
	})
	n.adminSrv = &http.Server{Handler: mux}
	go n.adminSrv.Serve(l)
}

func (n *fakeNode) stopCaddyLocked() {
	if n.adminSrv != nil {
		n.adminSrv.Close()
		n.adminSrv = nil
	}
}

func (n *fakeNode) stopCaddy() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.stopCaddyLocked()
}

// testKey returns an authorized_keys line.
func testKey(t *testing.T, comment string) string {
	t.Helper()
	pub, _, err := ed25519Key()
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) + " " + comment
}

// call runs op through Main as the client would, returning the exit
// status, the events and logs, and the result.
type callResult struct {
	code   int
	events []protocol.Event
	logs   []protocol.Log
	res    *protocol.Result
	err    error
	stderr string
}

func runOp(t *testing.T, a *Agent, op string, req *protocol.Request, args any, stream []byte) callResult {
	t.Helper()
	var in bytes.Buffer
	if req != nil {
		if err := protocol.EncodeRequest(&in, *req, args); err != nil {
			t.Fatal(err)
		}
	}
	in.Write(stream)
	var out, errOut bytes.Buffer
	code := a.Main(context.Background(), []string{op}, &in, &out, &errOut)
	var cr callResult
	cr.code, cr.stderr = code, errOut.String()
	cr.res, cr.err = protocol.Read(&out, protocol.Handler{
		Event: func(e protocol.Event) { cr.events = append(cr.events, e) },
		Log:   func(l protocol.Log) { cr.logs = append(cr.logs, l) },
	})
	return cr
}

func req(op string) *protocol.Request {
	return &protocol.Request{Protocol: version.Protocol, Op: op, LocalUser: "alice@laptop"}
}
