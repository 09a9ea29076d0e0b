package agent

import (
	"context"
	"maps"
	"path"
	"slices"

	"github.com/toppcloud/toppcloud/internal/agent/router"
	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

// DefaultQueryReleases is how many of each app's latest releases query
// returns when the client does not say.
const DefaultQueryReleases = 5

func (a *Agent) query(ctx context.Context, c *Call, args *protocol.QueryArgs) (*protocol.QueryResult, error) {
	var patterns []router.Pattern
	for _, s := range args.Patterns {
		if _, err := path.Match(s, ""); err != nil {
			return nil, badRequest("pattern %q: %v", s, err)
		}
		if p, err := router.ParsePattern(s); err == nil {
			patterns = append(patterns, p)
		}
	}
	nRel := args.Releases
	if nRel <= 0 {
		nRel = DefaultQueryReleases
	}
	t, err := a.loadTable(c)
	if err != nil {
		return nil, err
	}
	disk, err := a.instances().OnDisk()
	if err != nil {
		return nil, err
	}
	// Which apps to show: those whose name matches, or one of whose routes
	// does.
	selected := func(app string, routes []router.Route) bool {
		if len(args.Patterns) == 0 {
			return true
		}
		for _, s := range args.Patterns {
			if ok, _ := path.Match(s, app); ok {
				return true
			}
		}
		for _, rt := range routes {
			for _, p := range patterns {
				if p.Match(rt.Location) {
					return true
				}
			}
		}
		return false
	}
	apps := map[string]bool{}
	for app := range disk {
		apps[app] = true
	}
	for _, rt := range t.Routes {
		apps[rt.App] = true
	}
	res := &protocol.QueryResult{Apps: []protocol.AppInfo{}, Routes: []protocol.RouteInfo{}, Disabled: []string{}}
	var frontLog []byte
	for _, rt := range t.Routes {
		if certificateHost(rt.Location) != "" {
			frontLog = a.frontLog(ctx)
			break
		}
	}
	var all []string
	for _, app := range slices.Sorted(maps.Keys(apps)) {
		if selected(app, t.RoutesFor(app)) {
			all = append(all, disk[app]...)
		}
	}
	states := a.instances().States(ctx, all...)
	for _, app := range slices.Sorted(maps.Keys(apps)) {
		routes := t.RoutesFor(app)
		if !selected(app, routes) {
			continue
		}
		info := protocol.AppInfo{Name: app, Disabled: t.IsDisabled(app), Instances: []protocol.InstanceInfo{}}
		if info.Disabled {
			res.Disabled = append(res.Disabled, app)
		}
		for _, rt := range routes {
			ri := routeInfo(rt, info.Disabled)
			if host := certificateHost(rt.Location); host != "" {
				ri.Certificate = a.certificateInfo(host, frontLog)
			}
			res.Routes = append(res.Routes, ri)
		}
		for _, in := range disk[app] {
			ii := protocol.InstanceInfo{Name: in, State: states[in]}
			if rec, err := a.instances().Record(in); err == nil {
				ii.Kind, ii.Created, ii.Digest = rec.Kind.String(), rec.Created, rec.Digest
				if rec.Kind == appconfig.KindStatic {
					ii.State = "static"
				}
			}
			for _, rt := range routes {
				if rt.Live == in {
					ii.Live = append(ii.Live, rt.Location.String())
				}
				if rt.Prev == in {
					ii.Prev = append(ii.Prev, rt.Location.String())
				}
			}
			info.Instances = append(info.Instances, ii)
		}
		rs, problems, err := a.readReleases(app)
		if err != nil {
			c.Warnf("releases of %s: %v", app, err)
		}
		for _, p := range problems {
			c.Warnf("%s: %v", app, p)
		}
		if len(rs) > nRel {
			rs = rs[len(rs)-nRel:]
		}
		info.Releases = rs
		a.jobInfo(ctx, c, app, t, &info)
		for _, rt := range routes {
			if rt.Live != "" {
				info.Services = a.appUsage(ctx, c, app, rt.Live)
				break
			}
		}
		res.Apps = append(res.Apps, info)
	}
	return res, nil
}
