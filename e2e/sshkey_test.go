package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/provider/local/localtest"
)

// TestKeyOutsideSSHDir is the new user of the issue "name the SSH key to
// use": the deploy key lives in ~/keys, not ~/.ssh, and there is no
// ssh-agent. init-config --key ~/keys/deploy.pub records the private half
// as ssh_key, and create-node logs in to the new local node with it. With
// ssh_key removed, create-node refuses before making a node and says which
// key the node would be given and how to name the private one.
func TestKeyOutsideSSHDir(t *testing.T) {
	t.Parallel()
	u := newUser(t)
	keys := filepath.Join(u.home, "keys")
	if err := os.MkdirAll(keys, 0o700); err != nil {
		t.Fatal(err)
	}
	for from, to := range map[string]string{"id_ed25519": "deploy", "id_ed25519.pub": "deploy.pub"} {
		if err := os.Rename(filepath.Join(u.home, ".ssh", from), filepath.Join(keys, to)); err != nil {
			t.Fatal(err)
		}
	}
	_, _, stderr := u.run("init-config", "--provider", "local", "--key", "~/keys/deploy.pub")
	priv := filepath.Join(keys, "deploy")
	if !strings.Contains(stderr, "nodes are logged in to with "+priv+" (ssh_key)") {
		t.Fatalf("init-config did not record the private key:\n%s", stderr)
	}
	conf := filepath.Join(u.home, ".toppcloud.conf")
	// The test's own root and the shared image cache, for every section.
	f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString("\n[DEFAULT]\nroot = " + t.TempDir() + "\ncache_dir = " + localtest.CacheDir() + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	name := localtest.UniqueName("e2e-key")
	t.Cleanup(func() {
		if code, _, stderr := u.run("destroy-node", "-y", name); code != 0 {
			t.Errorf("destroy-node: %s", stderr)
		}
	})
	code, _, stderr := u.run("create-node", name)
	if code != 0 {
		t.Fatalf("create-node with ssh_key: exit %d\n%s", code, stderr)
	}
	// The binary runs with HOME set to the user's home: ~ in messages.
	if want := "log in to " + name + " as root: done (~/keys/deploy (SHA256:"; !strings.Contains(stderr, want) {
		t.Errorf("create-node does not say it logged in with the named key (%q):\n%s", want, stderr)
	}

	// Without ssh_key, the key is found nowhere: said before any node is made.
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "ssh_key") {
			kept = append(kept, l)
		}
	}
	if err := os.WriteFile(conf, []byte(strings.Join(kept, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	other := localtest.UniqueName("e2e-nokey")
	code, _, stderr = u.run("create-node", other)
	if code != 2 {
		t.Fatalf("create-node without ssh_key: exit %d, want 2\n%s", code, stderr)
	}
	for _, want := range []string{"no usable SSH key to log in as root@" + other, "would be given (root_authorized_keys of [provider:default]): SHA256:", "--ssh-key PATH, TOPPCLOUD_SSH_KEY=PATH, or ssh_key = PATH"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("create-node without ssh_key: stderr lacks %q:\n%s", want, stderr)
		}
	}
	if out := u.mustRun("list-nodes"); strings.Contains(out, other) {
		t.Errorf("a node was made although nothing could log in to it:\n%s", out)
	}
	// The flag names it again, for a command on the node that exists.
	if code, _, stderr := u.run("--ssh-key", "~/keys/deploy", "start-node", name); code != 0 {
		t.Errorf("start-node --ssh-key: exit %d\n%s", code, stderr)
	}
}
