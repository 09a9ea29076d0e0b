package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/instance"
	"github.com/toppcloud/toppcloud/internal/agent/system"
	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/service"
	"github.com/toppcloud/toppcloud/internal/version"
)

// healthPoll is the longest pause between two probes of a starting
// instance.
const healthPoll = 100 * time.Millisecond

func (a *Agent) systemd() system.Systemd { return system.Systemd{Runner: a.Host.Runner} }

// instanceSpec is what an instance is started with besides its record.
type instanceSpec struct {
	// Locations are where it will be live (for the canonical hostname).
	Locations []string
	// Config is the app.ini of the instance.
	Config *appconfig.Config
	// Services are the CONFIG_* variables of the app's services.
	Services map[string]string
}

// runnerInstance makes the runner's view of an instance: its environment,
// a fresh internal token and, for a command app, a free port (its
// recorded one when still free).
func (a *Agent) runnerInstance(rec *instanceRecord, spec instanceSpec) (*instance.Instance, error) {
	rl := a.Layout
	uploaded, err := a.Host.Exists(rl.ConfigDir(rec.App))
	if err != nil {
		return nil, err
	}
	env, err := instance.Environment(rl, instance.EnvInput{
		App: rec.App, Instance: rec.Instance, Locations: spec.Locations,
		ConfigUploaded: uploaded, ConfigDefault: spec.Config.ConfigDefault,
		Services: spec.Services,
	})
	if err != nil {
		return nil, err
	}
	inst := &instance.Instance{
		App: rec.App, Name: rec.Instance, Kind: rec.Kind,
		Runner: rec.Runner, RunnerName: rec.RunnerName, PHPRoot: rec.PHPRoot,
		Env: env, Layout: rl,
	}
	if inst.HasProcess() {
		if inst.Token, err = instance.NewToken(); err != nil {
			return nil, err
		}
	}
	if rec.Kind == appconfig.KindCommand {
		used := a.portsInUse(rec.Instance)
		if rec.Port != 0 && !used[rec.Port] && portFree(rec.Port) {
			inst.Port = rec.Port
		} else if inst.Port, err = instance.FreePort(func(p int) bool { return used[p] }); err != nil {
			return nil, err
		}
		rec.Port = inst.Port
	}
	return inst, inst.Validate()
}

// portsInUse are the ports other instances' records hold.
func (a *Agent) portsInUse(except string) map[int]bool {
	used := map[int]bool{}
	entries, _ := os.ReadDir(a.Host.Path(a.Layout.Instances))
	for _, e := range entries {
		if e.Name() == except {
			continue
		}
		if r, err := a.readRecord(e.Name()); err == nil && r.Port != 0 {
			used[r.Port] = true
		}
	}
	return used
}

// startInstance writes the instance's files, starts its units and waits
// until it answers, on its own address and then on the socket the router
// will use. A failure is a *protocol.Error carrying the process's output.
func (a *Agent) startInstance(ctx context.Context, st *protocol.Step, inst *instance.Instance, healthTimeout time.Duration) error {
	if !inst.HasProcess() {
		return nil
	}
	files, err := inst.Files()
	if err != nil {
		return err
	}
	if err := instance.WriteFiles(a.Host.Root, files); err != nil {
		return err
	}
	if err := instance.WriteLinks(a.Host.Root, inst.EnableLinks()); err != nil {
		return err
	}
	sd := a.systemd()
	if !instance.Current(ctx, sd, inst) {
		if err := sd.DaemonReload(ctx); err != nil {
			return err
		}
	}
	st.Progress("starting " + instance.UnitName(inst.Name))
	if err := instance.StartUnits(ctx, sd, inst); err != nil {
		return a.unhealthy(ctx, inst, err)
	}
	st.Progress("waiting for it to answer")
	hc := inst.Health(instance.Exited(sd, inst.Name), instance.Tail(sd, inst.Name, instance.DefaultTailLines))
	// Poll often: an update waits for exactly this, and the runner's
	// default backoff (for long imports) can double the wait.
	hc.MaxBackoff = healthPoll
	if healthTimeout > 0 {
		hc.Timeout = healthTimeout
	}
	if err := hc.Wait(ctx); err != nil {
		var he *instance.HealthError
		if errors.As(err, &he) {
			return &protocol.Error{Code: protocol.CodeUnhealthy, Tail: he.Tail,
				Message: he.Error() + "; the application's output is below (fix it and run update again)"}
		}
		return err
	}
	// What the router dials: the same process for python and php, the
	// proxy in front of a command app.
	sockProbe := socketProbe(inst)
	check := instance.HealthCheck{Instance: inst.Name, Probe: sockProbe, Timeout: 10 * time.Second}
	if err := check.Wait(ctx); err != nil {
		return fmt.Errorf("instance %s answers, but not on the socket the front server uses: %w", inst.Name, err)
	}
	return nil
}

// socketProbe checks the instance through SocketUpstream.
func socketProbe(inst *instance.Instance) instance.Probe {
	dial := instance.Dialer(inst.SocketUpstream())
	if inst.Kind == appconfig.KindPHP {
		return instance.FastCGIProbe(dial, instance.FPMPingPath)
	}
	return instance.HTTPProbe(dial, "localhost", "/")
}

// unhealthy turns a failed start into an error with the unit's journal.
func (a *Agent) unhealthy(ctx context.Context, inst *instance.Instance, err error) error {
	tail, _ := instance.Tail(a.systemd(), inst.Name, instance.DefaultTailLines)(context.WithoutCancel(ctx))
	return &protocol.Error{Code: protocol.CodeUnhealthy, Tail: tail,
		Message: fmt.Sprintf("instance %s did not start: %v; the application's output is below", inst.Name, err)}
}

// stopInstance stops an instance's units and removes its unit files and
// socket directory; its directory and record stay (prev, or clean-node's
// to remove). Stopping what is not running is not an error.
func (a *Agent) stopInstance(ctx context.Context, name string, kind appconfig.Kind, drained bool) error {
	var errs []error
	if err := instance.StopUnits(ctx, a.systemd(), name, kind, drained); err != nil {
		errs = append(errs, err)
	}
	inst := &instance.Instance{App: strings.SplitN(name, ".", 2)[0], Name: name, Kind: kind, Layout: a.Layout}
	if err := inst.RemoveFiles(a.Host.Root); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// drainAndStop waits until the router's connections to the instance are
// done (bounded), then stops it. It returns a short account for the
// client.
func (a *Agent) drainAndStop(ctx context.Context, name string) (string, error) {
	rec, err := a.readRecord(name)
	if err != nil {
		return "", err
	}
	detail := "no process"
	drained := false
	if rec.Kind != appconfig.KindStatic {
		sock := a.Host.Path(a.Layout.Socket(name))
		var initial, left int
		initial, left, drained, err = instance.Drainer{}.Wait(ctx, sock)
		switch {
		case err != nil:
			detail = "could not count its requests: " + err.Error()
		case !drained:
			detail = fmt.Sprintf("%d requests still running after %s, stopping gracefully", left, instance.DefaultDrainTimeout)
		case initial == 0:
			detail = "idle"
		default:
			detail = plural(initial, "request", "requests") + " finished"
		}
	}
	if err := a.stopInstance(ctx, name, rec.Kind, drained); err != nil {
		return detail, err
	}
	return detail, nil
}

// removeInstance stops an instance and deletes everything of it: units,
// links, directory.
func (a *Agent) removeInstance(ctx context.Context, name string) error {
	kind := appconfig.KindPython
	if rec, err := a.readRecord(name); err == nil {
		kind = rec.Kind
	}
	var errs []error
	// Nothing routes to an instance being removed: stop it at once.
	errs = append(errs, a.stopInstance(ctx, name, kind, true))
	for _, p := range []string{a.Layout.LinksDir(name), path.Join(a.Layout.WWW, name)} {
		if err := os.RemoveAll(a.Host.Path(p)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ensureAppUser creates the app's user and its directories: the data
// directory (passable, root's), TEMP (the app's own) and the log
// directory (the app's own).
func (a *Agent) ensureAppUser(ctx context.Context, app string) error {
	rl := a.Layout
	user := instance.UserName(app)
	if _, ok, err := a.Host.LookupUser(user); err != nil {
		return err
	} else if !ok {
		if _, err := a.Host.Runner.Run(ctx, host.Command{Argv: instance.CreateUserArgv(rl, app)}); err != nil && host.ExitStatus(err) != 9 {
			return fmt.Errorf("create user %s: %w", user, err)
		}
	}
	for _, d := range []struct {
		p string
		a host.Attr
	}{
		{rl.AppDir(app), host.Attr{Mode: 0o711}},
		{rl.AppLogDir(app), host.Attr{Mode: 0o750, User: user, Group: user}},
	} {
		if _, err := a.Host.EnsureDir(d.p, d.a); err != nil {
			return err
		}
	}
	return nil
}

// freshTemp gives the app an empty TEMP for its new instance. The old
// directory is renamed, not emptied: running instances have it bound in
// their sandbox and keep using it until they stop (a request in flight
// keeps its temporary files). Older renamed ones are removed when no
// instance of the app but the new one runs.
func (a *Agent) freshTemp(app string) error {
	rl := a.Layout
	tmp := rl.TempDir(app)
	if ok, err := a.Host.Exists(tmp); err != nil {
		return err
	} else if ok {
		if err := a.Host.Rename(tmp, tmp+".old-"+strconv.FormatInt(a.Host.Time().UnixNano(), 10)); err != nil {
			return err
		}
	}
	user := instance.UserName(app)
	_, err := a.Host.EnsureDir(tmp, host.Attr{Mode: 0o700, User: user, Group: user})
	return err
}

// removeOldDirs removes the TEMP and config directories earlier updates
// set aside for the instances that were running then.
func (a *Agent) removeOldDirs(app string) error {
	dir := a.Layout.AppDir(app)
	entries, err := os.ReadDir(a.Host.Path(dir))
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "tmp.old-") || strings.HasPrefix(e.Name(), "config.old-") {
			errs = append(errs, os.RemoveAll(a.Host.Path(path.Join(dir, e.Name()))))
		}
	}
	return errors.Join(errs...)
}

// prepareServices runs the app's services hook: packages, install,
// setup; it returns their CONFIG_* variables.
func (a *Agent) prepareServices(ctx context.Context, c *Call, app string, cfg *appconfig.Config, clear bool) (map[string]string, error) {
	var reqs []service.Request
	for _, s := range cfg.Services {
		reqs = append(reqs, service.Request{Name: s.Name, Value: s.Value})
	}
	return service.Prepare(ctx, service.App{Name: app, DataDir: a.Layout.AppDir(app), User: instance.UserName(app)}, reqs, clear, service.Hooks{
		Warn: func(m string) { c.Warnf("%s", m) },
		InstallPackages: func(ctx context.Context, pkgs []string) error {
			_, _, err := a.apt(c).Install(ctx, pkgs, nil)
			return err
		},
	})
}

// apt installs an app's Debian packages; apt's output goes to the
// client's verbose log.
func (a *Agent) apt(c *Call) system.Apt {
	return system.Apt{Host: a.Host, Line: c.commandLine, Again: "run update again"}
}

// newRecord describes an instance about to be made from cfg.
func newRecord(app, instance string, cfg *appconfig.Config, digest, configDigest string, now time.Time) *instanceRecord {
	rec := &instanceRecord{
		App: app, Instance: instance, Kind: cfg.Runner.Kind,
		Runner: cfg.Runner.Path, RunnerName: cfg.Runner.Name, PHPRoot: cfg.PHPRoot,
		Digest: digest, ConfigDigest: configDigest, AgentVersion: version.Version, Created: now.UTC(),
	}
	for _, s := range cfg.Services {
		if s.Name == "writable_root" {
			rec.WritableRoot = true
		}
	}
	return rec
}

// portFree reports whether nothing listens on 127.0.0.1:port now.
func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}
