package e2e

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/provider"
	"github.com/toppcloud/toppcloud/internal/provider/local"
	"github.com/toppcloud/toppcloud/internal/provider/local/localtest"
	"github.com/toppcloud/toppcloud/internal/state"
)

// TestCreateNode_InterruptedLeavesNothing presses Ctrl-C while create-node
// waits for a new local node: the node must be removed again, not left
// half-created and unrecorded.
func TestCreateNode_InterruptedLeavesNothing(t *testing.T) {
	t.Parallel()
	u := newUser(t)
	root := t.TempDir()
	u.config(`[provider:default]
provider = local
root = ` + root + `
cache_dir = ` + localtest.CacheDir())
	name := localtest.UniqueName("e2e-int")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "create-node", name)
	cmd.Env = []string{"HOME=" + u.home, "PATH=" + os.Getenv("PATH"), "LANG=C"}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		// The provider has made the node; now we wait for it to answer.
		if strings.Contains(line, "create node "+name+": done") {
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
		}
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("create-node after Ctrl-C: %v, want a non-zero exit\n%s", err, out.String())
	}
	t.Logf("create-node output:\n%s", out.String())

	d, err := local.New(provider.Env{Section: "check", Settings: provider.Settings{"root": root, "cache_dir": localtest.CacheDir()}})
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := d.ListNodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 0 {
		t.Errorf("interrupted create-node left nodes: %+v", nodes)
	}
	st, err := state.Open(u.home + "/.toppcloud")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := st.Node(name); ok {
		t.Error("interrupted create-node left a record")
	}
	if b, err := os.ReadFile("/proc/net/dev"); err == nil && strings.Contains(string(b), name) {
		t.Error("interface left behind")
	}
}
