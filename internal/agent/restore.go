package agent

import (
	"context"
	"fmt"
	"slices"

	"github.com/toppcloud/toppcloud/internal/agent/router"
	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/location"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

// A reboot needs none of this: live instances' units are enabled, the
// slots and links are on disk and Caddy starts with its saved config.
// restore puts things back after something else went wrong (an agent
// killed between two steps, a unit stopped by hand, a Caddy config
// loaded from elsewhere): every slot points at its route's live instance,
// every live instance runs, Caddy runs the table's config, each app's
// jobs run as its jobs' owner.

func (a *Agent) restore(ctx context.Context, c *Call, _ *struct{}) (*protocol.RestoreResult, error) {
	res := &protocol.RestoreResult{Started: []string{}, Relinked: []string{}}
	t, err := a.loadTable(c)
	if err != nil {
		return nil, err
	}
	// Start what should run, one app at a time under its lock; a broken
	// app is reported and the others go on.
	seen := map[string]bool{}
	for _, rt := range t.Routes {
		if !rt.Active() || seen[rt.Live] {
			continue
		}
		seen[rt.Live] = true
		if err := a.restoreInstance(ctx, c, rt.App, rt.Live, rt.Location, res); err != nil {
			res.Problems = append(res.Problems, fmt.Sprintf("%s (%s): %v", rt.Live, rt.Location, err))
		}
	}
	if t, err = a.restoreRoutes(ctx, c, res); err != nil {
		return nil, err
	}
	// Each app's jobs as the table says, under the app's lock.
	for _, app := range appsOf(t) {
		unlock, err := a.lockApp(ctx, c, app, "restore", 0)
		if err != nil {
			res.Problems = append(res.Problems, fmt.Sprintf("jobs of %s: %v", app, err))
			continue
		}
		if _, err := a.syncJobs(ctx, app, t, "", nil); err != nil {
			res.Problems = append(res.Problems, fmt.Sprintf("jobs of %s: %v", app, err))
		}
		unlock()
	}
	return res, nil
}

// restoreRoutes points the slots at the live instances and loads the
// table's config into Caddy, under the routes lock; it returns the table.
func (a *Agent) restoreRoutes(ctx context.Context, c *Call, res *protocol.RestoreResult) (*router.Table, error) {
	release, err := a.Locks().Acquire(ctx, routesLock, "restore", routesLockWait, nil)
	if err != nil {
		return nil, err
	}
	defer release()
	t, err := a.loadTable(c)
	if err != nil {
		return nil, err
	}
	for slot, inst := range a.resolve(c, t).slots {
		if a.slotTarget(slot) != inst {
			res.Relinked = append(res.Relinked, slot)
		}
	}
	slices.Sort(res.Relinked)
	if res.Reloaded, err = a.commitRoutes(ctx, c, t, t); err != nil {
		return nil, err
	}
	return t, nil
}

// appsOf lists the apps t has routes of, sorted.
func appsOf(t *router.Table) []string {
	var apps []string
	for _, rt := range t.Routes {
		apps = append(apps, rt.App)
	}
	slices.Sort(apps)
	return slices.Compact(apps)
}

func (a *Agent) restoreInstance(ctx context.Context, c *Call, app, instance string, loc location.Location, res *protocol.RestoreResult) error {
	release, err := a.lockApp(ctx, c, app, "restore", 0)
	if err != nil {
		return err
	}
	defer release()
	rec, err := a.instances().Record(instance)
	if err != nil {
		return err
	}
	if rec.Kind == appconfig.KindStatic {
		return a.instances().SaveRecord(rec)
	}
	st := c.Out.Start("start " + instance)
	started, err := a.startExisting(ctx, c, st, rec, loc, 0, false, nil)
	if err != nil {
		st.Failed(err)
		return err
	}
	if started {
		res.Started = append(res.Started, instance)
		st.Done(true, "started")
	} else {
		st.Skipped("running")
	}
	return a.instances().SaveRecord(rec)
}
