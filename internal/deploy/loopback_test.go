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
		LocalUser: "alice@laptop", Fingerprint: agenttest.FP}
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

// TestUpdate: the client's update sends only what the node lacks, as a
// real blob stream the agent stores, and the node makes an instance of
// exactly the app's files and switches to it, all in one operation.
func TestUpdate(t *testing.T) {
	n, node := setUpNode(t)
	ctx := context.Background()
	dir := app(t, "[production]\napp_name = site\n", map[string]string{
		"static/index.html": "one", "static/style.css": "body{}", "static/copy.css": "body{}",
	})
	p := prepare(t, Options{AppDir: dir, Location: "site.test"})

	var progress []manifest.Progress
	var uploaded []UploadStats
	var steps []string
	res, up, err := Update(ctx, node, p, UpdateOptions{
		Progress: func(pr manifest.Progress) { progress = append(progress, pr) },
		Uploaded: func(st UploadStats) { uploaded = append(uploaded, st) },
		Events: remote.CallOptions{Event: func(e protocol.Event) {
			if e.Status == protocol.StepDone {
				steps = append(steps, e.Step)
			}
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	// app.ini, index.html and one of the two identical stylesheets.
	if up.Files != 4 || up.Blobs != 3 || up.Content == 0 || up.Sent <= up.Content/2 || len(progress) == 0 || !progress[len(progress)-1].Done || len(uploaded) != 1 || uploaded[0] != up {
		t.Fatalf("first update sent: %+v, progress %+v, uploaded %+v", up, progress, uploaded)
	}
	if res.Instance == "" || res.Prev != "" || res.Release != 1 || res.Location != "site.test" || res.Blobs != 3 || res.BlobBytes != up.Content {
		t.Errorf("first update: %+v", res)
	}
	if !slices.Equal(steps, []string{agent.StepLock, agent.StepInstance, agent.StepConfig, agent.StepPackages, agent.StepServices,
		agent.StepStart, agent.StepUpdateFetch, agent.StepSwitch, agent.StepDrain, agent.StepRelease}) {
		t.Errorf("steps: %v", steps)
	}
	sameFiles(t, n, dir, n.Layout.InstanceDir(res.Instance))

	// Nothing changed: only the manifest goes, and the node says so.
	same, again, err := Update(ctx, node, p, UpdateOptions{})
	if err != nil || again.Blobs != 0 || !same.Unchanged || same.Instance != res.Instance || same.Blobs != 0 {
		t.Fatalf("same update again: %+v, %+v, %v", same, again, err)
	}

	// One file changed: one blob goes; the new instance replaces the old.
	write(t, dir, map[string]string{"static/index.html": "two"})
	p = prepare(t, Options{AppDir: dir, Location: "site.test"})
	res2, next, err := Update(ctx, node, p, UpdateOptions{})
	if err != nil || next.Blobs != 1 || res2.Prev != res.Instance || res2.Release != 2 {
		t.Fatalf("changed update: %+v, %+v, %v", res2, next, err)
	}
	sameFiles(t, n, dir, n.Layout.InstanceDir(res2.Instance))
}

// TestUpdate_Config: --config goes up as a second manifest in the same
// operation, its contents in the same blob stream, and becomes the app's
// configuration; an app that requires one and never had one is refused
// before anything is sent.
func TestUpdate_Config(t *testing.T) {
	n, node := setUpNode(t)
	ctx := context.Background()
	ini := "[production]\napp_name = site\nconfig.required = true\n"
	dir := app(t, ini, map[string]string{"static/index.html": "x", "static/same.txt": "shared"})

	_, _, err := Update(ctx, node, prepare(t, Options{AppDir: dir, Location: "site.test"}), UpdateOptions{})
	var oe *remote.OpError
	if !errors.As(err, &oe) || oe.Op != protocol.OpUpdate || oe.Err.Code != protocol.CodeConfigRequired {
		t.Fatalf("update without the required config: %v", err)
	}

	conf := t.TempDir()
	// same.txt's content is the app's too: it goes once.
	write(t, conf, map[string]string{"settings.ini": "[db]\nname = one\n", "same.txt": "shared"})
	p := prepare(t, Options{AppDir: dir, Location: "site.test", ConfigDir: conf})
	res, up, err := Update(ctx, node, p, UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if up.Blobs != 4 || res.Blobs != 4 {
		t.Errorf("blobs sent %d, received %d; want app.ini, index.html, shared and settings.ini once each", up.Blobs, res.Blobs)
	}
	sameFiles(t, n, conf, n.Layout.ConfigDir("site"))
	sameFiles(t, n, dir, n.Layout.InstanceDir(res.Instance))
}

// TestUpdate_OtherAgentRefuses: an agent that is not the client's refuses
// the operation before reading its input, and nothing changes.
func TestUpdate_OtherAgentRefuses(t *testing.T) {
	_, node := setUpNode(t)
	node.Fingerprint = strings.Repeat("e", 64)
	dir := app(t, "[production]\napp_name = site\n", map[string]string{"static/index.html": "one"})
	_, _, err := Update(context.Background(), node, prepare(t, Options{AppDir: dir, Location: "site.test"}), UpdateOptions{})
	var oe *remote.OpError
	if !errors.As(err, &oe) || oe.Err.Code != protocol.CodeAgentDiffers {
		t.Fatalf("update through another agent: %v", err)
	}
	var q protocol.QueryResult
	if err := node.Call(context.Background(), protocol.OpQuery, protocol.QueryArgs{}, &q, remote.CallOptions{}); err != nil || len(q.Routes) != 0 {
		t.Errorf("after the refusal: %+v, %v", q.Routes, err)
	}
}
