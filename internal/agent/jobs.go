package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/instance"
	"github.com/toppcloud/toppcloud/internal/agent/router"
	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

// An app's jobs (app.ini's cron.NAME and worker.NAME) run on a node as
// one of its live instances, the jobs' owner: the instance the latest
// update or activate made live, as long as it is live somewhere (an app
// live at two locations runs its jobs once, not once per instance).
//
// Workers start with the new instance, before the switch (package
// instance: each waits for its turn, so one copy runs at a time), and the
// old owner's stop right after the switch. Crons follow the route table:
// after every change of it (update, activate, deactivate, disable,
// enable, restore) syncJobs points them at the owner, or removes them
// when nothing of the app is live or it is disabled.

// jobsFile keeps, in the app's data directory, the job placement the
// node was last given (protocol.JobPlacement); without one a node runs
// every cron and one replica of every worker.
const jobsFile = "jobs.json"

// jobPlacement is the placement a request gives, else the one kept.
func (a *Agent) jobPlacement(app string, given *protocol.JobPlacement) (*protocol.JobPlacement, error) {
	if given != nil {
		return given, checkPlacement(given)
	}
	b, err := a.Host.ReadFile(path.Join(a.Layout.AppDir(app), jobsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var p protocol.JobPlacement
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%s of %s: %w", jobsFile, app, err)
	}
	return &p, checkPlacement(&p)
}

func checkPlacement(p *protocol.JobPlacement) error {
	for name, n := range p.Workers {
		if err := appconfig.CheckJobName(name); err != nil {
			return badRequest("job placement: %v", err)
		}
		if n < 0 || n > appconfig.MaxReplicas {
			return badRequest("job placement: %d replicas of %s (0 to %d)", n, name, appconfig.MaxReplicas)
		}
	}
	return nil
}

// savePlacement keeps a placement a request gave.
func (a *Agent) savePlacement(app string, p *protocol.JobPlacement) error {
	if p == nil {
		return nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	_, err = a.Host.WriteFile(path.Join(a.Layout.AppDir(app), jobsFile), append(b, '\n'), host.Attr{Mode: 0o644})
	return err
}

// workersFor are the worker replicas a node runs of cfg's workers.
func workersFor(cfg *appconfig.Config, p *protocol.JobPlacement) []instance.Worker {
	var out []instance.Worker
	for _, w := range cfg.Workers {
		n := 1
		if p != nil {
			n = p.Workers[w.Name]
		}
		for r := 1; r <= n; r++ {
			out = append(out, instance.Worker{Name: w.Name, Replica: r, Command: w.Command})
		}
	}
	return out
}

// cronsFor are the crons of cfg a node runs.
func cronsFor(cfg *appconfig.Config, p *protocol.JobPlacement) []appconfig.Cron {
	if p != nil && !p.Crons {
		return nil
	}
	return cfg.Crons
}

// jobsOwner picks the instance of app that runs its jobs in t: prefer if
// it is live, else the live instance the latest update or activate made
// live, else the newest live one; "" when nothing of app is live.
func (a *Agent) jobsOwner(app string, t *router.Table, prefer string) string {
	var live []string
	for _, rt := range t.RoutesFor(app) {
		if rt.Active() && !slices.Contains(live, rt.Live) {
			live = append(live, rt.Live)
		}
	}
	if len(live) == 0 {
		return ""
	}
	if slices.Contains(live, prefer) {
		return prefer
	}
	rs, _, _ := a.readReleases(app)
	for i := len(rs) - 1; i >= 0; i-- {
		if r := rs[i]; r.Action != ActionDeactivate && slices.Contains(live, r.Instance) {
			return r.Instance
		}
	}
	return slices.Max(live)
}

// ownerConfig reads the app.ini of the instance that runs app's jobs.
func (a *Agent) ownerConfig(owner string) (*instance.Record, *appconfig.Config, error) {
	rec, err := a.instances().Record(owner)
	if err != nil {
		return nil, nil, err
	}
	if rec.Kind == appconfig.KindStatic {
		return rec, &appconfig.Config{}, nil
	}
	cfg, err := appconfig.Load(a.Host.Path(a.Layout.InstanceDir(owner)))
	if err != nil {
		return nil, nil, err
	}
	return rec, cfg, nil
}

// syncJobs makes the node run app's jobs as t says, as the instance
// jobsOwner picks (prefer: the instance just made live), with placement
// (nil: the one kept). Workers of other instances stop; the owner's
// start if they do not run; crons point at the owner, or go when there is
// none or the app is disabled. It returns what changed, for a step's
// detail ("" when the app has no jobs here).
func (a *Agent) syncJobs(ctx context.Context, app string, t *router.Table, prefer string, placement *protocol.JobPlacement) (string, error) {
	nodes := a.instances()
	owner := a.jobsOwner(app, t, prefer)
	var done []string
	var errs []error
	stoppedFrom := map[string]bool{}
	for _, wu := range nodes.WorkerUnits(app) {
		if wu.Instance != owner && !stoppedFrom[wu.Instance] {
			stoppedFrom[wu.Instance] = true
			units, err := nodes.StopWorkers(ctx, wu.Instance)
			errs = append(errs, err)
			done = append(done, fmt.Sprintf("%s of %s stopped", plural(len(units), "worker", "workers"), wu.Instance))
		}
	}
	var inst *instance.Instance
	var cfg *appconfig.Config
	if owner != "" {
		rec, c, err := a.ownerConfig(owner)
		if err != nil {
			return strings.Join(done, "; "), errors.Join(append(errs, fmt.Errorf("jobs of %s: %w", app, err))...)
		}
		if rec.Kind != appconfig.KindStatic {
			inst, cfg = nodes.FromRecord(rec), c
		}
	}
	p, err := a.jobPlacement(app, placement)
	if err != nil {
		errs = append(errs, err)
	}
	if inst != nil {
		started, stopped, err := nodes.SetWorkers(ctx, inst, workersFor(cfg, p))
		errs = append(errs, err)
		if len(started) > 0 {
			done = append(done, fmt.Sprintf("%s started", strings.Join(jobNames(started), ", ")))
		}
		if len(stopped) > 0 {
			done = append(done, fmt.Sprintf("%s stopped", strings.Join(jobNames(stopped), ", ")))
		}
	}
	var crons []appconfig.Cron
	host := ""
	if inst != nil && !t.IsDisabled(app) {
		crons = cronsFor(cfg, p)
		var locs []string
		for _, rt := range t.RoutesFor(app) {
			if rt.Live == owner {
				locs = append(locs, rt.Location.String())
			}
		}
		host = instance.CanonicalHostname(locs)
	}
	if inst == nil {
		crons = nil
	}
	changes, err := nodes.SetCrons(ctx, app, inst, crons, host)
	errs = append(errs, err)
	byWhat := map[string][]string{}
	for _, ch := range changes {
		byWhat[ch.What] = append(byWhat[ch.What], ch.Job)
	}
	for _, what := range []string{"added", "moved", "rescheduled", "removed"} {
		if jobs := byWhat[what]; len(jobs) > 0 {
			done = append(done, fmt.Sprintf("cron %s %s", strings.Join(jobs, ", "), what))
		}
	}
	if len(crons) > 0 && inst != nil {
		done = append(done, fmt.Sprintf("%s as %s", plural(len(crons), "cron", "crons"), owner))
	}
	return strings.Join(done, "; "), errors.Join(errs...)
}

// jobNames turns worker units into NAME or NAME#N (replicas after the
// first).
func jobNames(units []string) []string {
	var out []string
	for _, u := range units {
		wu, ok := instance.ParseWorkerUnit(u)
		switch {
		case !ok:
			out = append(out, u)
		case wu.Replica == 1:
			out = append(out, "worker "+wu.Name)
		default:
			out = append(out, fmt.Sprintf("worker %s#%d", wu.Name, wu.Replica))
		}
	}
	return out
}

// syncJobsAfter runs syncJobs for apps after an operation changed the
// route table without making an instance live; problems are warnings.
func (a *Agent) syncJobsAfter(ctx context.Context, c *Call, t *router.Table, apps ...string) {
	for _, app := range apps {
		detail, err := a.syncJobs(ctx, app, t, "", nil)
		if err != nil {
			c.Warnf("jobs of %s: %v", app, err)
		} else if detail != "" {
			c.Logf("jobs of %s: %s", app, detail)
		}
	}
}

// jobInfo is what query says about app's jobs.
func (a *Agent) jobInfo(ctx context.Context, c *Call, app string, t *router.Table, info *protocol.AppInfo) {
	nodes := a.instances()
	var cfg *appconfig.Config
	if owner := a.jobsOwner(app, t, ""); owner != "" {
		if _, oc, err := a.ownerConfig(owner); err == nil {
			cfg = oc
		}
	}
	crons, err := nodes.CronStates(ctx, app)
	if err != nil {
		c.Warnf("cron jobs of %s: %v", app, err)
	}
	byName := map[string]instance.CronState{}
	for _, st := range crons {
		byName[st.Job] = st
	}
	var names []string
	if cfg != nil {
		for _, cr := range cfg.Crons {
			names = append(names, cr.Name)
		}
	}
	for _, st := range crons {
		if !slices.Contains(names, st.Job) {
			names = append(names, st.Job)
		}
	}
	for _, name := range names {
		ci := protocol.CronInfo{Name: name}
		if cfg != nil {
			if cr, _ := cfg.Job(name); cr != nil {
				ci.Schedule, ci.Target = cr.Schedule.Spec, cr.Target()
			}
		}
		if st, ok := byName[name]; ok {
			ci.Instance, ci.Scheduled, ci.Next, ci.Last = st.Instance, st.Scheduled, st.Next, st.Last
			ci.Running, ci.Started = st.Running, st.Started
			ci.LastResult = runResult(st.Result, st.Status)
		}
		info.Crons = append(info.Crons, ci)
	}
	workers, err := nodes.WorkerStates(ctx, app)
	if err != nil {
		c.Warnf("workers of %s: %v", app, err)
	}
	for _, ws := range workers {
		wi := protocol.WorkerInfo{Name: ws.Name, Replica: ws.Replica, Instance: ws.Instance, Unit: ws.Unit(),
			State: workerState(ws.Active, ws.Sub), Restarts: ws.Restarts, PID: ws.PID, Since: ws.Since}
		// systemd forgets how a process ended when it starts the next:
		// only a worker not running now has its last exit to show (the
		// journal, logs --job, keeps every one).
		switch wi.State {
		case protocol.WorkerRestarting, protocol.WorkerFailed, protocol.WorkerStopped:
			wi.LastExit = runResult(ws.Result, ws.Status)
		}
		info.Workers = append(info.Workers, wi)
	}
}

// runResult says how a run ended, from systemd's Result and exit status.
func runResult(result string, status int) string {
	switch result {
	case "":
		return ""
	case "exit-code":
		return fmt.Sprintf("exit status %d", status)
	case "signal", "core-dump":
		return fmt.Sprintf("killed by signal %d", status)
	}
	return result
}

// workerState is WorkerInfo.State from systemd's ActiveState and
// SubState.
func workerState(active, sub string) string {
	switch {
	case active == "active":
		return protocol.WorkerRunning
	case active == "activating" && sub == "auto-restart":
		return protocol.WorkerRestarting
	case active == "activating":
		return protocol.WorkerWaiting
	case active == "deactivating":
		return protocol.WorkerStopping
	case active == "failed":
		return protocol.WorkerFailed
	}
	return protocol.WorkerStopped
}
