package sitetest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/toppcloud/toppcloud/internal/provider/local/localtest"
	"github.com/toppcloud/toppcloud/internal/remote"
	"github.com/toppcloud/toppcloud/internal/sshx"
	"github.com/toppcloud/toppcloud/internal/sshx/sshxtest"
	"github.com/toppcloud/toppcloud/internal/state"
)

// TestMain removes the toppcloud binary the tests run, as a user would,
// and install on the nodes (see localtest.Binary): it outlives any one
// test.
func TestMain(m *testing.M) {
	code := m.Run()
	localtest.RemoveBinary()
	os.Exit(code)
}

// env is a user's home whose default provider makes local nodes, and the
// toppcloud binary run with it.
type env struct {
	t      *testing.T
	home   string
	bin    string
	signer ssh.Signer
}

// newEnv skips t unless integration tests run as root, and makes a home
// with a config for the local provider on a temporary root.
func newEnv(t *testing.T) *env {
	t.Helper()
	localtest.Skip(t)
	e := &env{t: t, home: t.TempDir(), bin: localtest.Binary(t)}
	e.signer, _ = sshxtest.WriteKey(t, filepath.Join(e.home, ".ssh", "id_ed25519"), "")
	pub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(e.signer.PublicKey())))
	conf := fmt.Sprintf("[provider:default]\nprovider = local\nroot = %s\ncache_dir = %s\nroot_authorized_keys = %s\n",
		t.TempDir(), localtest.CacheDir(), pub)
	if err := os.WriteFile(filepath.Join(e.home, ".toppcloud.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// appendConfig adds text at the end of the config file.
func (e *env) appendConfig(text string) {
	e.t.Helper()
	f, err := os.OpenFile(filepath.Join(e.home, ".toppcloud.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		e.t.Fatal(err)
	}
}

// run runs toppcloud ARGS and returns its exit status and its output
// (stderr, then stdout). Stdin is empty: nothing may ask a question.
func (e *env) run(args ...string) (int, string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+e.home, remote.EnvAgentBinary+"="+e.bin)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(""), &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		code = -1
		if x, ok := err.(*exec.ExitError); ok {
			code = x.ExitCode()
		} else {
			e.t.Errorf("toppcloud %s: %v", strings.Join(args, " "), err)
		}
	}
	return code, stderr.String() + stdout.String()
}

// ok runs toppcloud ARGS and ends the test unless it succeeded.
func (e *env) ok(args ...string) string {
	e.t.Helper()
	start := time.Now()
	code, out := e.run(args...)
	if code != 0 {
		e.t.Fatalf("toppcloud %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	e.t.Logf("toppcloud %s: %.1fs", strings.Join(args, " "), time.Since(start).Seconds())
	return out
}

// record is the node's entry in the client's state.
func (e *env) record(name string) state.NodeRecord {
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

// createNode creates a local node named PREFIX-XXXXXX (not set up: the
// site's setup-node does that) that is destroyed when the test ends.
func (e *env) createNode(prefix string) *node {
	e.t.Helper()
	name := localtest.UniqueName(prefix)
	e.t.Cleanup(func() {
		if code, out := e.run("destroy-node", "-y", name); code != 0 {
			e.t.Errorf("destroy-node %s: %s", name, out)
		}
	})
	e.ok("create-node", name)
	rec := e.record(name)
	return &node{e: e, name: name, addr: rec.Address(), rec: rec}
}

// node is one local node of the site.
type node struct {
	e    *env
	name string
	addr string
	rec  state.NodeRecord
	ssh  *sshx.Client
}

// root returns a root login on the node, made once.
func (n *node) root() *sshx.Client {
	n.e.t.Helper()
	if n.ssh != nil {
		return n.ssh
	}
	c, err := sshx.Dial(context.Background(), sshx.Config{
		Addr: n.rec.SSHAddr(), User: "root", Auth: sshx.Auth{Signers: []ssh.Signer{n.e.signer}},
		HostKeys: sshx.FixedHostKey(n.rec.HostKey), RetryFor: 30 * time.Second,
	})
	if err != nil {
		n.e.t.Fatalf("ssh root@%s: %v", n.name, err)
	}
	n.e.t.Cleanup(func() { c.Close() })
	n.ssh = c
	return c
}

// exec runs argv on the node as root and returns its output and error.
func (n *node) exec(t *testing.T, argv ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := n.root().Output(ctx, argv, nil)
	return string(out), err
}

// canConnect says whether a TCP connection from the node to addr:port
// opens within three seconds (bash's /dev/tcp: every node has bash, not
// every node has a database client).
func (n *node) canConnect(t *testing.T, addr string, port int) bool {
	t.Helper()
	target := fmt.Sprintf("/dev/tcp/%s/%d", addr, port)
	_, err := n.exec(t, "timeout", "3", "bash", "-c", `exec 3<>"$1"`, "probe", target)
	return err == nil
}

// httpGet asks addr for host+target on a new connection.
func httpGet(addr, host, target string) (int, string, error) {
	return httpDo(http.MethodGet, addr, host, target, "")
}

// httpDo sends one request to addr with the Host header host and the
// given header fields (pairs of name, value) on a new connection; a body
// makes it a form post.
func httpDo(method, addr, host, target, body string, header ...string) (int, string, error) {
	client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+addr+target, r)
	if err != nil {
		return 0, "", err
	}
	req.Host = host
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return send(client, req, header...)
}

// send sends req with the header fields (pairs of name, value) added,
// without following redirects, and returns the answer's status and body.
func send(client *http.Client, req *http.Request, header ...string) (int, string, error) {
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// waitFor polls cond until it holds, failing t after within.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
