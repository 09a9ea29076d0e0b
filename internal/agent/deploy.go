package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/blobstore"
	"github.com/toppcloud/toppcloud/internal/agent/instance"
	"github.com/toppcloud/toppcloud/internal/agent/router"
	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/location"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/protocol/wire"
	"github.com/toppcloud/toppcloud/internal/version"
)

// Deploy step names, in order; the client shows each as a line.
const (
	StepLock        = "lock"
	StepInstance    = "instance"
	StepConfig      = "config"
	StepServices    = "services"
	StepStart       = "start"
	StepUpdateFetch = "update_fetch"
	StepSwitch      = "switch"
	StepDrain       = "drain"
	StepRelease     = "release"
)

// configDigestFile records which --config upload the app's config
// directory holds.
const configDigestFile = "config.digest"

func (a *Agent) store() (*blobstore.Store, error) {
	return blobstore.Open(a.Host.Path(a.Layout.Blobs), blobstore.Options{})
}

func badRequest(format string, args ...any) error {
	return &protocol.Error{Code: protocol.CodeBadRequest, Message: fmt.Sprintf(format, args...)}
}

// checkApp validates an app name from a request: it becomes paths, a
// user name and unit names.
func checkApp(app string) error {
	if err := appconfig.CheckAppName(app); err != nil {
		return badRequest("%v", err)
	}
	return nil
}

// uploadLock holds the uploads lock shared while an upload runs, so that
// clean-node does not remove what it is writing.
func (a *Agent) uploadLock(ctx context.Context) (func(), error) {
	return a.Locks().AcquireShared(ctx, uploadsLock, time.Minute)
}

func (a *Agent) deployManifestOp() Op {
	return Handle(protocol.OpDeployManifest, "keep an upload's manifest and say which contents the node lacks",
		func(ctx context.Context, c *Call, args *protocol.DeployManifestArgs) (*protocol.DeployManifestResult, error) {
			if err := checkApp(args.App); err != nil {
				return nil, err
			}
			if args.NeedConfig {
				ok, err := a.Host.Exists(a.Layout.ConfigDir(args.App))
				if err != nil {
					return nil, err
				}
				if !ok {
					return nil, &protocol.Error{Code: protocol.CodeConfigRequired, Message: fmt.Sprintf(
						"%s requires a configuration (config.required in app.ini) and none was ever uploaded: run update with --config DIR", args.App)}
				}
			}
			release, err := a.uploadLock(ctx)
			if err != nil {
				return nil, err
			}
			defer release()
			m, err := wire.ReadManifest(c.Input)
			if err != nil {
				return nil, badRequest("%v", err)
			}
			st, err := a.store()
			if err != nil {
				return nil, err
			}
			digest, err := st.PutManifest(m)
			if err != nil {
				return nil, err
			}
			missing, err := st.Missing(m)
			if err != nil {
				return nil, err
			}
			res := &protocol.DeployManifestResult{Digest: digest, Missing: missing}
			want := map[wire.Hash]bool{}
			for _, h := range missing {
				want[h] = true
			}
			for _, e := range m.Entries {
				if e.Type == wire.EntryFile && want[e.Hash] {
					res.MissingBytes += e.Size
					delete(want, e.Hash)
				}
			}
			if res.Missing == nil {
				res.Missing = []wire.Hash{}
			}
			return res, nil
		})
}

func (a *Agent) deployBlobsOp() Op {
	return Handle(protocol.OpDeployBlobs, "store the contents streamed after the request",
		func(ctx context.Context, c *Call, _ *struct{}) (*protocol.DeployBlobsResult, error) {
			release, err := a.uploadLock(ctx)
			if err != nil {
				return nil, err
			}
			defer release()
			st, err := a.store()
			if err != nil {
				return nil, err
			}
			rs, err := st.Receive(ctx, c.Input)
			if err != nil {
				return nil, fmt.Errorf("receive: %w (the contents received so far are kept: run update again)", err)
			}
			return &protocol.DeployBlobsResult{Blobs: rs.Blobs, Bytes: rs.Bytes}, nil
		})
}

func (a *Agent) deployOp() Op {
	return Handle(protocol.OpDeploy, "make an instance from an uploaded manifest, start it and switch the location to it",
		func(ctx context.Context, c *Call, args *protocol.DeployArgs) (*protocol.DeployResult, error) {
			return a.deploy(ctx, c, *args)
		})
}

// deployRun is one update on the node.
type deployRun struct {
	a    *Agent
	c    *Call
	args protocol.DeployArgs
	loc  location.Location

	store    *blobstore.Store
	instance string
	cfg      *appconfig.Config
	rec      *instanceRecord
	inst     *instance.Instance
	services map[string]string
	// undoConfig puts the previous --config directory back after a
	// failure before the switch.
	undoConfig func()
	// synced receives the result of the blob store's Sync, which runs
	// while the instance starts (see startSync).
	synced chan error
	// switched is set once the location serves the new instance; table is
	// the route table then, oldLive the instance no location serves any
	// more, to drain.
	switched bool
	table    *router.Table
	oldLive  string
	res      protocol.DeployResult
}

func (a *Agent) deploy(ctx context.Context, c *Call, args protocol.DeployArgs) (*protocol.DeployResult, error) {
	if err := checkApp(args.App); err != nil {
		return nil, err
	}
	loc, err := location.Parse(args.Location)
	if err != nil {
		return nil, badRequest("%v", err)
	}
	d := &deployRun{a: a, c: c, args: args, loc: loc}
	d.res.Location = loc.String()
	if d.store, err = a.store(); err != nil {
		return nil, err
	}

	st := c.Out.Start(StepLock)
	release, err := a.lockApp(ctx, c, args.App, "update", time.Duration(args.LockWait))
	if err != nil {
		st.Failed(firstLine(err.Error()))
		return nil, err
	}
	defer release()
	st.Done(false, "app "+args.App)

	if args.SkipUnchanged && args.ConfigDigest == nil && !args.Clear {
		if res, ok := d.unchanged(ctx); ok {
			_ = d.store.RemoveManifest(args.Digest)
			return res, nil
		}
	}

	defer func() {
		if !d.switched {
			d.rollback()
		}
	}()
	steps := []struct {
		name string
		run  func(context.Context, *protocol.Step) (string, error)
	}{
		{StepInstance, d.makeInstance},
		{StepConfig, d.installConfig},
		{StepPackages, d.installPackages},
		{StepServices, d.prepareServices},
		{StepStart, d.start},
		{StepUpdateFetch, d.updateFetch},
		{StepSwitch, d.switchRoute},
		{StepDrain, d.drain},
		{StepRelease, d.record},
	}
	for _, s := range steps {
		st := c.Out.Start(s.name)
		detail, err := s.run(ctx, st)
		if err != nil {
			st.Failed(firstLine(err.Error()))
			return nil, err
		}
		st.Done(true, detail)
	}
	return &d.res, nil
}

// unchanged answers an update that would change nothing: the location's
// live instance was made from the same manifest, with the same
// configuration, by this agent version, and runs.
func (d *deployRun) unchanged(ctx context.Context) (*protocol.DeployResult, bool) {
	a := d.a
	t, err := a.loadTable(d.c)
	if err != nil {
		return nil, false
	}
	rt, ok := t.Lookup(d.loc)
	if !ok || !rt.Active() || rt.App != d.args.App || rt.Location.Scheme != d.loc.Scheme || t.IsDisabled(rt.App) {
		return nil, false
	}
	rec, err := a.readRecord(rt.Live)
	if err != nil || rec.Digest != d.args.Digest.String() || rec.AgentVersion != version.Version || rec.ConfigDigest != a.currentConfigDigest(d.args.App) {
		return nil, false
	}
	if rec.Kind != appconfig.KindStatic {
		if !a.systemd().Active(ctx, instance.UnitName(rt.Live)) {
			return nil, false
		}
	}
	return &protocol.DeployResult{Instance: rt.Live, Prev: rt.Prev, Location: rt.Location.String(), Unchanged: true}, true
}

// currentConfigDigest is the digest of the app's uploaded config, "" for
// none.
func (a *Agent) currentConfigDigest(app string) string {
	b, err := a.Host.ReadFile(path.Join(a.Layout.AppDir(app), configDigestFile))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func (d *deployRun) makeInstance(ctx context.Context, st *protocol.Step) (string, error) {
	a, app := d.a, d.args.App
	m, err := d.store.Manifest(d.args.Digest)
	if errors.Is(err, blobstore.ErrNoManifest) {
		return "", badRequest("the node has no upload %s (removed by clean-node, or never sent): run update again", d.args.Digest.String()[:12])
	}
	if err != nil {
		return "", err
	}
	www := a.Host.Path(a.Layout.WWW)
	if d.instance, err = blobstore.NextInstanceName(www, app, a.Host.Time()); err != nil {
		return "", err
	}
	stats, err := d.store.Assemble(ctx, m, path.Join(www, d.instance))
	if err != nil {
		if errors.Is(err, blobstore.ErrBlobMissing) {
			return "", badRequest("%v: the upload did not finish; run update again", err)
		}
		return "", err
	}
	_ = d.store.RemoveManifest(d.args.Digest)

	// The node checks app.ini again: the client is not trusted with
	// what becomes units and paths here.
	dir := a.Host.Path(path.Join(a.Layout.WWW, d.instance))
	cfg, err := appconfig.Load(dir)
	if err == nil {
		err = cfg.Validate(dir)
	}
	if err != nil {
		return "", badRequest("%v", strings.ReplaceAll(err.Error(), dir+"/", ""))
	}
	d.cfg = cfg
	if len(cfg.PackageInstallScripts)+len(cfg.AfterInstallScripts) > 0 {
		d.c.Warnf("package_install_script and after_install_script are not run: they would run the app's code as root on the node; list Debian packages in packages instead")
	}
	d.rec = newRecord(app, d.instance, cfg, d.args.Digest.String(), "", a.Host.Time())
	d.rec.Unsynced = true
	if err := a.writeLinks(d.rec); err != nil {
		return "", err
	}
	d.startSync()
	files := fmt.Sprintf("%d files", stats.Files)
	if stats.Copied > 0 {
		files += fmt.Sprintf(", %d copied (%s)", stats.Copied, stats.CopyReason)
	}
	return d.instance + " (" + cfg.Runner.Kind.String() + ", " + files + ")", nil
}

func (d *deployRun) installConfig(ctx context.Context, st *protocol.Step) (string, error) {
	a, app := d.a, d.args.App
	rl := a.Layout
	if err := a.ensureAppUser(ctx, app); err != nil {
		return "", err
	}
	if d.args.ConfigDigest == nil {
		d.rec.ConfigDigest = a.currentConfigDigest(app)
		if d.cfg.ConfigRequired && d.cfg.ConfigDefault == "" {
			if ok, err := a.Host.Exists(rl.ConfigDir(app)); err != nil {
				return "", err
			} else if !ok {
				return "", &protocol.Error{Code: protocol.CodeConfigRequired, Message: app + " requires a configuration (config.required) and none was uploaded: run update with --config DIR"}
			}
		}
		detail := "no --config; none uploaded before"
		if d.rec.ConfigDigest != "" {
			detail = "no --config; the one uploaded before stays"
		}
		return detail, a.writeLinks(d.rec)
	}
	digest := *d.args.ConfigDigest
	m, err := d.store.Manifest(digest)
	if err != nil {
		return "", badRequest("the node has no config upload %s: run update again", digest.String()[:12])
	}
	stamp := strconv.FormatInt(a.Host.Time().UnixNano(), 10)
	dir := rl.ConfigDir(app)
	fresh, old := dir+".new-"+stamp, dir+".old-"+stamp
	if _, err := d.store.Assemble(ctx, m, a.Host.Path(fresh)); err != nil {
		return "", err
	}
	// The running instances get this directory when they restart (after
	// a reboot too): it must be whole on disk before it takes the place of
	// the old one. --config uploads are rare; this sync is on the
	// critical path.
	if err := d.store.Sync(a.Host.Path(path.Dir(dir))); err != nil {
		_ = os.RemoveAll(a.Host.Path(fresh))
		return "", err
	}
	_ = d.store.RemoveManifest(digest)
	hadOld, err := a.Host.Exists(dir)
	if err != nil {
		return "", err
	}
	if hadOld {
		if err := a.Host.Rename(dir, old); err != nil {
			return "", err
		}
	}
	if err := a.Host.Rename(fresh, dir); err != nil {
		return "", err
	}
	oldDigest := a.currentConfigDigest(app)
	digestPath := path.Join(rl.AppDir(app), configDigestFile)
	if _, err := a.Host.WriteFile(digestPath, []byte(digest.String()+"\n"), hostAttr(0o644)); err != nil {
		return "", err
	}
	// Running instances keep the directory they were started with (it is
	// bound into their sandbox); the new one gets this one.
	d.undoConfig = func() {
		_ = os.RemoveAll(a.Host.Path(dir))
		if hadOld {
			_ = a.Host.Rename(old, dir)
			_, _ = a.Host.WriteFile(digestPath, []byte(oldDigest+"\n"), hostAttr(0o644))
		} else {
			_, _ = a.Host.Remove(digestPath)
		}
	}
	d.rec.ConfigDigest = digest.String()
	if err := a.writeLinks(d.rec); err != nil {
		return "", err
	}
	files, _ := m.FileBytes()
	return fmt.Sprintf("%s uploaded (%s)", dir, plural(files, "file", "files")), nil
}

func (d *deployRun) installPackages(ctx context.Context, st *protocol.Step) (string, error) {
	if len(d.cfg.Packages) == 0 {
		return "none in app.ini", nil
	}
	did, _, err := d.a.apt(d.c).Install(ctx, d.cfg.Packages, st.Progress)
	if err != nil {
		return "", err
	}
	if len(did) == 0 {
		return fmt.Sprintf("all %d present", len(d.cfg.Packages)), nil
	}
	return "installed " + strings.Join(did, " "), nil
}

func (d *deployRun) prepareServices(ctx context.Context, st *protocol.Step) (string, error) {
	if len(d.cfg.Services) == 0 {
		d.services = map[string]string{}
		return "none in app.ini", nil
	}
	env, err := d.a.prepareServices(ctx, d.c, d.args.App, d.cfg, d.args.Clear)
	if err != nil {
		return "", err
	}
	d.services = env
	names := make([]string, 0, len(d.cfg.Services))
	for _, s := range d.cfg.Services {
		names = append(names, s.Name)
	}
	return strings.Join(names, ", "), nil
}

func (d *deployRun) start(ctx context.Context, st *protocol.Step) (string, error) {
	a := d.a
	if changed, err := a.InstallRuntime(); err != nil {
		return "", err
	} else if len(changed) > 0 {
		if err := a.systemd().DaemonReload(ctx); err != nil {
			return "", err
		}
	}
	if err := a.freshTemp(d.args.App); err != nil {
		return "", err
	}
	inst, err := a.runnerInstance(d.rec, instanceSpec{Locations: []string{d.loc.String()}, Config: d.cfg, Services: d.services})
	if err != nil {
		return "", err
	}
	d.inst = inst
	if err := a.writeLinks(d.rec); err != nil { // the port
		return "", err
	}
	if err := d.checkConfig(ctx, st); err != nil {
		return "", err
	}
	if !inst.HasProcess() {
		return "a static site runs no process", nil
	}
	start := time.Now()
	if err := a.startInstance(ctx, st, inst, time.Duration(d.args.HealthTimeout)); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s answers (%.1fs)", instance.UnitName(inst.Name), time.Since(start).Seconds()), nil
}

// checkConfig runs app.ini's config.checker on the configuration the new
// instance gets, before it starts, as the original checked a --config
// directory before using it.
func (d *deployRun) checkConfig(ctx context.Context, st *protocol.Step) error {
	checker := d.cfg.ConfigChecker
	if checker.IsZero() {
		return nil
	}
	dir := d.inst.Env[instance.EnvAppConfig]
	if dir == "" {
		d.c.Warnf("config.checker %s not run: %s has no configuration (--config DIR uploads one)", checker, d.args.App)
		return nil
	}
	st.Progress("config.checker " + checker.String())
	cmd, err := d.inst.CheckConfigCommand(ctx, checker, dir)
	if err != nil {
		return err
	}
	err = instance.StreamCommand(cmd, func(l string) { _ = d.c.Out.Log(protocol.StreamApp, l) })
	if err != nil {
		return &protocol.Error{Code: protocol.CodeConfigRefused,
			Message: fmt.Sprintf("config.checker %s refused the configuration %s (%v; its output is above); fix it and update with --config DIR", checker, dir, err)}
	}
	return nil
}

func (d *deployRun) updateFetch(ctx context.Context, st *protocol.Step) (string, error) {
	if len(d.cfg.UpdateFetch) == 0 {
		return "none in app.ini", nil
	}
	if !d.inst.HasProcess() {
		d.c.Warnf("update_fetch ignored: a static site runs nothing to fetch from")
		return "ignored (static site)", nil
	}
	host := instance.CanonicalHostname([]string{d.loc.String()})
	err := d.inst.RunUpdateFetch(ctx, host, d.cfg.UpdateFetch, func(line string) {
		_ = d.c.Out.Log(protocol.StreamApp, line)
	})
	if err != nil {
		// The entry's own output was streamed above; the instance's journal
		// holds what the server logged (a traceback).
		tail, _ := instance.Tail(d.a.systemd(), d.instance, 30)(context.WithoutCancel(ctx))
		return "", &protocol.Error{Code: protocol.CodeFetchFailed, Tail: tail,
			Message: err.Error() + " against the new instance " + d.instance + " (its output is above, the instance's journal below); it is removed and the live version keeps serving"}
	}
	return fmt.Sprintf("%s ran against %s", plural(len(d.cfg.UpdateFetch), "entry", "entries"), d.instance), nil
}

// startSync makes what the update received and assembled durable in the
// background, while the instance starts: the syncfs writes out the whole
// upload, which would otherwise delay everything after it. switchRoute
// waits for it: from the switch on, the new instance is what the node
// serves, and what it restores after a crash.
func (d *deployRun) startSync() {
	done := make(chan error, 1)
	www := d.a.Host.Path(d.a.Layout.WWW)
	go func() { done <- d.store.Sync(www) }()
	d.synced = done
}

// waitSync waits for startSync's Sync and marks the instance whole on
// disk. It returns how long it waited.
func (d *deployRun) waitSync(st *protocol.Step) (time.Duration, error) {
	if d.synced == nil {
		return 0, nil
	}
	start := time.Now()
	var err error
	select {
	case err = <-d.synced:
	default:
		st.Progress("waiting for the new files to reach the disk")
		err = <-d.synced
	}
	d.synced = nil
	if err != nil {
		return 0, fmt.Errorf("%s: %w", d.instance, err)
	}
	d.rec.Unsynced = false
	return time.Since(start), d.a.writeLinks(d.rec)
}

func (d *deployRun) switchRoute(ctx context.Context, st *protocol.Step) (string, error) {
	a, c := d.a, d.c
	waited, err := d.waitSync(st)
	if err != nil {
		return "", err
	}
	release, err := a.Locks().Acquire(ctx, routesLock, "update of "+d.args.App, routesLockWait, func(s string) { st.Progress(s) })
	if err != nil {
		return "", err
	}
	defer release()
	old, err := a.loadTable(c)
	if err != nil {
		return "", err
	}
	t := old.Clone()
	before, _ := old.Lookup(d.loc)
	rt, err := t.Set(d.loc, d.args.App, d.instance)
	if err != nil {
		return "", err
	}
	reloaded, err := a.commitRoutes(ctx, c, old, t)
	if err != nil {
		return "", err
	}
	d.switched = true
	d.res.Instance, d.res.Prev, d.res.Reloaded = d.instance, rt.Prev, reloaded
	d.oldLive = ""
	if before.Live != "" && before.Live != d.instance && !liveAnywhere(t, before.Live) {
		d.oldLive = before.Live
	}
	d.table = t
	how := "symlink switched, no reload"
	if reloaded {
		how = "front server's config reloaded"
	}
	if waited > 10*time.Millisecond {
		how += fmt.Sprintf("; waited %.1fs for the disk", waited.Seconds())
	}
	if before.Live == "" {
		return fmt.Sprintf("%s now serves %s (%s)", d.instance, d.loc, how), nil
	}
	return fmt.Sprintf("%s -> %s at %s (%s)", before.Live, d.instance, d.loc, how), nil
}

func (d *deployRun) drain(ctx context.Context, st *protocol.Step) (string, error) {
	if d.oldLive == "" {
		d.cleanOldDirs()
		if d.res.Prev != "" {
			return "nothing to drain (" + d.res.Prev + " serves another location)", nil
		}
		return "nothing to drain (first instance here)", nil
	}
	st.Progress("waiting for " + d.oldLive + "'s requests")
	detail, err := d.a.drainAndStop(ctx, d.oldLive)
	if err != nil {
		d.c.Warnf("stop %s: %v", d.oldLive, err)
	}
	d.res.Drained = detail
	d.cleanOldDirs()
	return d.oldLive + " stopping (" + detail + "), kept as prev", nil
}

// cleanOldDirs removes the TEMP and config directories set aside for
// instances that ran before, once none runs any more: the new instance is
// the app's only live one (the others were stopped).
func (d *deployRun) cleanOldDirs() {
	if !d.onlyLive() {
		return
	}
	if err := d.a.removeOldDirs(d.args.App); err != nil {
		d.c.Warnf("remove old TEMP and config directories of %s: %v", d.args.App, err)
	}
}

// onlyLive reports whether the new instance is the app's only live one.
func (d *deployRun) onlyLive() bool {
	for _, rt := range d.table.RoutesFor(d.args.App) {
		if rt.Live != "" && rt.Live != d.instance {
			return false
		}
	}
	return true
}

func (d *deployRun) record(ctx context.Context, st *protocol.Step) (string, error) {
	r, err := d.a.appendRelease(d.args.App, protocol.Release{
		Action: ActionUpdate, Instance: d.instance, Prev: d.res.Prev, Locations: []string{d.loc.String()},
		Time: d.a.Host.Time().UTC(), LocalUser: d.c.Req.LocalUser, Digest: d.args.Digest.String(), Version: version.Version,
	})
	if err != nil {
		// The switch is done; a missing record must not fail it.
		d.c.Warnf("release record of %s: %v", d.args.App, err)
		return "not recorded", nil
	}
	d.res.Release = r.Number
	return fmt.Sprintf("release %d", r.Number), nil
}

// rollback undoes a deploy that failed before the switch: the new
// instance goes, the live one was never touched. It runs even when the
// client went away, with a context of its own.
func (d *deployRun) rollback() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if d.undoConfig != nil {
		d.undoConfig()
	}
	if d.instance == "" {
		return
	}
	if err := d.a.removeInstance(ctx, d.instance); err != nil {
		d.c.Warnf("remove the failed instance %s: %v (clean-node removes it)", d.instance, err)
		return
	}
	d.c.Logf("removed the new instance %s; the live version is unchanged", d.instance)
}
