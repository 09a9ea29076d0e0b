package agent

import (
	"context"
	"slices"

	"github.com/toppcloud/toppcloud/internal/agent/router"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/version"
)

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

func (a *Agent) deactivate(ctx context.Context, c *Call, args *protocol.DeactivateArgs) (*protocol.DeactivateResult, error) {
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
		st.Failed(err)
		return nil, err
	}
	if len(removed) == 0 {
		st.Skipped("no route matches")
		return res, nil
	}
	st.Done(true, plural(len(removed), "route", "routes")+" removed")
	// The apps' jobs move to another live instance, or stop, now rather
	// than after the drain: nothing routes to the instance any more.
	a.syncJobsAfter(ctx, c, after, apps...)

	byApp := map[string][]string{}
	stopped := map[string]bool{}
	for _, rt := range removed {
		res.Removed = append(res.Removed, routeInfo(rt, false))
		byApp[rt.App] = append(byApp[rt.App], rt.Location.String())
		if rt.Live != "" && !liveAnywhere(after, rt.Live) && !stopped[rt.Live] {
			stopped[rt.Live] = true
			st := c.Out.Start(StepDrain)
			detail, err := a.instances().DrainAndStop(ctx, rt.Live)
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
