package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/router"
	"github.com/toppcloud/toppcloud/internal/location"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/version"
)

// Step names of update and activate, in order; the client shows each as
// a line.
const (
	StepLock        = "lock"
	StepInstance    = "instance"
	StepConfig      = "config"
	StepPackages    = "packages"
	StepServices    = "services"
	StepStart       = "start"
	StepUpdateFetch = "update_fetch"
	StepWorkers     = "workers"
	// StepHold waits for a held update's decision (UpdateArgs.Hold).
	StepHold    = "hold"
	StepSwitch  = "switch"
	StepJobs    = "jobs"
	StepDrain   = "drain"
	StepRelease = "release"
	// StepCertificate makes the front server obtain an https location's
	// certificate now rather than at the first visit.
	StepCertificate = "certificate"
)

// A transition makes another instance live at a location. update and
// activate bring their instance up with steps of their own, then both
// end the same way: switch the route to it, drain and stop the instance
// it replaced, record the release. Until the switch, a failed step undoes
// what the steps before it did (newest first), with a context of its own
// so that a client that went away does not leave it half done; from the
// switch on, the new instance serves and nothing is undone.
type transition struct {
	a *Agent
	c *Call
	// action is the release action (ActionUpdate, ActionActivate); app,
	// loc and target the app, location and instance made live.
	action string
	app    string
	loc    location.Location
	target string
	// change makes target live in the route table.
	change func(*router.Table) (router.Route, error)
	// beforeSwitch, if set, runs first in the switch step and returns a
	// note for its detail.
	beforeSwitch func(st *protocol.Step) (string, error)
	// digest is the manifest the target was made from, for the release
	// record.
	digest string
	// placement is the request's share of the app's jobs (nil: the one
	// kept).
	placement *protocol.JobPlacement

	undo     []func(ctx context.Context)
	switched bool
	// before and after are the route around the switch; oldLive the
	// instance no location serves any more (to drain), "" if none.
	before, after router.Route
	table         *router.Table
	reloaded      bool
	oldLive       string
	drained       string
	release       int
}

// step is one named step: run returns the detail shown with it.
type step struct {
	name string
	run  func(ctx context.Context, st *protocol.Step) (string, error)
}

// skipped ends a step as having had nothing to do, the way filepath's
// SkipDir ends a directory.
type skipped string

func (s skipped) Error() string { return string(s) }

// onUndo adds what undoes a step done before the switch.
func (t *transition) onUndo(f func(ctx context.Context)) { t.undo = append(t.undo, f) }

// run runs steps, then the switch, drain and release steps.
func (t *transition) run(ctx context.Context, steps ...step) error {
	defer func() {
		if !t.switched {
			t.rollback()
		}
	}()
	steps = append(steps, step{StepSwitch, t.switchRoute}, step{StepJobs, t.jobs}, step{StepDrain, t.drain}, step{StepPrev, t.prev}, step{StepRelease, t.record},
		step{StepCertificate, t.certificate})
	for _, s := range steps {
		st := t.c.Out.Start(s.name)
		detail, err := s.run(ctx, st)
		var skip skipped
		switch {
		case errors.As(err, &skip):
			st.Skipped(string(skip))
		case err != nil:
			st.Failed(err)
			return err
		default:
			st.Done(true, detail)
		}
	}
	return nil
}

// rollback undoes the steps done before a switch that never happened.
func (t *transition) rollback() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := len(t.undo) - 1; i >= 0; i-- {
		t.undo[i](ctx)
	}
}

// lockApp takes the app's lock as the transition's first step; the
// caller releases it when done.
func (a *Agent) lockStep(ctx context.Context, c *Call, app, what string, wait time.Duration) (func(), error) {
	st := c.Out.Start(StepLock)
	release, err := a.lockApp(ctx, c, app, what, wait)
	if err != nil {
		st.Failed(err)
		return nil, err
	}
	st.Done(false, "app "+app)
	return release, nil
}

// switchRoute makes target live at loc: under the routes lock, change the
// table and commit it (commitRoutes).
func (t *transition) switchRoute(ctx context.Context, st *protocol.Step) (string, error) {
	a, c := t.a, t.c
	var note string
	if t.beforeSwitch != nil {
		var err error
		if note, err = t.beforeSwitch(st); err != nil {
			return "", err
		}
	}
	release, err := a.Locks().Acquire(ctx, routesLock, t.action+" of "+t.app, routesLockWait, func(s string) { st.Progress(s) })
	if err != nil {
		return "", err
	}
	defer release()
	old, err := a.loadTable(c)
	if err != nil {
		return "", err
	}
	tb := old.Clone()
	t.before, _ = old.Lookup(t.loc)
	if t.after, err = t.change(tb); err != nil {
		return "", err
	}
	if t.reloaded, err = a.commitRoutes(ctx, c, old, tb); err != nil {
		return "", err
	}
	t.switched, t.table = true, tb
	if t.before.Live != "" && t.before.Live != t.target && !liveAnywhere(tb, t.before.Live) {
		t.oldLive = t.before.Live
	}
	how := "symlink switched, no reload"
	if t.reloaded {
		how = "router's config reloaded"
	}
	if note != "" {
		how += "; " + note
	}
	if t.before.Live == "" {
		return fmt.Sprintf("%s now serves %s (%s)", t.target, t.loc, how), nil
	}
	return fmt.Sprintf("%s -> %s at %s (%s)", t.before.Live, t.target, t.loc, how), nil
}

// jobs moves the app's jobs to the target right after the switch: the
// old owner's workers stop (the target's, started before the switch,
// have been waiting for that) and the crons run as the target from now
// on. The switch is done: a problem is a warning.
func (t *transition) jobs(ctx context.Context, st *protocol.Step) (string, error) {
	if err := t.a.savePlacement(t.app, t.placement); err != nil {
		t.c.Warnf("keep the job placement of %s: %v", t.app, err)
	}
	detail, err := t.a.syncJobs(ctx, t.app, t.table, t.target, t.placement)
	if err != nil {
		t.c.Warnf("jobs of %s: %v", t.app, err)
		return "failed: " + firstLine(err.Error()), nil
	}
	if detail == "" {
		return "", skipped("none in app.ini")
	}
	return detail, nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// drain stops the instance the switch replaced once it has finished what
// it accepted; it stays as prev.
func (t *transition) drain(ctx context.Context, st *protocol.Step) (string, error) {
	if t.oldLive == "" {
		t.cleanOldDirs()
		if t.after.Prev != "" {
			return "nothing to drain (" + t.after.Prev + " serves another location)", nil
		}
		return "nothing to drain (first instance here)", nil
	}
	st.Progress("waiting for " + t.oldLive + "'s requests")
	detail, err := t.a.instances().DrainAndStop(ctx, t.oldLive)
	if err != nil {
		t.c.Warnf("stop %s: %v", t.oldLive, err)
	}
	t.drained = detail
	t.cleanOldDirs()
	detail = t.oldLive + " stopping (" + detail + ")"
	if t.after.Prev == t.oldLive {
		detail += ", kept as prev"
	}
	return detail, nil
}

// prev has the route's previous instance answer at its prev. host (if
// it has one), and the one it replaced stop. The switch is done: problems
// are warnings.
func (t *transition) prev(ctx context.Context, st *protocol.Step) (string, error) {
	p, err := t.a.planPrev(t.table, []string{t.app})
	if err != nil {
		t.c.Warnf("prev. hosts: %v", err)
		return "not checked: " + err.Error(), nil
	}
	if p.empty() {
		return "", skipped("no prev. host changes")
	}
	if t.a.needsUnits(p) {
		if err := t.a.startPrevSync(ctx, t.app); err == nil {
			return "after the update, in the background", nil
		}
		// No transient unit (systemd-run missing or refusing): do it
		// here, as the work is the same.
	}
	return t.a.applyPrev(ctx, t.c, t.table, p), nil
}

// cleanOldDirs removes the TEMP and config directories set aside for
// instances that ran before, once none runs any more: the target is the
// app's only live one (the others were stopped).
func (t *transition) cleanOldDirs() {
	for _, rt := range t.table.RoutesFor(t.app) {
		if rt.Live != "" && rt.Live != t.target {
			return
		}
	}
	if err := t.a.instances().RemoveOldDirs(t.app); err != nil {
		t.c.Warnf("remove old TEMP and config directories of %s: %v", t.app, err)
	}
}

// certificate has the front server obtain the certificate of an https
// location's host (it does on demand, at a name's first TLS connection),
// so the deploy can tell whether https works. The switch is done: a
// certificate that cannot be had is a warning with the CA's reason.
func (t *transition) certificate(ctx context.Context, st *protocol.Step) (string, error) {
	host := certificateHost(t.loc)
	if host == "" {
		return "", skipped("no https location with a host of its own")
	}
	return t.a.obtainCertificate(ctx, t.c, st, host), nil
}

// record appends the release. The switch is done: a missing record must
// not fail it.
func (t *transition) record(ctx context.Context, st *protocol.Step) (string, error) {
	r, err := t.a.appendRelease(t.app, protocol.Release{
		Action: t.action, Instance: t.target, Prev: t.after.Prev, Locations: []string{t.loc.String()},
		Time: t.a.Host.Time().UTC(), LocalUser: t.c.Req.LocalUser, Digest: t.digest, Version: version.Version,
	})
	if err != nil {
		t.c.Warnf("release record of %s: %v", t.app, err)
		return "not recorded", nil
	}
	t.release = r.Number
	return fmt.Sprintf("release %d", r.Number), nil
}
