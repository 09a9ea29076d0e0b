package agent

import (
	"context"
	"fmt"
	"path"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/instance"
	"github.com/toppcloud/toppcloud/internal/agent/router"
	"github.com/toppcloud/toppcloud/internal/agent/setup"
	"github.com/toppcloud/toppcloud/internal/location"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

// Locks and their waits for application operations.
const (
	// routesLock serializes changes to the route table, the slots and
	// Caddy's config; it is held for moments (never while an instance
	// starts), so its wait is short.
	routesLock     = "routes"
	routesLockWait = 2 * time.Minute
	// DefaultAppLockWait is how long an operation on an app waits for
	// another one on the same app (update --lock-timeout).
	DefaultAppLockWait = 10 * time.Minute
	// uploadsLock is held shared by uploads and exclusively by
	// clean-node, which may then remove what interrupted uploads left.
	uploadsLock = "uploads"
)

// appLockName is the lock of everything that changes one app.
func appLockName(app string) string { return "app-" + app }

// lockApp takes app's lock, telling the client while it waits.
func (a *Agent) lockApp(ctx context.Context, c *Call, app, what string, wait time.Duration) (func(), error) {
	if wait <= 0 {
		wait = DefaultAppLockWait
	}
	return a.Locks().Acquire(ctx, appLockName(app), what+" by "+orUnknown(c.Req.LocalUser), wait,
		func(s string) { c.Warnf("%s", s) })
}

// loadTable reads the route table; entries that cannot be restored are
// reported to the client and left out (one broken entry must not take the
// others down).
func (a *Agent) loadTable(c *Call) (*router.Table, error) {
	t, problems, err := router.LoadTable(a.Host.Path(a.Layout.Routes))
	if err != nil {
		return nil, err
	}
	for _, p := range problems {
		c.Warnf("route table: %v", p)
	}
	return t, nil
}

// routeState is the route table with the records of its live instances:
// what the rendered config and the slots follow from.
type routeState struct {
	table    *router.Table
	backends map[string]router.Backend // by location key
	slots    map[string]string         // slot -> live instance
}

// resolve finds each active route's backend and slot, prev. routes'
// included (router.Table.Served). A route whose live instance has no
// readable record is left without a backend (the router serves
// "unavailable" there) and reported.
func (a *Agent) resolve(c *Call, t *router.Table) *routeState {
	st := &routeState{table: t, backends: map[string]router.Backend{}, slots: map[string]string{}}
	records := map[string]*instance.Record{}
	for _, rt := range t.Served() {
		if !rt.Active() {
			continue
		}
		rec, ok := records[rt.Live]
		if !ok {
			r, err := a.instances().Record(rt.Live)
			if err != nil {
				c.Warnf("route %s: %v", rt.Location, err)
			}
			rec, records[rt.Live] = r, r
		}
		if rec == nil {
			continue
		}
		b, slot, err := slotBackend(a.Layout, rt, rec)
		if err != nil {
			c.Warnf("route %s: %v", rt.Location, err)
			continue
		}
		if rt.IsPrev() && b.Upstream != "" && !liveAnywhere(t, rt.Live) {
			// Through its prev socket, which starts it (syncPrev).
			b.Upstream = "unix/" + path.Join(a.Layout.SlotPath(slot), instance.LinkPrevSock)
		}
		st.backends[rt.Location.Key()] = b
		st.slots[slot] = rt.Live
	}
	return st
}

// applier loads configs into the node's two Caddy processes.
func (a *Agent) applier() *router.Applier {
	return &router.Applier{
		Front:  router.ConfigTarget{Admin: a.admin(a.Layout.AdminSocket), Path: a.Host.Path(a.Layout.CaddyConfig)},
		Router: router.ConfigTarget{Admin: a.admin(a.Layout.RouterAdminSocket), Path: a.Host.Path(a.Layout.RouterConfig)},
	}
}

// routerOptions are the node's settings of the rendered configs: its
// sockets and storage, how it gets certificates (setup-node's), its
// balanced sites (balance.json) and trusted proxies (its site role).
func (a *Agent) routerOptions() (router.Options, error) {
	l := a.Layout
	opt := router.Options{AdminSocket: l.AdminSocket, RouterAdminSocket: l.RouterAdminSocket, RouterDir: l.RouterDir, StorageDir: l.CaddyStorage}
	tls, err := setup.ReadTLSSettings(a.Host, l)
	if err != nil {
		return opt, err
	}
	opt.Issuer, opt.ACMEEmail, opt.ACMECA = tls.Issuer, tls.ACMEEmail, tls.ACMECA
	if tls.ACMECARoot != "" {
		opt.ACMECARoot = l.ACMECARoot
	}
	// A site's app node believes its balancer's X-Forwarded-*; a
	// balancer proxies its sites.
	role, err := setup.ReadSiteRole(a.Host, l)
	if err != nil {
		return opt, err
	}
	opt.TrustProxies = role.TrustProxies
	sites, err := a.readBalance()
	if err != nil {
		return opt, err
	}
	if opt.Balanced, err = parseBalanced(sites); err != nil {
		return opt, err
	}
	return opt, nil
}

// routing renders the node's routing as the route table on disk says,
// with every live instance's backend: what setup-node loads into the two
// Caddy processes it starts. Problems with single routes are warnings.
func (a *Agent) routing(c *Call) (*router.Rendered, error) {
	t, err := a.loadTable(c)
	if err != nil {
		return nil, err
	}
	r, _, err := a.render(c, t)
	return r, err
}

// render renders t with its routes' backends.
func (a *Agent) render(c *Call, t *router.Table) (*router.Rendered, *routeState, error) {
	st := a.resolve(c, t)
	opt, err := a.routerOptions()
	if err != nil {
		return nil, st, err
	}
	r, err := router.Render(t, st.backends, opt)
	if err != nil {
		return nil, st, err
	}
	for _, w := range r.Warnings {
		c.Warnf("%v", w)
	}
	return r, st, nil
}

// commitRoutes makes t the node's routing, in the order that keeps every
// request answered: slots first (an unchanged config switches here, with
// no reload), then the config (only posted when it differs: a new route,
// a new kind, a disabled app), then the saved table, then slots nothing
// uses any more. The caller holds the routes lock. If Caddy refuses the
// config, the slots are pointed back as old says and nothing is saved.
func (a *Agent) commitRoutes(ctx context.Context, c *Call, old, t *router.Table) (reloaded bool, err error) {
	r, st, err := a.render(c, t)
	if err != nil {
		return false, err
	}
	for slot, inst := range st.slots {
		if err := a.pointSlot(slot, inst); err != nil {
			a.pointSlots(c, old)
			return false, err
		}
	}
	did, err := a.applier().Apply(ctx, r)
	if err != nil {
		a.pointSlots(c, old)
		return false, fmt.Errorf("load the routing config: %w", err)
	}
	reloaded = did.Front || did.Router
	if err := router.SaveTable(a.Host.Path(a.Layout.Routes), t); err != nil {
		return reloaded, err
	}
	keep := map[string]bool{}
	for slot := range st.slots {
		keep[slot] = true
	}
	if _, err := a.removeSlotsExcept(keep); err != nil {
		c.Warnf("remove unused slots: %v", err)
	}
	return reloaded, nil
}

// pointSlots points every slot of t at its live instance (undoing a
// commit that failed half way); problems are warnings.
func (a *Agent) pointSlots(c *Call, t *router.Table) {
	if t == nil {
		return
	}
	for slot, inst := range a.resolve(c, t).slots {
		if err := a.pointSlot(slot, inst); err != nil {
			c.Warnf("point slot %s back at %s: %v", slot, inst, err)
		}
	}
}

// liveAnywhere reports whether instance is live at some route of t.
func liveAnywhere(t *router.Table, instance string) bool {
	for _, rt := range t.Routes {
		if rt.Live == instance {
			return true
		}
	}
	return false
}

func notFound(format string, args ...any) error {
	return &protocol.Error{Code: protocol.CodeNotFound, Message: fmt.Sprintf(format, args...)}
}

// routeAt reads a request's location and returns the route there, or a
// not-found error naming it.
func (a *Agent) routeAt(c *Call, s string) (location.Location, router.Route, error) {
	loc, err := location.Parse(s)
	if err != nil {
		return loc, router.Route{}, badRequest("%v", err)
	}
	t, err := a.loadTable(c)
	if err != nil {
		return loc, router.Route{}, err
	}
	rt, ok := t.Lookup(loc)
	if !ok {
		return loc, rt, notFound("nothing is deployed at %s on this node (query lists what is)", loc)
	}
	return loc, rt, nil
}

func routeInfo(rt router.Route, disabled bool) protocol.RouteInfo {
	return protocol.RouteInfo{Location: rt.Location.String(), App: rt.App, Live: rt.Live, Prev: rt.Prev, Disabled: disabled}
}
