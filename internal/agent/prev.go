package agent

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/instance"
	"github.com/toppcloud/toppcloud/internal/agent/router"
	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/location"
	"github.com/toppcloud/toppcloud/internal/protocol"
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

// prevPlan is what syncPrev would do for apps: the armed previous
// instances to stop or disarm, and the ones to arm with their locations.
type prevPlan struct {
	stop []string
	arm  map[string]location.Location
}

func (p prevPlan) empty() bool { return len(p.stop) == 0 && len(p.arm) == 0 }

// planPrev compares the armed previous instances with what t wants.
func (a *Agent) planPrev(t *router.Table, apps []string) (prevPlan, error) {
	nodes := a.instances()
	p := prevPlan{arm: prevWanted(t, apps)}
	armed, err := nodes.ArmedPrevs()
	if err != nil {
		return p, err
	}
	for _, name := range armed {
		app, _, _ := strings.Cut(name, ".")
		if _, ok := p.arm[name]; ok || !slices.Contains(apps, app) {
			continue
		}
		p.stop = append(p.stop, name)
	}
	for name := range p.arm {
		if nodes.IsArmedPrev(name) {
			delete(p.arm, name)
		}
	}
	return p, nil
}

// needsUnits reports whether carrying p out stops or prepares systemd
// units (seconds of work) rather than only files: static instances are
// served from their files as they are.
func (a *Agent) needsUnits(p prevPlan) bool {
	nodes := a.instances()
	for _, name := range slices.Concat(p.stop, slices.Collect(maps.Keys(p.arm))) {
		if rec, err := nodes.Record(name); err != nil || rec.Kind != appconfig.KindStatic {
			return true
		}
	}
	return false
}

// syncPrev makes the armed previous instances of apps what t says: the
// ones that are no longer previous instances stop (or, live again, only
// lose their prev socket), the new ones are armed, not started. It
// returns what it did, for the step's detail; problems are warnings (the
// switch is done, and prev. hosts are a convenience).
func (a *Agent) syncPrev(ctx context.Context, c *Call, t *router.Table, apps ...string) string {
	p, err := a.planPrev(t, apps)
	if err != nil {
		c.Warnf("prev. hosts: %v", err)
		return "not checked: " + err.Error()
	}
	return a.applyPrev(ctx, c, t, p)
}

// applyPrev carries p out (see syncPrev).
func (a *Agent) applyPrev(ctx context.Context, c *Call, t *router.Table, p prevPlan) string {
	nodes := a.instances()
	var did []string
	for _, name := range p.stop {
		var err error
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
	for _, name := range slices.Sorted(maps.Keys(p.arm)) {
		loc := p.arm[name]
		if err := a.armPrev(ctx, c, name, loc); err != nil {
			c.Warnf("prev. host of %s: %v (prev.%s shows the unavailable page; activate works as before)", name, err, loc.Host)
			continue
		}
		did = append(did, name+" answers at "+prevURL(loc)+", started on demand")
	}
	return strings.Join(did, "; ")
}

// startPrevSync has `toppcloud node prev-sync APP` carry out the prev.
// host changes in a transient unit of its own, after the operation that
// asked for them, so that an update's switch returns without waiting for
// them: stopping the replaced previous instance and preparing the new one
// take about a second on a Python app, and nothing waits on a prev. host.
// The unit takes the app's lock, so it runs once the update has ended,
// and reads the route table then: a later operation's changes win.
func (a *Agent) startPrevSync(ctx context.Context, app string) error {
	unit := fmt.Sprintf("toppcloud-prev-sync-%s-%d.service", app, a.Host.Time().UnixNano())
	_, err := a.Host.Runner.Run(ctx, host.Command{Argv: []string{
		"systemd-run", "--quiet", "--no-block", "--collect", "--unit=" + unit,
		"--description=toppcloud: prev. host of " + app,
		protocol.AgentPath, "node", protocol.OpPrevSync, app,
	}})
	return err
}

// prevSyncMain is `toppcloud node prev-sync APP`, which startPrevSync
// runs: not a message stream, its output goes to the unit's journal.
func (a *Agent) prevSyncMain(ctx context.Context, app string, stdout, stderr io.Writer) int {
	if err := checkApp(app); err != nil {
		fmt.Fprintln(stderr, "prev-sync:", err)
		return protocol.ExitUsage
	}
	// Warnings go to the journal as the message lines a client would
	// get.
	c := &Call{Agent: a, Out: protocol.NewWriter(stderr)}
	unlock, err := a.lockApp(ctx, c, app, "prev. host sync", DefaultAppLockWait)
	if err != nil {
		fmt.Fprintln(stderr, "prev-sync:", err)
		return protocol.ExitFailed
	}
	defer unlock()
	t, err := a.loadTable(c)
	if err != nil {
		fmt.Fprintln(stderr, "prev-sync:", err)
		return protocol.ExitFailed
	}
	if did := a.syncPrev(ctx, c, t, app); did != "" {
		fmt.Fprintln(stdout, app+": "+did)
	}
	return 0
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
