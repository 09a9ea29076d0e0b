package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/provider/local/localtest"
)

// TestIntegration_Diff: toppcloud diff against a real node, after a real
// update: the same tree is no difference (exit 0), edits show as a
// unified diff (exit 1), ignored files never show, and --instance
// compares with an older instance.
func TestIntegration_Diff(t *testing.T) {
	e := newLocalEnv(t)
	node := localtest.UniqueName("diff")
	t.Cleanup(func() {
		if code, out := e.run("destroy-node", "-y", node); code != ExitOK {
			t.Errorf("destroy-node: %s", out)
		}
	})
	e.ok("create-node", node, "--setup-node")
	dir := copyApp(t, "python", nil)
	e.ok("update", dir, "py.test", "--node", node)

	code, stdout, stderr := e.run2("diff", dir, "py.test", "--node", node)
	if code != ExitOK || stdout != "" || !strings.Contains(stderr, "is the same as hello.") {
		t.Fatalf("diff of the deployed tree = %d\n%s\n%s", code, stdout, stderr)
	}
	first := q(e, node)

	app, err := os.ReadFile(filepath.Join(dir, "app.py"))
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(app), "import json", "import json  # edited", 1)
	for p, c := range map[string]string{"app.py": edited, "extra.txt": "new file\n", "scratch.pyc": "\x00ignored"} {
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(filepath.Join(dir, "static", "robots.txt")); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = e.run2("diff", dir, "py.test", "--node", node)
	if code != ExitFailed {
		t.Fatalf("diff after edits = %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{
		"--- " + first + "/app.py\n+++ " + dir + "/app.py\n",
		"-import json\n+import json  # edited\n",
		"--- /dev/null\n+++ " + dir + "/extra.txt\n",
		"--- " + first + "/static/robots.txt\n+++ /dev/null\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("diff lacks\n%s\nin\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "scratch.pyc") {
		t.Errorf("an ignored file shows:\n%s", stdout)
	}

	// Deploy the edits; the old instance still differs from the tree.
	e.ok("update", dir, "py.test", "--node", node)
	if code, _, stderr := e.run2("diff", dir, "py.test", "--node", node); code != ExitOK {
		t.Errorf("diff after deploying the edits = %d %s", code, stderr)
	}
	code, stdout, _ = e.run2("diff", dir, "--node", node, "--instance", first)
	if code != ExitFailed || !strings.Contains(stdout, "+import json  # edited") {
		t.Errorf("diff --instance %s = %d\n%s", first, code, stdout)
	}
	if code, out := e.run("diff", dir, "nothing.test", "--node", node); code != ExitFailed || !strings.Contains(out, "nothing is deployed at nothing.test") {
		t.Errorf("diff at an empty location = %d %s", code, out)
	}
}

// q returns the instance live at py.test.
func q(e *localEnv, node string) string {
	e.t.Helper()
	live, _ := liveAt(e.query(node), "py.test")
	if live == "" {
		e.t.Fatal("nothing live at py.test")
	}
	return live
}
