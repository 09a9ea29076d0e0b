package agent

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/backups"
	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/instance"
	"github.com/toppcloud/toppcloud/internal/agent/router"
	"github.com/toppcloud/toppcloud/internal/agent/setup"
	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/service"
	"github.com/toppcloud/toppcloud/internal/service/all" // every service registers itself
	"github.com/toppcloud/toppcloud/internal/version"
)

// The operations on an app's services' data: backup, backup-fetch,
// backup-delete, services-restore, clear, run-upload and run.

// Steps of the data operations.
const (
	StepBackup  = "backup"
	StepRestore = "restore"
	StepClear   = "clear"
	StepReceive = "receive"
)

func (a *Agent) backupStore() backups.Store {
	return backups.Store{Host: a.Host, Dir: a.Layout.Backups}
}

// serviceNode is what services are made for on this node. A site's
// services node gives its servers its private address and the app
// nodes (the role file); a role file that cannot be read is a warning
// and the servers keep loopback alone.
func (a *Agent) serviceNode(c *Call) service.Node {
	n := service.Node{Host: a.Host, Warn: func(m string) { c.Warnf("%s", m) },
		LockDir: a.Layout.Locks, StateDir: a.Layout.Services}
	role, err := setup.ReadSiteRole(a.Host, a.Layout)
	if err != nil {
		c.Warnf("%v; the services listen on loopback only", err)
	} else if role.Services {
		if n.Settings, err = all.SiteSettings(role.ServiceListen, role.ServiceClients); err != nil {
			c.Warnf("%v; the services listen on loopback only", err)
		}
	}
	return n
}

// serviceApp is what a service is told about app.
func (a *Agent) serviceApp(app string, cfg *appconfig.Config) service.App {
	return service.App{Name: app, DataDir: a.Layout.AppDir(app), User: instance.UserName(app), Platform: cfg.Platform}
}

// bindServices resolves app's services as cfg declares them.
func (a *Agent) bindServices(c *Call, app string, cfg *appconfig.Config) ([]service.Bound, error) {
	var reqs []service.Request
	for _, s := range cfg.Services {
		reqs = append(reqs, service.Request{Name: s.Name, Value: s.Value})
	}
	bound, err := service.Resolve(a.serviceNode(c), a.serviceApp(app, cfg), reqs)
	if err != nil {
		return nil, &protocol.Error{Code: protocol.CodeBadRequest, Message: err.Error()}
	}
	return bound, nil
}

// liveApp is the app live at a location: its route, its live instance's
// record and app.ini, and its services.
type liveApp struct {
	rt    router.Route
	rec   *instance.Record
	cfg   *appconfig.Config
	bound []service.Bound
}

func (a *Agent) liveApp(c *Call, locArg string) (*liveApp, error) {
	loc, rt, err := a.routeAt(c, locArg)
	if err != nil {
		return nil, err
	}
	if rt.Live == "" {
		return nil, notFound("no instance is live at %s", loc)
	}
	rec, err := a.instances().Record(rt.Live)
	if err != nil {
		return nil, err
	}
	cfg, err := appconfig.Load(a.Host.Path(a.Layout.InstanceDir(rt.Live)))
	if err != nil {
		return nil, err
	}
	bound, err := a.bindServices(c, rt.App, cfg)
	if err != nil {
		return nil, err
	}
	return &liveApp{rt: rt, rec: rec, cfg: cfg, bound: bound}, nil
}

// liveInstance is the running live instance, with the environment (and
// internal token) it was started with.
func (a *Agent) liveInstance(l *liveApp) (*instance.Instance, error) {
	_, cfg, err := a.ownerConfig(l.rec.Instance)
	if err != nil {
		return nil, err
	}
	inst := a.instances().FromRecord(l.rec, cfg)
	if !inst.HasProcess() {
		return inst, nil
	}
	data, err := a.Host.ReadFile(instance.EnvFilePath(a.Layout, l.rec.Instance))
	if err != nil {
		return nil, fmt.Errorf("the environment of %s: %w", l.rec.Instance, err)
	}
	env, err := instance.ParseEnvFile(data)
	if err != nil {
		return nil, err
	}
	inst.Token = env[instance.EnvInternalToken]
	inst.Env = env
	return inst, nil
}

func serviceNames(bound []service.Bound) []string {
	var out []string
	for _, b := range bound {
		out = append(out, b.Service.Name())
	}
	return out
}

// backup is OpBackup.
func (a *Agent) backup(ctx context.Context, c *Call, args *protocol.BackupArgs) (*protocol.BackupResult, error) {
	{
		l, err := a.dataApp(c, args.Location, args.App)
		if err != nil {
			return nil, err
		}
		release, err := a.lockApp(ctx, c, l.rt.App, "backup", time.Duration(args.LockWait))
		if err != nil {
			return nil, err
		}
		defer release()
		st := c.Out.Start(StepBackup)
		res, err := a.backupStore().Make(ctx, l.rt.App, args.Name, l.bound, version.Version, func(s string) { st.Progress(s) })
		if err != nil {
			st.Failed(err)
			return nil, err
		}
		st.Done(true, fmt.Sprintf("%s into %s", strings.Join(serviceNames(l.bound), ", "), res.Name))
		return &res, nil
	}
}

// backupFetch is OpBackupFetch.
func (a *Agent) backupFetch(ctx context.Context, c *Call, args *protocol.BackupFetchArgs) (*protocol.BackupResult, error) {
	{
		s := a.backupStore()
		m, err := s.Open(args.Name)
		if err != nil {
			return nil, err
		}
		res := backups.Result(args.Name, s.Path(args.Name), m)
		if err := c.Out.OK(res); err != nil {
			return nil, err
		}
		return nil, s.Send(c.Output, args.Name)
	}
}

// backupDelete is OpBackupDelete.
func (a *Agent) backupDelete(ctx context.Context, c *Call, args *protocol.BackupDeleteArgs) (*struct{}, error) {
	return nil, a.backupStore().Remove(args.Name)
}

// servicesRestore is OpServicesRestore.
func (a *Agent) servicesRestore(ctx context.Context, c *Call, args *protocol.ServicesRestoreArgs) (*protocol.ServicesRestoreResult, error) {
	{
		l, err := a.dataApp(c, args.Location, args.App)
		if err != nil {
			return nil, err
		}
		s := a.backupStore()
		dir := ""
		if args.Name != "" {
			if _, err := s.Open(args.Name); err != nil {
				return nil, err
			}
			dir = s.Path(args.Name)
		} else {
			st := c.Out.Start(StepReceive)
			p, m, err := s.Receive(c.Input)
			if err != nil {
				st.Failed(err)
				return nil, badBackupError(err)
			}
			defer os.RemoveAll(a.Host.Path(p))
			st.Done(false, fmt.Sprintf("backup of %s made %s, every file checked", m.App, m.Created.Format(time.RFC3339)))
			dir = p
		}
		release, err := a.lockApp(ctx, c, l.rt.App, "restore", time.Duration(args.LockWait))
		if err != nil {
			return nil, err
		}
		defer release()
		st := c.Out.Start(StepRestore)
		m, err := service.Restore(ctx, a.Host, l.rt.App, l.bound, dir, func(s string) { st.Progress(s) })
		if err != nil {
			st.Failed(err)
			return nil, badBackupError(err)
		}
		st.Done(true, strings.Join(serviceNames(l.bound), ", "))
		return &protocol.ServicesRestoreResult{App: l.rt.App, Services: serviceNames(l.bound), Made: m.Created, Bytes: m.Size()}, nil
	}
}

// badBackupError makes a refused backup a bad request, with its reason.
func badBackupError(err error) error {
	if errors.Is(err, service.ErrBadBackup) {
		return &protocol.Error{Code: protocol.CodeBadRequest, Message: err.Error() + "; nothing was changed"}
	}
	return err
}

// clearData is OpClear.
func (a *Agent) clearData(ctx context.Context, c *Call, args *protocol.ClearArgs) (*protocol.ClearResult, error) {
	{
		l, err := a.dataApp(c, args.Location, args.App)
		if err != nil {
			return nil, err
		}
		release, err := a.lockApp(ctx, c, l.rt.App, "clear", time.Duration(args.LockWait))
		if err != nil {
			return nil, err
		}
		defer release()
		if args.FetchOnly && l.rec == nil {
			return nil, &protocol.Error{Code: protocol.CodeNotFound, Message: "no live instance of " + l.rt.App + " on this node to run update_fetch in"}
		}
		if !args.FetchOnly {
			st := c.Out.Start(StepClear)
			_, err = service.Prepare(ctx, l.bound, true, service.Hooks{
				InstallPackages: func(ctx context.Context, pkgs []string) error {
					_, _, err := a.apt(c).Install(ctx, pkgs, st.Progress)
					return err
				},
				Step: func(s string) { st.Progress(s) },
			})
			if err != nil {
				st.Failed(err)
				return nil, err
			}
			st.Done(true, strings.Join(serviceNames(l.bound), ", "))
		}
		res := &protocol.ClearResult{App: l.rt.App, Services: serviceNames(l.bound)}
		// On a services node (no instance) the client then runs
		// update_fetch on an app node (FetchOnly).
		if l.rec == nil {
			return res, nil
		}
		res.Instance = l.rec.Instance
		if len(l.cfg.UpdateFetch) == 0 {
			return res, nil
		}
		inst, err := a.liveInstance(l)
		if err != nil {
			return nil, err
		}
		if !inst.HasProcess() {
			return res, nil
		}
		st := c.Out.Start(StepUpdateFetch)
		host := instance.CanonicalHostname([]string{l.rt.Location.String()})
		if err := inst.RunUpdateFetch(ctx, host, l.cfg.UpdateFetch, func(line string) { _ = c.Out.Log(protocol.StreamApp, line) }); err != nil {
			st.Failed(err)
			return nil, &protocol.Error{Code: protocol.CodeFetchFailed, Message: err.Error() + " (the data was cleared; the app's output is above)"}
		}
		st.Done(false, "ran against "+l.rec.Instance)
		return res, nil
	}
}

// runUploadPrefix names the directories run-upload makes in the app's
// TEMP (which its sandbox has, read-write).
const runUploadPrefix = "run-"

// runUpload is OpRunUpload.
func (a *Agent) runUpload(ctx context.Context, c *Call, args *protocol.RunUploadArgs) (*protocol.RunUploadResult, error) {
	{
		l, err := a.liveApp(c, args.Location)
		if err != nil {
			return nil, err
		}
		app := l.rt.App
		b := make([]byte, 8)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		dir := path.Join(a.Layout.TempDir(app), runUploadPrefix+hex.EncodeToString(b))
		if err := a.unpackForApp(c.Input, dir, instance.UserName(app)); err != nil {
			_ = os.RemoveAll(a.Host.Path(dir))
			return nil, err
		}
		return &protocol.RunUploadResult{Dir: dir}, nil
	}
}

// unpackForApp unpacks a tar stream of files and directories into dir
// (made), owned by user; nothing leaves dir (os.Root).
func (a *Agent) unpackForApp(r io.Reader, dir, user string) error {
	u, ok, err := a.Host.LookupUser(user)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("no user %s", user)
	}
	if _, err := a.Host.EnsureDir(dir, host.Attr{Mode: 0o700, User: user, Group: user}); err != nil {
		return err
	}
	real := a.Host.Path(dir)
	root, err := os.OpenRoot(real)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return badRequest("the uploaded files: %v", err)
		}
		name := strings.TrimSuffix(hdr.Name, "/")
		if name == "" || path.Clean(name) != name || path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return badRequest("the uploaded files: bad name %q", hdr.Name)
		}
		if d := path.Dir(name); d != "." {
			if err := root.MkdirAll(d, 0o700); err != nil {
				return err
			}
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := root.Mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
		case tar.TypeReg:
			f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fs.FileMode(hdr.Mode)&0o755|0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		default:
			continue
		}
		if err := a.Host.ChownPath(filepath.Join(real, filepath.FromSlash(name)), u.UID, u.GID); err != nil {
			return err
		}
	}
}

// runStatusNoScript is run's exit status for a script that is not there,
// as the original's run-command.py's sys.exit(1000) came out.
const runStatusNoScript = 232

// runScript is OpRun: it runs a script of the live instance in a
// transient unit with the instance's user, environment and sandbox,
// connected to this process's standard streams, and returns its status.
func (a *Agent) runScript(ctx context.Context, arg string, stdin io.Reader, stdout, stderr io.Writer) int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "toppcloud run: "+format+"\n", args...)
		return protocol.ExitFailed
	}
	raw, err := base64.StdEncoding.DecodeString(arg)
	if err != nil {
		return fail("bad request argument: %v", err)
	}
	var req protocol.Request
	if err := json.Unmarshal(raw, &req); err != nil || req.Op != protocol.OpRun {
		return fail("bad request: %v", err)
	}
	if req.Protocol != version.Protocol {
		return fail("the client speaks protocol %d, this agent (toppcloud %s) protocol %d", req.Protocol, version.Version, version.Protocol)
	}
	var args protocol.RunArgs
	if err := json.Unmarshal(req.Args, &args); err != nil {
		return fail("bad request: %v", err)
	}
	euid := os.Geteuid
	if a.geteuid != nil {
		euid = a.geteuid
	}
	if a.RequireRoot && euid() != 0 {
		return fail("the agent must run as root")
	}
	c := &Call{Agent: a, Req: req, Out: protocol.NewWriter(io.Discard)}
	l, err := a.liveApp(c, args.Location)
	if err != nil {
		return fail("%s", ToProtocolError(ctx, err).Message)
	}
	inst, err := a.liveInstance(l)
	if err != nil {
		return fail("%v", err)
	}
	if !inst.HasProcess() {
		return fail("%s is a static site: it has no scripts to run", l.rt.App)
	}
	l0 := a.Layout
	if args.Uploaded != "" {
		tmp := l0.TempDir(l.rt.App)
		if path.Dir(args.Uploaded) != tmp || !strings.HasPrefix(path.Base(args.Uploaded), runUploadPrefix) {
			return fail("uploaded files at %s are not this app's", args.Uploaded)
		}
		defer os.RemoveAll(a.Host.Path(args.Uploaded))
	}
	argv, err := a.scriptArgv(inst, args.Script, args.Args)
	if err != nil {
		fmt.Fprintf(stderr, "toppcloud run: %v\n", err)
		return runStatusNoScript
	}
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return fail("%v", err)
	}
	// A name of our own, and no --collect: systemd-run --wait says only
	// that the script failed; the unit, kept until reset-failed, says
	// with which status.
	unit := "toppcloud-run-" + l.rt.App + "-" + hex.EncodeToString(b) + ".service"
	sr := []string{"systemd-run", "--quiet", "--wait", "--service-type=exec", "--unit=" + unit,
		"--working-directory=" + inst.Dir(),
		"-p", "EnvironmentFile=" + instance.EnvFilePath(l0, inst.Name),
		// The instance's internal token stays with the instance.
		"--setenv=" + instance.EnvInternalToken + "=",
		"--setenv=PYTHONUNBUFFERED=1", "--setenv=PATH=/usr/local/bin:/usr/bin:/bin",
		"--setenv=HOME=" + l0.AppDir(l.rt.App),
	}
	if args.Terminal {
		sr = append(sr, "--pty")
	} else {
		sr = append(sr, "--pipe")
	}
	// The same user, sandbox, view of the node and limits as the
	// instance's own processes.
	for _, p := range inst.Properties() {
		sr = append(sr, "-p", p)
	}
	sr = append(sr, "--")
	sr = append(sr, argv...)
	// The script's streams are this process's.
	_, err = a.Host.Runner.Run(ctx, host.Command{Argv: sr, Stdin: stdin, Stdout: stdout, Stderr: stderr})
	if err == nil {
		return 0
	}
	ctx = context.WithoutCancel(ctx)
	show, serr := a.systemd().Show(ctx, unit, "ExecMainCode", "ExecMainStatus")
	_ = a.systemd().ResetFailed(ctx, unit)
	if serr != nil {
		return fail("%v", err)
	}
	return scriptStatus(show, host.ExitStatus(err))
}

// scriptStatus is a run's exit status from the unit's ExecMainCode and
// ExecMainStatus (systemctl show): the script's own status, or 128+N when
// signal N ended it, as a shell says; fallback when they tell nothing.
func scriptStatus(show map[string]string, fallback int) int {
	code, _ := strconv.Atoi(strings.TrimSpace(show["ExecMainCode"]))
	status, _ := strconv.Atoi(strings.TrimSpace(show["ExecMainStatus"]))
	switch code {
	case 1: // CLD_EXITED
		return status
	case 2, 3: // CLD_KILLED, CLD_DUMPED
		return 128 + status
	}
	if fallback < 0 {
		return protocol.ExitFailed
	}
	return fallback
}

// scriptArgv finds the script as the original did (an absolute path, or
// bin/S, or S of the instance) and makes its command: a Python script
// through the bootstrap's script runner (lib/python on sys.path), any
// other executable directly.
func (a *Agent) scriptArgv(inst *instance.Instance, script string, args []string) ([]string, error) {
	if path.IsAbs(script) {
		fi, err := os.Stat(a.Host.Path(script))
		if err != nil || !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("no script %s on the node", script)
		}
		return append([]string{script}, args...), nil
	}
	if strings.Contains(script, "..") {
		return nil, fmt.Errorf("script %q: not a path inside the instance", script)
	}
	for _, rel := range []string{path.Join("bin", script), script} {
		fi, err := os.Stat(a.Host.Path(path.Join(inst.Dir(), rel)))
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		argv, err := inst.ScriptArgv(appconfig.Command{Path: rel, Args: args})
		if err != nil {
			return nil, err
		}
		if argv[0] == filepath.Join(inst.Dir(), filepath.FromSlash(rel)) && fi.Mode().Perm()&0o111 == 0 {
			// Not Python, run directly: systemd would only log why not.
			return nil, fmt.Errorf("%s of %s is not executable (chmod +x it) and not a Python script", rel, inst.Name)
		}
		return argv, nil
	}
	return nil, fmt.Errorf("no script %s in %s (looked for bin/%s and %s)", script, inst.Name, script, script)
}

// appUsage measures each service's data of the app whose live instance
// is live, for query; nil when it has none or cannot be read.
func (a *Agent) appUsage(ctx context.Context, c *Call, app, live string) []protocol.ServiceUsage {
	cfg, err := appconfig.Load(a.Host.Path(a.Layout.InstanceDir(live)))
	if err != nil || len(cfg.Services) == 0 {
		return nil
	}
	bound, err := a.bindServices(c, app, cfg)
	if err != nil {
		return nil
	}
	var out []protocol.ServiceUsage
	for _, b := range bound {
		su := protocol.ServiceUsage{Name: b.Service.Name()}
		u, err := b.Service.Usage(ctx, b.App)
		if err != nil {
			su.Error, _, _ = strings.Cut(err.Error(), "\n")
		} else {
			su.Bytes, su.Items, su.Unit = u.Bytes, u.Items, u.Unit
		}
		out = append(out, su)
	}
	return out
}
