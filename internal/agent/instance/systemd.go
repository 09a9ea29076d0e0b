package instance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/toppcloud/toppcloud/internal/agent/system"
	"github.com/toppcloud/toppcloud/internal/appconfig"
)

// ErrExited is wrapped by Exited's errors when the unit's process is no
// longer running.
var ErrExited = errors.New("process exited")

// Exited returns a check that fails, wrapping ErrExited, once the
// instance's process has stopped or is waiting to be restarted, and
// passes while it is starting or running. It fits HealthCheck.Exited.
func Exited(sd system.Systemd, instance string) func(context.Context) error {
	return func(ctx context.Context) error {
		props, err := sd.Show(ctx, UnitName(instance), "ActiveState", "SubState", "Result", "ExecMainStatus")
		if err != nil {
			return nil // unknown: let the probe and the timeout decide
		}
		active, sub := props["ActiveState"], props["SubState"]
		if active == "active" && sub != "auto-restart" || active == "activating" && sub != "auto-restart" || active == "reloading" {
			return nil
		}
		detail := fmt.Sprintf("unit %s/%s, result %s", active, sub, props["Result"])
		if st, err := strconv.Atoi(props["ExecMainStatus"]); err == nil && st != 0 {
			detail = fmt.Sprintf("exit status %d (unit %s/%s)", st, active, sub)
		}
		return fmt.Errorf("%w: %s", ErrExited, detail)
	}
}

// Tail returns a function that reads the last n lines the instance wrote
// to the journal. It fits HealthCheck.Output.
func Tail(sd system.Systemd, instance string, n int) func(context.Context) ([]string, error) {
	return func(ctx context.Context) ([]string, error) {
		return sd.Journal(ctx, UnitName(instance), n, "cat")
	}
}

// units are the units startUnits starts, main unit last: a command
// app's socket must listen before anyone is told the app is up.
func (i *Instance) units() []string {
	if i.Kind == appconfig.KindCommand {
		return []string{ProxySocketName(i.Name), UnitName(i.Name)}
	}
	return []string{UnitName(i.Name)}
}

// startUnits starts the instance's units (already enabled by EnableLinks
// and known to systemd after a daemon-reload). For python and php it
// returns once the server has booted or failed; wait with a HealthCheck
// for the application.
func startUnits(ctx context.Context, sd system.Systemd, i *Instance) error {
	if err := sd.Start(ctx, i.units()...); err != nil {
		return fmt.Errorf("start %s: %w", i.Name, err)
	}
	return nil
}

// quickStopSignal ends an instance that has nothing in flight at once;
// KillSignal (the unit's graceful stop) waits for workers to notice, up
// to a second for gunicorn's threads.
func quickStopSignal(kind appconfig.Kind) string {
	switch kind {
	case appconfig.KindPython, appconfig.KindPaste:
		return "SIGQUIT" // gunicorn: quick shutdown
	case appconfig.KindPHP:
		return "SIGTERM" // php-fpm: quick shutdown (SIGQUIT is graceful)
	}
	return ""
}

// stopUnits stops an instance's units: with drained set (nothing is
// in flight, see Drainer) quickly, else gracefully (KillSignal, up to the
// graceful timeout). It does not wait for the processes to end: nothing
// routes to the instance any more, and a graceful stop may take the whole
// graceful timeout. Units that do not exist are not an error.
func stopUnits(ctx context.Context, sd system.Systemd, name string, kind appconfig.Kind, drained bool) error {
	if kind == appconfig.KindStatic {
		return nil
	}
	if sig := quickStopSignal(kind); drained && sig != "" {
		// Best effort: a unit that is not running has no main process.
		_ = sd.Kill(ctx, UnitName(name), sig)
	}
	// An armed previous instance's socket and proxy go with it (see
	// prev.go); they are not there for others.
	units := []string{PrevSocketName(name), PrevServiceName(name), UnitName(name)}
	if kind == appconfig.KindCommand {
		units = append(units, ProxySocketName(name), ProxyServiceName(name))
	}
	if err := sd.Stop(ctx, units...); err != nil {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	return nil
}

// current reports whether systemd has the instance's unit loaded with the
// drop-in as written: then starting it needs no daemon-reload (which costs
// a few hundred milliseconds on a node with many units). A new instance's
// unit is loaded from disk the first time anything asks about it, so this
// is true for it unless something asked before its files were written.
func current(ctx context.Context, sd system.Systemd, i *Instance) bool {
	props, err := sd.Show(ctx, UnitName(i.Name), "LoadState", "NeedDaemonReload", "DropInPaths")
	if err != nil {
		return false
	}
	return props["LoadState"] == "loaded" && props["NeedDaemonReload"] == "no" &&
		slices.Contains(strings.Fields(props["DropInPaths"]), DropInPath(i.Layout, i.Name))
}
