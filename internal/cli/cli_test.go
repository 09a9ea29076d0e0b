package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/provider"
	"github.com/toppcloud/toppcloud/internal/provider/providertest"
	"github.com/toppcloud/toppcloud/internal/sshx/sshxtest"
	"github.com/toppcloud/toppcloud/internal/state"
)

// memInfo is the "memtest" provider type: every section of that type
// gets the test's own in-memory driver. Tests hand it to Run through
// Env.Providers, so nothing is registered in the binary's registry.
func memInfo(mem *providertest.Memory) provider.Info {
	return provider.Info{
		Name:         "memtest",
		Description:  "in-memory driver for the cli tests",
		DefaultImage: "name debian-12",
		DefaultSize:  "ram 512",
		New:          func(provider.Env) (provider.Driver, error) { return mem, nil },
	}
}

type harness struct {
	t        *testing.T
	home     string
	etcHosts string
	mem      *providertest.Memory
	srv      *sshxtest.Server
	pubKey   string
	// providers are the provider types the CLI sees: memtest.
	providers *provider.Registry
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, home: t.TempDir()}
	signer, line := sshxtest.WriteKey(t, filepath.Join(h.home, ".ssh", "id_ed25519"), "test")
	h.pubKey = strings.TrimSuffix(line, " test")
	h.srv = sshxtest.NewServer(t, func(e *sshxtest.Exec) int { return 0 }, signer.PublicKey())
	host, portStr, _ := net.SplitHostPort(h.srv.Addr)
	port, _ := strconv.Atoi(portStr)
	h.mem = providertest.NewMemory()
	h.mem.Address, h.mem.SSHPort, h.mem.PendingPolls = host, port, 1
	h.providers = provider.NewRegistry(memInfo(h.mem))
	h.etcHosts = filepath.Join(h.home, "hosts")
	if err := os.WriteFile(h.etcHosts, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) writeConfig(extra string) {
	h.t.Helper()
	conf := fmt.Sprintf("[provider:default]\nprovider = memtest\nroot_authorized_keys =\n    %s\n%s", h.pubKey, extra)
	if err := os.WriteFile(filepath.Join(h.home, ".toppcloud.conf"), []byte(conf), 0o600); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) run(args ...string) (int, string, string) {
	h.t.Helper()
	var stdout, stderr bytes.Buffer
	code := Run(context.Background(), args, Env{
		Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr,
		Getenv: func(string) string { return "" }, Home: h.home, EtcHosts: h.etcHosts,
		Providers: h.providers,
	})
	return code, stdout.String(), stderr.String()
}

func (h *harness) store() *state.Store {
	st, err := state.Open(filepath.Join(h.home, ".toppcloud"))
	if err != nil {
		h.t.Fatal(err)
	}
	return st
}

func TestRun_ExitCodes(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		args []string
		want int
		msg  string
	}{
		{[]string{"version"}, ExitOK, ""},
		{[]string{"--help"}, ExitOK, ""},
		{[]string{"no-such-command"}, ExitUsage, "unknown command"},
		{[]string{"version", "--no-such-flag"}, ExitUsage, "unknown flag"},
		{[]string{"create-node"}, ExitUsage, "accepts 1 arg"},
		{[]string{"-q", "-v", "version"}, ExitUsage, "cannot be used together"},
		// No config file and no terminal: say how to write one.
		{[]string{"list-nodes"}, ExitUsage, "toppcloud init-config --provider TYPE"},
		{[]string{"create-node", "Bad_Name"}, ExitUsage, "invalid hostname"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, stderr := h.run(tt.args...)
			if code != tt.want {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tt.want, stderr)
			}
			if tt.msg != "" && !strings.Contains(stderr, tt.msg) {
				t.Errorf("stderr lacks %q:\n%s", tt.msg, stderr)
			}
		})
	}
}

func TestConfigErrors_ExitUsage(t *testing.T) {
	tests := []struct {
		name, conf, args, want string
	}{
		{"unknown type", "[provider:default]\nprovider = nosuch\n", "list-nodes", "memtest"},
		{"missing section", "[provider:other]\nprovider = memtest\n", "list-nodes", "other"},
		{"malformed", "[provider:default\nprovider = memtest\n", "list-nodes", ".toppcloud.conf:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			if err := os.WriteFile(filepath.Join(h.home, ".toppcloud.conf"), []byte(tt.conf), 0o600); err != nil {
				t.Fatal(err)
			}
			code, _, stderr := h.run(strings.Fields(tt.args)...)
			if code != ExitUsage {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, ExitUsage, stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, stderr)
			}
		})
	}
}

func TestInitConfig_WritesPrivateFileOnce(t *testing.T) {
	h := newHarness(t)
	code, _, stderr := h.run("init-config", "--provider", "memtest", "--username", "alice")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	path := filepath.Join(h.home, ".toppcloud.conf")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("config mode %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	for _, want := range []string{"provider = memtest", "username = alice", h.pubKey} {
		if !strings.Contains(string(b), want) {
			t.Errorf("config lacks %q:\n%s", want, b)
		}
	}
	code, _, stderr = h.run("init-config", "--provider", "memtest")
	if code != ExitUsage || !strings.Contains(stderr, "exists") {
		t.Errorf("second init-config: exit %d, stderr %s; want a refusal", code, stderr)
	}
	if code, _, stderr = h.run("init-config", "--provider", "nosuch"); code != ExitUsage || !strings.Contains(stderr, "memtest") {
		t.Errorf("unknown type: exit %d, stderr %s", code, stderr)
	}
}

func TestCreateNode_RecordsPinsAndDestroyForgets(t *testing.T) {
	h := newHarness(t)
	h.writeConfig("")
	code, _, stderr := h.run("create-node", "web1", "--etc-hosts")
	if code != ExitOK {
		t.Fatalf("create-node: exit %d:\n%s", code, stderr)
	}
	if len(h.mem.Created) != 1 || h.mem.Created[0].AuthorizedKeys[0] != h.pubKey {
		t.Fatalf("driver got %+v, want one create with the config's key", h.mem.Created)
	}
	if h.mem.Created[0].Image.Name != "debian-12" || h.mem.Created[0].Size.RAMMB != 512 {
		t.Errorf("image/size = %+v/%+v, want the provider defaults", h.mem.Created[0].Image, h.mem.Created[0].Size)
	}
	rec, ok, err := h.store().Node("web1")
	if err != nil || !ok {
		t.Fatalf("node not recorded: %v", err)
	}
	if rec.HostKey != h.srv.HostKey {
		t.Errorf("recorded host key %q, want the server's %q", rec.HostKey, h.srv.HostKey)
	}
	kh, _ := os.ReadFile(h.store().KnownHostsPath())
	if !strings.Contains(string(kh), strings.Fields(h.srv.HostKey)[1]) {
		t.Errorf("known_hosts lacks the host key:\n%s", kh)
	}
	hosts, _ := os.ReadFile(h.etcHosts)
	if !strings.Contains(string(hosts), "127.0.0.1\tweb1") || !strings.HasPrefix(string(hosts), "127.0.0.1 localhost\n") {
		t.Errorf("hosts file:\n%s", hosts)
	}
	if got := h.srv.Execs(); len(got) != 1 || got[0] != "true" {
		t.Errorf("commands run on the node: %q, want a login check", got)
	}

	// Same name again: refused, unless --if-not-exists.
	if code, _, stderr := h.run("create-node", "web1"); code != ExitFailed || !strings.Contains(stderr, "already exists") {
		t.Errorf("duplicate create: exit %d, stderr:\n%s", code, stderr)
	}
	if code, _, stderr := h.run("create-node", "web1", "--if-not-exists"); code != ExitOK {
		t.Errorf("--if-not-exists: exit %d, stderr:\n%s", code, stderr)
	}
	if len(h.mem.Created) != 1 {
		t.Errorf("%d creates, want 1", len(h.mem.Created))
	}

	code, stdout, stderr := h.run("list-nodes", "--json")
	if code != ExitOK {
		t.Fatalf("list-nodes: %d %s", code, stderr)
	}
	var nodes []map[string]any
	if err := json.Unmarshal([]byte(stdout), &nodes); err != nil {
		t.Fatalf("list-nodes --json: %v\n%s", err, stdout)
	}
	if len(nodes) != 1 || nodes[0]["name"] != "web1" || nodes[0]["state"] != "running" {
		t.Errorf("list-nodes --json = %v", nodes)
	}
	for _, k := range []string{"id", "name", "state", "public_ips", "private_ips", "image", "size", "provider"} {
		if _, ok := nodes[0][k]; !ok {
			t.Errorf("list-nodes --json lacks %q", k)
		}
	}

	if code, _, stderr := h.run("destroy-node", "web1", "ghost"); code != ExitOK {
		t.Fatalf("destroy-node: exit %d:\n%s", code, stderr)
	} else if !strings.Contains(stderr, "no node named ghost") {
		t.Errorf("missing node should be a warning:\n%s", stderr)
	}
	if _, ok, _ := h.store().Node("web1"); ok {
		t.Error("node still recorded after destroy")
	}
	if n, _ := h.mem.ListNodes(context.Background()); len(n) != 0 {
		t.Errorf("driver still has nodes: %v", n)
	}
	kh, _ = os.ReadFile(h.store().KnownHostsPath())
	if strings.Contains(string(kh), strings.Fields(h.srv.HostKey)[1]) {
		t.Errorf("known_hosts still has the key:\n%s", kh)
	}
	if hosts, _ := os.ReadFile(h.etcHosts); string(hosts) != "127.0.0.1 localhost\n" {
		t.Errorf("hosts file not restored:\n%s", hosts)
	}
}

func TestCreateNode_NeverReadyIsDestroyed(t *testing.T) {
	h := newHarness(t)
	h.writeConfig("")
	h.mem.NeverRuns = true
	code, _, stderr := h.run("create-node", "slow", "--timeout", "300ms")
	if code != ExitFailed {
		t.Fatalf("exit %d, want %d:\n%s", code, ExitFailed, stderr)
	}
	if !strings.Contains(stderr, "did not finish") {
		t.Errorf("stderr lacks the timeout reason:\n%s", stderr)
	}
	if n, _ := h.mem.ListNodes(context.Background()); len(n) != 0 {
		t.Errorf("half-created node left at the provider: %v", n)
	}
	if _, ok, _ := h.store().Node("slow"); ok {
		t.Error("half-created node left in the state")
	}
}

func TestCreateNode_BadInputTouchesNothing(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"hostname", []string{"create-node", "UPPER"}, "invalid hostname"},
		{"image matcher", []string{"create-node", "x", "--image", "name"}, "image"},
		{"no image match", []string{"create-node", "x", "--image", "name centos*"}, "no image matches"},
		{"ambiguous size", []string{"create-node", "x", "--size", "name *"}, "first"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.writeConfig("")
			code, _, stderr := h.run(tt.args...)
			if code != ExitUsage {
				t.Errorf("exit %d, want %d:\n%s", code, ExitUsage, stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, stderr)
			}
			if len(h.mem.Created) != 0 {
				t.Errorf("driver was asked to create: %+v", h.mem.Created)
			}
		})
	}
}
