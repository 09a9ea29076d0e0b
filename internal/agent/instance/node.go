package instance

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/agent/system"
	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/assets"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

// Node is the application instances of one node. It names new ones,
// keeps their records, and prepares, starts, drains, stops and removes
// them; every operation that changes which instances run (update,
// activate, deactivate, restore, clean-node) goes through it. So what
// runs with an instance starts in Start, before any route switches to it,
// and stops in Stop, once the routes have switched away.
type Node struct {
	Host   *host.Host
	Layout layout.Layout
}

// healthPoll is the longest pause between two probes of a starting
// instance: an update waits for exactly this, and the health check's
// default backoff (for long imports) can double the wait.
const healthPoll = 100 * time.Millisecond

func (n *Node) systemd() system.Systemd { return system.Systemd{Runner: n.Host.Runner} }

// NewName names a new instance of app and reserves the name (NextName,
// by the node's clock).
func (n *Node) NewName(app string) (string, error) {
	return NextName(n.Host.Path(n.Layout.WWW), app, n.Host.Time())
}

// OnDisk lists the instance directories by app, each app's sorted.
func (n *Node) OnDisk() (map[string][]string, error) {
	entries, err := os.ReadDir(n.Host.Path(n.Layout.WWW))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string][]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, e := range entries {
		app, ok := SplitName(e.Name())
		if !e.IsDir() || !ok || strings.HasSuffix(e.Name(), ".partial") {
			continue
		}
		out[app] = append(out[app], e.Name())
	}
	for _, v := range out {
		slices.Sort(v)
	}
	return out, nil
}

// States asks systemd for the state of instances' units (is-active's
// word), leaving out those it does not say.
func (n *Node) States(ctx context.Context, names ...string) map[string]string {
	units := make([]string, len(names))
	for i, name := range names {
		units[i] = UnitName(name)
	}
	states := map[string]string{}
	for i, s := range n.systemd().States(ctx, units...) {
		if s != "" {
			states[names[i]] = s
		}
	}
	return states
}

// Journal returns the last lines the instance wrote to the journal.
func (n *Node) Journal(ctx context.Context, name string, lines int) []string {
	tail, _ := Tail(n.systemd(), name, lines)(context.WithoutCancel(ctx))
	return tail
}

// InstallRuntime writes what instances run with that comes with the agent
// binary: the template units (TemplateUnits) and the runtime assets (the
// WSGI bootstrap, the PHP prelude), and has systemd read a changed unit.
// It returns what changed. setup-node lays them down; Prepare checks them
// too, so a new agent's files are in place before its first instance
// starts even if setup-node was not run again.
func (n *Node) InstallRuntime(ctx context.Context) (changed []string, err error) {
	l := n.Layout
	units := TemplateUnits(l)
	for _, name := range slices.Sorted(maps.Keys(units)) {
		unitChanged, err := n.Host.WriteFile(path.Join(l.Units, name), units[name], host.Attr{Mode: 0o644})
		if err != nil {
			return changed, err
		}
		if unitChanged {
			changed = append(changed, name)
		}
	}
	if len(changed) > 0 {
		if err := n.systemd().DaemonReload(ctx); err != nil {
			return changed, err
		}
	}
	assetsChanged, err := assets.Install(n.Host.Path(l.Assets))
	if err != nil {
		return changed, err
	}
	if assetsChanged {
		changed = append(changed, l.Assets)
	}
	return changed, nil
}

// EnsureAppUser creates the app's user and its directories: the data
// directory (passable, root's) and the log directory (the app's own).
func (n *Node) EnsureAppUser(ctx context.Context, app string) error {
	l := n.Layout
	user := UserName(app)
	if _, ok, err := n.Host.LookupUser(user); err != nil {
		return err
	} else if !ok {
		if _, err := n.Host.Runner.Run(ctx, host.Command{Argv: CreateUserArgv(l, app)}); err != nil && host.ExitStatus(err) != 9 {
			return fmt.Errorf("create user %s: %w", user, err)
		}
	}
	for _, d := range []struct {
		p string
		a host.Attr
	}{
		{l.AppDir(app), host.Attr{Mode: 0o711}},
		{l.AppLogDir(app), host.Attr{Mode: 0o750, User: user, Group: user}},
	} {
		if _, err := n.Host.EnsureDir(d.p, d.a); err != nil {
			return err
		}
	}
	return nil
}

// Spec is what an instance is started with besides its record.
type Spec struct {
	// Locations are where it will be live (for the canonical hostname).
	Locations []string
	// Config is the app.ini of the instance.
	Config *appconfig.Config
	// Services are the CONFIG_* variables of the app's services.
	Services map[string]string
	// NewTemp gives the app an empty TEMP for this instance (an update);
	// otherwise the app keeps the one it has (made if missing).
	NewTemp bool
	// Workers are the app.ini workers the instance runs (none when
	// another instance of the app runs them, or another node).
	Workers []Worker
}

// Prepare readies what the instance runs with, without starting it: the
// runtime (InstallRuntime), the app's user and directories, its TEMP; then
// the instance's environment, a fresh internal token and, for a command
// app, a free port (its recorded one when still free), which rec keeps.
func (n *Node) Prepare(ctx context.Context, rec *Record, spec Spec) (*Instance, error) {
	if _, err := n.InstallRuntime(ctx); err != nil {
		return nil, err
	}
	if err := n.EnsureAppUser(ctx, rec.App); err != nil {
		return nil, err
	}
	if ok, err := n.Host.Exists(n.Layout.TempDir(rec.App)); err != nil {
		return nil, err
	} else if spec.NewTemp || !ok {
		if err := n.freshTemp(rec.App); err != nil {
			return nil, err
		}
	}
	l := n.Layout
	uploaded, err := n.Host.Exists(l.ConfigDir(rec.App))
	if err != nil {
		return nil, err
	}
	env, err := Environment(l, EnvInput{
		App: rec.App, Instance: rec.Instance, Locations: spec.Locations,
		ConfigUploaded: uploaded, ConfigDefault: spec.Config.ConfigDefault,
		Services: spec.Services,
	})
	if err != nil {
		return nil, err
	}
	inst := &Instance{
		App: rec.App, Name: rec.Instance, Kind: rec.Kind,
		Runner: rec.Runner, RunnerName: rec.RunnerName, PHPRoot: rec.PHPRoot,
		Env: env, Layout: l, WorkerJobs: spec.Workers,
	}
	if inst.HasProcess() {
		if inst.Token, err = NewToken(); err != nil {
			return nil, err
		}
	}
	if rec.Kind == appconfig.KindCommand {
		used := n.portsInUse(rec.Instance)
		if rec.Port != 0 && !used[rec.Port] && portFree(rec.Port) {
			inst.Port = rec.Port
		} else if inst.Port, err = FreePort(func(p int) bool { return used[p] }); err != nil {
			return nil, err
		}
		rec.Port = inst.Port
	}
	if err := inst.Validate(); err != nil {
		return nil, err
	}
	return inst, n.SaveRecord(rec)
}

// freshTemp gives the app an empty TEMP for its new instance. The old
// directory is renamed, not emptied: running instances have it bound in
// their sandbox and keep using it until they stop (a request in flight
// keeps its temporary files). RemoveOldDirs removes the renamed ones.
func (n *Node) freshTemp(app string) error {
	tmp := n.Layout.TempDir(app)
	if ok, err := n.Host.Exists(tmp); err != nil {
		return err
	} else if ok {
		if err := n.Host.Rename(tmp, tmp+".old-"+strconv.FormatInt(n.Host.Time().UnixNano(), 10)); err != nil {
			return err
		}
	}
	user := UserName(app)
	_, err := n.Host.EnsureDir(tmp, host.Attr{Mode: 0o700, User: user, Group: user})
	return err
}

// RemoveOldDirs removes the TEMP and config directories earlier updates
// set aside for the instances that were running then; call it once none
// of them runs any more.
func (n *Node) RemoveOldDirs(app string) error {
	dir := n.Layout.AppDir(app)
	entries, err := os.ReadDir(n.Host.Path(dir))
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "tmp.old-") || strings.HasPrefix(e.Name(), "config.old-") {
			errs = append(errs, os.RemoveAll(n.Host.Path(path.Join(dir, e.Name()))))
		}
	}
	return errors.Join(errs...)
}

// portsInUse are the ports other instances' records hold.
func (n *Node) portsInUse(except string) map[int]bool {
	used := map[int]bool{}
	entries, _ := os.ReadDir(n.Host.Path(n.Layout.Instances))
	for _, e := range entries {
		if e.Name() == except {
			continue
		}
		if r, err := n.Record(e.Name()); err == nil && r.Port != 0 {
			used[r.Port] = true
		}
	}
	return used
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

// Start writes the instance's files (its workers' too), starts its units
// and waits until it answers, on its own address and then on the socket
// the router will use; progress hears what it waits for. The workers are
// StartWorkers' to start. A failure is a *protocol.Error
// carrying the process's output; the caller stops the instance.
func (n *Node) Start(ctx context.Context, inst *Instance, progress func(string), healthTimeout time.Duration) error {
	if !inst.HasProcess() {
		return nil
	}
	files, err := inst.Files()
	if err != nil {
		return err
	}
	if err := WriteFiles(n.Host.Root, files); err != nil {
		return err
	}
	if err := writeLinks(n.Host, inst.EnableLinks()); err != nil {
		return err
	}
	sd := n.systemd()
	if !current(ctx, sd, inst) {
		if err := sd.DaemonReload(ctx); err != nil {
			return err
		}
	}
	progress("starting " + UnitName(inst.Name))
	if err := startUnits(ctx, sd, inst); err != nil {
		return &protocol.Error{Code: protocol.CodeUnhealthy, Tail: n.Journal(ctx, inst.Name, DefaultTailLines),
			Message: fmt.Sprintf("instance %s did not start: %v; the application's output is below", inst.Name, err)}
	}
	progress("waiting for it to answer")
	hc := inst.Health(Exited(sd, inst.Name), Tail(sd, inst.Name, DefaultTailLines))
	hc.MaxBackoff = healthPoll
	if healthTimeout > 0 {
		hc.Timeout = healthTimeout
	}
	if err := hc.Wait(ctx); err != nil {
		var he *HealthError
		if errors.As(err, &he) {
			return &protocol.Error{Code: protocol.CodeUnhealthy, Tail: he.Tail,
				Message: he.Error() + "; the application's output is below (fix it and run update again)"}
		}
		return err
	}
	// What the router dials: the same process for python and php, the
	// proxy in front of a command app.
	check := HealthCheck{Instance: inst.Name, Probe: socketProbe(inst), Timeout: 10 * time.Second}
	if err := check.Wait(ctx); err != nil {
		return fmt.Errorf("instance %s answers, but not on the socket the front server uses: %w", inst.Name, err)
	}
	return nil
}

// StartWorkers starts the instance's workers, which Start wrote and
// enabled: an update calls it once update_fetch has run, so that no
// worker's code runs before the app's update hooks have. Each then waits
// for its turn: the instance live before stops its own after the switch.
func (n *Node) StartWorkers(ctx context.Context, inst *Instance) error {
	return startWorkers(ctx, n.systemd(), inst.Name, inst.WorkerJobs)
}

// socketProbe checks the instance through SocketUpstream.
func socketProbe(inst *Instance) Probe {
	dial := Dialer(inst.SocketUpstream())
	if inst.Kind == appconfig.KindPHP {
		return FastCGIProbe(dial, FPMPingPath)
	}
	return HTTPProbe(dial, "localhost", "/")
}

// Running reports whether an instance runs as the agent left it (live
// somewhere). An instance the agent stopped has no drop-in any more, but
// its processes may still be exiting (stops do not wait): then this waits
// until they have, so a new start is not mistaken for, or merged into,
// the old one.
func (n *Node) Running(ctx context.Context, name string) (bool, error) {
	unit := UnitName(name)
	sd := n.systemd()
	if ok, err := n.Host.Exists(DropInPath(n.Layout, name)); err != nil {
		return false, err
	} else if ok {
		return sd.Active(ctx, unit), nil
	}
	deadline := time.Now().Add(DefaultGracefulTimeout + DefaultStopSlack)
	for {
		switch sd.State(ctx, unit) {
		case "active", "deactivating", "activating", "reloading":
		default:
			return false, nil
		}
		if time.Now().After(deadline) {
			return false, fmt.Errorf("%s is still stopping after %s", unit, DefaultGracefulTimeout+DefaultStopSlack)
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop stops an instance's units, its workers' too (quickly when
// drained, see stopUnits), and removes its unit files and socket
// directory; its directory and record stay (prev, or clean-node's to
// remove). Stopping what is not running is not an error.
func (n *Node) Stop(ctx context.Context, name string, kind appconfig.Kind, drained bool) error {
	var errs []error
	if _, err := n.StopWorkers(ctx, name); err != nil {
		errs = append(errs, err)
	}
	if err := stopUnits(ctx, n.systemd(), name, kind, drained); err != nil {
		errs = append(errs, err)
	}
	app, _ := SplitName(name)
	inst := &Instance{App: app, Name: name, Kind: kind, Layout: n.Layout}
	if err := inst.RemoveFiles(n.Host.Root); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// DrainAndStop waits until the router's connections to the instance are
// done (bounded), then stops it. It returns a short account for the
// client.
func (n *Node) DrainAndStop(ctx context.Context, name string) (string, error) {
	rec, err := n.Record(name)
	if err != nil {
		return "", err
	}
	detail := "no process"
	drained := false
	if rec.Kind != appconfig.KindStatic {
		var initial, left int
		initial, left, drained, err = Drainer{}.Wait(ctx, n.Host.Path(n.Layout.Socket(name)))
		switch {
		case err != nil:
			detail = "could not count its requests: " + err.Error()
		case !drained:
			detail = fmt.Sprintf("%d requests still running after %s, stopping gracefully", left, DefaultDrainTimeout)
		case initial == 1:
			detail = "1 request finished"
		case initial == 0:
			detail = "idle"
		default:
			detail = fmt.Sprintf("%d requests finished", initial)
		}
	}
	return detail, n.Stop(ctx, name, rec.Kind, drained)
}

// Remove stops an instance at once and deletes everything of it: units,
// links, directory.
func (n *Node) Remove(ctx context.Context, name string) error {
	kind := appconfig.KindPython
	if rec, err := n.Record(name); err == nil {
		kind = rec.Kind
	}
	var errs []error
	// Nothing routes to an instance being removed: stop it at once.
	errs = append(errs, n.Stop(ctx, name, kind, true))
	for _, p := range []string{n.Layout.LinksDir(name), n.Layout.InstanceDir(name)} {
		if err := os.RemoveAll(n.Host.Path(p)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
