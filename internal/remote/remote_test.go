package remote

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/toppcloud/toppcloud/internal/agent"
	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/sshx"
	"github.com/toppcloud/toppcloud/internal/sshx/sshxtest"
	"github.com/toppcloud/toppcloud/internal/version"
)

// fakeNode is an SSH server that behaves like a node: `AGENT node
// version` reports the checksum of whatever file is at AGENT, `AGENT node
// OP` runs a real agent in-process on the real file system, sudo is
// allowed for the deploy user only in front of the agent, and anything
// else (the upload script, uname) runs in a real shell.
type fakeNode struct {
	t         *testing.T
	srv       *sshxtest.Server
	signer    ssh.Signer
	agentPath string
	goarch    string // what `node version` reports

	mu       sync.Mutex
	failWith string // stderr of a failing upload script
}

type echoArgs struct {
	Word string `json:"word"`
}

func echoOp() agent.Op {
	return agent.Handle("echo", "test", func(ctx context.Context, c *agent.Call, a *echoArgs) (map[string]string, error) {
		st := c.Out.Start("say")
		st.Progress("saying " + a.Word)
		c.Warnf("careful")
		st.Done(true, "said")
		if a.Word == "fail" {
			return nil, &host.CommandError{Argv: []string{"apt-get"}, Status: 100, Tail: []string{"E: no"}}
		}
		return map[string]string{"echo": a.Word}, nil
	})
}

func newFakeNode(t *testing.T) *fakeNode {
	t.Helper()
	n := &fakeNode{t: t, signer: sshxtest.NewSigner(t), goarch: runtime.GOARCH}
	n.agentPath = filepath.Join(t.TempDir(), "bin", "toppcloud")
	n.srv = sshxtest.NewServer(t, n.handle, n.signer.PublicKey())
	return n
}

func fileSum(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:]), nil
}

func (n *fakeNode) handle(e *sshxtest.Exec) int {
	cmd := e.Command
	if rest, ok := strings.CutPrefix(cmd, "sudo -n "); ok {
		if e.User == protocol.DeployUser && !strings.HasPrefix(rest, n.agentPath+" node ") {
			fmt.Fprintln(e.Stderr, "sudo: a password is required")
			return 1
		}
		cmd = rest
	}
	if op, ok := strings.CutPrefix(cmd, n.agentPath+" node "); ok {
		if _, err := os.Stat(n.agentPath); err != nil {
			fmt.Fprintf(e.Stderr, "sh: 1: %s: not found\n", n.agentPath)
			return 127
		}
		if op == protocol.OpVersion {
			sum, _ := fileSum(n.agentPath)
			b, _ := json.Marshal(protocol.VersionInfo{Version: version.Version, Protocol: version.Protocol, Fingerprint: sum, GOOS: "linux", GOARCH: n.goarch})
			fmt.Fprintf(e.Stdout, "%s\n", b)
			return 0
		}
		l := layout.Default()
		l.Agent = n.agentPath
		a := &agent.Agent{Host: &host.Host{Root: "/", Runner: host.Exec{}}, Layout: l,
			Fingerprint: func() (string, error) { return fileSum(n.agentPath) }, Ops: []agent.Op{echoOp()}}
		if op == "crash" {
			io.WriteString(e.Stdout, "panic: runtime error\n")
			return 2
		}
		return a.Main(e.Ctx, []string{op}, e.Stdin, e.Stdout, e.Stderr)
	}
	if strings.HasPrefix(cmd, "sh -c ") {
		n.mu.Lock()
		fail := n.failWith
		n.mu.Unlock()
		if fail != "" {
			io.Copy(io.Discard, e.Stdin)
			fmt.Fprintln(e.Stderr, fail)
			return 1
		}
	}
	e.Command = cmd
	return sshxtest.ShellHandler(e)
}

func (n *fakeNode) dial(t *testing.T, user string) *sshx.Client {
	t.Helper()
	cfg := n.srv.Config(n.signer)
	cfg.User = user
	c, err := sshx.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// testBinary is a copy of the test executable: a real ELF file of this
// machine's architecture.
func testBinary(t *testing.T) *Binary {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "toppcloud-linux")
	if err := os.WriteFile(p, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return LocalBinary(p)
}

func (n *fakeNode) opts(b *Binary) Options {
	return Options{Binary: b, AgentPath: n.agentPath, LocalUser: "alice@laptop"}
}

func countPrefix(execs []string, prefix string) int {
	c := 0
	for _, e := range execs {
		if strings.HasPrefix(e, prefix) {
			c++
		}
	}
	return c
}

func TestOpen_InstallsMissingAgentThenReusesIt(t *testing.T) {
	n := newFakeNode(t)
	b := testBinary(t)
	var progress []string
	o := n.opts(b)
	o.Progress = func(s string) { progress = append(progress, s) }
	node, err := Open(context.Background(), n.dial(t, "root"), o)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := b.SHA256()
	if !node.Uploaded() || node.Agent().Fingerprint != want {
		t.Errorf("uploaded %v, agent %+v", node.Uploaded(), node.Agent())
	}
	if got, _ := fileSum(n.agentPath); got != want {
		t.Error("the installed agent differs from the binary")
	}
	if fi, _ := os.Stat(n.agentPath); fi.Mode().Perm() != 0o755 {
		t.Errorf("mode %v", fi.Mode())
	}
	if !strings.Contains(strings.Join(progress, "|"), "installing the agent") {
		t.Errorf("progress = %q", progress)
	}
	if c := countPrefix(n.srv.Execs(), "sh -c "); c != 1 {
		t.Errorf("%d uploads: %q", c, n.srv.Execs())
	}
	entries, _ := os.ReadDir(filepath.Dir(n.agentPath))
	if len(entries) != 1 {
		t.Errorf("files next to the agent: %v", entries)
	}

	// Connecting again only asks for the version.
	before := len(n.srv.Execs())
	node, err = Open(context.Background(), n.dial(t, "root"), o)
	if err != nil || node.Uploaded() {
		t.Fatalf("second open: uploaded %v, %v", node != nil && node.Uploaded(), err)
	}
	if execs := n.srv.Execs()[before:]; len(execs) != 1 || !strings.HasSuffix(execs[0], "node version") {
		t.Errorf("second open ran %q", execs)
	}
}

func TestOpen_ReplacesADifferentAgent(t *testing.T) {
	n := newFakeNode(t)
	b := testBinary(t)
	os.MkdirAll(filepath.Dir(n.agentPath), 0o755)
	os.WriteFile(n.agentPath, []byte("an older agent"), 0o755)
	node, err := Open(context.Background(), n.dial(t, "root"), n.opts(b))
	if err != nil || !node.Uploaded() {
		t.Fatalf("open: %v", err)
	}
	want, _ := b.SHA256()
	if got, _ := fileSum(n.agentPath); got != want {
		t.Error("not replaced")
	}
}

func TestOpen_SudoUserUploadsThroughSudo(t *testing.T) {
	n := newFakeNode(t)
	if _, err := Open(context.Background(), n.dial(t, "admin"), n.opts(testBinary(t))); err != nil {
		t.Fatal(err)
	}
	if c := countPrefix(n.srv.Execs(), "sudo -n sh -c "); c != 1 {
		t.Errorf("execs: %q", n.srv.Execs())
	}
}

func TestOpen_DeployUserInstallsThroughTheAgent(t *testing.T) {
	n := newFakeNode(t)
	b := testBinary(t)
	// Before setup-node there is no agent, and the deploy user cannot
	// install one.
	_, err := Open(context.Background(), n.dial(t, protocol.DeployUser), n.opts(b))
	if !errors.Is(err, ErrNoAgent) || !strings.Contains(err.Error(), "setup-node") {
		t.Fatalf("no agent: %v", err)
	}
	os.MkdirAll(filepath.Dir(n.agentPath), 0o755)
	os.WriteFile(n.agentPath, []byte("an older agent"), 0o755)
	node, err := Open(context.Background(), n.dial(t, protocol.DeployUser), n.opts(b))
	if err != nil || !node.Uploaded() {
		t.Fatalf("open: %v", err)
	}
	if c := countPrefix(n.srv.Execs(), "sudo -n "+n.agentPath+" node install-agent"); c != 1 {
		t.Errorf("execs: %q", n.srv.Execs())
	}
	if c := countPrefix(n.srv.Execs(), "sh -c") + countPrefix(n.srv.Execs(), "sudo -n sh"); c != 0 {
		t.Errorf("the deploy user ran a shell: %q", n.srv.Execs())
	}
	want, _ := b.SHA256()
	if got, _ := fileSum(n.agentPath); got != want {
		t.Error("not replaced")
	}
}

func TestOpen_Refusals(t *testing.T) {
	tests := []struct {
		name  string
		setup func(n *fakeNode, o *Options)
		want  string
	}{
		{"other architecture", func(n *fakeNode, o *Options) {
			n.goarch = "riscv64"
			os.MkdirAll(filepath.Dir(n.agentPath), 0o755)
			os.WriteFile(n.agentPath, []byte("old"), 0o755)
		}, "linux/riscv64 but the agent binary"},
		{"not an executable", func(n *fakeNode, o *Options) {
			p := filepath.Join(n.t.TempDir(), "notes.txt")
			os.WriteFile(p, []byte("hello"), 0o644)
			o.Binary = LocalBinary(p)
		}, "is not a Linux executable"},
		{"no install", func(n *fakeNode, o *Options) { o.NoInstall = true }, "no toppcloud agent"},
		{"disk full", func(n *fakeNode, o *Options) {
			n.failWith = "gzip: stdout: No space left on device"
		}, "disk is full"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newFakeNode(t)
			o := n.opts(testBinary(t))
			tt.setup(n, &o)
			_, err := Open(context.Background(), n.dial(t, "root"), o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if b, err := os.ReadFile(n.agentPath); err == nil && len(b) > 10 {
				t.Error("an agent was installed")
			}
		})
	}
}

func TestCall_StreamsAndReturns(t *testing.T) {
	n := newFakeNode(t)
	node, err := Open(context.Background(), n.dial(t, "root"), n.opts(testBinary(t)))
	if err != nil {
		t.Fatal(err)
	}
	var events []protocol.Event
	var logs []protocol.Log
	o := CallOptions{Event: func(e protocol.Event) { events = append(events, e) }, Log: func(l protocol.Log) { logs = append(logs, l) }}
	var res map[string]string
	if err := node.Call(context.Background(), "echo", echoArgs{Word: "hi"}, &res, o); err != nil {
		t.Fatal(err)
	}
	if res["echo"] != "hi" {
		t.Errorf("result = %v", res)
	}
	if len(events) != 3 || events[1].Detail != "saying hi" || events[2].Status != protocol.StepDone || !events[2].Changed {
		t.Errorf("events = %+v", events)
	}
	if len(logs) != 1 || logs[0].Stream != "warning" {
		t.Errorf("logs = %+v", logs)
	}

	err = node.Call(context.Background(), "echo", echoArgs{Word: "fail"}, &res, CallOptions{})
	var oe *OpError
	var pe *protocol.Error
	if !errors.As(err, &oe) || !errors.As(err, &pe) || pe.Code != protocol.CodeCommandFailed || len(pe.Tail) != 1 {
		t.Errorf("failing op: %v", err)
	}

	err = node.Call(context.Background(), "crash", nil, nil, CallOptions{})
	if err == nil || !strings.Contains(err.Error(), "unreadable line") {
		t.Errorf("crashing agent: %v", err)
	}
	err = node.Call(context.Background(), "nosuchop", nil, nil, CallOptions{})
	if !errors.As(err, &pe) || pe.Code != protocol.CodeUnsupported {
		t.Errorf("unknown op: %v", err)
	}
}

func TestOpen_Uncompressed(t *testing.T) {
	for _, user := range []string{"root", protocol.DeployUser} {
		t.Run(user, func(t *testing.T) {
			n := newFakeNode(t)
			os.MkdirAll(filepath.Dir(n.agentPath), 0o755)
			os.WriteFile(n.agentPath, []byte("an older agent"), 0o755)
			b := testBinary(t)
			o := n.opts(b)
			o.NoCompress = true
			if _, err := Open(context.Background(), n.dial(t, user), o); err != nil {
				t.Fatal(err)
			}
			want, _ := b.SHA256()
			if got, _ := fileSum(n.agentPath); got != want {
				t.Error("not installed")
			}
		})
	}
}

// TestCallCurrent_ChecksTheAgentOnlyWhenRefused: a Deferred node sends
// the operation at once naming the client's agent; a missing or other
// agent makes it check, install and run the operation again, a current
// one runs it without a version check.
func TestCallCurrent_ChecksTheAgentOnlyWhenRefused(t *testing.T) {
	n := newFakeNode(t)
	b := testBinary(t)
	want, _ := b.SHA256()
	ctx := context.Background()
	call := func(name string) (*Node, []string, int) {
		t.Helper()
		before := len(n.srv.Execs())
		checked := 0
		o := n.opts(b)
		o.Checked = func(_ *Node, err error) {
			checked++
			if err != nil {
				t.Errorf("%s: check: %v", name, err)
			}
		}
		node := Deferred(n.dial(t, "root"), o)
		var res map[string]string
		if err := node.CallCurrent(ctx, "echo", echoArgs{Word: "hi"}, &res, CallOptions{}); err != nil || res["echo"] != "hi" {
			t.Fatalf("%s: %v, %v", name, res, err)
		}
		if node.Agent().Fingerprint != want {
			t.Errorf("%s: agent %+v", name, node.Agent())
		}
		return node, n.srv.Execs()[before:], checked
	}

	node, execs, checked := call("no agent")
	if !node.Uploaded() || checked != 1 || countPrefix(execs, n.agentPath+" node echo") != 2 {
		t.Errorf("no agent: uploaded %v, checked %d, ran %q", node.Uploaded(), checked, execs)
	}
	node, execs, checked = call("current agent")
	if node.Uploaded() || checked != 0 || len(execs) != 1 {
		t.Errorf("current agent: uploaded %v, checked %d, ran %q", node.Uploaded(), checked, execs)
	}
	// An agent that runs but is another build refuses before acting.
	err := Deferred(n.dial(t, "root"), n.opts(b)).call(ctx, "echo", strings.Repeat("e", 64), echoArgs{Word: "x"}, nil, CallOptions{})
	var oe *OpError
	if !errors.As(err, &oe) || oe.Err.Code != protocol.CodeAgentDiffers || !agentRefused(err) {
		t.Errorf("another agent's fingerprint: %v", err)
	}
	os.WriteFile(n.agentPath, []byte("an older agent"), 0o755)
	node, execs, checked = call("other agent")
	if !node.Uploaded() || checked != 1 || countPrefix(execs, n.agentPath+" node echo") != 2 {
		t.Errorf("other agent: uploaded %v, checked %d, ran %q", node.Uploaded(), checked, execs)
	}
}
