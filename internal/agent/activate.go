package agent

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/instance"
	"github.com/toppcloud/toppcloud/internal/agent/router"
	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/location"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/version"
)

func notFound(format string, args ...any) error {
	return &protocol.Error{Code: protocol.CodeNotFound, Message: fmt.Sprintf(format, args...)}
}

// routeAt returns the route at loc, or a not-found error naming it.
func (a *Agent) routeAt(c *Call, loc location.Location) (router.Route, error) {
	t, err := a.loadTable(c)
	if err != nil {
		return router.Route{}, err
	}
	rt, ok := t.Lookup(loc)
	if !ok {
		return rt, notFound("nothing is deployed at %s on this node (query lists what is)", loc)
	}
	return rt, nil
}

func (a *Agent) activateOp() Op {
	return Handle(protocol.OpActivate, "make an instance (name, prev or release number) live at a location",
		func(ctx context.Context, c *Call, args *protocol.ActivateArgs) (*protocol.ActivateResult, error) {
			return a.activate(ctx, c, *args)
		})
}

func (a *Agent) activate(ctx context.Context, c *Call, args protocol.ActivateArgs) (*protocol.ActivateResult, error) {
	loc, err := location.Parse(args.Location)
	if err != nil {
		return nil, badRequest("%v", err)
	}
	if args.Target == "" {
		return nil, badRequest("activate: name an instance, prev or a release number")
	}
	rt, err := a.routeAt(c, loc)
	if err != nil {
		return nil, err
	}
	app := rt.App
	st := c.Out.Start(StepLock)
	release, err := a.lockApp(ctx, c, app, "activate", time.Duration(args.LockWait))
	if err != nil {
		st.Failed(firstLine(err.Error()))
		return nil, err
	}
	defer release()
	st.Done(false, "app "+app)
	// Under the lock, the route as it is now.
	if rt, err = a.routeAt(c, loc); err != nil {
		return nil, err
	}
	if rt.App != app {
		return nil, fmt.Errorf("activate: %s changed apps meanwhile; run activate again", loc)
	}

	target, err := a.resolveTarget(app, rt, args.Target)
	if err != nil {
		return nil, err
	}
	res := &protocol.ActivateResult{Location: loc.String(), Instance: target, Prev: rt.Prev}
	if target == rt.Live {
		res.Unchanged = true
		return res, nil
	}
	rec, err := a.readRecord(target)
	if err != nil {
		return nil, notFound("instance %s cannot be activated: %v", target, err)
	}
	if rec.Unsynced {
		return nil, badRequest("instance %s cannot be activated: the update that made it did not finish (the node went down before its files were on disk), so it may be incomplete; update again (clean-node removes it)", target)
	}

	// Start it beside the live one, with the same health check as an
	// update (no update_fetch: it ran when the instance was made).
	st = c.Out.Start(StepStart)
	started, err := a.startExisting(ctx, c, st, rec, loc, time.Duration(args.HealthTimeout))
	if err != nil {
		st.Failed(firstLine(err.Error()))
		return nil, err
	}
	if started {
		st.Done(true, target+" answers")
	} else {
		st.Skipped(target + " is running already")
	}
	stopNew := func() {
		if started {
			_ = a.stopInstance(context.WithoutCancel(ctx), target, rec.Kind, false)
		}
	}

	st = c.Out.Start(StepSwitch)
	oldLive, t, reloaded, err := a.switchTo(ctx, c, loc, target, func(t *router.Table) (router.Route, error) { return t.Activate(loc, target) })
	if err != nil {
		st.Failed(firstLine(err.Error()))
		stopNew()
		return nil, err
	}
	res.Reloaded = reloaded
	if now, ok := t.Lookup(loc); ok {
		res.Prev = now.Prev
	}
	st.Done(true, fmt.Sprintf("%s -> %s at %s", orNone(rt.Live), target, loc))

	if oldLive != "" {
		st = c.Out.Start(StepDrain)
		detail, err := a.drainAndStop(ctx, oldLive)
		if err != nil {
			c.Warnf("stop %s: %v", oldLive, err)
		}
		st.Done(true, oldLive+" stopping ("+detail+")")
	}
	r, err := a.appendRelease(app, protocol.Release{
		Action: ActionActivate, Instance: target, Prev: res.Prev, Locations: []string{loc.String()},
		Time: a.Host.Time().UTC(), LocalUser: c.Req.LocalUser, Digest: rec.Digest, Version: version.Version,
	})
	if err != nil {
		c.Warnf("release record of %s: %v", app, err)
	}
	res.Release = r.Number
	return res, nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
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
// already (live elsewhere). It reports whether it started it.
func (a *Agent) startExisting(ctx context.Context, c *Call, st *protocol.Step, rec *instanceRecord, loc location.Location, healthTimeout time.Duration) (bool, error) {
	if rec.Kind == appconfig.KindStatic {
		return false, nil
	}
	switch running, err := a.instanceRunning(ctx, rec.Instance); {
	case err != nil:
		return false, err
	case running:
		return false, nil
	}
	dir := a.Host.Path(path.Join(a.Layout.WWW, rec.Instance))
	cfg, err := appconfig.Load(dir)
	if err != nil {
		return false, err
	}
	services, err := a.prepareServices(ctx, c, rec.App, cfg, false)
	if err != nil {
		return false, err
	}
	if changed, err := a.InstallRuntime(); err != nil {
		return false, err
	} else if len(changed) > 0 {
		if err := a.systemd().DaemonReload(ctx); err != nil {
			return false, err
		}
	}
	if err := a.ensureAppUser(ctx, rec.App); err != nil {
		return false, err
	}
	if ok, _ := a.Host.Exists(a.Layout.TempDir(rec.App)); !ok {
		if err := a.freshTemp(rec.App); err != nil {
			return false, err
		}
	}
	inst, err := a.runnerInstance(rec, instanceSpec{Locations: []string{loc.String()}, Config: cfg, Services: services})
	if err != nil {
		return false, err
	}
	if err := a.writeLinks(rec); err != nil {
		return false, err
	}
	if err := a.startInstance(ctx, st, inst, healthTimeout); err != nil {
		_ = a.stopInstance(context.WithoutCancel(ctx), rec.Instance, rec.Kind, false)
		return false, err
	}
	return true, nil
}

// instanceRunning reports whether an instance runs as the agent left it
// (live somewhere). An instance the agent stopped has no drop-in any more,
// but its processes may still be exiting (stops do not wait): then this
// waits until they have, so a new start is not mistaken for, or merged
// into, the old one.
func (a *Agent) instanceRunning(ctx context.Context, name string) (bool, error) {
	unit := instance.UnitName(name)
	state := func() string { return a.systemd().State(ctx, unit) }
	if ok, err := a.Host.Exists(instance.DropInPath(a.Layout, name)); err != nil {
		return false, err
	} else if ok {
		return state() == "active", nil
	}
	deadline := time.Now().Add(instance.DefaultGracefulTimeout + instance.DefaultStopSlack)
	for {
		switch state() {
		case "active", "deactivating", "activating", "reloading":
		default:
			return false, nil
		}
		if time.Now().After(deadline) {
			return false, fmt.Errorf("%s is still stopping after %s", unit, instance.DefaultGracefulTimeout+instance.DefaultStopSlack)
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// switchTo changes the route at loc under the routes lock with change and
// commits it. It returns the instance that no location serves any more
// (to drain), "" if none.
func (a *Agent) switchTo(ctx context.Context, c *Call, loc location.Location, target string, change func(*router.Table) (router.Route, error)) (string, *router.Table, bool, error) {
	release, err := a.Locks().Acquire(ctx, routesLock, "activate", routesLockWait, nil)
	if err != nil {
		return "", nil, false, err
	}
	defer release()
	old, err := a.loadTable(c)
	if err != nil {
		return "", nil, false, err
	}
	before, ok := old.Lookup(loc)
	if !ok {
		return "", nil, false, notFound("nothing is deployed at %s any more", loc)
	}
	t := old.Clone()
	if _, err := change(t); err != nil {
		if errors.Is(err, router.ErrNoPrev) || errors.Is(err, router.ErrNoRoute) {
			return "", nil, false, notFound("%v", err)
		}
		return "", nil, false, err
	}
	reloaded, err := a.commitRoutes(ctx, c, old, t)
	if err != nil {
		return "", nil, false, err
	}
	oldLive := ""
	if before.Live != "" && before.Live != target && !liveAnywhere(t, before.Live) {
		oldLive = before.Live
	}
	return oldLive, t, reloaded, nil
}

func (a *Agent) deactivateOp() Op {
	return Handle(protocol.OpDeactivate, "remove routes (globs allowed) and stop instances no route serves",
		func(ctx context.Context, c *Call, args *protocol.DeactivateArgs) (*protocol.DeactivateResult, error) {
			return a.deactivate(ctx, c, *args)
		})
}

func parsePatterns(ps []string) ([]router.Pattern, error) {
	var out []router.Pattern
	for _, s := range ps {
		p, err := router.ParsePattern(s)
		if err != nil {
			return nil, badRequest("%v", err)
		}
		out = append(out, p)
	}
	return out, nil
}

func (a *Agent) deactivate(ctx context.Context, c *Call, args protocol.DeactivateArgs) (*protocol.DeactivateResult, error) {
	if len(args.Patterns) == 0 {
		return nil, badRequest("deactivate: name at least one location")
	}
	patterns, err := parsePatterns(args.Patterns)
	if err != nil {
		return nil, err
	}
	t, err := a.loadTable(c)
	if err != nil {
		return nil, err
	}
	// Every app losing a route is locked, in name order, so no update of
	// it runs meanwhile and its release numbers stay in order.
	var apps []string
	for _, rt := range t.Find(patterns) {
		apps = append(apps, rt.App)
	}
	slices.Sort(apps)
	apps = slices.Compact(apps)
	for _, app := range apps {
		release, err := a.lockApp(ctx, c, app, "deactivate", 0)
		if err != nil {
			return nil, err
		}
		defer release()
	}

	res := &protocol.DeactivateResult{Removed: []protocol.RouteInfo{}, Stopped: []string{}}
	st := c.Out.Start(StepSwitch)
	var removed []router.Route
	var after *router.Table
	err = func() error {
		release, err := a.Locks().Acquire(ctx, routesLock, "deactivate", routesLockWait, nil)
		if err != nil {
			return err
		}
		defer release()
		old, err := a.loadTable(c)
		if err != nil {
			return err
		}
		after = old.Clone()
		removed = after.Remove(patterns, args.KeepPrev)
		if len(removed) == 0 {
			return nil
		}
		_, err = a.commitRoutes(ctx, c, old, after)
		return err
	}()
	if err != nil {
		st.Failed(firstLine(err.Error()))
		return nil, err
	}
	if len(removed) == 0 {
		st.Skipped("no route matches")
		return res, nil
	}
	st.Done(true, plural(len(removed), "route", "routes")+" removed")

	byApp := map[string][]string{}
	stopped := map[string]bool{}
	for _, rt := range removed {
		res.Removed = append(res.Removed, routeInfo(rt, false))
		byApp[rt.App] = append(byApp[rt.App], rt.Location.String())
		if rt.Live != "" && !liveAnywhere(after, rt.Live) && !stopped[rt.Live] {
			stopped[rt.Live] = true
			st := c.Out.Start(StepDrain)
			detail, err := a.drainAndStop(ctx, rt.Live)
			if err != nil {
				c.Warnf("stop %s: %v", rt.Live, err)
			}
			st.Done(true, rt.Live+" stopping ("+detail+")")
			res.Stopped = append(res.Stopped, rt.Live)
		}
	}
	for _, rt := range removed {
		locs, ok := byApp[rt.App]
		if !ok {
			continue
		}
		delete(byApp, rt.App)
		if _, err := a.appendRelease(rt.App, protocol.Release{
			Action: ActionDeactivate, Instance: rt.Live, Prev: rt.Prev, Locations: locs,
			Time: a.Host.Time().UTC(), LocalUser: c.Req.LocalUser, Version: version.Version,
		}); err != nil {
			c.Warnf("release record of %s: %v", rt.App, err)
		}
	}
	return res, nil
}

func routeInfo(rt router.Route, disabled bool) protocol.RouteInfo {
	return protocol.RouteInfo{Location: rt.Location.String(), App: rt.App, Live: rt.Live, Prev: rt.Prev, Disabled: disabled}
}

func (a *Agent) disableOp(enable bool) Op {
	name, summary := protocol.OpDisable, "serve the disabled page at every location of an app, keeping it deployed"
	if enable {
		name, summary = protocol.OpEnable, "undo disable"
	}
	return Handle(name, summary, func(ctx context.Context, c *Call, args *protocol.DisableArgs) (*protocol.DisableResult, error) {
		return a.disable(ctx, c, *args, enable)
	})
}

func (a *Agent) disable(ctx context.Context, c *Call, args protocol.DisableArgs, enable bool) (*protocol.DisableResult, error) {
	app := args.App
	switch {
	case (app == "") == (args.Location == ""):
		return nil, badRequest("name an app or a location, not both")
	case app == "":
		loc, err := location.Parse(args.Location)
		if err != nil {
			return nil, badRequest("%v", err)
		}
		rt, err := a.routeAt(c, loc)
		if err != nil {
			return nil, err
		}
		app = rt.App
	default:
		if err := checkApp(app); err != nil {
			return nil, err
		}
	}
	release, err := a.lockApp(ctx, c, app, "disable", 0)
	if err != nil {
		return nil, err
	}
	defer release()
	rl, err := a.Locks().Acquire(ctx, routesLock, "disable "+app, routesLockWait, nil)
	if err != nil {
		return nil, err
	}
	defer rl()
	old, err := a.loadTable(c)
	if err != nil {
		return nil, err
	}
	t := old.Clone()
	var changed bool
	if enable {
		changed = t.Enable(app)
	} else if changed, err = t.Disable(app); err != nil {
		return nil, notFound("%s is not deployed on this node (no location serves it)", app)
	}
	res := &protocol.DisableResult{App: app, Changed: changed, Locations: []string{}}
	for _, rt := range t.RoutesFor(app) {
		res.Locations = append(res.Locations, rt.Location.String())
	}
	if !changed {
		return res, nil
	}
	if _, err := a.commitRoutes(ctx, c, old, t); err != nil {
		return nil, err
	}
	return res, nil
}
