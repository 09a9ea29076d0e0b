package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/provider"
	dofake "github.com/toppcloud/toppcloud/internal/provider/digitalocean/fake"
	"github.com/toppcloud/toppcloud/internal/provider/local/localtest"
	rsfake "github.com/toppcloud/toppcloud/internal/provider/rackspace/fake"
)

// nodeAddr returns the public address list-nodes gives for name.
func nodeAddr(t *testing.T, u *user, section, name string) string {
	t.Helper()
	out := u.mustRun("-p", section, "list-nodes", "--json")
	var nodes []provider.Node
	if err := json.Unmarshal([]byte(out), &nodes); err != nil {
		t.Fatalf("list-nodes --json: %v", err)
	}
	for _, n := range nodes {
		if n.Name == name {
			if n.Address() == "" {
				t.Fatalf("node %s has no address: %+v", name, n)
			}
			return n.Address()
		}
	}
	t.Fatalf("list-nodes does not show %s: %s", name, out)
	return ""
}

// TestRackspace_PersonalityFileReachesRealNode goes through the real
// gophercloud SDK against the fake Rackspace API, which creates a real
// local node; the only way our key reaches that node is the personality
// file the driver uploads at creation, as the seed describes.
func TestRackspace_PersonalityFileReachesRealNode(t *testing.T) {
	t.Parallel()
	u := newUser(t)
	backend := localtest.NewDriver(t, nil)
	srv := rsfake.New(rsfake.Options{Backend: backend, Errorf: t.Errorf})
	t.Cleanup(srv.Close)
	u.config(`[provider:rs]
provider = rackspace
endpoint = ` + srv.IdentityV2() + `
username = ` + rsfake.DefaultUsername + `
secret = ` + rsfake.DefaultAPIKey + `
region = DFW`)
	name := localtest.UniqueName("e2e-rs")
	debugLog := filepath.Join(u.home, "api.log")
	u.mustRun("-p", "rs", "--debug-api", debugLog, "create-node", name, "--setup-node")

	created := srv.Created()
	if len(created) != 1 {
		t.Fatalf("fake saw %d creates, want 1", len(created))
	}
	addr := nodeAddr(t, u, "rs", name)
	got, err := u.ssh(addr, "cat /root/.ssh/authorized_keys")
	if err != nil {
		t.Fatalf("ssh to the new node: %v\n%s", err, got)
	}
	if strings.TrimSpace(got) != u.pubKey {
		t.Errorf("authorized_keys on the node = %q, want the personality file's %q", got, u.pubKey)
	}

	// setup-node completed on the node the fake made.
	if out, err := u.ssh(addr, "cat /etc/toppcloud/node.json"); err != nil || !strings.Contains(out, "version") {
		t.Errorf("node.json after setup-node: %v\n%s", err, out)
	}
	if resp, err := http.Get("http://" + addr + "/"); err != nil {
		t.Errorf("GET / on the set-up node: %v", err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET / on the set-up node = %d, want 404 (the not-found site)", resp.StatusCode)
		}
	}

	// The API traffic log has the requests but no credentials.
	logText, err := os.ReadFile(debugLog)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(logText), "/v2.0/tokens") || !strings.Contains(string(logText), "/servers") {
		t.Errorf("--debug-api log lacks the API calls:\n%.2000s", logText)
	}
	if strings.Contains(string(logText), rsfake.DefaultAPIKey) {
		t.Error("--debug-api log contains the API key")
	}
	for _, line := range strings.Split(string(logText), "\n") {
		if strings.HasPrefix(strings.ToLower(line), "x-auth-token:") && !strings.HasSuffix(line, "REDACTED") {
			t.Errorf("--debug-api log shows a token: %q", line)
		}
	}

	u.mustRun("-p", "rs", "destroy-node", name)
	nodes, err := backend.ListNodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n.Name == name {
			t.Errorf("destroy-node left the backing node: %+v", n)
		}
	}
}

// TestDigitalOcean_KeyAPIReachesRealNode does the same for a token
// provider: the key is registered through DigitalOcean's key API and
// passed at create.
func TestDigitalOcean_KeyAPIReachesRealNode(t *testing.T) {
	t.Parallel()
	u := newUser(t)
	backend := localtest.NewDriver(t, nil)
	srv := dofake.New(dofake.Options{Token: "e2e-token", Backend: backend, Errorf: t.Errorf})
	t.Cleanup(srv.Close)
	u.config(`[provider:do]
provider = digitalocean
secret = e2e-token
endpoint = ` + srv.URL() + `
region = nyc3`)
	name := localtest.UniqueName("e2e-do")
	u.mustRun("-p", "do", "create-node", name, "--setup-node")
	if len(srv.Keys()) != 1 {
		t.Errorf("fake has %d registered keys, want 1", len(srv.Keys()))
	}
	addr := nodeAddr(t, u, "do", name)
	if out, err := u.ssh(addr, "cat /etc/debian_version"); err != nil {
		t.Fatalf("ssh: %v\n%s", err, out)
	}
	// A second create with the same name is refused before any API call.
	before := len(srv.Requests())
	if code, _, stderr := u.run("-p", "do", "create-node", name); code == 0 || !strings.Contains(stderr, "already exists") {
		t.Errorf("duplicate create: exit %d\n%s", code, stderr)
	}
	if n := len(srv.Requests()) - before; n != 0 {
		t.Errorf("duplicate create sent %d API requests, want 0", n)
	}
	u.mustRun("-p", "do", "destroy-node", name)
}

// TestExisting_RegisterAndForget registers a server that already exists
// (a local node made outside toppcloud), then forgets it without touching
// it.
func TestExisting_RegisterAndForget(t *testing.T) {
	t.Parallel()
	u := newUser(t)
	d := localtest.NewDriver(t, nil)
	n := localtest.CreateNode(t, d, localtest.UniqueName("e2e-ex"), provider.CreateRequest{AuthorizedKeys: []string{u.pubKey}})
	u.config(`[provider:mine]
provider = existing`)
	u.mustRun("-p", "mine", "create-node", "myserver", "--address", n.Address())
	if out, err := u.ssh(n.Address(), "hostname"); err != nil {
		t.Fatalf("ssh with the pinned key: %v\n%s", err, out)
	}
	u.mustRun("setup-node", "myserver")
	if out := u.mustRun("node-info", "myserver", "--json"); !strings.Contains(out, "version") {
		t.Errorf("node-info after setup-node: %s", out)
	}
	_, _, stderr := u.run("-p", "mine", "destroy-node", "myserver")
	if !strings.Contains(stderr, "not touched") {
		t.Errorf("destroy-node of an existing server should say it was only forgotten:\n%s", stderr)
	}
	if node, err := d.GetNode(context.Background(), n.ID); err != nil || node.State != provider.StateRunning {
		t.Errorf("the server itself must keep running: %+v, %v", node, err)
	}
}
