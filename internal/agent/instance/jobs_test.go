package instance

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/host/hosttest"
	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/appconfig"
)

// unitsFake is systemd as far as job units go: which units are active,
// and every systemctl line run.
type unitsFake struct {
	mu     sync.Mutex
	active map[string]string // unit -> ActiveState
	runner *hosttest.Runner
}

func newJobsNode(t *testing.T) (*Node, *unitsFake) {
	f := &unitsFake{active: map[string]string{}, runner: hosttest.NewRunner(t)}
	f.runner.Handle("systemctl", func(c host.Command) (string, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		var units []string
		for _, a := range c.Argv[2:] {
			if !strings.HasPrefix(a, "-") {
				units = append(units, a)
			}
		}
		switch c.Argv[1] {
		case "daemon-reload", "clean", "kill":
		case "start":
			for _, u := range units {
				f.active[u] = "active"
			}
		case "stop":
			for _, u := range units {
				delete(f.active, u)
			}
		case "is-active":
			var out strings.Builder
			for _, u := range units {
				out.WriteString(f.state(u) + "\n")
			}
			return out.String(), nil
		case "show":
			var blocks []string
			for _, u := range units {
				blocks = append(blocks, "Id="+u+"\nActiveState="+f.state(u)+"\nSubState=running\nNRestarts=2\nMainPID=42\nExecMainStartTimestamp=@1700000000\nResult=success\n")
			}
			return strings.Join(blocks, "\n"), nil
		case "list-timers":
			return "[]", nil
		default:
			t.Errorf("unexpected %q", c.Argv)
		}
		return "", nil
	})
	return &Node{Host: hosttest.New(t, f.runner), Layout: layout.Default()}, f
}

func (f *unitsFake) state(u string) string {
	if s, ok := f.active[u]; ok {
		return s
	}
	return "inactive"
}

func (f *unitsFake) lines(t *testing.T) []string {
	t.Helper()
	lines := f.runner.CallLines()
	f.runner.Reset()
	return lines
}

func exists(n *Node, p string) bool {
	_, err := os.Lstat(n.Host.Path(p))
	return err == nil
}

func TestSetWorkers(t *testing.T) {
	ctx := context.Background()
	n, f := newJobsNode(t)
	inst := &Instance{App: "blog", Name: "blog.2024-01-02_001", Kind: appconfig.KindPython, Layout: n.Layout}
	mailer := Worker{Name: "mailer", Replica: 1, Command: appconfig.Command{Path: "bin/mailer"}}
	resizer := Worker{Name: "resizer", Replica: 1, Command: appconfig.Command{Path: "bin/resize.py"}}
	m1, r1 := WorkerUnitName(inst.Name, "mailer", 1), WorkerUnitName(inst.Name, "resizer", 1)

	started, stopped, err := n.SetWorkers(ctx, inst, []Worker{mailer, resizer})
	if err != nil || !slices.Equal(started, []string{m1, r1}) || len(stopped) != 0 {
		t.Fatalf("SetWorkers: started %v stopped %v: %v", started, stopped, err)
	}
	if got, want := f.lines(t), []string{"systemctl daemon-reload", "systemctl is-active " + m1 + " " + r1, "systemctl start --no-block " + m1 + " " + r1}; !slices.Equal(got, want) {
		t.Errorf("systemctl calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, u := range []string{m1, r1} {
		if !exists(n, dropIn(n.Layout, u, workerDropIn)) || !exists(n, workerLink(n.Layout, u).Path) {
			t.Errorf("%s: drop-in or link missing", u)
		}
	}
	if got := n.WorkerUnits("blog"); len(got) != 2 || got[0].Name != "mailer" || got[1].Name != "resizer" {
		t.Errorf("WorkerUnits = %v", got)
	}

	// Again, with the same workers: nothing to write, nothing to start.
	if started, stopped, err := n.SetWorkers(ctx, inst, []Worker{mailer, resizer}); err != nil || len(started)+len(stopped) != 0 {
		t.Errorf("second SetWorkers: started %v stopped %v: %v", started, stopped, err)
	}
	if got := f.lines(t); !slices.Equal(got, []string{"systemctl is-active " + m1 + " " + r1}) {
		t.Errorf("second SetWorkers ran %q", got)
	}

	// resizer leaves app.ini: it stops and its files go.
	started, stopped, err = n.SetWorkers(ctx, inst, []Worker{mailer})
	if err != nil || len(started) != 0 || !slices.Equal(stopped, []string{r1}) {
		t.Errorf("SetWorkers without resizer: started %v stopped %v: %v", started, stopped, err)
	}
	if exists(n, dropIn(n.Layout, r1, workerDropIn)) || exists(n, workerLink(n.Layout, r1).Path) {
		t.Error("resizer's files are still there")
	}
	if f.state(r1) != "inactive" || f.state(m1) != "active" {
		t.Errorf("states: resizer %s, mailer %s", f.state(r1), f.state(m1))
	}

	// The instance stops: its workers go with it; another app's stay.
	other := &Instance{App: "wiki", Name: "wiki.2024-01-02_001", Kind: appconfig.KindPHP, Layout: n.Layout}
	if _, _, err := n.SetWorkers(ctx, other, []Worker{mailer}); err != nil {
		t.Fatal(err)
	}
	if err := n.Stop(ctx, inst.Name, inst.Kind, true); err != nil {
		t.Fatal(err)
	}
	if f.state(m1) != "inactive" || exists(n, dropIn(n.Layout, m1, workerDropIn)) || exists(n, workerLink(n.Layout, m1).Path) {
		t.Error("Stop left the instance's worker running or on disk")
	}
	if len(n.WorkerUnits("blog")) != 0 || len(n.WorkerUnits("wiki")) != 1 {
		t.Errorf("after Stop: blog %v, wiki %v", n.WorkerUnits("blog"), n.WorkerUnits("wiki"))
	}
	states, err := n.WorkerStates(ctx, "wiki")
	if err != nil || len(states) != 1 || states[0].Name != "mailer" || states[0].Restarts != 2 || states[0].PID != 42 || states[0].Since.Unix() != 1700000000 {
		t.Errorf("WorkerStates = %+v, %v", states, err)
	}
}

func TestSetCrons(t *testing.T) {
	ctx := context.Background()
	n, f := newJobsNode(t)
	cfg, err := appconfig.Parse("app.ini", []byte("[production]\napp_name = blog\nrunner = app.py\n"+
		"cron.tick = * * * * * /tick\ncron.clean = @daily script:bin/clean\n"))
	if err != nil {
		t.Fatal(err)
	}
	v1 := &Instance{App: "blog", Name: "blog.2024-01-02_001", Kind: appconfig.KindPython, Layout: n.Layout}
	v2 := &Instance{App: "blog", Name: "blog.2024-01-02_002", Kind: appconfig.KindPython, Layout: n.Layout}
	tickT, cleanT := CronUnitName("blog", "tick", ".timer"), CronUnitName("blog", "clean", ".timer")
	tickS, cleanS := CronUnitName("blog", "tick", ".service"), CronUnitName("blog", "clean", ".service")
	what := func(chs []CronChange) string {
		var out []string
		for _, c := range chs {
			out = append(out, c.Job+" "+c.What)
		}
		return strings.Join(out, ", ")
	}

	chs, err := n.SetCrons(ctx, "blog", v1, cfg.Crons, "blog.example.com")
	if err != nil || what(chs) != "clean added, tick added" {
		t.Fatalf("SetCrons: %s, %v", what(chs), err)
	}
	if got, want := f.lines(t), []string{"systemctl daemon-reload", "systemctl start " + cleanT + " " + tickT}; !slices.Equal(got, want) {
		t.Errorf("calls %q, want %q", got, want)
	}
	if got := n.CronJobs("blog"); !slices.Equal(got, []string{"clean", "tick"}) {
		t.Errorf("CronJobs = %q", got)
	}
	if !exists(n, n.cronTimerLink("blog", "tick").Path) {
		t.Error("no timers.target.wants link")
	}

	// Unchanged: the timers are started (a no-op for active ones), nothing
	// is reloaded.
	if chs, err := n.SetCrons(ctx, "blog", v1, cfg.Crons, "blog.example.com"); err != nil || len(chs) != 0 {
		t.Errorf("unchanged SetCrons: %s, %v", what(chs), err)
	}
	if got := f.lines(t); !slices.Equal(got, []string{"systemctl start " + cleanT + " " + tickT}) {
		t.Errorf("unchanged SetCrons ran %q", got)
	}

	// A deploy: the same entries run as v2; a run in progress is left alone.
	f.active[tickS] = "activating"
	if chs, err := n.SetCrons(ctx, "blog", v2, cfg.Crons, "blog.example.com"); err != nil || what(chs) != "clean moved, tick moved" {
		t.Errorf("SetCrons as v2: %s, %v", what(chs), err)
	}
	if got := f.lines(t); !slices.Equal(got, []string{"systemctl daemon-reload", "systemctl start " + cleanT + " " + tickT}) {
		t.Errorf("SetCrons as v2 ran %q", got)
	}
	if b, _ := n.Host.ReadFile(dropIn(n.Layout, tickS, cronDropIn)); !strings.Contains(string(b), v2.Name) || strings.Contains(string(b), v1.Name) {
		t.Errorf("tick's unit after the move:\n%s", b)
	}

	// clean is rescheduled, tick removed: tick's timer and run stop, both
	// timers lose their record of the last run.
	cfg2, _ := appconfig.Parse("app.ini", []byte("[production]\napp_name = blog\nrunner = app.py\ncron.clean = @hourly script:bin/clean\n"))
	chs, err = n.SetCrons(ctx, "blog", v2, cfg2.Crons, "blog.example.com")
	if err != nil || what(chs) != "tick removed, clean rescheduled" {
		t.Errorf("SetCrons rescheduled: %s, %v", what(chs), err)
	}
	want := []string{
		"systemctl stop " + tickT, "systemctl clean --what=state " + tickT, "systemctl stop --no-block " + tickS,
		"systemctl stop " + cleanT, "systemctl clean --what=state " + cleanT,
		"systemctl daemon-reload", "systemctl start " + cleanT,
	}
	if got := f.lines(t); !slices.Equal(got, want) {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if exists(n, filepath.Dir(dropIn(n.Layout, tickT, scheduleDropIn))) || exists(n, n.cronTimerLink("blog", "tick").Path) {
		t.Error("tick's files are still there")
	}

	// Deactivated: everything goes.
	if chs, err := n.SetCrons(ctx, "blog", nil, nil, ""); err != nil || what(chs) != "clean removed" {
		t.Errorf("SetCrons(nil): %s, %v", what(chs), err)
	}
	if len(n.CronJobs("blog")) != 0 || f.state(cleanT) != "inactive" {
		t.Errorf("after SetCrons(nil): %v, %s", n.CronJobs("blog"), f.state(cleanT))
	}
	_ = cleanS
}

func TestParseWorkerUnit(t *testing.T) {
	for unit, want := range map[string]bool{
		"toppcloud-worker@blog.2024-01-02_001:mailer:1.service":  true,
		"toppcloud-worker@blog.2024-01-02_001:mailer:12.service": true,
		"toppcloud-worker@blog.2024-01-02_001:mailer:0.service":  false,
		"toppcloud-worker@blog.2024-01-02_001:mailer:01.service": false,
		"toppcloud-worker@blog.2024-01-02_001:Mailer:1.service":  false,
		"toppcloud-worker@blog:mailer:1.service":                 false,
		"toppcloud-worker@blog.2024-01-02_001:mailer.service":    false,
		"toppcloud-worker@blog.2024-01-02_001:mailer:1.timer":    false,
		"toppcloud-app@blog.2024-01-02_001.service":              false,
	} {
		wu, ok := ParseWorkerUnit(unit)
		if ok != want || ok && wu.Unit() != unit {
			t.Errorf("ParseWorkerUnit(%q) = %+v, %v", unit, wu, ok)
		}
	}
}
