package agent

import (
	"context"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/instance"
	"github.com/toppcloud/toppcloud/internal/agent/router"
	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

const jobsIni = "[production]\napp_name = blog\nrunner = app.py\n" +
	"cron.tick = * * * * * /cron/tick\ncron.clean = @daily script:bin/clean\n" +
	"worker.mailer = bin/mailer\nworker.mailer.replicas = 3\n"

// jobsInstance puts an instance of blog with jobs on the fake node, as
// an update leaves it.
func jobsInstance(t *testing.T, n *testNode, name string) {
	t.Helper()
	dir := n.Host.Path(n.Layout.InstanceDir(name))
	for p, c := range map[string]string{"app.ini": jobsIni, "app.py": "", "bin/clean": "#!/bin/sh\n", "bin/mailer": "#!/bin/sh\n"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.agent.instances().SaveRecord(&instance.Record{App: "blog", Instance: name, Kind: appconfig.KindPython, Runner: "app.py"}); err != nil {
		t.Fatal(err)
	}
}

func (n *testNode) jobFiles(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(n.Host.Path(n.Layout.Units))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".d") && (strings.HasPrefix(e.Name(), "toppcloud-worker@") || strings.HasPrefix(e.Name(), "toppcloud-cron@")) {
			out = append(out, strings.TrimSuffix(e.Name(), ".d"))
		}
	}
	return out
}

func TestSyncJobs(t *testing.T) {
	ctx := context.Background()
	n := setUpNode(t)
	a := n.agent
	v1, v2 := "blog.2024-01-02_001", "blog.2024-01-02_002"
	jobsInstance(t, n, v1)
	jobsInstance(t, n, v2)
	tb := &router.Table{}
	if _, err := tb.Set(mustLoc(t, "blog.test"), "blog", v1); err != nil {
		t.Fatal(err)
	}

	// One node of its own: every cron, one replica of the worker.
	detail, err := a.syncJobs(ctx, "blog", tb, v1, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"toppcloud-cron@blog:clean.service", "toppcloud-cron@blog:clean.timer",
		"toppcloud-cron@blog:tick.service", "toppcloud-cron@blog:tick.timer",
		"toppcloud-worker@" + v1 + ":mailer:1.service",
	}
	if got := n.jobFiles(t); !slices.Equal(got, want) {
		t.Errorf("units after the first sync: %q (detail %q)", got, detail)
	}
	if !strings.Contains(detail, "worker mailer started") || !strings.Contains(detail, "cron clean, tick added") {
		t.Errorf("detail %q", detail)
	}
	tick := n.ReadFile(path.Join(n.Layout.Units, "toppcloud-cron@blog:tick.service.d", "job.conf"))
	if !strings.Contains(tick, "--host blog.test "+v1+" /cron/tick") {
		t.Errorf("tick runs:\n%s", tick)
	}
	if !n.State().Active["toppcloud-worker@"+v1+":mailer:1.service"] || !n.State().Active["toppcloud-cron@blog:tick.timer"] {
		t.Error("worker or timer not started")
	}

	// Disabled: the crons stop, the worker runs on (as the web process does).
	if _, err := tb.Disable("blog"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.syncJobs(ctx, "blog", tb, "", nil); err != nil {
		t.Fatal(err)
	}
	if got := n.jobFiles(t); !slices.Equal(got, []string{"toppcloud-worker@" + v1 + ":mailer:1.service"}) {
		t.Errorf("units while disabled: %q", got)
	}
	tb.Enable("blog")

	// v2 goes live at another location: it runs the jobs now, v1's worker
	// stops though v1 stays live.
	if _, err := tb.Set(mustLoc(t, "new.blog.test"), "blog", v2); err != nil {
		t.Fatal(err)
	}
	detail, err = a.syncJobs(ctx, "blog", tb, v2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := n.WorkerUnitsOf(t, "blog"); !slices.Equal(got, []string{"toppcloud-worker@" + v2 + ":mailer:1.service"}) {
		t.Errorf("workers after v2: %q (detail %q)", got, detail)
	}
	if n.State().Active["toppcloud-worker@"+v1+":mailer:1.service"] {
		t.Error("v1's worker still runs")
	}
	if tick := n.ReadFile(path.Join(n.Layout.Units, "toppcloud-cron@blog:tick.service.d", "job.conf")); !strings.Contains(tick, "--host new.blog.test "+v2) {
		t.Errorf("tick after v2:\n%s", tick)
	}

	// A site gives this node two replicas and no crons.
	if _, err := a.syncJobs(ctx, "blog", tb, v2, &protocol.JobPlacement{Workers: map[string]int{"mailer": 2}}); err != nil {
		t.Fatal(err)
	}
	if got := n.jobFiles(t); !slices.Equal(got, []string{"toppcloud-worker@" + v2 + ":mailer:1.service", "toppcloud-worker@" + v2 + ":mailer:2.service"}) {
		t.Errorf("units with the site's placement: %q", got)
	}
	if _, err := a.syncJobs(ctx, "blog", tb, v2, &protocol.JobPlacement{Workers: map[string]int{"mailer": -1}}); err == nil {
		t.Error("a negative replica count was taken")
	}

	// Nothing live: nothing runs.
	tb.Remove([]router.Pattern{mustPattern(t, "*")}, false)
	if _, err := a.syncJobs(ctx, "blog", tb, "", nil); err != nil {
		t.Fatal(err)
	}
	if got := n.jobFiles(t); len(got) != 0 {
		t.Errorf("units with nothing live: %q", got)
	}
}

func mustPattern(t *testing.T, s string) router.Pattern {
	t.Helper()
	p, err := router.ParsePattern(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// WorkerUnitsOf lists the worker units on disk of app.
func (n *testNode) WorkerUnitsOf(t *testing.T, app string) []string {
	var out []string
	for _, wu := range n.agent.instances().WorkerUnits(app) {
		out = append(out, wu.Unit())
	}
	return out
}

func TestJobsOwner(t *testing.T) {
	n := setUpNode(t)
	a := n.agent
	v1, v2, v3 := "blog.2024-01-02_001", "blog.2024-01-02_002", "blog.2024-01-02_003"
	tb := &router.Table{}
	tb.Set(mustLoc(t, "a.test"), "blog", v1)
	tb.Set(mustLoc(t, "b.test"), "blog", v2)
	if got := a.jobsOwner("blog", tb, ""); got != v2 {
		t.Errorf("no releases: %s, want the newest live %s", got, v2)
	}
	for _, r := range []protocol.Release{
		{Action: ActionUpdate, Instance: v2}, {Action: ActionUpdate, Instance: v3}, {Action: ActionActivate, Instance: v1},
		{Action: ActionDeactivate, Instance: v2},
	} {
		r.Time = time.Now()
		if _, err := a.appendRelease("blog", r); err != nil {
			t.Fatal(err)
		}
	}
	if got := a.jobsOwner("blog", tb, ""); got != v1 {
		t.Errorf("after releases: %s, want %s (the latest made live)", got, v1)
	}
	if got := a.jobsOwner("blog", tb, v2); got != v2 {
		t.Errorf("prefer %s: %s", v2, got)
	}
	if got := a.jobsOwner("blog", tb, v3); got != v1 {
		t.Errorf("prefer %s, which is not live: %s", v3, got)
	}
	if got := a.jobsOwner("wiki", tb, ""); got != "" {
		t.Errorf("an app with nothing live: %q", got)
	}
}

func TestWorkersFor(t *testing.T) {
	cfg, err := appconfig.Parse("app.ini", []byte(jobsIni+"worker.other = bin/x\n"))
	if err != nil {
		t.Fatal(err)
	}
	names := func(ws []instance.Worker) (out []string) {
		for _, w := range ws {
			out = append(out, w.Name+":"+string(rune('0'+w.Replica)))
		}
		return out
	}
	// worker.mailer.replicas = 3 is for a site: a node of its own runs one.
	if got := names(workersFor(cfg, nil)); !slices.Equal(got, []string{"mailer:1", "other:1"}) {
		t.Errorf("default: %q", got)
	}
	if got := names(workersFor(cfg, &protocol.JobPlacement{Workers: map[string]int{"mailer": 2}})); !slices.Equal(got, []string{"mailer:1", "mailer:2"}) {
		t.Errorf("placed: %q", got)
	}
	if len(cronsFor(cfg, nil)) != 2 || len(cronsFor(cfg, &protocol.JobPlacement{})) != 0 || len(cronsFor(cfg, &protocol.JobPlacement{Crons: true})) != 2 {
		t.Error("cronsFor")
	}
}

func TestJobPlacement_Kept(t *testing.T) {
	n := setUpNode(t)
	a := n.agent
	if p, err := a.jobPlacement("blog", nil); err != nil || p != nil {
		t.Errorf("nothing kept: %v, %v", p, err)
	}
	os.MkdirAll(n.Host.Path(n.Layout.AppDir("blog")), 0o755)
	given := &protocol.JobPlacement{Crons: true, Workers: map[string]int{"mailer": 2}}
	if err := a.savePlacement("blog", given); err != nil {
		t.Fatal(err)
	}
	p, err := a.jobPlacement("blog", nil)
	if err != nil || p == nil || !p.Crons || p.Workers["mailer"] != 2 {
		t.Errorf("kept: %+v, %v", p, err)
	}
	if _, err := a.jobPlacement("blog", &protocol.JobPlacement{Workers: map[string]int{"Bad Name": 1}}); err == nil {
		t.Error("a bad worker name was taken")
	}
}
