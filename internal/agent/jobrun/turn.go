package jobrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/instance"
	"github.com/toppcloud/toppcloud/internal/agent/system"
	"github.com/toppcloud/toppcloud/internal/atomicfile"
)

// Restart back-off of workers. systemd 252 (Debian 12) restarts a failed
// unit after a fixed RestartSec and has no growing delay (RestartSteps=
// came in 254), so the worker-turn step adds one: after the Nth failure
// in a row of a worker that ran less than StableAfter, the pause before
// the restart is 2^(N-1) seconds, at most MaxBackoff.
const (
	StableAfter = time.Minute
	MaxBackoff  = time.Minute
	// pollTurn is how often a waiting worker looks again.
	pollTurn = 250 * time.Millisecond
)

// Turn is the step before every start of a worker unit.
type Turn struct {
	Systemd system.Systemd
	// StateDir keeps each worker's last start (root only; a tmpfs, so a
	// reboot starts afresh, as systemd's restart counter does).
	StateDir string
	// Log receives what the step says (the unit's journal).
	Log io.Writer
	// Now and Sleep are the clock; nil means the real one.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

func (t *Turn) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

func (t *Turn) sleep(ctx context.Context, d time.Duration) error {
	if t.Sleep != nil {
		return t.Sleep(ctx, d)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// Wait waits for unit's turn, then for its back-off.
func (t *Turn) Wait(ctx context.Context, unit string) error {
	wu, ok := instance.ParseWorkerUnit(unit)
	if !ok {
		return usageError{fmt.Errorf("%q is not a worker unit", unit)}
	}
	if err := t.waitOthers(ctx, wu); err != nil {
		return err
	}
	return t.backoff(ctx, unit)
}

// holds reports whether a unit in this state runs (or is about to run,
// or to run again) the worker's code. A unit in its own start-pre step
// is waiting, as this one is, and holds nothing.
func holds(u system.UnitState) bool {
	switch u.Active {
	case "active", "reloading", "deactivating":
		return true
	case "activating":
		return u.Sub != "start-pre"
	}
	return false
}

// waitOthers waits until no other instance's unit of the same worker
// and replica runs: a deploy starts the new instance's worker before the
// switch and stops the old one's after it, and the worker's code must
// run in one process at a time.
func (t *Turn) waitOthers(ctx context.Context, wu instance.WorkerUnit) error {
	app, _ := instance.SplitName(wu.Instance)
	pattern := instance.WorkerUnitName(app+".*", wu.Name, wu.Replica)
	said := ""
	for {
		units, err := t.Systemd.ListUnits(ctx, pattern)
		if err != nil {
			return fmt.Errorf("list the other copies of worker %s: %w", wu.Name, err)
		}
		var others []string
		for _, u := range units {
			if u.Name != wu.Unit() && holds(u) {
				others = append(others, u.Name)
			}
		}
		if len(others) == 0 {
			if said != "" {
				fmt.Fprintf(t.Log, "%s has stopped; starting\n", said)
			}
			return nil
		}
		if s := strings.Join(others, ", "); s != said {
			fmt.Fprintf(t.Log, "waiting for %s to stop (one copy of worker %s runs at a time)\n", s, wu.Name)
			said = s
		}
		if err := t.sleep(ctx, pollTurn); err != nil {
			return err
		}
	}
}

// backoff lengthens the pause before a restart after quick failures.
func (t *Turn) backoff(ctx context.Context, unit string) error {
	props, err := t.Systemd.Show(ctx, unit, "NRestarts")
	if err != nil {
		return fmt.Errorf("ask systemd about %s: %w", unit, err)
	}
	restarts, _ := strconv.Atoi(props["NRestarts"])
	file := filepath.Join(t.StateDir, "workers", unit)
	last, failures := readState(file)
	now := t.now()
	switch {
	case restarts == 0:
		// Started by the agent (or at boot), not restarted after a failure.
		failures = 0
	case last.IsZero() || now.Sub(last) >= StableAfter:
		failures = 1
	default:
		failures++
	}
	if failures > 0 {
		pause := min(time.Second<<min(failures-1, 16), MaxBackoff)
		// systemd waited RestartSec already.
		if extra := pause - time.Second; extra > 0 {
			fmt.Fprintf(t.Log, "restart %d after %d quick failures in a row: waiting %s more\n", restarts, failures, extra)
			if err := t.sleep(ctx, extra); err != nil {
				return err
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	// The run starts now: the next failure is measured from here.
	return atomicfile.WriteFile(file, []byte(fmt.Sprintf("%d %d\n", t.now().Unix(), failures)), 0o600)
}

// readState reads a worker's last start and failures in a row.
func readState(file string) (time.Time, int) {
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) || err != nil {
		return time.Time{}, 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return time.Time{}, 0
	}
	sec, err1 := strconv.ParseInt(f[0], 10, 64)
	n, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || n < 0 {
		return time.Time{}, 0
	}
	return time.Unix(sec, 0), n
}
