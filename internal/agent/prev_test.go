package agent

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

// TestStartPrevSync: the transient unit runs the agent's prev-sync for
// the app, without systemd-run waiting for it.
func TestStartPrevSync(t *testing.T) {
	n := setUpNode(t)
	var got []string
	n.Runner.Handle("systemd-run", func(c host.Command) (string, error) {
		got = c.Argv
		return "", nil
	})
	if err := n.agent.startPrevSync(context.Background(), "blog"); err != nil {
		t.Fatal(err)
	}
	tail := []string{protocol.AgentPath, "node", protocol.OpPrevSync, "blog"}
	if len(got) < len(tail) || !slices.Equal(got[len(got)-len(tail):], tail) {
		t.Fatalf("argv %q, want it to end in %q", got, tail)
	}
	for _, want := range []string{"--no-block", "--collect"} {
		if !slices.Contains(got, want) {
			t.Errorf("argv %q lacks %s", got, want)
		}
	}
	var unit string
	for _, a := range got {
		if u, ok := strings.CutPrefix(a, "--unit="); ok {
			unit = u
		}
	}
	if !strings.HasPrefix(unit, "toppcloud-prev-sync-blog-") || !strings.HasSuffix(unit, ".service") {
		t.Errorf("unit %q", unit)
	}
}

// TestPrevSync_StaticNeedsNoUnit: a static app's previous instance is
// only files, so its prev. host is set up during the update, with no
// transient unit.
func TestPrevSync_StaticNeedsNoUnit(t *testing.T) {
	n := setUpNode(t)
	n.Runner.Handle("systemd-run", func(c host.Command) (string, error) {
		t.Errorf("systemd-run %q for a static app", c.Argv)
		return "", nil
	})
	n.update(t, plan(t, "site", "site.test", staticApp(t, "site", "one")))
	v2 := n.update(t, plan(t, "site", "site.test", staticApp(t, "site", "two")))
	if v2.Prev == "" {
		t.Fatalf("redeploy kept no prev: %+v", v2)
	}
}

func TestPrevSyncMain(t *testing.T) {
	n := setUpNode(t)
	var out, errs bytes.Buffer
	if code := n.agent.Main(context.Background(), []string{protocol.OpPrevSync, "../x"}, nil, &out, &errs); code != protocol.ExitUsage {
		t.Errorf("a bad app name: exit %d, want %d (%s)", code, protocol.ExitUsage, errs.String())
	}
	out.Reset()
	errs.Reset()
	if code := n.agent.Main(context.Background(), []string{protocol.OpPrevSync, "blog"}, nil, &out, &errs); code != 0 || out.Len() != 0 {
		t.Errorf("an app with nothing to do: exit %d, output %q %q", code, out.String(), errs.String())
	}
}
