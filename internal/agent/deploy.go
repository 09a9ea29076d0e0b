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
	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/instance"
	"github.com/toppcloud/toppcloud/internal/agent/router"
	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/location"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/protocol/wire"
	"github.com/toppcloud/toppcloud/internal/version"
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

// checkHasConfig refuses an update of app that requires a configuration
// when none was ever uploaded, before anything is sent.
func (a *Agent) checkHasConfig(app string) error {
	ok, err := a.Host.Exists(a.Layout.ConfigDir(app))
	if err != nil {
		return err
	}
	if !ok {
		return &protocol.Error{Code: protocol.CodeConfigRequired, Message: fmt.Sprintf(
			"%s requires a configuration (config.required in app.ini) and none was ever uploaded: run update with --config DIR", app)}
	}
	return nil
}

// update is a whole update in one request (OpUpdate): the manifests, the
// reply naming what the node lacks, the blob stream, then what deploy
// does. It saves the client two agent runs and their round trips.
func (a *Agent) update(ctx context.Context, c *Call, args *protocol.UpdateArgs) (*protocol.UpdateResult, error) {
	if err := checkApp(args.App); err != nil {
		return nil, err
	}
	if _, err := location.Parse(args.Location); err != nil {
		return nil, badRequest("%v", err)
	}
	if args.NeedConfig {
		if err := a.checkHasConfig(args.App); err != nil {
			return nil, err
		}
	}
	digest, configDigest, rs, err := a.updateUpload(ctx, c, args)
	if err != nil {
		return nil, err
	}
	res, err := a.deployWith(ctx, c, &protocol.DeployArgs{
		App: args.App, Location: args.Location, Digest: digest, ConfigDigest: configDigest,
		Clear: args.Clear, LockWait: args.LockWait, HealthTimeout: args.HealthTimeout, SkipUnchanged: args.SkipUnchanged,
		Jobs: args.Jobs, ServiceEnv: args.ServiceEnv,
	}, deployMode{hold: args.Hold, skipFetch: args.SkipFetch})
	if err != nil {
		return nil, err
	}
	return &protocol.UpdateResult{DeployResult: *res, Blobs: rs.Blobs, BlobBytes: rs.Bytes}, nil
}

// updateUpload reads an update's manifests, keeps them, replies with what
// the node lacks and receives it.
func (a *Agent) updateUpload(ctx context.Context, c *Call, args *protocol.UpdateArgs) (wire.Hash, *wire.Hash, blobstore.ReceiveStats, error) {
	var rs blobstore.ReceiveStats
	release, err := a.uploadLock(ctx)
	if err != nil {
		return wire.Hash{}, nil, rs, err
	}
	defer release()
	m, err := wire.ReadManifest(c.Input)
	if err != nil {
		return wire.Hash{}, nil, rs, badRequest("%v", err)
	}
	var cm *wire.Manifest
	if args.Config {
		if cm, err = wire.ReadManifest(c.Input); err != nil {
			return wire.Hash{}, nil, rs, badRequest("--config: %v", err)
		}
	}
	st, err := a.store()
	if err != nil {
		return wire.Hash{}, nil, rs, err
	}
	digest, err := st.PutManifest(m)
	if err != nil {
		return wire.Hash{}, nil, rs, err
	}
	need := protocol.UpdateNeed{App: []int{}}
	sent := map[wire.Hash]bool{}
	if need.App, err = missingEntries(st, m, sent, &need.Bytes); err != nil {
		return wire.Hash{}, nil, rs, err
	}
	var configDigest *wire.Hash
	if cm != nil {
		d, err := st.PutManifest(cm)
		if err != nil {
			return wire.Hash{}, nil, rs, err
		}
		configDigest = &d
		if need.Config, err = missingEntries(st, cm, sent, &need.Bytes); err != nil {
			return wire.Hash{}, nil, rs, err
		}
	}
	if err := c.Out.Reply(need); err != nil {
		return wire.Hash{}, nil, rs, fmt.Errorf("reply: %w", err)
	}
	if len(sent) == 0 {
		return digest, configDigest, rs, nil
	}
	if rs, err = st.Receive(ctx, c.Input); err != nil {
		return wire.Hash{}, nil, rs, fmt.Errorf("receive: %w (the contents received so far are kept: run update again)", err)
	}
	return digest, configDigest, rs, nil
}

// missingEntries names the contents of m the store lacks by the index of
// their first entry, leaving out those already in sent (another
// manifest's), adds them to sent and their sizes to bytes.
func missingEntries(st *blobstore.Store, m *wire.Manifest, sent map[wire.Hash]bool, bytes *int64) ([]int, error) {
	missing, err := st.Missing(m)
	if err != nil {
		return nil, err
	}
	want := map[wire.Hash]bool{}
	for _, h := range missing {
		if !sent[h] {
			want[h] = true
		}
	}
	idx := []int{}
	for i, e := range m.Entries {
		if e.Type == wire.EntryFile && want[e.Hash] {
			idx = append(idx, i)
			*bytes += e.Size
			delete(want, e.Hash)
			sent[e.Hash] = true
		}
	}
	return idx, nil
}

// deployRun is one update on the node: the steps that make and start the
// new instance, then the transition's switch, drain and release.
type deployRun struct {
	transition
	args protocol.DeployArgs

	store    *blobstore.Store
	cfg      *appconfig.Config
	rec      *instance.Record
	inst     *instance.Instance
	services map[string]string
	// synced receives the result of the blob store's Sync, which runs
	// while the instance starts (see startSync).
	synced chan error
	mode   deployMode
}

// deployMode is what an update asks of deploy beyond DeployArgs: a
// site's rolling update holds before the switch and runs update_fetch on
// one node only.
type deployMode struct {
	// hold: wait for the client's HoldDecision before the switch
	// (UpdateArgs.Hold).
	hold bool
	// skipFetch: do not run update_fetch (UpdateArgs.SkipFetch).
	skipFetch bool
}

func (a *Agent) deploy(ctx context.Context, c *Call, args *protocol.DeployArgs) (*protocol.DeployResult, error) {
	return a.deployWith(ctx, c, args, deployMode{})
}

// deployWith is deploy in mode.
func (a *Agent) deployWith(ctx context.Context, c *Call, args *protocol.DeployArgs, mode deployMode) (*protocol.DeployResult, error) {
	if err := checkApp(args.App); err != nil {
		return nil, err
	}
	loc, err := location.Parse(args.Location)
	if err != nil {
		return nil, badRequest("%v", err)
	}
	d := &deployRun{args: *args, mode: mode, transition: transition{a: a, c: c, action: ActionUpdate, app: args.App, loc: loc, digest: args.Digest.String(), placement: args.Jobs}}
	d.change = func(tb *router.Table) (router.Route, error) { return tb.Set(loc, args.App, d.target) }
	d.beforeSwitch = d.waitSync
	if d.store, err = a.store(); err != nil {
		return nil, err
	}
	release, err := a.lockStep(ctx, c, args.App, "update", time.Duration(args.LockWait))
	if err != nil {
		return nil, err
	}
	defer release()

	if args.SkipUnchanged && args.ConfigDigest == nil && !args.Clear && !a.siteEnvDiffers(args.App, args.ServiceEnv) {
		if res, ok := d.unchanged(ctx); ok {
			_ = d.store.RemoveManifest(args.Digest)
			if mode.hold {
				// Held all the same, with the live instance: a site's
				// client treats every node alike.
				st := c.Out.Start(StepHold)
				detail, err := d.holdFor(ctx, st, res.Instance)
				if err != nil {
					st.Failed(err)
					return nil, err
				}
				st.Done(false, detail)
			}
			return res, nil
		}
	}
	steps := []step{
		{StepInstance, d.makeInstance},
		{StepConfig, d.installConfig},
		{StepPackages, d.installPackages},
		{StepServices, d.prepareServices},
		{StepStart, d.start},
		{StepUpdateFetch, d.updateFetch},
		{StepWorkers, d.startWorkers},
	}
	if mode.hold {
		steps = append(steps, step{StepHold, d.hold})
	}
	err = d.run(ctx, steps...)
	if err != nil {
		return nil, err
	}
	return &protocol.DeployResult{Instance: d.target, Prev: d.after.Prev, Release: d.release, Location: loc.String(),
		Reloaded: d.reloaded, Drained: d.drained}, nil
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
	rec, err := a.instances().Record(rt.Live)
	if err != nil || rec.Digest != d.args.Digest.String() || rec.AgentVersion != version.Version || rec.ConfigDigest != a.currentConfigDigest(d.args.App) {
		return nil, false
	}
	if rec.Kind != appconfig.KindStatic && a.instances().States(ctx, rt.Live)[rt.Live] != "active" {
		return nil, false
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
	nodes := a.instances()
	name, err := nodes.NewName(app)
	if err != nil {
		return "", err
	}
	d.target = name
	d.onUndo(func(ctx context.Context) {
		if err := nodes.Remove(ctx, name); err != nil {
			d.c.Warnf("remove the failed instance %s: %v (clean-node removes it)", name, err)
			return
		}
		d.c.Logf("removed the new instance %s; the live version is unchanged", name)
	})
	// The app's user first: its group owns the instance directory, which
	// only it and Caddy may read.
	if err := nodes.EnsureAppUser(ctx, app); err != nil {
		return "", err
	}
	access, err := nodes.Access(app, false)
	if err != nil {
		return "", err
	}
	dir := a.Host.Path(a.Layout.InstanceDir(name))
	stats, err := d.store.AssembleFor(ctx, m, dir, access)
	if err != nil {
		if errors.Is(err, blobstore.ErrBlobMissing) {
			return "", badRequest("%v: the upload did not finish; run update again", err)
		}
		return "", err
	}
	_ = d.store.RemoveManifest(d.args.Digest)

	// The node checks app.ini again: the client is not trusted with
	// what becomes units and paths here.
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
	d.rec = instance.NewRecord(app, name, cfg, d.args.Digest.String(), "", a.Host.Time())
	d.rec.Unsynced = true
	if err := nodes.SaveRecord(d.rec); err != nil {
		return "", err
	}
	d.startSync()
	files := fmt.Sprintf("%d files", stats.Files)
	if stats.Copied > 0 {
		files += fmt.Sprintf(", %d copied (%s)", stats.Copied, stats.CopyReason)
	}
	return name + " (" + cfg.Runner.Kind.String() + ", " + files + ")", nil
}

func (d *deployRun) installConfig(ctx context.Context, st *protocol.Step) (string, error) {
	a, app := d.a, d.args.App
	l := a.Layout
	nodes := a.instances()
	if err := nodes.EnsureAppUser(ctx, app); err != nil {
		return "", err
	}
	if d.args.ConfigDigest == nil {
		d.rec.ConfigDigest = a.currentConfigDigest(app)
		if d.cfg.ConfigRequired && d.cfg.ConfigDefault == "" {
			if ok, err := a.Host.Exists(l.ConfigDir(app)); err != nil {
				return "", err
			} else if !ok {
				return "", &protocol.Error{Code: protocol.CodeConfigRequired, Message: app + " requires a configuration (config.required) and none was uploaded: run update with --config DIR"}
			}
		}
		detail := "no --config; none uploaded before"
		if d.rec.ConfigDigest != "" {
			detail = "no --config; the one uploaded before stays"
		}
		return detail, nodes.SaveRecord(d.rec)
	}
	digest := *d.args.ConfigDigest
	m, err := d.store.Manifest(digest)
	if err != nil {
		return "", badRequest("the node has no config upload %s: run update again", digest.String()[:12])
	}
	stamp := strconv.FormatInt(a.Host.Time().UnixNano(), 10)
	dir := l.ConfigDir(app)
	fresh, old := dir+".new-"+stamp, dir+".old-"+stamp
	// The app's secrets: readable by root and the app only, each file a
	// copy of its own.
	access, err := nodes.Access(app, true)
	if err != nil {
		return "", err
	}
	if _, err := d.store.AssembleFor(ctx, m, a.Host.Path(fresh), access); err != nil {
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
	digestPath := path.Join(l.AppDir(app), configDigestFile)
	// The digest hashes the files' contents: root's only, or a weak
	// password in them could be guessed offline.
	if _, err := a.Host.WriteFile(digestPath, []byte(digest.String()+"\n"), host.Attr{Mode: 0o600}); err != nil {
		return "", err
	}
	// Running instances keep the directory they were started with (it is
	// bound into their sandbox); the new one gets this one.
	d.onUndo(func(context.Context) {
		_ = os.RemoveAll(a.Host.Path(dir))
		if hadOld {
			_ = a.Host.Rename(old, dir)
			_, _ = a.Host.WriteFile(digestPath, []byte(oldDigest+"\n"), host.Attr{Mode: 0o600})
		} else {
			_, _ = a.Host.Remove(digestPath)
		}
	})
	d.rec.ConfigDigest = digest.String()
	if err := nodes.SaveRecord(d.rec); err != nil {
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
	// A site's app node keeps the services node's variables for later
	// activates (nil: the app's services are this node's).
	undo, err := d.a.writeSiteEnv(d.args.App, d.args.ServiceEnv)
	if err != nil {
		return "", err
	}
	d.onUndo(func(context.Context) { undo() })
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
	nodes := d.a.instances()
	placement, err := d.a.jobPlacement(d.args.App, d.args.Jobs)
	if err != nil {
		return "", err
	}
	inst, err := nodes.Prepare(ctx, d.rec, instance.Spec{Locations: []string{d.loc.String()}, Config: d.cfg, Services: d.services, NewTemp: true,
		Workers: workersFor(d.cfg, placement)})
	if err != nil {
		return "", err
	}
	d.inst = inst
	if err := d.checkConfig(ctx, st); err != nil {
		return "", err
	}
	if !inst.HasProcess() {
		return "a static site runs no process", nil
	}
	start := time.Now()
	if err := nodes.Start(ctx, inst, st.Progress, time.Duration(d.args.HealthTimeout)); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s answers (%.1fs)", instance.UnitName(inst.Name), time.Since(start).Seconds()), nil
}

// startWorkers starts the new instance's workers, before the switch and
// after update_fetch (a migration runs before any worker does). Each
// waits until the live instance's copy, stopped after the switch, has
// exited.
func (d *deployRun) startWorkers(ctx context.Context, st *protocol.Step) (string, error) {
	n := len(d.inst.WorkerJobs)
	if n == 0 {
		return "", skipped("none in app.ini")
	}
	if err := d.a.instances().StartWorkers(ctx, d.inst); err != nil {
		return "", err
	}
	return plural(n, "worker", "workers") + " started (each runs once the copy it replaces has stopped)", nil
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
	if d.mode.skipFetch {
		return "", skipped("not on this node (another node of the site runs it)")
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
		return "", &protocol.Error{Code: protocol.CodeFetchFailed, Tail: d.a.instances().Journal(ctx, d.target, 30),
			Message: err.Error() + " against the new instance " + d.target + " (its output is above, the instance's journal below); it is removed and the live version keeps serving"}
	}
	return fmt.Sprintf("%s ran against %s", plural(len(d.cfg.UpdateFetch), "entry", "entries"), d.target), nil
}

// startSync makes what the update received and assembled durable in the
// background, while the instance starts: the syncfs writes out the whole
// upload, which would otherwise delay everything after it. The switch
// waits for it (waitSync): from the switch on, the new instance is what
// the node serves, and what it restores after a crash.
func (d *deployRun) startSync() {
	done := make(chan error, 1)
	www := d.a.Host.Path(d.a.Layout.WWW)
	go func() { done <- d.store.Sync(www) }()
	d.synced = done
}

// waitSync waits for startSync's Sync and marks the instance whole on
// disk. It notes a noticeable wait.
func (d *deployRun) waitSync(st *protocol.Step) (string, error) {
	if d.synced == nil {
		return "", nil
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
		return "", fmt.Errorf("%s: %w", d.target, err)
	}
	d.rec.Unsynced = false
	if err := d.a.instances().SaveRecord(d.rec); err != nil {
		return "", err
	}
	if waited := time.Since(start); waited > 10*time.Millisecond {
		return fmt.Sprintf("waited %.1fs for the disk", waited.Seconds()), nil
	}
	return "", nil
}
