package agent

import (
	"context"
	"fmt"
	"slices"

	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/location"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

// A reboot needs none of this: live instances' units are enabled, the
// slots and links are on disk and Caddy starts with its saved config.
// restore puts things back after something else went wrong (an agent
// killed between two steps, a unit stopped by hand, a Caddy config
// loaded from elsewhere): every slot points at its route's live instance,
// every live instance runs, Caddy runs the table's config.

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
	release, err := a.Locks().Acquire(ctx, routesLock, "restore", routesLockWait, nil)
	if err != nil {
		return nil, err
	}
	defer release()
	t, err = a.loadTable(c)
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
	return res, nil
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
	started, err := a.startExisting(ctx, c, st, rec, loc, 0)
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
