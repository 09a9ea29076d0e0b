package instance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/appconfig"
)

// FromRecord is the instance a record describes, as far as running its
// jobs needs (no environment, no token: those live in its env file).
func (n *Node) FromRecord(rec *Record) *Instance {
	return &Instance{App: rec.App, Name: rec.Instance, Kind: rec.Kind, Runner: rec.Runner, RunnerName: rec.RunnerName,
		PHPRoot: rec.PHPRoot, Port: rec.Port, Layout: n.Layout}
}

// CronJobs lists the cron entries of app whose units are on the node.
func (n *Node) CronJobs(app string) []string {
	entries, _ := os.ReadDir(n.Host.Path(n.Layout.Units))
	var out []string
	for _, e := range entries {
		if a, job, ok := parseCronUnit(e.Name(), ".timer.d"); ok && a == app {
			out = append(out, job)
		}
	}
	for _, link := range n.cronLinks(app) {
		if !slices.Contains(out, link) {
			out = append(out, link)
		}
	}
	slices.Sort(out)
	return out
}

func (n *Node) cronLinks(app string) []string {
	entries, _ := os.ReadDir(n.Host.Path(path.Join(n.Layout.Units, "timers.target.wants")))
	var out []string
	for _, e := range entries {
		if a, job, ok := parseCronUnit(e.Name(), ".timer"); ok && a == app {
			out = append(out, job)
		}
	}
	return out
}

func (n *Node) cronTimerLink(app, job string) Link {
	u := n.Layout.Units
	return Link{Path: filepath.Join(u, "timers.target.wants", CronUnitName(app, job, ".timer")), Target: filepath.Join(u, CronTimerTemplate)}
}

// CronChange says what SetCrons did to one entry.
type CronChange struct {
	Job string
	// What is "added", "rescheduled", "moved" (to another instance),
	// "removed".
	What string
}

// SetCrons makes the node run exactly crons of app, as the instance
// owner (nil: none, every timer of the app is removed). hostName is the
// Host of their internal requests.
//
// An entry's run in progress is left to finish, as the instance it
// started with, unless the entry goes away. An entry that is removed or
// rescheduled loses systemd's record of its last run, so that Persistent=
// catches up no run that the new schedule (or a later enable) would make
// up out of the old one.
func (n *Node) SetCrons(ctx context.Context, app string, owner *Instance, crons []appconfig.Cron, hostName string) ([]CronChange, error) {
	if owner == nil {
		crons = nil
	} else if owner.App != app {
		return nil, fmt.Errorf("cron jobs of %s run as %s, an instance of another app", app, owner.Name)
	}
	l := n.Layout
	sd := n.systemd()
	want := map[string]appconfig.Cron{}
	for _, c := range crons {
		want[c.Name] = c
	}
	var changes []CronChange
	var errs []error
	reload := false
	// Gone: stop the timer and a run in progress, forget the last run,
	// remove the units.
	for _, job := range n.CronJobs(app) {
		if _, ok := want[job]; ok {
			continue
		}
		timer, service := CronUnitName(app, job, ".timer"), CronUnitName(app, job, ".service")
		errs = append(errs, sd.StopAndWait(ctx, timer), sd.CleanState(ctx, timer), sd.Stop(ctx, service))
		for _, p := range []string{n.cronTimerLink(app, job).Path, path.Join(l.Units, timer+".d"), path.Join(l.Units, service+".d")} {
			if err := os.RemoveAll(n.Host.Path(p)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		changes = append(changes, CronChange{Job: job, What: "removed"})
		reload = true
	}
	var start []string
	for _, job := range slices.Sorted(maps.Keys(want)) {
		service, timer, err := owner.CronDropIns(want[job], hostName)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		timerUnit := CronUnitName(app, job, ".timer")
		timerFile := dropIn(l, timerUnit, scheduleDropIn)
		serviceFile := dropIn(l, CronUnitName(app, job, ".service"), cronDropIn)
		oldTimer, terr := n.Host.ReadFile(timerFile)
		oldService, _ := n.Host.ReadFile(serviceFile)
		switch {
		case terr != nil:
			changes = append(changes, CronChange{Job: job, What: "added"})
		case !bytes.Equal(oldTimer, timer):
			// Restarted below with the new schedule.
			errs = append(errs, sd.StopAndWait(ctx, timerUnit), sd.CleanState(ctx, timerUnit))
			changes = append(changes, CronChange{Job: job, What: "rescheduled"})
		case !bytes.Equal(oldService, service):
			changes = append(changes, CronChange{Job: job, What: "moved"})
		}
		for _, f := range []struct {
			p    string
			data []byte
		}{{serviceFile, service}, {timerFile, timer}} {
			ch, err := n.Host.WriteFile(f.p, f.data, host.Attr{Mode: 0o644})
			if err != nil {
				errs = append(errs, err)
			}
			reload = reload || ch
		}
		if err := writeLinks(n.Host, []Link{n.cronTimerLink(app, job)}); err != nil {
			errs = append(errs, err)
		}
		start = append(start, timerUnit)
	}
	if reload {
		if err := sd.DaemonReload(ctx); err != nil {
			return changes, errors.Join(append(errs, err)...)
		}
	}
	if len(start) > 0 {
		// Starting an active timer does nothing.
		if err := sd.Start(ctx, start...); err != nil {
			errs = append(errs, fmt.Errorf("start the cron timers of %s: %w", app, err))
		}
	}
	return changes, errors.Join(errs...)
}

// CronState is what systemd says about one of an app's cron entries.
type CronState struct {
	Job string
	// Scheduled: its timer is active. Next and Last are its next and last
	// elapse (zero: none).
	Scheduled  bool
	Next, Last time.Time
	// Running: a run is going on, since Started.
	Running bool
	Started time.Time
	// Result and Status are how the last run ended: systemd's word
	// ("success", "exit-code", "timeout", ...) and its exit status;
	// Result is "" when it never ran since the node started.
	Result string
	Status int
	// Instance runs it (read from its unit).
	Instance string
}

// CronStates asks systemd about app's cron entries on the node.
func (n *Node) CronStates(ctx context.Context, app string) ([]CronState, error) {
	jobs := n.CronJobs(app)
	if len(jobs) == 0 {
		return nil, nil
	}
	sd := n.systemd()
	timers, err := sd.Timers(ctx, CronUnitName(app, "*", ".timer"))
	if err != nil {
		return nil, err
	}
	var units []string
	for _, job := range jobs {
		units = append(units, CronUnitName(app, job, ".service"), CronUnitName(app, job, ".timer"))
	}
	props, err := sd.ShowUnits(ctx, units, "ActiveState", "SubState", "Result", "ExecMainStatus", "ExecMainStartTimestamp", "ExecMainExitTimestamp", "WorkingDirectory")
	if err != nil {
		return nil, err
	}
	byName := map[string]map[string]string{}
	for _, p := range props {
		byName[p["Id"]] = p
	}
	out := make([]CronState, len(jobs))
	for k, job := range jobs {
		st := CronState{Job: job}
		for _, t := range timers {
			if t.Unit == CronUnitName(app, job, ".timer") {
				st.Next, st.Last = t.Next, t.Last
			}
		}
		st.Scheduled = byName[CronUnitName(app, job, ".timer")]["ActiveState"] == "active"
		svc := byName[CronUnitName(app, job, ".service")]
		st.Running = svc["ActiveState"] == "activating" || svc["ActiveState"] == "deactivating"
		if st.Running {
			st.Started = unixTime(svc["ExecMainStartTimestamp"])
		}
		if !unixTime(svc["ExecMainExitTimestamp"]).IsZero() || svc["Result"] != "success" {
			st.Result, st.Status = svc["Result"], atoi(svc["ExecMainStatus"])
		}
		if dir := svc["WorkingDirectory"]; dir != "" {
			st.Instance = path.Base(dir)
		}
		out[k] = st
	}
	return out, nil
}
