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
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

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

// StartNoBlock asks systemd to start units and returns without waiting
// for them to be up.
func (s Systemd) StartNoBlock(ctx context.Context, units ...string) error {
	_, err := s.run(ctx, append([]string{"systemctl", "start", "--no-block"}, units...)...)
	return err
}

// StopAndWait stops units and waits until they are (for units that stop
// at once, such as timers). A unit that does not exist is not an error.
func (s Systemd) StopAndWait(ctx context.Context, units ...string) error {
	_, err := s.run(ctx, append([]string{"systemctl", "stop"}, units...)...)
	if err != nil && !notLoaded(err) {
		return err
	}
	return nil
}

// CleanState removes what systemd keeps of stopped units between runs
// (systemctl clean --what=state): a timer's record of its last run.
func (s Systemd) CleanState(ctx context.Context, units ...string) error {
	_, err := s.run(ctx, append([]string{"systemctl", "clean", "--what=state"}, units...)...)
	if err != nil && !notLoaded(err) {
		return err
	}
	return nil
}

func notLoaded(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "not loaded") || strings.Contains(msg, "does not exist") || strings.Contains(msg, "not found")
}

// ShowUnits returns the properties of several units in one call, their
// timestamps as "@" and seconds since the epoch; each map holds "Id".
func (s Systemd) ShowUnits(ctx context.Context, units []string, props ...string) ([]map[string]string, error) {
	if len(units) == 0 {
		return nil, nil
	}
	argv := append([]string{"systemctl", "show", "--timestamp=unix", "--property=Id," + strings.Join(props, ",")}, units...)
	out, err := s.run(ctx, argv...)
	if err != nil {
		return nil, err
	}
	var all []map[string]string
	for _, block := range strings.Split(strings.TrimSpace(string(out)), "\n\n") {
		m := map[string]string{}
		for _, line := range strings.Split(block, "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				m[k] = v
			}
		}
		if m["Id"] != "" {
			all = append(all, m)
		}
	}
	return all, nil
}

// UnitState is a loaded unit's line of systemctl list-units.
type UnitState struct {
	Name, Load, Active, Sub string
}

// ListUnits lists the loaded units matching pattern, whatever their
// state.
func (s Systemd) ListUnits(ctx context.Context, pattern string) ([]UnitState, error) {
	out, err := s.run(ctx, "systemctl", "list-units", "--all", "--plain", "--no-legend", "--full", pattern)
	if err != nil {
		return nil, err
	}
	var units []UnitState
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) >= 4 {
			units = append(units, UnitState{Name: f[0], Load: f[1], Active: f[2], Sub: f[3]})
		}
	}
	return units, nil
}

// Timer is a timer's line of systemctl list-timers: its next and last
// elapse, zero when there is none.
type Timer struct {
	Unit      string
	Activates string
	Next      time.Time
	Last      time.Time
}

// Timers lists the timers matching pattern, active or not.
func (s Systemd) Timers(ctx context.Context, pattern string) ([]Timer, error) {
	out, err := s.run(ctx, "systemctl", "list-timers", "--all", "--output=json", "--no-pager", pattern)
	if err != nil {
		return nil, err
	}
	var rows []struct {
		Unit      string `json:"unit"`
		Activates string `json:"activates"`
		Next      int64  `json:"next"`
		Last      int64  `json:"last"`
	}
	if err := json.Unmarshal(out, &rows); err != nil {
		return nil, fmt.Errorf("systemctl list-timers: %w", err)
	}
	micros := func(us int64) time.Time {
		if us <= 0 {
			return time.Time{}
		}
		return time.UnixMicro(us).UTC()
	}
	timers := make([]Timer, len(rows))
	for i, r := range rows {
		timers[i] = Timer{Unit: r.Unit, Activates: r.Activates, Next: micros(r.Next), Last: micros(r.Last)}
	}
	return timers, nil
}

// Restart restarts unit (starts it if it is not running).
func (s Systemd) Restart(ctx context.Context, unit string) error {
	_, err := s.run(ctx, "systemctl", "restart", unit)
	return err
}

// Reload makes unit reread its configuration (systemctl reload): for a
// server whose changed files take effect without a restart.
func (s Systemd) Reload(ctx context.Context, unit string) error {
	_, err := s.run(ctx, "systemctl", "reload", unit)
	return err
}

// ResetFailed makes systemd forget a failed unit (systemctl
// reset-failed): a transient unit kept after it failed, so its exit
// status could be read, goes with it.
func (s Systemd) ResetFailed(ctx context.Context, unit string) error {
	_, err := s.run(ctx, "systemctl", "reset-failed", unit)
	return err
}

// Stop asks systemd to stop units and returns without waiting for them.
// A unit that does not exist is not an error.
func (s Systemd) Stop(ctx context.Context, units ...string) error {
	_, err := s.run(ctx, append([]string{"systemctl", "stop", "--no-block"}, units...)...)
	if err != nil && !notLoaded(err) {
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
	return s.JournalUnits(ctx, []string{unit}, lines, format)
}

// JournalUnits is Journal of several units (or patterns) together.
func (s Systemd) JournalUnits(ctx context.Context, units []string, lines int, format string) ([]string, error) {
	out, err := s.run(ctx, journalArgv(units, lines, format)...)
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
	return s.FollowJournalUnits(ctx, []string{unit}, lines, format, line)
}

// FollowJournalUnits is FollowJournal of several units (or patterns)
// together.
func (s Systemd) FollowJournalUnits(ctx context.Context, units []string, lines int, format string, line func(string)) error {
	_, err := s.Runner.Run(ctx, host.Command{Argv: append(journalArgv(units, lines, format), "--follow"), Line: line})
	return err
}

func journalArgv(units []string, lines int, format string) []string {
	argv := []string{"journalctl"}
	for _, u := range units {
		argv = append(argv, "--unit", u)
	}
	return append(argv, "--lines", strconv.Itoa(lines), "--no-pager", "--output", format)
}
