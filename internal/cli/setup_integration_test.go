package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/toppcloud/toppcloud/internal/nodes"
	"github.com/toppcloud/toppcloud/internal/protocol"
	_ "github.com/toppcloud/toppcloud/internal/provider/local"
	"github.com/toppcloud/toppcloud/internal/provider/local/localtest"
	"github.com/toppcloud/toppcloud/internal/remote"
	"github.com/toppcloud/toppcloud/internal/sshx"
	"github.com/toppcloud/toppcloud/internal/sshx/sshxtest"
	"github.com/toppcloud/toppcloud/internal/state"
)

// localEnv is a client home whose default provider makes local nodes.
type localEnv struct {
	t      *testing.T
	home   string
	hosts  string
	agent  string
	signer ssh.Signer
}

func newLocalEnv(t *testing.T) *localEnv {
	t.Helper()
	return newLocalEnvKeyIn(t, "")
}

// newLocalEnvKeyIn is newLocalEnv with the user's private key in dir
// instead of ~/.ssh, named by ssh_key in the config ("" for ~/.ssh).
func newLocalEnvKeyIn(t *testing.T, dir string) *localEnv {
	t.Helper()
	localtest.Skip(t)
	e := &localEnv{t: t, home: t.TempDir(), agent: localtest.Binary(t)}
	sshKey := ""
	if dir == "" {
		dir = filepath.Join(e.home, ".ssh")
	} else {
		sshKey = "ssh_key = " + filepath.Join(dir, "id_ed25519") + "\n"
	}
	e.signer, _ = sshxtest.WriteKey(t, filepath.Join(dir, "id_ed25519"), "")
	pub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(e.signer.PublicKey())))
	conf := fmt.Sprintf("[provider:default]\nprovider = local\nroot = %s\ncache_dir = %s\nroot_authorized_keys = %s\n%s",
		t.TempDir(), localtest.CacheDir(), pub, sshKey)
	if err := os.WriteFile(filepath.Join(e.home, ".toppcloud.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	e.hosts = filepath.Join(e.home, "hosts")
	os.WriteFile(e.hosts, []byte("127.0.0.1 localhost\n"), 0o644)
	return e
}

// run runs the CLI and returns its status and output (stdout and stderr
// together).
func (e *localEnv) run(args ...string) (int, string) {
	e.t.Helper()
	code, stdout, stderr := e.run2(args...)
	return code, stderr + stdout
}

func (e *localEnv) run2(args ...string) (int, string, string) {
	e.t.Helper()
	var stdout, stderr bytes.Buffer
	env := map[string]string{remote.EnvAgentBinary: e.agent}
	code := Run(context.Background(), args, Env{
		Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr,
		Getenv: func(k string) string { return env[k] }, Home: e.home, EtcHosts: e.hosts,
	})
	return code, stdout.String(), stderr.String()
}

func (e *localEnv) record(name string) state.NodeRecord {
	e.t.Helper()
	st, err := state.Open(filepath.Join(e.home, ".toppcloud"))
	if err != nil {
		e.t.Fatal(err)
	}
	rec, ok, err := st.Node(name)
	if err != nil || !ok {
		e.t.Fatalf("node %s not recorded: %v", name, err)
	}
	return rec
}

func (e *localEnv) dial(rec state.NodeRecord, user string) *sshx.Client {
	e.t.Helper()
	c, err := sshx.Dial(context.Background(), sshx.Config{
		Addr: rec.SSHAddr(), User: user, Auth: sshx.Auth{Signers: []ssh.Signer{e.signer}},
		HostKeys: sshx.FixedHostKey(rec.HostKey), RetryFor: 30 * time.Second,
	})
	if err != nil {
		e.t.Fatalf("ssh %s@%s: %v", user, rec.Name, err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// get fetches http://addr/ until something answers (Caddy may still be
// starting after a boot).
func get(t *testing.T, addr string, within time.Duration) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	deadline := time.Now().Add(within)
	for {
		resp, err := client.Get("http://" + addr + "/")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp.StatusCode, string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET http://%s/: %v", addr, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestIntegration_SetupNode sets one local node up with create-node
// --setup-node and checks it from the outside, as a user would; the
// checks share the node. The user's key is kept outside ~/.ssh and named
// by ssh_key, and there is no ssh-agent: root and the deploy user log in
// with the named key.
func TestIntegration_SetupNode(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	keyDir := filepath.Join(t.TempDir(), "keys")
	e := newLocalEnvKeyIn(t, keyDir)
	name := localtest.UniqueName("setup")
	t.Cleanup(func() {
		if code, out := e.run("destroy-node", "-y", name); code != ExitOK {
			t.Errorf("destroy-node: %s", out)
		}
	})
	code, out := e.run("create-node", name)
	if code != ExitOK {
		t.Fatalf("create-node: exit %d\n%s", code, out)
	}
	rec := e.record(name)
	root := e.dial(rec, "root")
	sh := func(script string) {
		t.Helper()
		if out, err := root.Output(context.Background(), []string{"sh", "-c", script}, nil); err != nil {
			t.Fatalf("%s: %v %s", script, err, out)
		}
	}

	// Faults first: each fails setup-node with apt's own words and a
	// non-zero exit, and the next run after the fix finishes the job.
	sh("echo 'deb bogus' > /etc/apt/sources.list.d/broken.list")
	code, out = e.run("setup-node", name)
	if code != ExitFailed || !strings.Contains(out, "apt-get update failed") || !strings.Contains(out, "| E: ") {
		t.Errorf("broken apt source: exit %d\n%s", code, out)
	}
	sh("rm /etc/apt/sources.list.d/broken.list; mount -t tmpfs -o size=1m tmpfs /var/cache/apt/archives")
	code, out = e.run("setup-node", name)
	if code != ExitFailed || !strings.Contains(out, "disk is full") || !strings.Contains(out, "E: You don't have enough free space") {
		t.Errorf("full disk: exit %d\n%s", code, out)
	}
	sh("umount /var/cache/apt/archives")

	code, out = e.run("setup-node", name)
	if code != ExitOK {
		t.Fatalf("setup-node after the fixes: exit %d\n%s", code, out)
	}
	t.Logf("first complete run:\n%s", out)
	for _, want := range []string{"packages: done (installed", "firewall: done", "caddy: done", "is set up (changed: packages"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	rec = e.record(name)
	if rec.SetupAt == nil {
		t.Error("the client did not record the setup")
	}
	addr := rec.Address()

	t.Run("not found page", func(t *testing.T) {
		status, body := get(t, addr, 10*time.Second)
		if status != http.StatusNotFound || !strings.Contains(body, "<title>Not Found</title>") {
			t.Errorf("GET / = %d\n%s", status, body)
		}
	})

	t.Run("firewall", func(t *testing.T) {
		if out, err := root.Output(context.Background(), []string{"systemd-run", "--unit=fwprobe", "python3", "-m", "http.server", "8000"}, nil); err != nil {
			t.Fatalf("start a server on port 8000: %v %s", err, out)
		}
		defer root.Run(context.Background(), []string{"systemctl", "stop", "fwprobe"}, sshx.RunOptions{})
		// It answers inside the node...
		probe := []string{"python3", "-c", "import urllib.request,time\nfor i in range(50):\n  try:\n    print(urllib.request.urlopen('http://127.0.0.1:8000/').status); break\n  except OSError: time.sleep(0.1)"}
		if out, err := root.Output(context.Background(), probe, nil); err != nil || strings.TrimSpace(string(out)) != "200" {
			t.Fatalf("inside the node: %q %v", out, err)
		}
		// ...but not from outside, while 22 and 80 do.
		for port, open := range map[string]bool{"8000": false, "22": true, "80": true} {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(addr, port), 2*time.Second)
			if err == nil {
				c.Close()
			}
			if (err == nil) != open {
				t.Errorf("port %s from the host: err %v, want open=%v", port, err, open)
			}
		}
	})

	t.Run("deploy user", func(t *testing.T) {
		// The CLI logs in as the deploy user with the named key too.
		if code, out := e.run("query", name); code != ExitOK || !strings.Contains(out, "no apps") {
			t.Errorf("query as %s: exit %d\n%s", protocol.DeployUser, code, out)
		}
		mgr := e.dial(rec, protocol.DeployUser)
		out, err := mgr.Output(context.Background(), []string{"sudo", "-n", protocol.AgentPath, "node", "version"}, nil)
		var v protocol.VersionInfo
		if err != nil || json.Unmarshal(out, &v) != nil || v.Fingerprint == "" {
			t.Errorf("sudo toppcloud node version: %v %s", err, out)
		}
		for _, argv := range [][]string{{"sudo", "-n", "id"}, {"sudo", "-n", "/bin/sh", "-c", "id"}, {"sudo", "-n", "cp", "/bin/sh", "/tmp/x"}} {
			var ee *sshx.ExitError
			if _, err := mgr.Output(context.Background(), argv, nil); !errors.As(err, &ee) {
				t.Errorf("%q as %s: %v, want refused", argv, protocol.DeployUser, err)
			}
		}
		// The deploy user runs operations through the remote client.
		n, err := remote.Open(context.Background(), mgr, remote.Options{Binary: remote.LocalBinary(e.agent)})
		if err != nil {
			t.Fatal(err)
		}
		var info protocol.InfoResult
		if err := n.Call(context.Background(), protocol.OpInfo, nil, &info, remote.CallOptions{}); err != nil || info.Node == nil || info.Node.Name != name {
			t.Errorf("info as %s: %v %+v", protocol.DeployUser, err, info)
		}
	})

	t.Run("second run changes nothing", func(t *testing.T) {
		code, out := e.run("setup-node", name)
		if code != ExitOK || !strings.Contains(out, "nothing changed") {
			t.Fatalf("exit %d\n%s", code, out)
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, ": done (") && !strings.Contains(line, "no change") && !strings.Contains(line, "connect to") && !strings.Contains(line, "check agent") {
				t.Errorf("second run: %s", line)
			}
		}
		t.Logf("second run:\n%s", out)
	})

	t.Run("node-info", func(t *testing.T) {
		code, out, _ := e.run2("node-info", name, "--json")
		var info protocol.InfoResult
		if code != ExitOK || json.Unmarshal([]byte(out), &info) != nil || info.Node == nil || info.Node.Packages["caddy"] == "" {
			t.Errorf("node-info: exit %d\n%s", code, out)
		}
		var login struct {
			Login nodes.Login `json:"login"`
		}
		if json.Unmarshal([]byte(out), &login) != nil || login.Login.User != "root" || login.Login.Key.Path != filepath.Join(keyDir, "id_ed25519") || !strings.Contains(login.Login.Used, "id_ed25519") {
			t.Errorf("node-info login: %s", out)
		}
	})

	t.Run("after a restart", func(t *testing.T) {
		if code, out := e.run("stop-node", name); code != ExitOK {
			t.Fatalf("stop-node: %s", out)
		}
		if code, out := e.run("start-node", name); code != ExitOK {
			t.Fatalf("start-node: %s", out)
		}
		status, body := get(t, addr, 60*time.Second)
		if status != http.StatusNotFound || !strings.Contains(body, "Not Found") {
			t.Errorf("after restart: GET / = %d\n%s", status, body)
		}
		root := e.dial(rec, "root")
		out, err := root.Output(context.Background(), []string{"sh", "-c", "cat /proc/sys/net/ipv4/tcp_migrate_req; nft list table inet toppcloud >/dev/null && echo firewall"}, nil)
		if err != nil || strings.Fields(string(out))[0] != "1" || !strings.Contains(string(out), "firewall") {
			t.Errorf("after restart: %q %v", out, err)
		}
	})
}
