package deploy

import (
	"context"
	"errors"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/agent"
	"github.com/toppcloud/toppcloud/internal/agent/agenttest"
	"github.com/toppcloud/toppcloud/internal/deploy/manifest"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/remote"
)

// setUpNode is a simulated node after setup-node, with the real agent
// behind a loopback Caller.
func setUpNode(t *testing.T) (*agenttest.Node, *agenttest.Loopback) {
	t.Helper()
	n := agenttest.NewNode(t)
	l := &agenttest.Loopback{Agent: &agent.Agent{Host: n.Host, Layout: n.Layout, Fingerprint: n.Fingerprint, Admin: n.Admin, Setup: n.SetupHooks()},
		LocalUser: "alice@laptop"}
	if err := l.Call(context.Background(), protocol.OpSetup, agenttest.SetupArgs(t), nil, remote.CallOptions{}); err != nil {
		t.Fatal(err)
	}
	return n, l
}

func prepare(t *testing.T, o Options) *Plan {
	t.Helper()
	o.Node = "web1"
	p, err := Prepare(context.Background(), o, nodeSet{"web1": true}, "")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// sameFiles fails unless every file of dir is in the node's directory
// inst with the same content.
func sameFiles(t *testing.T, n *agenttest.Node, dir, inst string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		want, _ := os.ReadFile(p)
		if got := n.ReadFile(path.Join(inst, filepath.ToSlash(rel))); got != string(want) {
			t.Errorf("%s on the node: %q, want %q", rel, got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestUploadAndDeploy: the client's upload sends only what the node
// lacks, as a real blob stream the agent stores, and Deploy makes an
// instance of exactly the app's files and switches to it.
func TestUploadAndDeploy(t *testing.T) {
	n, node := setUpNode(t)
	ctx := context.Background()
	dir := app(t, "[production]\napp_name = site\n", map[string]string{
		"static/index.html": "one", "static/style.css": "body{}", "static/copy.css": "body{}",
	})
	p := prepare(t, Options{AppDir: dir, Location: "site.test"})

	var progress []manifest.Progress
	up, err := Upload(ctx, node, p, func(pr manifest.Progress) { progress = append(progress, pr) })
	if err != nil {
		t.Fatal(err)
	}
	// app.ini, index.html and one of the two identical stylesheets.
	if up.Files != 4 || up.Blobs != 3 || up.Content == 0 || up.Sent <= up.Content/2 || up.ConfigDigest != nil || len(progress) == 0 || !progress[len(progress)-1].Done {
		t.Fatalf("first upload: %+v, progress %+v", up, progress)
	}
	var steps []string
	res, err := Deploy(ctx, node, p, up, remote.CallOptions{Event: func(e protocol.Event) {
		if e.Status == protocol.StepDone {
			steps = append(steps, e.Step)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Instance == "" || res.Prev != "" || res.Release != 1 || res.Location != "site.test" {
		t.Errorf("deploy: %+v", res)
	}
	if !slices.Equal(steps, []string{agent.StepLock, agent.StepInstance, agent.StepConfig, agent.StepPackages, agent.StepServices,
		agent.StepStart, agent.StepUpdateFetch, agent.StepSwitch, agent.StepDrain, agent.StepRelease}) {
		t.Errorf("steps: %v", steps)
	}
	sameFiles(t, n, dir, n.Layout.InstanceDir(res.Instance))

	// Nothing changed: only the manifest goes, and the node says so.
	again, err := Upload(ctx, node, p, nil)
	if err != nil || again.Blobs != 0 || again.Digest != up.Digest {
		t.Fatalf("same upload again: %+v, %v", again, err)
	}
	if same, err := Deploy(ctx, node, p, again, remote.CallOptions{}); err != nil || !same.Unchanged || same.Instance != res.Instance {
		t.Errorf("unchanged deploy: %+v, %v", same, err)
	}

	// One file changed: one blob goes; the new instance replaces the old.
	write(t, dir, map[string]string{"static/index.html": "two"})
	p = prepare(t, Options{AppDir: dir, Location: "site.test"})
	next, err := Upload(ctx, node, p, nil)
	if err != nil || next.Blobs != 1 {
		t.Fatalf("changed upload: %+v, %v", next, err)
	}
	res2, err := Deploy(ctx, node, p, next, remote.CallOptions{})
	if err != nil || res2.Prev != res.Instance || res2.Release != 2 {
		t.Fatalf("second deploy: %+v, %v", res2, err)
	}
	sameFiles(t, n, dir, n.Layout.InstanceDir(res2.Instance))
}

// TestUpload_Config: --config goes up as a second manifest and becomes
// the app's configuration on deploy; an app that requires one and never
// had one is refused at the first request.
func TestUpload_Config(t *testing.T) {
	n, node := setUpNode(t)
	ctx := context.Background()
	ini := "[production]\napp_name = site\nconfig.required = true\n"
	dir := app(t, ini, map[string]string{"static/index.html": "x"})

	_, err := Upload(ctx, node, prepare(t, Options{AppDir: dir, Location: "site.test"}), nil)
	var oe *remote.OpError
	if !errors.As(err, &oe) || oe.Op != protocol.OpDeployManifest || oe.Err.Code != protocol.CodeConfigRequired {
		t.Fatalf("upload without the required config: %v", err)
	}

	conf := t.TempDir()
	write(t, conf, map[string]string{"settings.ini": "[db]\nname = one\n"})
	p := prepare(t, Options{AppDir: dir, Location: "site.test", ConfigDir: conf})
	up, err := Upload(ctx, node, p, nil)
	if err != nil || up.ConfigDigest == nil || *up.ConfigDigest == up.Digest {
		t.Fatalf("upload with --config: %+v, %v", up, err)
	}
	res, err := Deploy(ctx, node, p, up, remote.CallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sameFiles(t, n, conf, n.Layout.ConfigDir("site"))

	// A failed deploy is the node's error, with its code, and leaves the
	// live instance: an upload the node never got.
	p.Opts.Force = true
	up.Digest[0] ^= 0xff
	_, err = Deploy(ctx, node, p, up, remote.CallOptions{})
	if !errors.As(err, &oe) || oe.Err.Code != protocol.CodeBadRequest || !strings.Contains(oe.Err.Message, "run update again") {
		t.Errorf("deploy of a missing upload: %v", err)
	}
	var q protocol.QueryResult
	if err := node.Call(ctx, protocol.OpQuery, protocol.QueryArgs{}, &q, remote.CallOptions{}); err != nil || len(q.Routes) != 1 || q.Routes[0].Live != res.Instance {
		t.Errorf("after the failed deploy: %+v, %v; want %s live", q.Routes, err, res.Instance)
	}
}
