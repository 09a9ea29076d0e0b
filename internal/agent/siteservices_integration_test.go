package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"golang.org/x/crypto/ssh"

	"github.com/toppcloud/toppcloud/internal/agent/agenttest"
	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/agent/setup"
	"github.com/toppcloud/toppcloud/internal/agent/system"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/provider"
	"github.com/toppcloud/toppcloud/internal/provider/local/localtest"
)

// envSiteOnNode tells this test binary that it runs inside the node, and
// which phase: "serve" (open to the SSH client's address) or "close"
// (open to another address only).
const envSiteOnNode = "TOPPCLOUD_SITE_SERVICES_ON_NODE"

// siteEnvOnNode is where the node phase leaves the app's variables for
// the outer test (root 0600; never printed).
const siteEnvOnNode = "/root/site-env.json"

// TestSiteServices_Node makes a real local node a services node whose
// one client is this machine, provisions PostgreSQL and Redis for an app
// with OpSiteServices, and connects from here with the returned
// variables; then, with another client address only, the same
// connections are refused by the node's firewall.
func TestSiteServices_Node(t *testing.T) {
	if phase := os.Getenv(envSiteOnNode); phase != "" {
		siteServicesOnNode(t, phase)
		return
	}
	localtest.Skip(t)
	d := localtest.NewDriver(t, nil)
	n := localtest.CreateNode(t, d, "", provider.CreateRequest{Size: provider.Size{ID: "large"}})
	c := n.Dial(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sshRun(t, c, exe, "cat > /root/agent.test && chmod 0700 /root/agent.test")
	sshRun(t, c, "", envSiteOnNode+"=serve /root/agent.test -test.run '^TestSiteServices_Node$' -test.v -test.timeout 20m")
	var env map[string]string
	if err := json.Unmarshal([]byte(sshOutput(t, c, "cat "+siteEnvOnNode)), &env); err != nil {
		t.Fatal("the node's variables:", err)
	}
	addr := n.Address()
	if env["CONFIG_PG_HOST"] != addr || env["CONFIG_REDIS_HOST"] != addr {
		t.Fatalf("hosts %q %q, want the node's address %s", env["CONFIG_PG_HOST"], env["CONFIG_REDIS_HOST"], addr)
	}
	if err := redisPing(env); err != nil {
		t.Errorf("redis from the allowed address: %v", err)
	}
	if err := psqlSelect(env); err != nil {
		t.Errorf("postgresql from the allowed address: %v", err)
	}
	if err := mariadbGreets(net.JoinHostPort(env["CONFIG_MYSQL_HOST"], env["CONFIG_MYSQL_PORT"])); err != nil {
		t.Errorf("mariadb from the allowed address: %v", err)
	}

	sshRun(t, c, "", envSiteOnNode+"=close /root/agent.test -test.run '^TestSiteServices_Node$' -test.v -test.timeout 5m")
	if err := redisPing(env); err == nil {
		t.Error("redis answered a client the firewall should drop")
	}
	for _, port := range []string{"5432", "6379", "3306"} {
		if conn, err := net.DialTimeout("tcp", net.JoinHostPort(addr, port), 2*time.Second); err == nil {
			conn.Close()
			t.Errorf("port %s reachable from an address that is not a client", port)
		}
	}
}

func redisPing(env map[string]string) error {
	opt, err := goredis.ParseURL(env["CONFIG_REDIS_URL"])
	if err != nil {
		return err
	}
	opt.DialTimeout, opt.ReadTimeout, opt.MaxRetries = 3*time.Second, 3*time.Second, -1
	r := goredis.NewClient(opt)
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return r.Set(ctx, env["CONFIG_REDIS_PREFIX"]+"k", "v", 0).Err()
}

// mariadbGreets reads MariaDB's first packet: a handshake (protocol 10)
// when the client's host has a user, an error packet ("Host ... is not
// allowed to connect") when none.
func mariadbGreets(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 5)
	if _, err := io.ReadFull(conn, b); err != nil {
		return err
	}
	if b[4] != 10 {
		rest, _ := io.ReadAll(io.LimitReader(conn, 200))
		return &protocol.Error{Message: "no handshake: " + string(rest)}
	}
	return nil
}

// psqlSelect connects with this machine's psql, when it has one.
func psqlSelect(env map[string]string) error {
	psql, err := exec.LookPath("psql")
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, psql, "-X", "-A", "-t", "-h", env["CONFIG_PG_HOST"], "-p", env["CONFIG_PG_PORT"],
		"-U", env["CONFIG_PG_USER"], "-d", env["CONFIG_PG_DBNAME"], "-c", "SELECT 41+1")
	cmd.Env = append(os.Environ(), "PGPASSWORD="+env["CONFIG_PG_PASSWORD"], "PGCONNECT_TIMEOUT=5", "PGSSLMODE=disable")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return &protocol.Error{Message: err.Error() + ": " + strings.TrimSpace(string(out))}
	}
	if strings.TrimSpace(string(out)) != "42" {
		return &protocol.Error{Message: "psql said " + string(out)}
	}
	return nil
}

// sshRun runs cmd on the node (stdin from the file in, if any), its
// output logged; it fails the test unless the command succeeds.
func sshRun(t *testing.T, c *ssh.Client, in, cmd string) {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if in != "" {
		f, err := os.Open(in)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		s.Stdin = f
	}
	pr, pw := io.Pipe()
	s.Stdout, s.Stderr = pw, pw
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			t.Log(sc.Text())
		}
	}()
	err = s.Run(cmd)
	pw.Close()
	<-done
	if err != nil {
		t.Fatalf("on the node: %s: %v", cmd, err)
	}
}

func sshOutput(t *testing.T, c *ssh.Client, cmd string) string {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.Output(cmd)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return string(out)
}

// siteServicesOnNode is the part that runs on the node, as root: the
// role file, the firewall as setup-node renders it, and OpSiteServices
// through the real agent code.
func siteServicesOnNode(t *testing.T, phase string) {
	client, _, _ := strings.Cut(os.Getenv("SSH_CLIENT"), " ")
	if net.ParseIP(client) == nil {
		t.Fatalf("no SSH client address (SSH_CLIENT=%q)", os.Getenv("SSH_CLIENT"))
	}
	if phase == "close" {
		client = "10.255.255.1"
	}
	h := host.New()
	l := layout.Default()
	out, err := h.Runner.Run(context.Background(), host.Command{Argv: []string{"hostname", "-I"}})
	if err != nil {
		t.Fatal(err)
	}
	addrs := strings.Fields(string(out))
	if len(addrs) == 0 {
		t.Fatal("the node has no address")
	}
	listen := addrs[0]
	role := protocol.SiteRole{Site: "s", Services: true, ServiceListen: listen, ServiceClients: []string{client}}
	data, _ := json.Marshal(role)
	for _, d := range []string{"/etc/toppcloud", l.Locks, l.Services, l.Apps} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.WriteFile(l.SiteRole, data, host.Attr{Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	rules, err := setup.FirewallRules(22, 65534, role.ServiceClients)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteFile("/root/firewall.nft", rules, host.Attr{Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := (system.Apt{Host: h}).Install(context.Background(), []string{"nftables"}, nil); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("nft", "-f", "/root/firewall.nft").CombinedOutput(); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}
	if phase == "close" {
		return
	}
	a := &Agent{Host: h, Layout: l, Fingerprint: func() (string, error) { return agenttest.FP, nil }}
	args := protocol.SiteServicesArgs{App: "blog", Platform: "python", Services: []protocol.ServiceRequest{{Name: "postgresql"}, {Name: "redis"}, {Name: "mysql"}}}
	r := agenttest.Run(t, a, protocol.OpSiteServices, agenttest.Request(protocol.OpSiteServices), args, nil)
	if r.Err != nil || r.Res == nil || !r.Res.OK {
		msg := ""
		if r.Res != nil && r.Res.Error != nil {
			msg = r.Res.Error.Message + "\n" + strings.Join(r.Res.Error.Tail, "\n")
		}
		t.Fatalf("site-services: %v %s", r.Err, msg)
	}
	var res protocol.SiteServicesResult
	if err := json.Unmarshal(r.Res.Data, &res); err != nil {
		t.Fatal(err)
	}
	// A second call gives the same variables (the credentials are kept).
	r2 := agenttest.Run(t, a, protocol.OpSiteServices, agenttest.Request(protocol.OpSiteServices), args, nil)
	var res2 protocol.SiteServicesResult
	if r2.Res == nil || !r2.Res.OK || json.Unmarshal(r2.Res.Data, &res2) != nil || !mapsEqual(res.Env, res2.Env) {
		t.Error("a second site-services call gave other variables")
	}
	keys := make([]string, 0, len(res.Env))
	for k := range res.Env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	t.Log("variables:", strings.Join(keys, " "))
	env, _ := json.Marshal(res.Env)
	if _, err := h.WriteFile(siteEnvOnNode, env, host.Attr{Mode: 0o600}); err != nil {
		t.Fatal(err)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
