package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/toppcloud/toppcloud/internal/nodes"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/provider"
	"github.com/toppcloud/toppcloud/internal/remote"
	"github.com/toppcloud/toppcloud/internal/sshx/sshxtest"
	"github.com/toppcloud/toppcloud/internal/state"
)

// runWith runs the CLI against the node with extra environment variables.
func (n *agentNode) runWith(extra map[string]string, args ...string) (int, string, string) {
	n.h.t.Helper()
	env := map[string]string{remote.EnvAgentBinary: n.binary}
	for k, v := range extra {
		env[k] = v
	}
	var stdout, stderr bytes.Buffer
	code := Run(context.Background(), args, Env{
		Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr,
		Getenv: func(k string) string { return env[k] }, Home: n.h.home, EtcHosts: n.h.etcHosts,
		Providers: n.h.providers,
	})
	return code, stdout.String(), stderr.String()
}

// keepKeyElsewhere moves the user's key out of ~/.ssh to dir/deploy (and
// deploy.pub), as the user of issue "name the SSH key to use" keeps it,
// and returns the private key's path and fingerprint.
func keepKeyElsewhere(t *testing.T, n *agentNode) (string, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "keys")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	priv := filepath.Join(dir, "deploy")
	for from, to := range map[string]string{"id_ed25519": priv, "id_ed25519.pub": priv + ".pub"} {
		if err := os.Rename(filepath.Join(n.h.home, ".ssh", from), to); err != nil {
			t.Fatal(err)
		}
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(n.h.pubKey))
	if err != nil {
		t.Fatal(err)
	}
	return priv, ssh.FingerprintSHA256(pub)
}

// TestKeyOutsideSSHDir_InitConfigRecordsIt is the scenario of the issue:
// the deploy key is kept outside ~/.ssh and init-config is given its
// .pub. The private half is recorded as ssh_key, so create-node, setup-node
// (as root) and app commands (as the deploy user) log in with it, and
// node-info says so.
func TestKeyOutsideSSHDir_InitConfigRecordsIt(t *testing.T) {
	n := newAgentNode(t)
	t.Setenv("SSH_AUTH_SOCK", "")
	priv, fp := keepKeyElsewhere(t, n)
	conf := filepath.Join(n.h.home, ".toppcloud.conf")
	if err := os.Remove(conf); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := n.run("init-config", "--provider", "memtest", "--key", priv+".pub")
	if code != ExitOK || !strings.Contains(stderr, "nodes are logged in to with "+priv+" (ssh_key)") {
		t.Fatalf("init-config: exit %d\n%s", code, stderr)
	}
	if b, _ := os.ReadFile(conf); !strings.Contains(string(b), "ssh_key = "+priv+"\n") {
		t.Fatalf("config lacks ssh_key:\n%s", b)
	}

	n.streams[protocol.OpSetup] = stream(t, setupEvents(), protocol.SetupResult{Changed: []string{"packages"}, Node: protocol.NodeInfo{Version: "v1"}}, nil)
	code, _, stderr = n.run("create-node", "web1", "--setup-node")
	if code != ExitOK {
		t.Fatalf("create-node --setup-node: exit %d\n%s", code, stderr)
	}
	if want := "log in to web1 as root: done (" + priv + " (" + fp + "))"; !strings.Contains(stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, stderr)
	}
	// The deploy user logs in with it too.
	n.streams[protocol.OpQuery] = stream(t, nil, protocol.QueryResult{}, nil)
	if code, _, stderr := n.run("query", "web1"); code != ExitOK {
		t.Errorf("query as %s: exit %d\n%s", protocol.DeployUser, code, stderr)
	}

	n.streams[protocol.OpInfo] = stream(t, nil, protocol.InfoResult{Agent: protocol.VersionInfo{Version: "v1", Fingerprint: n.sum}}, nil)
	code, stdout, stderr := n.run("node-info", "web1")
	if code != ExitOK {
		t.Fatalf("node-info: exit %d\n%s", code, stderr)
	}
	for _, want := range []string{"login:     root@127.0.0.1:", "ssh key:   " + priv + " (from ssh_key of [provider:default] at " + conf, "logged in: with " + priv + " (" + fp + ")"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("node-info lacks %q:\n%s", want, stdout)
		}
	}
	code, stdout, _ = n.run("node-info", "web1", "--json")
	var got struct {
		Agent protocol.VersionInfo `json:"agent"`
		Login nodes.Login          `json:"login"`
	}
	if code != ExitOK || json.Unmarshal([]byte(stdout), &got) != nil || got.Login.User != "root" || got.Login.Key.Path != priv || got.Agent.Version != "v1" {
		t.Errorf("node-info --json: exit %d\n%s", code, stdout)
	}
}

// TestSSHKey_FlagAndEnvironment: with the key outside ~/.ssh and no
// ssh_key, create-node refuses before making anything and says which key
// the node would get; --ssh-key and $TOPPCLOUD_SSH_KEY each log in; a
// failed login names the keys offered and the node's, and how to name
// the right one.
func TestSSHKey_FlagAndEnvironment(t *testing.T) {
	n := newAgentNode(t)
	t.Setenv("SSH_AUTH_SOCK", "")
	priv, fp := keepKeyElsewhere(t, n)

	code, _, stderr := n.run("create-node", "web1")
	if code != ExitUsage || !strings.Contains(stderr, "no usable SSH key to log in as root@web1") || !strings.Contains(stderr, "would be given (root_authorized_keys of [provider:default]): "+fp) {
		t.Fatalf("create-node without a usable key: exit %d\n%s", code, stderr)
	}
	if len(n.h.mem.Created) != 0 {
		t.Fatalf("a node was created that nothing can log in to")
	}

	if code, _, stderr := n.run("--ssh-key", priv, "create-node", "web1"); code != ExitOK {
		t.Fatalf("create-node --ssh-key: exit %d\n%s", code, stderr)
	}
	n.streams[protocol.OpSetup] = stream(t, nil, protocol.SetupResult{Node: protocol.NodeInfo{Version: "v1"}}, nil)
	if code, _, stderr := n.runWith(map[string]string{nodes.EnvSSHKey: priv}, "setup-node", "web1"); code != ExitOK {
		t.Fatalf("setup-node with $%s: exit %d\n%s", nodes.EnvSSHKey, code, stderr)
	}
	// The flag wins over the environment.
	if code, _, stderr := n.runWith(map[string]string{nodes.EnvSSHKey: "/nonexistent"}, "setup-node", "web1", "--ssh-key", priv); code != ExitOK {
		t.Errorf("--ssh-key over a bad $%s: exit %d\n%s", nodes.EnvSSHKey, code, stderr)
	}
	if code, _, stderr := n.runWith(map[string]string{nodes.EnvSSHKey: "/nonexistent"}, "setup-node", "web1"); code != ExitUsage || !strings.Contains(stderr, "$TOPPCLOUD_SSH_KEY names the SSH key /nonexistent") {
		t.Errorf("a bad $%s: exit %d\n%s", nodes.EnvSSHKey, code, stderr)
	}

	// Another key in ~/.ssh, none named: the failure says it all.
	other := filepath.Join(n.h.home, ".ssh", "id_ed25519")
	sshxtest.WriteKey(t, other, "")
	before := len(n.srv.Execs())
	code, _, stderr = n.run("setup-node", "web1")
	if code != ExitFailed {
		t.Fatalf("setup-node with the wrong key: exit %d\n%s", code, stderr)
	}
	for _, want := range []string{
		"does not accept your key (tried: " + other + ")",
		"offered: SHA256:",
		"web1 was given at creation: " + fp,
		"--ssh-key PATH, TOPPCLOUD_SSH_KEY=PATH, or ssh_key = PATH in [provider:default] of " + filepath.Join(n.h.home, ".toppcloud.conf"),
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if len(n.srv.Execs()) != before {
		t.Error("commands ran although the login failed")
	}
}

// TestCreateNodeSetupNode_OneLogin: create-node --setup-node checks the
// login and sets the node up over one SSH connection (the other one is
// the host key probe).
func TestCreateNodeSetupNode_OneLogin(t *testing.T) {
	n := newAgentNode(t)
	n.streams[protocol.OpSetup] = stream(t, nil, protocol.SetupResult{Node: protocol.NodeInfo{Version: "v1"}}, nil)
	if code, _, stderr := n.run("create-node", "web1", "--setup-node"); code != ExitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if c := n.srv.Conns(); c != 2 {
		t.Errorf("%d connections, want 2: the host key probe and one login", c)
	}
}

// TestCreateNode_IfNotExistsSetupNodeOfAnUnknownNode: a node only the
// provider knows cannot be set up from here; --setup-node says so instead
// of succeeding without setting anything up.
func TestCreateNode_IfNotExistsSetupNodeOfAnUnknownNode(t *testing.T) {
	n := newAgentNode(t)
	if _, err := n.h.mem.CreateNode(context.Background(), provider.CreateRequest{Name: "web1"}); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := n.run("create-node", "web1", "--if-not-exists", "--setup-node")
	if code != ExitFailed || !strings.Contains(stderr, "cannot set it up") || !strings.Contains(stderr, "create-node web1 --provider SECTION --address IP") {
		t.Errorf("exit %d\n%s", code, stderr)
	}
	if code, _, stderr := n.run("create-node", "web1", "--if-not-exists"); code != ExitOK || !strings.Contains(stderr, "exists at the provider") {
		t.Errorf("without --setup-node: exit %d\n%s", code, stderr)
	}
	if len(n.srv.Execs()) != 0 {
		t.Errorf("commands ran: %q", n.srv.Execs())
	}
}

// TestStateDir_CachesFollowIt: with $TOPPCLOUD_STATE, the records and
// update's hash cache live there and nothing is written to ~/.toppcloud.
// (The agent binary's checksum record is not written for a binary as
// fresh as the test's; nodes' tests check where it would go.)
func TestStateDir_CachesFollowIt(t *testing.T) {
	n := newAgentNode(t)
	dir := filepath.Join(t.TempDir(), "state")
	env := map[string]string{state.EnvDir: dir}
	if code, _, stderr := n.runWith(env, "create-node", "web1"); code != ExitOK {
		t.Fatalf("create-node: %s", stderr)
	}
	deployStreams(t, n, stream(t, nil, protocol.DeployResult{Instance: "blog.1", Release: 1, Location: "web1/"}, nil))
	if code, _, stderr := n.runWith(env, "update", goodApp(t), "web1"); code != ExitOK {
		t.Fatalf("update: %s", stderr)
	}
	for _, p := range []string{state.NodesFile, state.KnownHostsFile, "cache/manifests"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("%s not in $%s: %v", p, state.EnvDir, err)
		}
	}
	if _, err := os.Stat(filepath.Join(n.h.home, ".toppcloud")); !os.IsNotExist(err) {
		t.Errorf("~/.toppcloud was written: %v", err)
	}
}

// TestBrokenConfig_StopsNodeCommands: a config file that cannot be read
// stops setup-node and update with its line before anything runs on the
// node (it used to be ignored, and the deploy user's keys and
// set_etc_hosts silently fell back to defaults).
func TestBrokenConfig_StopsNodeCommands(t *testing.T) {
	n := newAgentNode(t)
	if code, _, stderr := n.run("create-node", "web1"); code != ExitOK {
		t.Fatalf("create-node: %s", stderr)
	}
	n.h.writeConfig("set_etc_hosts = perhaps\n")
	before := len(n.srv.Execs())
	for _, args := range [][]string{{"setup-node", "web1"}, {"update", goodApp(t), "web1"}} {
		code, _, stderr := n.run(args...)
		if code != ExitUsage || !strings.Contains(stderr, ".toppcloud.conf:5") {
			t.Errorf("%s: exit %d\n%s", args[0], code, stderr)
		}
	}
	if len(n.srv.Execs()) != before {
		t.Errorf("commands ran on the node: %q", n.srv.Execs()[before:])
	}
}

// TestConfig_UnknownKeyIsAWarning: a typo in a provider section is shown.
func TestConfig_UnknownKeyIsAWarning(t *testing.T) {
	h := newHarness(t)
	h.writeConfig("imgae = name debian-12\n")
	code, _, stderr := h.run("list-images")
	if code != ExitOK || !strings.Contains(stderr, "warning: "+filepath.Join(h.home, ".toppcloud.conf")+":5: imgae: unknown key imgae in [provider:default] ignored") {
		t.Errorf("exit %d\n%s", code, stderr)
	}
}

// TestCreateNodeSetupNode_SiteRole: a node named in a site is set up for
// its role there, which create-node learns once the node has an address.
func TestCreateNodeSetupNode_SiteRole(t *testing.T) {
	n := newAgentNode(t)
	n.streams[protocol.OpSetup] = stream(t, nil, protocol.SetupResult{Node: protocol.NodeInfo{Version: "v1"}}, nil)
	if code, _, stderr := n.run("create-node", "lb1"); code != ExitOK {
		t.Fatalf("create lb1: %s", stderr)
	}
	n.h.writeConfig("\n[site:blog]\nlocations = blog.example.com\nbalancer = lb1\nnodes = web1\n")
	code, stdout, stderr := n.run("create-node", "web1", "--setup-node")
	if code != ExitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if out := stdout + stderr; !strings.Contains(out, "web1 is the app node of site blog") {
		t.Errorf("the role is not said:\n%s", out)
	}
	var req struct {
		Args protocol.SetupArgs `json:"args"`
	}
	if err := json.Unmarshal([]byte(n.reqs[protocol.OpSetup]), &req); err != nil {
		t.Fatalf("setup request %q: %v", n.reqs[protocol.OpSetup], err)
	}
	if r := req.Args.Site; r == nil || r.Site != "blog" || !r.App || len(r.TrustProxies) == 0 {
		t.Errorf("setup role %+v, want web1 as blog's app node trusting its balancer", r)
	}
}

// TestCreateNodeSetupNode_SiteNotComplete: while another node of its site
// is missing the node is created but not set up, and told what to run.
func TestCreateNodeSetupNode_SiteNotComplete(t *testing.T) {
	n := newAgentNode(t)
	n.h.writeConfig("\n[site:blog]\nlocations = blog.example.com\nnodes = web1 web2\n")
	code, _, stderr := n.run("create-node", "web1", "--setup-node")
	if code != ExitUsage || !strings.Contains(stderr, "created web1 but did not set it up") || !strings.Contains(stderr, "no node named web2") {
		t.Errorf("exit %d\n%s", code, stderr)
	}
	if _, ok := n.reqs[protocol.OpSetup]; ok {
		t.Error("web1 was set up without its role")
	}
	if code, stdout, stderr := n.run("list-nodes"); code != ExitOK || !strings.Contains(stdout, "web1") {
		t.Errorf("web1 is not recorded: list-nodes exit %d\n%s%s", code, stdout, stderr)
	}
}
