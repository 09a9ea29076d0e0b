package agent

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/agenttest"
	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/instance"
	"github.com/toppcloud/toppcloud/internal/agent/router"
	"github.com/toppcloud/toppcloud/internal/deploy"
	"github.com/toppcloud/toppcloud/internal/deploy/manifest"
	"github.com/toppcloud/toppcloud/internal/location"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/protocol/wire"
	"github.com/toppcloud/toppcloud/internal/remote"
)

// testNode is a simulated node with the real agent on it.
type testNode struct {
	*agenttest.Node
	agent *Agent
}

func newFakeNode(t *testing.T) *testNode {
	n := agenttest.NewNode(t)
	return &testNode{Node: n, agent: &Agent{Host: n.Host, Layout: n.Layout, Fingerprint: n.Fingerprint, Admin: n.Admin, Setup: n.SetupHooks()}}
}

// setUpNode is a fake node after setup-node.
func setUpNode(t *testing.T) *testNode {
	t.Helper()
	n := newFakeNode(t)
	if cr := agenttest.Run(t, n.agent, protocol.OpSetup, agenttest.Request(protocol.OpSetup), agenttest.SetupArgs(t), nil); cr.Err != nil || !cr.Res.OK {
		t.Fatalf("setup: %v %+v", cr.Err, cr.Res)
	}
	return n
}

// writeApp writes files (path -> content) into a new directory.
func writeApp(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func staticApp(t *testing.T, app, body string) string {
	return writeApp(t, map[string]string{
		"app.ini":           "[production]\napp_name = " + app + "\n",
		"static/index.html": body,
	})
}

// ok fails the test unless the operation succeeded, and decodes its data.
func ok(t *testing.T, cr agenttest.Result, out any) {
	t.Helper()
	if cr.Err != nil || cr.Res == nil || !cr.Res.OK {
		var msg string
		if cr.Res != nil && cr.Res.Error != nil {
			msg = cr.Res.Error.Message + " " + strings.Join(cr.Res.Error.Tail, "\n")
		}
		t.Fatalf("operation failed: %v %s (logs %+v)", cr.Err, msg, cr.Logs)
	}
	if out != nil {
		if err := json.Unmarshal(cr.Res.Data, out); err != nil {
			t.Fatal(err)
		}
	}
}

// failed returns the error of an operation that must fail.
func failed(t *testing.T, cr agenttest.Result) *protocol.Error {
	t.Helper()
	if cr.Err != nil || cr.Res == nil || cr.Res.OK || cr.Res.Error == nil {
		t.Fatalf("operation did not fail: %v %+v", cr.Err, cr.Res)
	}
	return cr.Res.Error
}

// plan is an update of dir as app at loc, as deploy.Prepare makes one but
// without the client's local checks, so a test can send the node what a
// client would refuse (the node checks again).
func plan(t *testing.T, app, loc, dir string) *deploy.Plan {
	t.Helper()
	m, _, err := manifest.Build(context.Background(), dir, manifest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &deploy.Plan{Dir: dir, App: app, Location: mustLoc(t, loc), Manifest: m}
}

// withConfig makes p upload dir as the app's --config directory.
func withConfig(t *testing.T, p *deploy.Plan, dir string) *deploy.Plan {
	t.Helper()
	m, _, err := manifest.Build(context.Background(), dir, manifest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p.ConfigDir, p.ConfigManifest = dir, m
	return p
}

// updateRun is what one update sent back.
type updateRun struct {
	res    *protocol.UpdateResult
	err    error
	events []protocol.Event
	logs   []protocol.Log
}

// tryUpdate runs p with the client's own code, deploy.Update (the one
// request, its upload and blob stream), against the agent over pipes.
func (n *testNode) tryUpdate(t *testing.T, p *deploy.Plan) updateRun {
	t.Helper()
	l := &agenttest.Loopback{Agent: n.agent, LocalUser: "alice@laptop", Fingerprint: agenttest.FP}
	var u updateRun
	u.res, _, u.err = deploy.Update(context.Background(), l, p, deploy.UpdateOptions{Events: remote.CallOptions{
		Event: func(e protocol.Event) { u.events = append(u.events, e) },
		Log:   func(l protocol.Log) { u.logs = append(u.logs, l) },
	}})
	return u
}

// update runs p (see tryUpdate), which must succeed.
func (n *testNode) update(t *testing.T, p *deploy.Plan) protocol.DeployResult {
	t.Helper()
	u := n.tryUpdate(t, p)
	if u.err != nil {
		t.Fatalf("update: %v (logs %+v)", u.err, u.logs)
	}
	return u.res.DeployResult
}

// refused returns the node's reason for an update that must fail.
func (u updateRun) refused(t *testing.T) *protocol.Error {
	t.Helper()
	var pe *protocol.Error
	if !errors.As(u.err, &pe) {
		t.Fatalf("update did not fail on the node: %v %+v", u.err, u.res)
	}
	return pe
}

func (n *testNode) table(t *testing.T) *router.Table {
	t.Helper()
	tb, problems, err := router.LoadTable(n.Host.Path(n.Layout.Routes))
	if err != nil || len(problems) > 0 {
		t.Fatal(err, problems)
	}
	return tb
}

// slotOf returns where the single slot of the node leads.
func (n *testNode) slots(t *testing.T) map[string]string {
	t.Helper()
	l := n.Layout
	entries, err := os.ReadDir(n.Host.Path(l.Slots))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		target, err := os.Readlink(n.Host.Path(path.Join(l.Slots, e.Name())))
		if err != nil {
			t.Fatalf("slot %s is not a symlink: %v", e.Name(), err)
		}
		out[e.Name()] = target
	}
	return out
}

// TestDeploy_StaticSite walks a static site through everything that needs
// no process: first deploy (config reload), redeploy (a slot switch, no
// reload), an unchanged update, activate by prev and by release number,
// query, disable, deactivate and clean.
func TestDeploy_StaticSite(t *testing.T) {
	n := setUpNode(t)
	l := n.Layout
	loads, frontLoads := n.State().RouterLoads, n.State().Loads

	v1 := n.update(t, plan(t, "site", "site.test", staticApp(t, "site", "one")))
	if v1.Instance == "" || v1.Prev != "" || v1.Release != 1 || !v1.Reloaded {
		t.Fatalf("first deploy: %+v", v1)
	}
	if n.State().RouterLoads != loads+1 || n.State().Loads != frontLoads {
		t.Errorf("first deploy: %d router config loads (want 1), %d front server loads (want none)", n.State().RouterLoads-loads, n.State().Loads-frontLoads)
	}
	loc, _ := location.Parse("site.test")
	slot := SlotName(loc, "static")
	if got := n.slots(t); len(got) != 1 || got[slot] != l.LinksDir(v1.Instance) {
		t.Errorf("slots after the first deploy: %v, want %s -> %s", got, slot, l.LinksDir(v1.Instance))
	}
	if b, err := os.ReadFile(n.Host.Path(path.Join(l.LinksDir(v1.Instance), instance.LinkWWW, "static", "index.html"))); err == nil {
		t.Errorf("the www link resolves inside the test root (%q): its target must be the node path", b)
	}
	if target, _ := os.Readlink(n.Host.Path(path.Join(l.LinksDir(v1.Instance), instance.LinkWWW))); target != "/var/www/"+v1.Instance {
		t.Errorf("www link -> %q", target)
	}
	cfg := n.State().RouterConfig
	if !strings.Contains(cfg, path.Join(l.Slots, slot, "www", "static")) || strings.Contains(cfg, v1.Instance) {
		t.Errorf("the config must serve through the slot and name no instance:\n%s", cfg)
	}

	loads = n.State().RouterLoads
	v2 := n.update(t, plan(t, "site", "site.test", staticApp(t, "site", "two")))
	if v2.Instance == v1.Instance || v2.Prev != v1.Instance || v2.Release != 2 {
		t.Fatalf("redeploy: %+v", v2)
	}
	// Once: prev.site.test, not found until now, gets its instance (and
	// a slot of its own). Later deploys and activates switch slots only.
	if n.State().RouterLoads != loads+1 || !strings.Contains(n.State().RouterConfig, `prev\\.site\\.test`) {
		t.Errorf("the first redeploy: %d router loads, want 1 (prev.site.test's route)", n.State().RouterLoads-loads)
	}
	if got := n.slots(t); got[slot] != l.LinksDir(v2.Instance) {
		t.Errorf("slot after the redeploy -> %s, want %s", got[slot], l.LinksDir(v2.Instance))
	}
	if rt, _ := n.table(t).Lookup(loc); rt.Live != v2.Instance || rt.Prev != v1.Instance {
		t.Errorf("route %+v", rt)
	}

	// The same files again: nothing happens.
	same := n.update(t, plan(t, "site", "site.test", staticApp(t, "site", "two")))
	if !same.Unchanged || same.Instance != v2.Instance {
		t.Errorf("unchanged update: %+v", same)
	}
	dirs := wwwEntries(t, n.Host.Path(l.WWW))
	if len(dirs) != 2 {
		t.Errorf("an unchanged update made an instance: %v", dirs)
	}

	var ar protocol.ActivateResult
	ok(t, agenttest.Run(t, n.agent, protocol.OpActivate, agenttest.Request(protocol.OpActivate), protocol.ActivateArgs{Location: "site.test", Target: "prev"}, nil), &ar)
	if ar.Instance != v1.Instance || ar.Prev != v2.Instance || ar.Reloaded || ar.Release != 3 || n.slots(t)[slot] != l.LinksDir(v1.Instance) {
		t.Errorf("activate prev: %+v, slot %s", ar, n.slots(t)[slot])
	}
	ok(t, agenttest.Run(t, n.agent, protocol.OpActivate, agenttest.Request(protocol.OpActivate), protocol.ActivateArgs{Location: "site.test", Target: "2"}, nil), &ar)
	if ar.Instance != v2.Instance || n.slots(t)[slot] != l.LinksDir(v2.Instance) {
		t.Errorf("activate 2: %+v", ar)
	}
	for _, target := range []string{"99", "site.1999-01-01_001", "other.2024-01-01_001", "../../etc"} {
		e := failed(t, agenttest.Run(t, n.agent, protocol.OpActivate, agenttest.Request(protocol.OpActivate), protocol.ActivateArgs{Location: "site.test", Target: target}, nil))
		if e.Code != protocol.CodeNotFound && e.Code != protocol.CodeBadRequest {
			t.Errorf("activate %s: %+v", target, e)
		}
	}

	var q protocol.QueryResult
	ok(t, agenttest.Run(t, n.agent, protocol.OpQuery, agenttest.Request(protocol.OpQuery), protocol.QueryArgs{}, nil), &q)
	if len(q.Apps) != 1 || len(q.Apps[0].Instances) != 2 || len(q.Apps[0].Releases) != 4 {
		t.Fatalf("query: %+v", q)
	}
	for _, in := range q.Apps[0].Instances {
		want := map[string]string{v1.Instance: "prev", v2.Instance: "live"}[in.Name]
		if (want == "live") != (len(in.Live) == 1) || (want == "prev") != (len(in.Prev) == 1) || in.State != "static" {
			t.Errorf("query instance %+v, want %s", in, want)
		}
	}
	ok(t, agenttest.Run(t, n.agent, protocol.OpQuery, agenttest.Request(protocol.OpQuery), protocol.QueryArgs{Patterns: []string{"nomatch*"}}, nil), &q)
	if len(q.Apps) != 0 {
		t.Errorf("query nomatch*: %+v", q.Apps)
	}

	loads = n.State().RouterLoads
	var dr protocol.DisableResult
	ok(t, agenttest.Run(t, n.agent, protocol.OpDisable, agenttest.Request(protocol.OpDisable), protocol.DisableArgs{Location: "site.test"}, nil), &dr)
	if !dr.Changed || dr.App != "site" || n.State().RouterLoads != loads+1 || !strings.Contains(n.State().RouterConfig, "app site is disabled") {
		t.Errorf("disable by location: %+v, %d loads", dr, n.State().RouterLoads-loads)
	}
	ok(t, agenttest.Run(t, n.agent, protocol.OpDisable, agenttest.Request(protocol.OpDisable), protocol.DisableArgs{App: "site"}, nil), &dr)
	if dr.Changed {
		t.Error("disabling twice changed something")
	}
	ok(t, agenttest.Run(t, n.agent, protocol.OpEnable, agenttest.Request(protocol.OpEnable), protocol.DisableArgs{App: "site"}, nil), &dr)
	if !dr.Changed || strings.Contains(n.State().RouterConfig, "is disabled") {
		t.Errorf("enable: %+v", dr)
	}

	var cr protocol.CleanResult
	ok(t, agenttest.Run(t, n.agent, protocol.OpClean, agenttest.Request(protocol.OpClean), protocol.CleanArgs{}, nil), &cr)
	if len(cr.Removed) != 0 || len(cr.Kept) != 2 {
		t.Errorf("clean with both instances in use: %+v", cr)
	}

	var dres protocol.DeactivateResult
	ok(t, agenttest.Run(t, n.agent, protocol.OpDeactivate, agenttest.Request(protocol.OpDeactivate), protocol.DeactivateArgs{Patterns: []string{"*.test"}}, nil), &dres)
	if len(dres.Removed) != 1 || dres.Removed[0].Live != v2.Instance || len(n.table(t).Routes) != 0 || len(n.slots(t)) != 0 {
		t.Errorf("deactivate: %+v, table %+v, slots %v", dres, n.table(t), n.slots(t))
	}
	ok(t, agenttest.Run(t, n.agent, protocol.OpClean, agenttest.Request(protocol.OpClean), protocol.CleanArgs{DryRun: true}, nil), &cr)
	if len(cr.Removed) != 2 {
		t.Errorf("clean -n: %+v", cr)
	}
	if dirs := wwwEntries(t, n.Host.Path(l.WWW)); len(dirs) != 2 {
		t.Error("clean -n removed something")
	}
	ok(t, agenttest.Run(t, n.agent, protocol.OpClean, agenttest.Request(protocol.OpClean), protocol.CleanArgs{}, nil), &cr)
	if dirs := wwwEntries(t, n.Host.Path(l.WWW)); len(dirs) != 0 || len(cr.Removed) != 2 || cr.Blobs == 0 {
		t.Errorf("clean left %v (result %+v)", dirs, cr)
	}
	if links, _ := os.ReadDir(n.Host.Path(l.Instances)); len(links) != 0 {
		t.Errorf("clean left links directories %v", links)
	}

	rs, _, err := n.agent.readReleases("site")
	if err != nil || len(rs) != 5 || rs[4].Action != ActionDeactivate || rs[0].LocalUser != "alice@laptop" || rs[0].Digest == "" {
		t.Errorf("releases: %+v %v", rs, err)
	}
}

// TestDeploy_LockedAppWaitsThenFails: a second operation on an app waits
// for the first, telling the client who holds it, and gives up after its
// lock wait.
func TestDeploy_LockedAppWaitsThenFails(t *testing.T) {
	n := setUpNode(t)
	p := plan(t, "site", "site.test", staticApp(t, "site", "x"))
	release, err := n.agent.Locks().Acquire(context.Background(), appLockName("site"), "update by bob@desk", time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Opts.LockTimeout = 300 * time.Millisecond
	start := time.Now()
	u := n.tryUpdate(t, p)
	e := u.refused(t)
	if e.Code != protocol.CodeLocked || !strings.Contains(e.Message, "update by bob@desk") || time.Since(start) < 300*time.Millisecond {
		t.Errorf("locked deploy: %+v after %s", e, time.Since(start))
	}
	if !slices.ContainsFunc(u.logs, func(l protocol.Log) bool { return strings.Contains(l.Text, "waiting for update by bob@desk") }) {
		t.Errorf("the client was not told it waits: %+v", u.logs)
	}
	release()
	// Once free, the same request goes through.
	p.Opts.LockTimeout = 0
	if res := n.update(t, p); res.Instance == "" {
		t.Error("no instance")
	}
}

// TestDeploy_SyncBeforeSwitch: an upload leaves its blobs marked
// unsynced (here an update's that waited at the app's lock in vain); the
// update makes them durable before the switch and clears
// the instance's unsynced flag; an instance whose record still has it (an
// update cut by a crash) cannot be activated.
func TestDeploy_SyncBeforeSwitch(t *testing.T) {
	n := setUpNode(t)
	l := n.Layout
	marks := func() int {
		des, err := os.ReadDir(n.Host.Path(path.Join(l.Blobs, "unsynced")))
		if err != nil {
			t.Fatal(err)
		}
		return len(des)
	}
	p1 := plan(t, "site", "site.test", staticApp(t, "site", "one"))
	release, err := n.agent.Locks().Acquire(context.Background(), appLockName("site"), "update by bob@desk", time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	p1.Opts.LockTimeout = 50 * time.Millisecond
	if e := n.tryUpdate(t, p1).refused(t); e.Code != protocol.CodeLocked {
		t.Fatalf("update of a locked app: %+v", e)
	}
	release()
	if marks() != 1 {
		t.Fatalf("after an upload: %d unsynced markers, want 1", marks())
	}
	p1.Opts.LockTimeout = 0
	v1 := n.update(t, p1)
	if marks() != 0 {
		t.Errorf("after the update: %d unsynced markers, want 0", marks())
	}
	rec, err := n.agent.instances().Record(v1.Instance)
	if err != nil || rec.Unsynced {
		t.Fatalf("record of the live instance: %+v %v", rec, err)
	}
	v2 := n.update(t, plan(t, "site", "site.test", staticApp(t, "site", "two")))

	// As a crash between assembling and syncing would leave v1's record.
	rec.Unsynced = true
	if err := n.agent.instances().SaveRecord(rec); err != nil {
		t.Fatal(err)
	}
	e := failed(t, agenttest.Run(t, n.agent, protocol.OpActivate, agenttest.Request(protocol.OpActivate), protocol.ActivateArgs{Location: "site.test", Target: "prev"}, nil))
	if e.Code != protocol.CodeBadRequest || !strings.Contains(e.Message, "did not finish") {
		t.Errorf("activate of an unsynced instance: %+v", e)
	}
	if rt, _ := n.table(t).Lookup(mustLoc(t, "site.test")); rt.Live != v2.Instance {
		t.Errorf("live after the refused activate: %s, want %s", rt.Live, v2.Instance)
	}
}

func mustLoc(t *testing.T, s string) location.Location {
	t.Helper()
	loc, err := location.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// TestDeploy_NodeChecksAppIni: whatever the client checked, the node
// refuses an app.ini that would run something outside the instance, and
// leaves nothing behind.
func TestDeploy_NodeChecksAppIni(t *testing.T) {
	n := setUpNode(t)
	for name, ini := range map[string]string{
		"runner outside": "[production]\napp_name = evil\nrunner = ../../bin/sh\n",
		"unknown runner": "[production]\napp_name = evil\nrunner = main.rb\n",
		"no app.ini":     "",
	} {
		files := map[string]string{"static/index.html": "x", "main.rb": "x"}
		if ini != "" {
			files["app.ini"] = ini
		}
		e := n.tryUpdate(t, plan(t, "evil", "evil.test", writeApp(t, files))).refused(t)
		if e.Code != protocol.CodeBadRequest {
			t.Errorf("%s: %+v", name, e)
		}
		if dirs := wwwEntries(t, n.Host.Path(n.Layout.WWW)); len(dirs) != 0 {
			t.Errorf("%s: left %v in /var/www", name, dirs)
		}
		if len(n.table(t).Routes) != 0 {
			t.Errorf("%s: a route was made", name)
		}
	}
	// Names and locations are checked before anything happens.
	for _, args := range []protocol.UpdateArgs{
		{App: "../x", Location: "a.test"},
		{App: "Bad.Name", Location: "a.test"},
		{App: "ok", Location: "a.test/../b"},
		{App: "ok", Location: "http://user@a.test/"},
	} {
		if e := failed(t, agenttest.Run(t, n.agent, protocol.OpUpdate, agenttest.Request(protocol.OpUpdate), args, nil)); e.Code != protocol.CodeBadRequest {
			t.Errorf("%+v: %+v", args, e)
		}
	}
	// An upload that never came.
	gone := protocol.DeployArgs{App: "ok", Location: "a.test", Digest: wire.Hash{1}, SkipUnchanged: true}
	e := failed(t, agenttest.Run(t, n.agent, protocol.OpDeploy, agenttest.Request(protocol.OpDeploy), gone, nil))
	if !strings.Contains(e.Message, "run update again") {
		t.Errorf("missing upload: %+v", e)
	}
}

func TestSlotName(t *testing.T) {
	parse := func(s string) location.Location {
		l, err := location.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	a := SlotName(parse("example.com/blog"), "python")
	if a != SlotName(parse("http://Example.com/blog/"), "python") {
		t.Error("one location, two slot names")
	}
	seen := map[string]string{}
	for _, tc := range []struct{ loc, shape string }{
		{"example.com/blog", "python"}, {"example.com/blog", "php\x00\x00index.php"}, {"example.com/", "python"},
		{"example.com:8080/blog", "python"}, {".example.com/blog", "python"}, {"*/blog", "python"},
		{"example.com/blog/deeper/and/much/longer/than/forty/characters/in/all", "python"},
		{"[::1]/x", "static"}, {"https://example.com/blog", "python"},
	} {
		s := SlotName(parse(tc.loc), tc.shape)
		if prev, dup := seen[s]; dup && !strings.HasPrefix(tc.loc, "https://") {
			t.Errorf("%q and %q share slot %s", tc.loc, prev, s)
		}
		seen[s] = tc.loc
		if len(s) > slotReadable+1+slotHashLen || strings.ContainsAny(s, "/{}*: \x00") || strings.HasPrefix(s, ".") {
			t.Errorf("slot %q of %q is not a safe short file name", s, tc.loc)
		}
		if n := len("/var/lib/toppcloud/slots/" + s + "/sock"); n > 107 {
			t.Errorf("socket path through slot %q is %d bytes", s, n)
		}
	}
	// The scheme does not make another route, so not another slot.
	if SlotName(parse("https://example.com/blog"), "python") != a {
		t.Error("https and http of one mount differ")
	}
}

func TestReleases(t *testing.T) {
	data := []byte(`{"number":1,"action":"update","instance":"a.1","locations":["a.test/"],"time":"2024-01-01T00:00:00Z","version":"v1"}
not json
{"number":2,"action":"deactivate","instance":"a.1","locations":["a.test/"],"time":"2024-01-02T00:00:00Z","version":"v1"}

{"number":0,"action":"update"}
{"number":3,"action":"activate","instance":"a.2","locations":["a.test/"],"time":"2024-01-03T00:00:00Z","version":"v1"}
{"number":1,"action":"update","instance":"a.9","locations":["a.test/"],"time":"2024-01-04T00:00:00Z","version":"v1"}
`)
	rs, problems := ParseReleases(data)
	if len(rs) != 4 || len(problems) != 2 || !strings.Contains(problems[0].Error(), "line 2") {
		t.Fatalf("parsed %d, problems %v", len(rs), problems)
	}
	if NextRelease(rs) != 4 || NextRelease(nil) != 1 {
		t.Errorf("next = %d", NextRelease(rs))
	}
	// A duplicate number (a log edited by hand): the last one wins.
	if r, ok := FindRelease(rs, 1); !ok || r.Instance != "a.9" {
		t.Errorf("find 1: %+v", r)
	}
	for _, tc := range []struct {
		target, want string
		number       bool
		fails        bool
	}{
		{"3", "a.2", true, false},
		{"2", "", true, true}, // a deactivate made nothing live
		{"7", "", true, true},
		{"a.2", "", false, false},
		{"0", "", false, false},
		{"-1", "", false, false},
	} {
		got, number, err := resolveRelease(rs, tc.target)
		if got != tc.want || number != tc.number || (err != nil) != tc.fails {
			t.Errorf("resolve %q = %q %v %v", tc.target, got, number, err)
		}
	}
}

func TestAppendRelease_Numbers(t *testing.T) {
	n := newFakeNode(t)
	for i := 1; i <= 3; i++ {
		r, err := n.agent.appendRelease("blog", protocol.Release{Action: ActionUpdate, Instance: "blog.x", Version: "v"})
		if err != nil || r.Number != i {
			t.Fatalf("append %d: %+v %v", i, r, err)
		}
	}
	b, _ := n.Host.ReadFile(n.agent.releasesPath("blog"))
	if strings.Count(string(b), "\n") != 3 {
		t.Errorf("log:\n%s", b)
	}
}

// TestDeploy_ConfigUpload: --config replaces the app's config directory
// (kept across updates without --config), an app that requires one and
// never had one is refused before any upload, and an unchanged update
// with another config is not skipped.
func TestDeploy_ConfigUpload(t *testing.T) {
	n := setUpNode(t)
	l := n.Layout
	configDir := path.Join(l.Apps, "site", "config")

	app := staticApp(t, "site", "x")
	// config.required, none uploaded ever: refused before the upload.
	needs := plan(t, "site", "site.test", app)
	needs.NeedConfig = true
	u := n.tryUpdate(t, needs)
	if e := u.refused(t); e.Code != protocol.CodeConfigRequired || !strings.Contains(e.Message, "--config") {
		t.Errorf("config required: %+v", e)
	}
	if kept, _ := os.ReadDir(n.Host.Path(path.Join(l.Blobs, "manifests"))); len(kept) != 0 {
		t.Errorf("the refused update kept manifests %v", kept)
	}

	cfg1 := writeApp(t, map[string]string{"settings.ini": "[db]\nname = one\n"})
	p1 := withConfig(t, plan(t, "site", "site.test", app), cfg1)
	c1, err := p1.ConfigManifest.Digest()
	if err != nil {
		t.Fatal(err)
	}
	r1 := n.update(t, p1)
	if got := n.ReadFile(path.Join(configDir, "settings.ini")); got != "[db]\nname = one\n" {
		t.Errorf("config = %q", got)
	}
	if got := strings.TrimSpace(n.ReadFile(path.Join(l.Apps, "site", configDigestFile))); got != c1.String() {
		t.Errorf("config digest = %q", got)
	}

	// An update without --config keeps it, and is unchanged.
	if r := n.update(t, plan(t, "site", "site.test", app)); !r.Unchanged || r.Instance != r1.Instance {
		t.Errorf("update without --config: %+v", r)
	}
	// With another config, a new instance.
	p2 := withConfig(t, plan(t, "site", "site.test", app), writeApp(t, map[string]string{"settings.ini": "[db]\nname = two\n"}))
	if r := n.update(t, p2); r.Unchanged || r.Instance == r1.Instance {
		t.Errorf("update with a new config: %+v", r)
	}
	if got := n.ReadFile(path.Join(configDir, "settings.ini")); got != "[db]\nname = two\n" {
		t.Errorf("config after the second upload = %q", got)
	}
	entries, _ := os.ReadDir(n.Host.Path(path.Join(l.Apps, "site")))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "config.") && e.Name() != configDigestFile {
			t.Errorf("left over: %s", e.Name())
		}
	}
	// Now that one was uploaded, config.required is satisfied.
	n.update(t, needs)
}

func TestDeploy_InstallsPackages(t *testing.T) {
	n := setUpNode(t)
	app := writeApp(t, map[string]string{
		"app.ini":           "[production]\napp_name = site\npackages = jq\n    libxml2-utils\n",
		"static/index.html": "x",
	})
	n.update(t, plan(t, "site", "site.test", app))
	if st := n.State(); st.Installed["jq"] == "" || st.Installed["libxml2-utils"] == "" {
		t.Error("the app's packages were not installed")
	}
	p := plan(t, "site", "site.test", app)
	p.Opts.Force = true
	u := n.tryUpdate(t, p)
	if u.err != nil {
		t.Fatal(u.err)
	}
	if !slices.ContainsFunc(u.events, func(e protocol.Event) bool {
		return e.Step == StepPackages && e.Status == protocol.StepDone && e.Detail == "all 2 present"
	}) {
		t.Errorf("second deploy: packages step %+v", u.events)
	}
}

// TestRestore puts a slot back where the route table says after
// something pointed it elsewhere.
func TestRestore(t *testing.T) {
	n := setUpNode(t)
	l := n.Layout
	v1 := n.update(t, plan(t, "site", "site.test", staticApp(t, "site", "one")))
	v2 := n.update(t, plan(t, "site", "site.test", staticApp(t, "site", "two")))
	loc, _ := location.Parse("site.test")
	slot := SlotName(loc, "static")
	if err := n.agent.pointSlot(slot, v1.Instance); err != nil {
		t.Fatal(err)
	}
	var res protocol.RestoreResult
	ok(t, agenttest.Run(t, n.agent, protocol.OpRestore, agenttest.Request(protocol.OpRestore), nil, nil), &res)
	if n.slots(t)[slot] != l.LinksDir(v2.Instance) || len(res.Relinked) != 1 || res.Relinked[0] != slot || res.Reloaded {
		t.Errorf("restore: %+v, slot -> %s", res, n.slots(t)[slot])
	}
	ok(t, agenttest.Run(t, n.agent, protocol.OpRestore, agenttest.Request(protocol.OpRestore), nil, nil), &res)
	if len(res.Relinked) != 0 || len(res.Started) != 0 {
		t.Errorf("a second restore did something: %+v", res)
	}
}

// wwwEntries lists /var/www without the per-app ".APP.last" files, which
// record the last instance name issued and stay when instances go.
func wwwEntries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		if !strings.HasSuffix(de.Name(), ".last") {
			out = append(out, de.Name())
		}
	}
	return out
}

// TestDeploy_AppFilesPrivate: what a deploy leaves on the node is not
// every local user's to read. The --config upload (the app's secrets) is
// root's and the app's only, files copied rather than linked to shared
// blobs; the instance directory is root's, the app's and Caddy's; the
// app's secret is its own, derived from the node's, which stays root's.
func TestDeploy_AppFilesPrivate(t *testing.T) {
	n := setUpNode(t)
	l := n.Layout
	r := n.update(t, withConfig(t, plan(t, "site", "site.test", staticApp(t, "site", "x")),
		writeApp(t, map[string]string{"secrets.ini": "[db]\npassword = hunter2\n", "sub/key.pem": "KEY\n"})))

	attr := func(p string) host.Attr {
		t.Helper()
		a, _, err := n.Host.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	config := l.ConfigDir("site")
	for p, want := range map[string]host.Attr{
		config:                                        {Mode: 0o750, Group: "app-site"},
		path.Join(config, "secrets.ini"):              {Mode: 0o640, Group: "app-site"},
		path.Join(config, "sub"):                      {Mode: 0o750, Group: "app-site"},
		path.Join(config, "sub", "key.pem"):           {Mode: 0o640, Group: "app-site"},
		path.Join(l.AppDir("site"), configDigestFile): {Mode: 0o600},
		l.InstanceDir(r.Instance):                     {Mode: 0o750, Group: "app-site"},
		l.AppSecret("site"):                           {Mode: 0o440, Group: "app-site"},
		l.Secret:                                      {Mode: 0o600},
	} {
		if got := attr(p); !got.Equal(want) {
			t.Errorf("%s is %s, want %s", p, got, want)
		}
	}
	caddy, _, _ := n.Host.LookupGroup("caddy")
	if !host.GroupReadGranted(n.Host.Path(l.InstanceDir(r.Instance)), caddy.GID) {
		t.Error("Caddy's group may not read the instance directory")
	}
	if fi, err := os.Stat(n.Host.Path(path.Join(config, "secrets.ini"))); err != nil || fi.Sys().(*syscall.Stat_t).Nlink != 1 {
		t.Errorf("secrets.ini shares its inode: %v", err)
	}
	if got, want := n.ReadFile(l.AppSecret("site")), instance.AppSecret([]byte(n.ReadFile(l.Secret)), "site"); got != want || strings.Contains(got, n.ReadFile(l.Secret)) {
		t.Errorf("app secret %q, want %q", got, want)
	}
	// logrotate works in the app's log directory as the app, by size,
	// hourly; the node-wide rule no longer covers apps' logs as root.
	if rule := n.ReadFile(l.AppLogrotate("site")); !strings.Contains(rule, l.AppLogDir("site")+"/*.log {\n\tsu app-site app-site\n\tsize 50M\n") {
		t.Errorf("logrotate rule of site:\n%s", rule)
	}
	if rule := n.ReadFile(l.Logrotate); strings.Contains(rule, l.AppLogs) {
		t.Errorf("the node's logrotate rule covers apps' logs as root:\n%s", rule)
	}
	if timer := n.ReadFile(l.LogrotateTimer); !strings.Contains(timer, "OnCalendar=hourly") {
		t.Errorf("logrotate timer drop-in:\n%s", timer)
	}
}
