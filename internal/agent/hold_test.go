package agent

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/agenttest"
	"github.com/toppcloud/toppcloud/internal/deploy"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/remote"
)

// heldUpdate runs p as a held update (deploy.Update with Hold) whose
// Held calls decide; it records the steps' events.
func (n *testNode) heldUpdate(t *testing.T, p *deploy.Plan, o deploy.UpdateOptions, decide func(inst string) bool) updateRun {
	t.Helper()
	l := &agenttest.Loopback{Agent: n.agent, LocalUser: "alice@laptop", Fingerprint: agenttest.FP}
	var u updateRun
	o.Hold, o.Held = true, decide
	o.Events = remote.CallOptions{
		Event: func(e protocol.Event) { u.events = append(u.events, e) },
		Log:   func(l protocol.Log) { u.logs = append(u.logs, l) },
	}
	u.res, _, u.err = deploy.Update(context.Background(), l, p, o)
	return u
}

// status is the last status of step in u's events, "" if it never ran.
func (u updateRun) status(step string) string {
	s := ""
	for _, e := range u.events {
		if e.Step == step {
			s = e.Status
		}
	}
	return s
}

func (n *testNode) live(t *testing.T, loc string) string {
	t.Helper()
	rt, _ := n.table(t).Lookup(mustLoc(t, loc))
	return rt.Live
}

func (n *testNode) exists(t *testing.T, inst string) bool {
	t.Helper()
	ok, err := n.Host.Exists(n.Layout.InstanceDir(inst))
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestUpdate_HoldCommit: a held update stops short of the switch with
// the new instance made and the old one serving, and switches once the
// client commits.
func TestUpdate_HoldCommit(t *testing.T) {
	n := setUpNode(t)
	v1 := n.update(t, plan(t, "site", "site.test", staticApp(t, "site", "one")))
	var held []string
	u := n.heldUpdate(t, plan(t, "site", "site.test", staticApp(t, "site", "two")), deploy.UpdateOptions{}, func(inst string) bool {
		held = append(held, inst)
		if live := n.live(t, "site.test"); live != v1.Instance {
			t.Errorf("while held, %s serves; want %s", live, v1.Instance)
		}
		if !n.exists(t, inst) {
			t.Errorf("while held, the new instance %s does not exist", inst)
		}
		return true
	})
	if u.err != nil {
		t.Fatalf("held update: %v (logs %+v)", u.err, u.logs)
	}
	if len(held) != 1 || held[0] != u.res.Instance || u.res.Instance == v1.Instance || u.res.Prev != v1.Instance {
		t.Fatalf("held %v, result %+v", held, u.res.DeployResult)
	}
	if live := n.live(t, "site.test"); live != u.res.Instance {
		t.Errorf("after the commit %s serves, want %s", live, u.res.Instance)
	}
	if u.status(StepHold) != protocol.StepDone || u.status(StepSwitch) != protocol.StepDone {
		t.Errorf("hold %q, switch %q", u.status(StepHold), u.status(StepSwitch))
	}
	// An update not held has no hold step.
	v3 := n.tryUpdate(t, plan(t, "site", "site.test", staticApp(t, "site", "three")))
	if v3.err != nil || v3.status(StepHold) != "" {
		t.Errorf("update without hold: %v, hold step %q", v3.err, v3.status(StepHold))
	}
}

// TestUpdate_HoldAbort: anything but a commit removes the new instance
// and leaves the live one serving, with CodeAborted; on a first update,
// no route is made.
func TestUpdate_HoldAbort(t *testing.T) {
	n := setUpNode(t)
	var first string
	u := n.heldUpdate(t, plan(t, "site", "site.test", staticApp(t, "site", "one")), deploy.UpdateOptions{}, func(inst string) bool {
		first = inst
		return false
	})
	if pe := u.refused(t); pe.Code != protocol.CodeAborted {
		t.Fatalf("aborted first update: %+v", pe)
	}
	if n.live(t, "site.test") != "" || first == "" || n.exists(t, first) {
		t.Fatalf("after an aborted first update: live %q, %s exists %v", n.live(t, "site.test"), first, n.exists(t, first))
	}

	v1 := n.update(t, plan(t, "site", "site.test", staticApp(t, "site", "one")))
	var second string
	u = n.heldUpdate(t, plan(t, "site", "site.test", staticApp(t, "site", "two")), deploy.UpdateOptions{}, func(inst string) bool {
		second = inst
		return false
	})
	pe := u.refused(t)
	if pe.Code != protocol.CodeAborted || !strings.Contains(pe.Message, second+" is removed") {
		t.Fatalf("aborted update: %+v", pe)
	}
	if live := n.live(t, "site.test"); live != v1.Instance || n.exists(t, second) || !n.exists(t, v1.Instance) {
		t.Errorf("after the abort: %s serves (want %s), %s exists %v", live, v1.Instance, second, n.exists(t, second))
	}
	if u.status(StepHold) != protocol.StepFailed || u.status(StepSwitch) != "" {
		t.Errorf("hold %q, switch %q", u.status(StepHold), u.status(StepSwitch))
	}
	// The next update is not disturbed by the one aborted.
	if v2 := n.update(t, plan(t, "site", "site.test", staticApp(t, "site", "two"))); v2.Prev != v1.Instance {
		t.Errorf("update after the abort: %+v", v2)
	}
}

// TestUpdate_HoldUnchanged: an update with nothing to do holds all the
// same, naming the live instance; a commit answers unchanged, an abort
// fails and leaves it serving.
func TestUpdate_HoldUnchanged(t *testing.T) {
	n := setUpNode(t)
	dir := staticApp(t, "site", "one")
	v1 := n.update(t, plan(t, "site", "site.test", dir))
	for _, commit := range []bool{true, false} {
		var held []string
		u := n.heldUpdate(t, plan(t, "site", "site.test", dir), deploy.UpdateOptions{}, func(inst string) bool {
			held = append(held, inst)
			return commit
		})
		if len(held) != 1 || held[0] != v1.Instance {
			t.Fatalf("commit %v: held %v, want [%s]", commit, held, v1.Instance)
		}
		if commit {
			if u.err != nil || !u.res.Unchanged || u.res.Instance != v1.Instance {
				t.Fatalf("committed unchanged update: %+v, %v", u.res, u.err)
			}
		} else if pe := u.refused(t); pe.Code != protocol.CodeAborted {
			t.Fatalf("aborted unchanged update: %+v", pe)
		}
		if live := n.live(t, "site.test"); live != v1.Instance || !n.exists(t, v1.Instance) {
			t.Errorf("commit %v: %s serves, want %s", commit, live, v1.Instance)
		}
	}
}

// TestUpdate_SkipFetch: SkipFetch skips the app's update_fetch (a site
// runs it on one node); without it, the step runs.
func TestUpdate_SkipFetch(t *testing.T) {
	n := setUpNode(t)
	files := map[string]string{
		"app.ini":           "[production]\napp_name = site\nupdate_fetch = /setup\n",
		"static/index.html": "one",
	}
	for _, skip := range []bool{false, true} {
		files["static/index.html"] += "+"
		u := n.heldUpdate(t, plan(t, "site", "site.test", writeApp(t, files)), deploy.UpdateOptions{SkipFetch: skip}, func(string) bool { return true })
		if u.err != nil {
			t.Fatalf("skip %v: %v", skip, u.err)
		}
		want := protocol.StepDone
		if skip {
			want = protocol.StepSkipped
		}
		if got := u.status(StepUpdateFetch); got != want {
			t.Errorf("skip %v: update_fetch %q, want %q", skip, got, want)
		}
	}
}

// TestReadHoldDecision: one line, and nothing after it, is read; the end
// of the input, a bad line, a cancelled context or the time running out
// are no commit.
func TestReadHoldDecision(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		commit   bool
		err      string
	}{
		{"commit", `{"commit":true}` + "\nafter", true, ""},
		{"abort", `{"commit":false}` + "\n", false, ""},
		{"empty object", "{}\n", false, ""},
		{"eof", "", false, "ended without a decision"},
		{"no newline", `{"commit":true}`, false, "ended without a decision"},
		{"not json", "yes\n", false, "decode"},
		{"too long", strings.Repeat(" ", maxHoldLine+1) + "\n", false, "longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := strings.NewReader(tc.in)
			dec, err := readHoldDecision(context.Background(), r, time.Minute)
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) || dec.Commit != tc.commit {
				t.Fatalf("got %+v, %v; want commit %v, error %q", dec, err, tc.commit, tc.err)
			}
			if tc.name == "commit" {
				if rest, _ := io.ReadAll(r); string(rest) != "after" {
					t.Errorf("left %q after the line, want %q", rest, "after")
				}
			}
		})
	}
	pr, pw := io.Pipe()
	defer pw.Close()
	if _, err := readHoldDecision(context.Background(), pr, 20*time.Millisecond); err == nil || !strings.Contains(err.Error(), "no decision within") {
		t.Errorf("silent input: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := readHoldDecision(ctx, pr, time.Minute); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
