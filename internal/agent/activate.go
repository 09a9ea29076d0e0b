package agent

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/instance"
	"github.com/toppcloud/toppcloud/internal/agent/router"
	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/location"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

// activate makes an instance on disk (by name, prev or release number)
// live at a location: started beside the live one, then the same switch,
// drain and release as an update.
func (a *Agent) activate(ctx context.Context, c *Call, args *protocol.ActivateArgs) (*protocol.ActivateResult, error) {
	if args.Target == "" {
		return nil, badRequest("activate: name an instance, prev or a release number")
	}
	loc, rt, err := a.routeAt(c, args.Location)
	if err != nil {
		return nil, err
	}
	app := rt.App
	release, err := a.lockStep(ctx, c, app, "activate", time.Duration(args.LockWait))
	if err != nil {
		return nil, err
	}
	defer release()
	// Under the lock, the route as it is now.
	if _, rt, err = a.routeAt(c, args.Location); err != nil {
		return nil, err
	}
	if rt.App != app {
		return nil, fmt.Errorf("activate: %s changed apps meanwhile; run activate again", loc)
	}

	target, err := a.resolveTarget(app, rt, args.Target)
	if err != nil {
		return nil, err
	}
	if target == rt.Live {
		return &protocol.ActivateResult{Location: loc.String(), Instance: target, Prev: rt.Prev, Unchanged: true}, nil
	}
	rec, err := a.instances().Record(target)
	if err != nil {
		return nil, notFound("instance %s cannot be activated: %v", target, err)
	}
	if rec.Unsynced {
		return nil, badRequest("instance %s cannot be activated: the update that made it did not finish (the node went down before its files were on disk), so it may be incomplete; update again (clean-node removes it)", target)
	}

	t := &transition{a: a, c: c, action: ActionActivate, app: app, loc: loc, target: target, digest: rec.Digest, placement: args.Jobs,
		change: func(tb *router.Table) (router.Route, error) {
			rt, err := tb.Activate(loc, target)
			switch {
			case errors.Is(err, router.ErrNoRoute):
				return rt, notFound("nothing is deployed at %s any more", loc)
			case errors.Is(err, router.ErrNoPrev):
				return rt, notFound("%v", err)
			}
			return rt, err
		}}
	// Start it beside the live one, with the same health check as an
	// update (no update_fetch: it ran when the instance was made).
	start := func(ctx context.Context, st *protocol.Step) (string, error) {
		started, err := a.startExisting(ctx, c, st, rec, loc, time.Duration(args.HealthTimeout), true, args.Jobs)
		if err != nil {
			return "", err
		}
		if !started {
			return "", skipped(target + " is running already")
		}
		t.onUndo(func(ctx context.Context) { _ = a.instances().Stop(ctx, target, rec.Kind, false) })
		return target + " answers", nil
	}
	if err := t.run(ctx, step{StepStart, start}); err != nil {
		return nil, err
	}
	return &protocol.ActivateResult{Location: loc.String(), Instance: target, Prev: t.after.Prev, Release: t.release, Reloaded: t.reloaded}, nil
}

// resolveTarget turns activate's INSTANCE|prev|RELEASE into an instance
// of app that exists on the node.
func (a *Agent) resolveTarget(app string, rt router.Route, target string) (string, error) {
	switch target {
	case router.Prev:
		if rt.Prev == "" {
			return "", notFound("%s has no previous instance to activate", rt.Location)
		}
		target = rt.Prev
	default:
		rs, _, err := a.readReleases(app)
		if err != nil {
			return "", err
		}
		inst, isNumber, err := resolveRelease(rs, target)
		if err != nil {
			return "", err
		}
		if isNumber {
			target = inst
		}
	}
	if err := router.ValidateInstance(target); err != nil {
		return "", badRequest("%v", err)
	}
	if !strings.HasPrefix(target, app+".") {
		return "", badRequest("instance %s is not an instance of %s, which %s serves", target, app, rt.Location)
	}
	if ok, err := a.Host.Exists(path.Join(a.Layout.WWW, target)); err != nil {
		return "", err
	} else if !ok {
		return "", notFound("instance %s is not on the node (removed by clean-node?)", target)
	}
	return target, nil
}

// startExisting starts an instance that is on disk, unless it runs
// already (live elsewhere). It reports whether it started it. With
// withJobs, it starts the app's workers too (placement, as
// jobPlacement takes it): the instance is about to run the app's jobs.
func (a *Agent) startExisting(ctx context.Context, c *Call, st *protocol.Step, rec *instance.Record, loc location.Location, healthTimeout time.Duration,
	withJobs bool, placement *protocol.JobPlacement) (bool, error) {
	if rec.Kind == appconfig.KindStatic {
		return false, nil
	}
	nodes := a.instances()
	switch running, err := nodes.Running(ctx, rec.Instance); {
	case err != nil:
		return false, err
	case running:
		return false, nil
	}
	cfg, err := appconfig.Load(a.Host.Path(a.Layout.InstanceDir(rec.Instance)))
	if err != nil {
		return false, err
	}
	services, err := a.prepareServices(ctx, c, rec.App, cfg, false)
	if err != nil {
		return false, err
	}
	var workers []instance.Worker
	if withJobs {
		p, err := a.jobPlacement(rec.App, placement)
		if err != nil {
			return false, err
		}
		workers = workersFor(cfg, p)
	}
	inst, err := nodes.Prepare(ctx, rec, instance.Spec{Locations: []string{loc.String()}, Config: cfg, Services: services, Workers: workers})
	if err != nil {
		return false, err
	}
	err = nodes.Start(ctx, inst, st.Progress, healthTimeout)
	if err == nil {
		err = nodes.StartWorkers(ctx, inst)
	}
	if err != nil {
		_ = nodes.Stop(context.WithoutCancel(ctx), rec.Instance, rec.Kind, false)
		return false, err
	}
	return true, nil
}
