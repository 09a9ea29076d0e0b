package cli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/remote"
	"github.com/toppcloud/toppcloud/internal/sshx"
	"github.com/toppcloud/toppcloud/internal/sshx/sshxtest"
	"github.com/toppcloud/toppcloud/internal/version"
)

// agentNode is an SSH server standing in for a node whose agent answers
// with canned message streams.
type agentNode struct {
	h      *harness
	srv    *sshxtest.Server
	binary string // TOPPCLOUD_AGENT_BINARY
	sum    string

	mu      sync.Mutex
	streams map[string]string // op -> stdout
	reqs    map[string]string // op -> request line received
	inputs  map[string][]byte // op -> what followed the request line
	// replies are written right after the request line, before the
	// input is read (OpUpdate's UpdateNeed, which the client waits for).
	replies map[string]string
	// runStatus is the exit status of OpRun, which prints its request.
	runStatus int
}

func newAgentNode(t *testing.T) *agentNode {
	t.Helper()
	h := newHarness(t)
	n := &agentNode{h: h, streams: map[string]string{}, reqs: map[string]string{}, inputs: map[string][]byte{}, replies: map[string]string{}}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	n.binary = filepath.Join(t.TempDir(), "toppcloud-linux")
	if err := os.WriteFile(n.binary, data, 0o755); err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(data)
	n.sum = hex.EncodeToString(s[:])

	signer := loadSigner(t, h.home)
	n.srv = sshxtest.NewServer(t, n.handle, signer.PublicKey())
	host, portStr, _ := net.SplitHostPort(n.srv.Addr)
	port, _ := strconv.Atoi(portStr)
	h.mem.Address, h.mem.SSHPort = host, port
	h.writeConfig("")
	return n
}

func loadSigner(t *testing.T, home string) ssh.Signer {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(home, ".ssh", "id_ed25519"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (n *agentNode) handle(e *sshxtest.Exec) int {
	agentCmd := protocol.AgentPath + " node "
	// The deploy user runs the agent through sudo.
	e.Command = strings.TrimPrefix(e.Command, "sudo -n ")
	switch {
	case e.Command == "true":
		return 0
	case e.Command == agentCmd+"version":
		b, _ := json.Marshal(protocol.VersionInfo{Version: version.Version, Protocol: version.Protocol, Fingerprint: n.sum, GOOS: "linux", GOARCH: "amd64"})
		fmt.Fprintf(e.Stdout, "%s\n", b)
		return 0
	case strings.HasPrefix(e.Command, agentCmd):
		op := strings.TrimPrefix(e.Command, agentCmd)
		if arg, ok := strings.CutPrefix(op, protocol.OpRun+" "); ok {
			// OpRun: the request is an argument, the output the script's.
			req, _ := base64.StdEncoding.DecodeString(strings.Trim(arg, "'"))
			n.mu.Lock()
			n.reqs[protocol.OpRun] = string(req)
			status := n.runStatus
			n.mu.Unlock()
			fmt.Fprintf(e.Stdout, "script output\n")
			return status
		}
		line, _ := readLine(e.Stdin)
		n.mu.Lock()
		reply := n.replies[op]
		n.mu.Unlock()
		io.WriteString(e.Stdout, reply)
		// Read the input that follows (a manifest, blobs) as the agent
		// does before it answers: a client still writing to a session
		// that ended would fail with EOF.
		input, _ := io.ReadAll(e.Stdin)
		n.mu.Lock()
		n.reqs[op] = line
		n.inputs[op] = input
		out := n.streams[op]
		n.mu.Unlock()
		io.WriteString(e.Stdout, out)
		return 0
	}
	fmt.Fprintf(e.Stderr, "unexpected command %s\n", e.Command)
	return 127
}

func readLine(r io.Reader) (string, error) {
	var b []byte
	buf := make([]byte, 1)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if buf[0] == '\n' {
				return string(b), nil
			}
			b = append(b, buf[0])
		}
		if err != nil {
			return string(b), err
		}
	}
}

// stream renders a canned agent answer.
func stream(t *testing.T, events []protocol.Event, result any, fail *protocol.Error) string {
	var b bytes.Buffer
	w := protocol.NewWriter(&b)
	for _, e := range events {
		w.Event(e)
	}
	w.Log("warning", "a warning from the agent")
	if fail != nil {
		w.Fail(fail)
	} else if err := w.OK(result); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func (n *agentNode) run(args ...string) (int, string, string) {
	n.h.t.Helper()
	var stdout, stderr bytes.Buffer
	env := map[string]string{remote.EnvAgentBinary: n.binary}
	code := Run(context.Background(), args, Env{
		Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr,
		Getenv: func(k string) string { return env[k] }, Home: n.h.home, EtcHosts: n.h.etcHosts,
		Providers: n.h.providers,
	})
	return code, stdout.String(), stderr.String()
}

func setupEvents() []protocol.Event {
	return []protocol.Event{
		{Step: "packages", Status: protocol.StepStart},
		{Step: "packages", Status: protocol.StepProgress, Detail: "installing caddy"},
		{Step: "packages", Status: protocol.StepDone, Changed: true, Detail: "installed caddy"},
		{Step: "users", Status: protocol.StepStart},
		{Step: "users", Status: protocol.StepSkipped, Detail: "www-mgr"},
	}
}

func TestCreateNodeSetupNode_ShowsStepsAndRecords(t *testing.T) {
	n := newAgentNode(t)
	n.streams[protocol.OpSetup] = stream(t, setupEvents(), protocol.SetupResult{Changed: []string{"packages"}, Node: protocol.NodeInfo{Version: "v9.9"}}, nil)
	code, _, stderr := n.run("create-node", "web1", "--setup-node")
	if code != ExitOK {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	for _, want := range []string{"packages: done (installed caddy)", "users: done (www-mgr; no change)", "warning: a warning from the agent", "check agent: done (" + version.Version + ", up to date)", "node web1 is set up (changed: packages)"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	var req protocol.Request
	if err := json.Unmarshal([]byte(n.reqs[protocol.OpSetup]), &req); err != nil {
		t.Fatalf("request %q: %v", n.reqs[protocol.OpSetup], err)
	}
	var args protocol.SetupArgs
	json.Unmarshal(req.Args, &args)
	if req.Protocol != version.Protocol || args.Name != "web1" || len(args.AuthorizedKeys) != 1 || args.AuthorizedKeys[0] != n.h.pubKey {
		t.Errorf("request = %+v, args %+v", req, args)
	}
	rec, _, _ := n.h.store().Node("web1")
	if rec.SetupAt == nil || rec.SetupVersion != "v9.9" {
		t.Errorf("record = %+v", rec)
	}
}

func TestSetupNode_FailureShowsTheTail(t *testing.T) {
	n := newAgentNode(t)
	if code, _, stderr := n.run("create-node", "web1"); code != ExitOK {
		t.Fatalf("create: %s", stderr)
	}
	events := []protocol.Event{{Step: "packages", Status: protocol.StepStart}, {Step: "packages", Status: protocol.StepFailed, Detail: "apt-get install failed"}}
	n.streams[protocol.OpSetup] = stream(t, events, nil, &protocol.Error{Code: protocol.CodeCommandFailed,
		Message: "packages: apt-get install failed (exit status 100): E: Unable to locate package caddy; fix the cause shown above and run setup-node again",
		Tail:    []string{"Reading package lists...", "E: Unable to locate package caddy"}})
	code, _, stderr := n.run("setup-node", "web1")
	if code != ExitFailed {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	for _, want := range []string{"packages: failed", "  | E: Unable to locate package caddy", "run setup-node again"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if rec, _, _ := n.h.store().Node("web1"); rec.SetupAt != nil {
		t.Error("a failed setup was recorded as done")
	}
}

func TestSetupNode_BadInput(t *testing.T) {
	n := newAgentNode(t)
	if code, _, stderr := n.run("setup-node", "ghost"); code != ExitUsage || !strings.Contains(stderr, "no node named ghost") {
		t.Errorf("unknown node: exit %d:\n%s", code, stderr)
	}
	if code, _, stderr := n.run("setup-node", "Bad_Name"); code != ExitUsage {
		t.Errorf("bad name: exit %d:\n%s", code, stderr)
	}
	if len(n.srv.Execs()) != 0 {
		t.Errorf("commands ran: %q", n.srv.Execs())
	}
}

func TestNodeInfo(t *testing.T) {
	n := newAgentNode(t)
	if code, _, stderr := n.run("create-node", "web1"); code != ExitOK {
		t.Fatalf("create: %s", stderr)
	}
	info := protocol.InfoResult{
		Agent: protocol.VersionInfo{Version: version.Version, Protocol: 1, Fingerprint: n.sum, GOOS: "linux", GOARCH: "amd64"},
		Node:  &protocol.NodeInfo{Version: "v1", Packages: map[string]string{"caddy": "2.6.2-5"}, OS: protocol.OSInfo{PrettyName: "Debian GNU/Linux 12 (bookworm)"}},
	}
	n.streams[protocol.OpInfo] = stream(t, nil, info, nil)
	code, stdout, stderr := n.run("node-info", "web1", "--json")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got protocol.InfoResult
	if err := json.Unmarshal([]byte(stdout), &got); err != nil || got.Node == nil || got.Node.Packages["caddy"] != "2.6.2-5" {
		t.Errorf("--json = %s (%v)", stdout, err)
	}
	code, stdout, _ = n.run("node-info", "web1")
	if code != ExitOK || !strings.Contains(stdout, "caddy") || !strings.Contains(stdout, "Debian GNU/Linux 12") {
		t.Errorf("text = %s", stdout)
	}
}

func TestNodeAgentCommand(t *testing.T) {
	h := newHarness(t)
	code, stdout, stderr := h.run("node", "version")
	var v protocol.VersionInfo
	if code != ExitOK || json.Unmarshal([]byte(stdout), &v) != nil || v.Protocol != version.Protocol || len(v.Fingerprint) != 64 {
		t.Errorf("node version: exit %d, %q %q", code, stdout, stderr)
	}
	if code, _, stderr := h.run("node"); code != ExitUsage || !strings.Contains(stderr, "install-agent") {
		t.Errorf("node without op: exit %d: %s", code, stderr)
	}
	code, stdout, _ = h.run("node", "nosuchop")
	if code != ExitUsage || !strings.Contains(stdout, `"code":"unsupported"`) {
		t.Errorf("unknown op: exit %d: %s", code, stdout)
	}
	_, help, _ := h.run("--help")
	if strings.Contains(help, "Run an agent operation") || !strings.Contains(help, "setup-node") || !strings.Contains(help, "node-info") {
		t.Errorf("--help:\n%s", help)
	}
}

func TestSetupNode_SSHFailuresAreClear(t *testing.T) {
	t.Run("wrong key", func(t *testing.T) {
		n := newAgentNode(t)
		if code, _, stderr := n.run("create-node", "web1"); code != ExitOK {
			t.Fatalf("create: %s", stderr)
		}
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		block, _ := ssh.MarshalPrivateKey(priv, "")
		os.WriteFile(filepath.Join(n.h.home, ".ssh", "id_ed25519"), pem.EncodeToMemory(block), 0o600)
		code, _, stderr := n.run("setup-node", "web1")
		if code != ExitFailed || !strings.Contains(stderr, "does not accept your key") {
			t.Errorf("exit %d:\n%s", code, stderr)
		}
	})
	t.Run("host key mismatch", func(t *testing.T) {
		n := newAgentNode(t)
		if code, _, stderr := n.run("create-node", "web1"); code != ExitOK {
			t.Fatalf("create: %s", stderr)
		}
		// The node was replaced by another server at the same address.
		other := sshxtest.NewSigner(t)
		otherLine := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(other.PublicKey())))
		st := n.h.store()
		rec, _, _ := st.Node("web1")
		kh := sshx.KnownHosts{Path: st.KnownHostsPath()}
		kh.Forget(rec.SSHAddr())
		kh.Pin(rec.SSHAddr(), otherLine)
		rec.HostKey = otherLine
		st.PutNode(rec)
		before := len(n.srv.Execs())
		code, _, stderr := n.run("setup-node", "web1")
		if code != ExitFailed || !strings.Contains(strings.ToLower(stderr), "host key") {
			t.Errorf("exit %d:\n%s", code, stderr)
		}
		if len(n.srv.Execs()) != before {
			t.Error("commands ran on a server with the wrong host key")
		}
	})
}
