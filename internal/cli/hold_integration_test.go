package cli

import (
	"context"
	"errors"
	"testing"

	"github.com/toppcloud/toppcloud/internal/deploy"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/remote"
)

// oneNode is the deploy.Nodes of a test that knows one node.
type oneNode string

func (n oneNode) Known(name string) (bool, error) { return name == string(n), nil }

// TestIntegration_HeldUpdate: a held update (a site's rolling update, on
// one node) runs the new instance next to the live one, which serves
// until the commit; an abort removes it and leaves the live one serving;
// SkipFetch runs no update_fetch.
func TestIntegration_HeldUpdate(t *testing.T) {
	e := newLocalEnv(t)
	node, w, _ := e.setUpNode(t, "hold")
	ctx := context.Background()
	e.ok("update", copyApp(t, "python", nil), "py.test", "--node", node)
	w.expect("py.test", "/", 200, "Hello from toppcloud")
	live, _ := liveAt(e.query(node), "py.test")

	n, err := remote.Open(ctx, e.dial(e.record(node), protocol.DeployUser), remote.Options{Binary: remote.LocalBinary(e.agent)})
	if err != nil {
		t.Fatal(err)
	}
	p, err := deploy.Prepare(ctx, deploy.Options{AppDir: copyApp(t, "python", map[string]string{"static/held.txt": "the new version\n"}),
		Location: "py.test", Node: node, Compress: deploy.CompressZstd}, oneNode(node), "")
	if err != nil {
		t.Fatal(err)
	}
	whileHeld := func(inst string) {
		if inst == live {
			t.Errorf("held with the live instance %s", inst)
		}
		if got, _ := liveAt(e.query(node), "py.test"); got != live {
			t.Errorf("while held, %s is live, want %s", got, live)
		}
		// The app answers every path: the live instance names itself.
		w.expect("py.test", "/held.txt", 200, "instance "+live)
	}

	var aborted string
	_, _, err = deploy.Update(ctx, n, p, deploy.UpdateOptions{Hold: true, Held: func(inst string) bool {
		aborted = inst
		whileHeld(inst)
		return false
	}})
	var oe *remote.OpError
	if !errors.As(err, &oe) || oe.Err.Code != protocol.CodeAborted {
		t.Fatalf("aborted held update: %v", err)
	}
	if got, _ := liveAt(e.query(node), "py.test"); got != live {
		t.Errorf("after the abort %s is live, want %s", got, live)
	}
	w.expect("py.test", "/held.txt", 200, "instance "+live)
	for _, a := range e.query(node).Apps {
		for _, in := range a.Instances {
			if in.Name == aborted {
				t.Errorf("the aborted instance %s is still there: %+v", aborted, in)
			}
		}
	}

	fetch := ""
	res, _, err := deploy.Update(ctx, n, p, deploy.UpdateOptions{Hold: true, SkipFetch: true,
		Held: func(inst string) bool { whileHeld(inst); return true },
		Events: remote.CallOptions{Event: func(ev protocol.Event) {
			if ev.Step == "update_fetch" && ev.Status != protocol.StepStart {
				fetch = ev.Status
			}
		}}})
	if err != nil {
		t.Fatalf("committed held update: %v", err)
	}
	if res.Prev != live || fetch != protocol.StepSkipped {
		t.Errorf("committed: %+v, update_fetch %q", res.DeployResult, fetch)
	}
	w.expect("py.test", "/held.txt", 200, "the new version")
}
