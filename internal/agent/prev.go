package agent

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/toppcloud/toppcloud/internal/agent/instance"
	"github.com/toppcloud/toppcloud/internal/agent/router"
	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/location"
)

// StepPrev arms the previous instance for its prev. host (see
// instance/prev.go) and disarms the one that no longer is.
const StepPrev = "prev"

// prevWanted returns the instances of apps that t serves at a prev. host
// through their prev socket: the previous instance of a route with an
// exact host, unless it is live somewhere (then its own socket serves
// it), with the location it is the previous instance of.
func prevWanted(t *router.Table, apps []string) map[string]location.Location {
	want := map[string]location.Location{}
	for _, rt := range t.Served() {
		if rt.IsPrev() && rt.Live != "" && slices.Contains(apps, rt.App) && !liveAnywhere(t, rt.Live) {
			if _, ok := want[rt.Live]; !ok {
				l := rt.Location
				l.Host = rt.PrevOf()
				want[rt.Live] = l
			}
		}
	}
	return want
}

// syncPrev makes the armed previous instances of apps what t says: the
// ones that are no longer previous instances stop (or, live again, only
// lose their prev socket), the new ones are armed, not started. It
// returns what it did, for the step's detail; problems are warnings (the
// switch is done, and prev. hosts are a convenience).
func (a *Agent) syncPrev(ctx context.Context, c *Call, t *router.Table, apps ...string) string {
	nodes := a.instances()
	want := prevWanted(t, apps)
	armed, err := nodes.ArmedPrevs()
	if err != nil {
		c.Warnf("prev. hosts: %v", err)
		return "not checked: " + err.Error()
	}
	var did []string
	for _, name := range armed {
		app, _, _ := strings.Cut(name, ".")
		if _, ok := want[name]; ok || !slices.Contains(apps, app) {
			continue
		}
		if liveAnywhere(t, name) {
			err = nodes.DisarmPrev(ctx, name)
		} else {
			kind := appconfig.KindPython
			if rec, rerr := nodes.Record(name); rerr == nil {
				kind = rec.Kind
			}
			err = nodes.Stop(ctx, name, kind, false)
		}
		if err != nil {
			c.Warnf("prev. host of %s: %v", name, err)
			continue
		}
		did = append(did, name+" no longer started on demand")
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		if nodes.IsArmedPrev(name) {
			continue
		}
		loc := want[name]
		if err := a.armPrev(ctx, c, name, loc); err != nil {
			c.Warnf("prev. host of %s: %v (prev.%s shows the unavailable page; activate works as before)", name, err, loc.Host)
			continue
		}
		did = append(did, name+" answers at "+prevURL(loc)+", started on demand")
	}
	return strings.Join(did, "; ")
}

// armPrev prepares instance name as a start would, for loc, and arms it.
func (a *Agent) armPrev(ctx context.Context, c *Call, name string, loc location.Location) error {
	nodes := a.instances()
	rec, err := nodes.Record(name)
	if err != nil {
		return err
	}
	if rec.Kind == appconfig.KindStatic {
		return nil // files only: the router serves them as they are
	}
	cfg, err := appconfig.Load(a.Host.Path(a.Layout.InstanceDir(name)))
	if err != nil {
		return err
	}
	services, err := a.prepareServices(ctx, c, rec.App, cfg, false)
	if err != nil {
		return err
	}
	inst, err := nodes.Prepare(ctx, rec, instance.Spec{Locations: []string{loc.String()}, Config: cfg, Services: services})
	if err != nil {
		return err
	}
	return nodes.ArmPrev(ctx, inst)
}

// prevURL is where loc's previous instance answers.
func prevURL(loc location.Location) string {
	loc.Host = router.PrevPrefix + loc.Host
	return loc.String()
}
