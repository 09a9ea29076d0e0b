package agent

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/blobstore"
	"github.com/toppcloud/toppcloud/internal/agent/instance"
	"github.com/toppcloud/toppcloud/internal/agent/router"
	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

// DefaultQueryReleases is how many of each app's latest releases query
// returns when the client does not say.
const DefaultQueryReleases = 5

// instanceDirRE matches an instance directory name: APP.SUFFIX.
var instanceDirRE = regexp.MustCompile(`^([a-z0-9][a-z0-9_-]*)\.[A-Za-z0-9_.-]+$`)

// instancesOnDisk lists the instance directories in /var/www by app.
func (a *Agent) instancesOnDisk() (map[string][]string, error) {
	entries, err := os.ReadDir(a.Host.Path(a.Layout.WWW))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string][]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, e := range entries {
		m := instanceDirRE.FindStringSubmatch(e.Name())
		if !e.IsDir() || m == nil || strings.HasSuffix(e.Name(), ".partial") {
			continue
		}
		out[m[1]] = append(out[m[1]], e.Name())
	}
	for _, v := range out {
		slices.Sort(v)
	}
	return out, nil
}

// unitStates asks systemd for the state of instances' units.
func (a *Agent) unitStates(ctx context.Context, instances []string) map[string]string {
	states := map[string]string{}
	if len(instances) == 0 {
		return states
	}
	units := make([]string, len(instances))
	for i, in := range instances {
		units[i] = instance.UnitName(in)
	}
	for i, s := range a.systemd().States(ctx, units...) {
		if s != "" {
			states[instances[i]] = s
		}
	}
	return states
}

func (a *Agent) queryOp() Op {
	return Handle(protocol.OpQuery, "list apps, routes, instances and releases",
		func(ctx context.Context, c *Call, args *protocol.QueryArgs) (*protocol.QueryResult, error) {
			return a.query(ctx, c, *args)
		})
}

func (a *Agent) query(ctx context.Context, c *Call, args protocol.QueryArgs) (*protocol.QueryResult, error) {
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
	disk, err := a.instancesOnDisk()
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
	var all []string
	for _, app := range slices.Sorted(mapsKeys(apps)) {
		if selected(app, t.RoutesFor(app)) {
			all = append(all, disk[app]...)
		}
	}
	states := a.unitStates(ctx, all)
	for _, app := range slices.Sorted(mapsKeys(apps)) {
		routes := t.RoutesFor(app)
		if !selected(app, routes) {
			continue
		}
		info := protocol.AppInfo{Name: app, Disabled: t.IsDisabled(app), Instances: []protocol.InstanceInfo{}}
		if info.Disabled {
			res.Disabled = append(res.Disabled, app)
		}
		for _, rt := range routes {
			res.Routes = append(res.Routes, routeInfo(rt, info.Disabled))
		}
		for _, in := range disk[app] {
			ii := protocol.InstanceInfo{Name: in, State: states[in]}
			if rec, err := a.readRecord(in); err == nil {
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
		res.Apps = append(res.Apps, info)
	}
	return res, nil
}

func mapsKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func (a *Agent) cleanOp() Op {
	return Handle(protocol.OpClean, "remove instances neither live nor prev, unused contents and leftovers of interrupted updates",
		func(ctx context.Context, c *Call, args *protocol.CleanArgs) (*protocol.CleanResult, error) {
			return a.clean(ctx, c, *args)
		})
}

// cleanPartialAge: an unfinished instance directory older than this
// belongs to an update that was killed (assembling takes seconds).
const cleanPartialAge = 10 * time.Minute

func (a *Agent) clean(ctx context.Context, c *Call, args protocol.CleanArgs) (*protocol.CleanResult, error) {
	res := &protocol.CleanResult{Removed: []string{}, Kept: []string{}}
	// With no upload running, everything an interrupted upload left can
	// go, however young; with one running, only what is old.
	uploads, err := a.Locks().Acquire(ctx, uploadsLock, "clean-node", 5*time.Second, nil)
	exclusive := err == nil
	if exclusive {
		defer uploads()
	} else {
		c.Warnf("an upload is running: its contents and other recent uploads are kept")
	}

	disk, err := a.instancesOnDisk()
	if err != nil {
		return nil, err
	}
	t, err := a.loadTable(c)
	if err != nil {
		return nil, err
	}
	keep := map[string]bool{}
	for _, in := range t.Instances() {
		keep[in] = true
	}
	for _, app := range slices.Sorted(func(yield func(string) bool) {
		for k := range disk {
			if !yield(k) {
				return
			}
		}
	}) {
		release, err := a.Locks().Acquire(ctx, appLockName(app), "clean-node", 0, nil)
		if err != nil {
			// An update of it runs: its new instance is in no route yet.
			res.Skipped = append(res.Skipped, app)
			continue
		}
		func() {
			defer release()
			// Re-read under the app's lock: an update may just have
			// switched.
			t, err := a.loadTable(c)
			if err != nil {
				c.Warnf("%v", err)
				return
			}
			keep := map[string]bool{}
			for _, in := range t.Instances() {
				keep[in] = true
			}
			for _, in := range disk[app] {
				if keep[in] {
					res.Kept = append(res.Kept, in)
					continue
				}
				res.Removed = append(res.Removed, in)
				if args.DryRun {
					continue
				}
				if err := a.removeInstance(ctx, in); err != nil {
					c.Warnf("remove %s: %v", in, err)
				}
			}
		}()
	}
	// Links directories whose instance directory is gone.
	if entries, err := os.ReadDir(a.Host.Path(a.Layout.Instances)); err == nil {
		for _, e := range entries {
			if keep[e.Name()] {
				continue
			}
			if ok, _ := a.Host.Exists(path.Join(a.Layout.WWW, e.Name())); ok {
				continue
			}
			m := instanceDirRE.FindStringSubmatch(e.Name())
			if m != nil && slices.Contains(res.Skipped, m[1]) {
				continue
			}
			if !args.DryRun {
				_ = os.RemoveAll(a.Host.Path(path.Join(a.Layout.Instances, e.Name())))
			}
		}
	}

	age := cleanPartialAge
	if exclusive && len(res.Skipped) == 0 {
		age = time.Nanosecond
	}
	if !args.DryRun {
		n, err := blobstore.CleanPartial(a.Host.Path(a.Layout.WWW), age, a.Host.Time())
		if err != nil {
			c.Warnf("partial instances: %v", err)
		}
		res.Partial += n
	}

	opts := blobstore.Options{}
	if exclusive {
		opts.TempAge, opts.PendingAge = time.Nanosecond, time.Nanosecond
	}
	store, err := blobstore.Open(a.Host.Path(a.Layout.Blobs), opts)
	if err != nil {
		return nil, err
	}
	gs, err := store.GC(ctx, blobstore.GCOptions{DryRun: args.DryRun})
	if err != nil {
		return nil, err
	}
	res.Blobs, res.BlobBytes, res.Manifests = gs.Blobs, gs.Bytes, gs.Manifests
	res.Partial += gs.Temps
	return res, nil
}
