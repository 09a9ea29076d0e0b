package agent

import (
	"context"

	"github.com/toppcloud/toppcloud/internal/protocol"
)

func (a *Agent) disable(ctx context.Context, c *Call, args *protocol.DisableArgs) (*protocol.DisableResult, error) {
	return a.setDisabled(ctx, c, args, false)
}

func (a *Agent) enable(ctx context.Context, c *Call, args *protocol.DisableArgs) (*protocol.DisableResult, error) {
	return a.setDisabled(ctx, c, args, true)
}

// setDisabled serves the disabled page at every location of an app, or
// stops serving it (enable).
func (a *Agent) setDisabled(ctx context.Context, c *Call, args *protocol.DisableArgs, enable bool) (*protocol.DisableResult, error) {
	app := args.App
	switch {
	case (app == "") == (args.Location == ""):
		return nil, badRequest("name an app or a location, not both")
	case app == "":
		_, rt, err := a.routeAt(c, args.Location)
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
	// A disabled app's crons stop; enable brings them back.
	a.syncJobsAfter(ctx, c, t, app)
	return res, nil
}
