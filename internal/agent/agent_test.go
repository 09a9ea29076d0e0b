package agent

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/toppcloud/toppcloud/internal/agent/agenttest"
	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/host/hosttest"
	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/filestat"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/version"
)

func newTestAgent(t *testing.T) *Agent {
	h := hosttest.New(t, nil)
	return &Agent{Host: h, Layout: layout.Default(), Fingerprint: func() (string, error) { return agenttest.FP, nil }}
}

type echoArgs struct {
	Word string `json:"word"`
}

func echoOp() Op {
	return Handle("echo", "test op", func(ctx context.Context, c *Call, a *echoArgs) (map[string]string, error) {
		st := c.Out.Start("echo")
		c.Logf("heard %s", a.Word)
		st.Done(false, "")
		if a.Word == "panic" {
			panic("boom")
		}
		if a.Word == "fail" {
			return nil, &host.CommandError{Argv: []string{"false"}, Status: 1, Tail: []string{"it went wrong"}}
		}
		return map[string]string{"word": a.Word}, nil
	})
}

func TestMain_Dispatch(t *testing.T) {
	a := newTestAgent(t)
	a.Ops = []Op{echoOp()}
	// raw is s with the client's protocol version for P.
	raw := func(s string) []byte {
		return []byte(strings.ReplaceAll(s, `"protocol":P`, fmt.Sprintf(`"protocol":%d`, version.Protocol)))
	}
	tests := []struct {
		name     string
		op       string
		in       []byte
		wantCode int
		wantErr  string // result error code; "" for success
		wantMsg  string
	}{
		{"ok", "echo", raw(`{"protocol":P,"op":"echo","args":{"word":"hi"}}` + "\n"), 0, "", ""},
		{"unknown op", "frobnicate", nil, protocol.ExitUsage, protocol.CodeUnsupported, "no operation \"frobnicate\""},
		{"not json", "echo", raw("hello\n"), protocol.ExitFailed, protocol.CodeBadRequest, "decode request"},
		{"empty stdin", "echo", nil, protocol.ExitFailed, protocol.CodeBadRequest, "read request"},
		{"wrong op", "echo", raw(`{"protocol":P,"op":"setup"}` + "\n"), protocol.ExitFailed, protocol.CodeBadRequest, `not "echo"`},
		{"unknown field", "echo", raw(`{"protocol":P,"op":"echo","args":{"word":"x","extra":1}}` + "\n"), protocol.ExitFailed, protocol.CodeBadRequest, "unknown field"},
		{"protocol mismatch", "echo", raw(fmt.Sprintf(`{"protocol":%d,"op":"echo","args":{"word":"x"}}`, version.Protocol+1) + "\n"), protocol.ExitFailed, protocol.CodeProtocol, fmt.Sprintf("speaks protocol %d", version.Protocol+1)},
		{"command failure", "echo", raw(`{"protocol":P,"op":"echo","args":{"word":"fail"}}` + "\n"), protocol.ExitFailed, protocol.CodeCommandFailed, "it went wrong"},
		{"panic", "echo", raw(`{"protocol":P,"op":"echo","args":{"word":"panic"}}` + "\n"), protocol.ExitFailed, protocol.CodeInternal, "panicked: boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := a.Main(context.Background(), []string{tt.op}, bytes.NewReader(tt.in), &out, &errOut)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d (stderr %s)", code, tt.wantCode, errOut.String())
			}
			var logs []protocol.Log
			res, err := protocol.Read(&out, protocol.Handler{Log: func(l protocol.Log) { logs = append(logs, l) }})
			if err != nil {
				t.Fatalf("read stream: %v", err)
			}
			if tt.wantErr == "" {
				if !res.OK || string(res.Data) != `{"word":"hi"}` || len(logs) != 1 || logs[0].Text != "heard hi" {
					t.Errorf("result %+v, logs %+v", res, logs)
				}
				return
			}
			if res.OK || res.Error.Code != tt.wantErr || !strings.Contains(res.Error.Message, tt.wantMsg) {
				t.Errorf("result error = %+v, want code %s containing %q", res.Error, tt.wantErr, tt.wantMsg)
			}
		})
	}
}

func TestMain_VersionAndUsage(t *testing.T) {
	a := newTestAgent(t)
	var out, errOut bytes.Buffer
	if code := a.Main(context.Background(), []string{"version"}, nil, &out, &errOut); code != 0 {
		t.Fatalf("version: exit %d: %s", code, errOut.String())
	}
	var v protocol.VersionInfo
	if err := json.Unmarshal(out.Bytes(), &v); err != nil || v.Fingerprint != agenttest.FP || v.Protocol != version.Protocol || v.Version != version.Version {
		t.Errorf("version = %s (%v)", out.String(), err)
	}
	for _, args := range [][]string{nil, {"--help"}, {"setup", "extra"}} {
		out.Reset()
		errOut.Reset()
		if code := a.Main(context.Background(), args, nil, &out, &errOut); code != protocol.ExitUsage || !strings.Contains(errOut.String(), "install-agent") || out.Len() != 0 {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out.String(), errOut.String())
		}
	}
}

func TestMain_SavesFingerprintAsRootOnly(t *testing.T) {
	for _, tc := range []struct {
		euid, want int
	}{{0, 2}, {1000, 0}} {
		a := newTestAgent(t)
		a.Ops = []Op{echoOp()}
		saved := 0
		a.SaveFingerprint = func() error { saved++; return nil }
		a.geteuid = func() int { return tc.euid }
		var out, errOut bytes.Buffer
		a.Main(context.Background(), []string{"version"}, nil, &out, &errOut)
		agenttest.Run(t, a, "echo", agenttest.Request("echo"), echoArgs{Word: "hi"}, nil)
		if saved != tc.want {
			t.Errorf("euid %d: SaveFingerprint called %d times, want %d", tc.euid, saved, tc.want)
		}
	}
}

func TestMain_RefusesNonRoot(t *testing.T) {
	a := newTestAgent(t)
	a.RequireRoot = true
	a.geteuid = func() int { return 1000 }
	r := agenttest.Run(t, a, protocol.OpInfo, agenttest.Request(protocol.OpInfo), nil, nil)
	if r.Res.OK || !strings.Contains(r.Res.Error.Message, "must run as root") {
		t.Errorf("result = %+v", r.Res)
	}
}

func binaryFor(t *testing.T, content string) (protocol.InstallAgentArgs, []byte) {
	sum := sha256.Sum256([]byte(content))
	return protocol.InstallAgentArgs{Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:])}, []byte(content)
}

func TestInstallAgent(t *testing.T) {
	a := newTestAgent(t)
	h := a.Host
	path := a.Layout.Agent
	hosttest.WriteFile(t, h.Root, path, "old agent")

	// Any protocol version may install: that is how an old agent gets
	// replaced by a new client.
	old := &protocol.Request{Protocol: version.Protocol + 7, Op: protocol.OpInstallAgent}
	args, raw := binaryFor(t, "new agent binary\x00\x01")
	r := agenttest.Run(t, a, protocol.OpInstallAgent, old, args, raw)
	if !r.Res.OK {
		t.Fatalf("raw install: %+v", r.Res.Error)
	}
	var res protocol.InstallAgentResult
	json.Unmarshal(r.Res.Data, &res)
	if !res.Changed || res.Fingerprint != args.SHA256 {
		t.Errorf("result = %+v", res)
	}
	if b, _ := h.ReadFile(path); string(b) != string(raw) {
		t.Errorf("installed %q", b)
	}
	if fi, _ := os.Stat(h.Path(path)); fi.Mode().Perm() != 0o755 {
		t.Errorf("mode %v", fi.Mode())
	}
	// The checked sum is recorded beside the binary: the new agent's
	// fingerprint needs no hashing.
	sidecarSays := func() string {
		t.Helper()
		sum, hashed, err := filestat.SumFile(h.Path(path), filestat.SidecarPath(h.Path(path)), false)
		if err != nil || hashed {
			t.Errorf("sidecar of the installed agent not used: hashed %v, %v", hashed, err)
		}
		return sum
	}
	if got := sidecarSays(); got != args.SHA256 {
		t.Errorf("sidecar says %s, want %s", got, args.SHA256)
	}

	// The same binary again: nothing to do.
	r = agenttest.Run(t, a, protocol.OpInstallAgent, agenttest.Request(protocol.OpInstallAgent), args, raw)
	json.Unmarshal(r.Res.Data, &res)
	if !r.Res.OK || res.Changed {
		t.Errorf("same binary: %+v %+v", r.Res, res)
	}

	// gzip-encoded.
	args, raw = binaryFor(t, strings.Repeat("compressible agent ", 1000))
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(raw)
	zw.Close()
	args.Encoding = "gzip"
	if r = agenttest.Run(t, a, protocol.OpInstallAgent, agenttest.Request(protocol.OpInstallAgent), args, z.Bytes()); !r.Res.OK {
		t.Fatalf("gzip install: %+v", r.Res.Error)
	}
	if b, _ := h.ReadFile(path); string(b) != string(raw) {
		t.Errorf("gzip install wrote %d bytes", len(b))
	}
	if got := sidecarSays(); got != args.SHA256 {
		t.Errorf("after a second install the sidecar says %s, want %s", got, args.SHA256)
	}

	// zstd-encoded, in two frames, as the client sends it.
	args, raw = binaryFor(t, strings.Repeat("zstd-compressed agent ", 1000))
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	frames := enc.EncodeAll(raw[len(raw)/3:], enc.EncodeAll(raw[:len(raw)/3], nil))
	args.Encoding = "zstd"
	if r = agenttest.Run(t, a, protocol.OpInstallAgent, agenttest.Request(protocol.OpInstallAgent), args, frames); !r.Res.OK {
		t.Fatalf("zstd install: %+v", r.Res.Error)
	}
	if b, _ := h.ReadFile(path); string(b) != string(raw) {
		t.Errorf("zstd install wrote %d bytes", len(b))
	}
	if got := sidecarSays(); got != args.SHA256 {
		t.Errorf("after the zstd install the sidecar says %s, want %s", got, args.SHA256)
	}

	// Bad uploads leave the installed agent alone and no temp files.
	bad := []struct {
		name string
		args protocol.InstallAgentArgs
		data []byte
		want string
	}{
		{"checksum", protocol.InstallAgentArgs{Size: 3, SHA256: strings.Repeat("0", 64)}, []byte("abc"), "checksum mismatch"},
		{"short", func() protocol.InstallAgentArgs { a, _ := binaryFor(t, "abcdef"); return a }(), []byte("abc"), "received 3 bytes, expected 6"},
		{"long", func() protocol.InstallAgentArgs { a, _ := binaryFor(t, "abc"); return a }(), []byte("abcdef"), "received 4 bytes"},
		{"no size", protocol.InstallAgentArgs{SHA256: strings.Repeat("0", 64)}, nil, "size and sha256"},
		{"encoding", func() protocol.InstallAgentArgs { a, _ := binaryFor(t, "abc"); a.Encoding = "brotli"; return a }(), []byte("abc"), "unknown encoding"},
		{"not zstd", func() protocol.InstallAgentArgs { a, _ := binaryFor(t, "abc"); a.Encoding = "zstd"; return a }(), []byte("abc"), "receive"},
	}
	for _, b := range bad {
		r := agenttest.Run(t, a, protocol.OpInstallAgent, agenttest.Request(protocol.OpInstallAgent), b.args, b.data)
		if r.Res.OK || !strings.Contains(r.Res.Error.Message, b.want) {
			t.Errorf("%s: result %+v", b.name, r.Res.Error)
		}
	}
	if b, _ := h.ReadFile(path); string(b) != string(raw) {
		t.Errorf("a failed upload changed the agent")
	}
	entries, _ := os.ReadDir(h.Path("/usr/local/bin"))
	if len(entries) != 2 || entries[0].Name() != ".toppcloud.sha256" || entries[1].Name() != "toppcloud" {
		t.Errorf("files in /usr/local/bin: %v (want the agent and its sidecar)", entries)
	}
}

func TestInfo(t *testing.T) {
	a := newTestAgent(t)
	r := agenttest.Run(t, a, protocol.OpInfo, agenttest.Request(protocol.OpInfo), nil, nil)
	var info protocol.InfoResult
	if !r.Res.OK || json.Unmarshal(r.Res.Data, &info) != nil || info.Node != nil || info.Agent.Fingerprint != agenttest.FP {
		t.Fatalf("before setup: %+v %s", r.Res, r.Res.Data)
	}
	hosttest.WriteFile(t, a.Host.Root, a.Layout.NodeInfo, `{"format":1,"version":"v9","name":"web1"}`)
	r = agenttest.Run(t, a, protocol.OpInfo, agenttest.Request(protocol.OpInfo), nil, nil)
	if !r.Res.OK || json.Unmarshal(r.Res.Data, &info) != nil || info.Node == nil || info.Node.Name != "web1" {
		t.Fatalf("after setup: %+v %s", r.Res, r.Res.Data)
	}
}

func TestLocks_SecondHolderWaitsThenFails(t *testing.T) {
	a := newTestAgent(t)
	l := a.Locks()
	release, err := l.Acquire(context.Background(), "setup", "setup-node by alice", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.Acquire(context.Background(), "setup", "setup-node by bob", 300*time.Millisecond, nil)
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeLocked || !strings.Contains(pe.Message, "setup-node by alice (pid ") {
		t.Fatalf("second acquire: %v", err)
	}
	// Another lock name is independent; the released one is free again.
	r2, err := l.Acquire(context.Background(), "app-blog", "update", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	r2()
	release()
	r3, err := l.Acquire(context.Background(), "setup", "setup-node by bob", 0, nil)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	r3()
	if _, err := l.Acquire(context.Background(), "../x", "", 0, nil); err == nil {
		t.Error("a lock name with a slash was accepted")
	}
}

// TestLocks_Shared: uploads share a lock; clean-node takes it alone, so it
// never removes what an upload is writing.
func TestLocks_Shared(t *testing.T) {
	a := newTestAgent(t)
	l := a.Locks()
	ctx := context.Background()
	s1, err := l.AcquireShared(ctx, "uploads", 0)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := l.AcquireShared(ctx, "uploads", 0)
	if err != nil {
		t.Fatalf("a second shared holder: %v", err)
	}
	var pe *protocol.Error
	if _, err := l.Acquire(ctx, "uploads", "clean-node", 100*time.Millisecond, nil); !errors.As(err, &pe) || pe.Code != protocol.CodeLocked {
		t.Fatalf("exclusive while shared: %v", err)
	}
	s1()
	s2()
	x, err := l.Acquire(ctx, "uploads", "clean-node", 0, nil)
	if err != nil {
		t.Fatalf("exclusive once free: %v", err)
	}
	if _, err := l.AcquireShared(ctx, "uploads", 100*time.Millisecond); !errors.As(err, &pe) || !strings.Contains(pe.Message, "clean-node") {
		t.Fatalf("shared while exclusive: %v", err)
	}
	x()
}

func TestToProtocolError(t *testing.T) {
	ctx := context.Background()
	enospc := fmt.Errorf("write /etc/toppcloud/node.json: %w", &os.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC})
	if pe := ToProtocolError(ctx, enospc); pe.Code != protocol.CodeDiskFull || !strings.Contains(pe.Message, "disk is full") {
		t.Errorf("ENOSPC -> %+v", pe)
	}
	cmd := &host.CommandError{Argv: []string{"apt-get", "install"}, Status: 100, Tail: []string{"E: broken"}}
	if pe := ToProtocolError(ctx, fmt.Errorf("packages: %w", cmd)); pe.Code != protocol.CodeCommandFailed || len(pe.Tail) != 1 {
		t.Errorf("command -> %+v", pe)
	}
	own := &protocol.Error{Code: protocol.CodeLocked, Message: "locked"}
	if pe := ToProtocolError(ctx, fmt.Errorf("x: %w", own)); pe != own {
		t.Errorf("protocol error not passed through: %+v", pe)
	}
}
