// Package system is the node's operating system as toppcloud drives it:
// Debian packages through apt-get and dpkg (Apt), units through systemctl
// and journalctl (Systemd). setup-node and deploys both go through it, so
// the node is driven one way (one set of apt flags, one lock timeout), and
// every command runs through the host's Runner, which tests fake.
//
// In docker/machine's terms these are a provisioner's package and service
// actions; which packages and units toppcloud needs is its callers'
// business.
package system

import (
	"context"
	"strconv"
	"strings"

	"github.com/toppcloud/toppcloud/internal/agent/host"
)

// Systemd starts, stops and asks about units.
type Systemd struct {
	Runner host.Runner
}

func (s Systemd) run(ctx context.Context, argv ...string) ([]byte, error) {
	return s.Runner.Run(ctx, host.Command{Argv: argv})
}

// DaemonReload makes systemd read changed unit files.
func (s Systemd) DaemonReload(ctx context.Context) error {
	_, err := s.run(ctx, "systemctl", "daemon-reload")
	return err
}

// Enable enables unit unless it is (enabled, static or an alias), and
// reports whether it had to.
func (s Systemd) Enable(ctx context.Context, unit string) (bool, error) {
	out, err := s.run(ctx, "systemctl", "is-enabled", unit)
	state := strings.TrimSpace(string(out))
	if err == nil && (state == "enabled" || state == "static" || state == "alias") {
		return false, nil
	}
	if _, err := s.run(ctx, "systemctl", "enable", "--quiet", unit); err != nil {
		return false, err
	}
	return true, nil
}

// DisableNow stops unit and disables it.
func (s Systemd) DisableNow(ctx context.Context, unit string) error {
	_, err := s.run(ctx, "systemctl", "disable", "--now", "--quiet", unit)
	return err
}

// State is unit's `systemctl is-active` word: active, inactive,
// activating, deactivating, failed, ...; "" when systemd does not say.
func (s Systemd) State(ctx context.Context, unit string) string {
	states := s.States(ctx, unit)
	return states[0]
}

// Active reports whether unit is active.
func (s Systemd) Active(ctx context.Context, unit string) bool {
	return s.State(ctx, unit) == "active"
}

// States is State of each unit, asked in one command.
func (s Systemd) States(ctx context.Context, units ...string) []string {
	states := make([]string, len(units))
	if len(units) == 0 {
		return states
	}
	// is-active exits non-zero when some unit is not active; its output
	// still has one line per unit.
	out, _ := s.run(ctx, append([]string{"systemctl", "is-active"}, units...)...)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) == len(units) {
		for i, l := range lines {
			states[i] = strings.TrimSpace(l)
		}
	}
	return states
}

// Start starts units, in order.
func (s Systemd) Start(ctx context.Context, units ...string) error {
	_, err := s.run(ctx, append([]string{"systemctl", "start"}, units...)...)
	return err
}

// Restart restarts unit (starts it if it is not running).
func (s Systemd) Restart(ctx context.Context, unit string) error {
	_, err := s.run(ctx, "systemctl", "restart", unit)
	return err
}

// Stop asks systemd to stop units and returns without waiting for them.
// A unit that does not exist is not an error.
func (s Systemd) Stop(ctx context.Context, units ...string) error {
	_, err := s.run(ctx, append([]string{"systemctl", "stop", "--no-block"}, units...)...)
	if err != nil && !strings.Contains(err.Error(), "not loaded") && !strings.Contains(err.Error(), "does not exist") {
		return err
	}
	return nil
}

// Kill sends signal to unit's main process.
func (s Systemd) Kill(ctx context.Context, unit, signal string) error {
	_, err := s.run(ctx, "systemctl", "kill", "--kill-whom=main", "--signal="+signal, unit)
	return err
}

// Show returns unit's properties.
func (s Systemd) Show(ctx context.Context, unit string, props ...string) (map[string]string, error) {
	out, err := s.run(ctx, "systemctl", "show", "--property="+strings.Join(props, ","), unit)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m, nil
}

// UnitFile is a unit file systemd knows, with its enablement state.
type UnitFile struct {
	Name, State string
}

// ServiceFiles lists the service unit files matching pattern.
func (s Systemd) ServiceFiles(ctx context.Context, pattern string) ([]UnitFile, error) {
	out, err := s.run(ctx, "systemctl", "list-unit-files", "--no-legend", "--type=service", pattern)
	if err != nil {
		return nil, err
	}
	var files []UnitFile
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) >= 2 {
			files = append(files, UnitFile{Name: f[0], State: f[1]})
		}
	}
	return files, nil
}

// Journal returns unit's last lines in the journal (journalctl --output
// format, "cat" for the messages alone). unit may be a pattern.
func (s Systemd) Journal(ctx context.Context, unit string, lines int, format string) ([]string, error) {
	out, err := s.run(ctx, journalArgv(unit, lines, format)...)
	if err != nil {
		return nil, err
	}
	text := strings.TrimRight(string(out), "\n")
	if text == "" {
		return nil, nil
	}
	return strings.Split(text, "\n"), nil
}

// FollowJournal sends unit's last lines, then every new one, to line
// until ctx ends.
func (s Systemd) FollowJournal(ctx context.Context, unit string, lines int, format string, line func(string)) error {
	_, err := s.Runner.Run(ctx, host.Command{Argv: append(journalArgv(unit, lines, format), "--follow"), Line: line})
	return err
}

func journalArgv(unit string, lines int, format string) []string {
	return []string{"journalctl", "--unit", unit, "--lines", strconv.Itoa(lines), "--no-pager", "--output", format}
}
