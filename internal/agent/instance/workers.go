package instance

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/agent/system"
)

// workerFiles are the drop-ins of workers of this instance.
func (i *Instance) workerFiles(workers []Worker) ([]File, error) {
	var out []File
	for _, wk := range workers {
		data, err := i.WorkerDropIn(wk)
		if err != nil {
			return nil, err
		}
		out = append(out, File{Path: dropIn(i.Layout, WorkerUnitName(i.Name, wk.Name, wk.Replica), workerDropIn), Mode: 0o644, Data: data})
	}
	return out, nil
}

// workerUnitsOnDisk finds the worker units the agent wrote for instance
// (under root; "" for the node itself), by their drop-in directories and
// their links: what to stop and remove even when nothing else says which
// workers the instance had.
func workerUnitsOnDisk(l layout.Layout, root, instance string) []WorkerUnit {
	return scanWorkerUnits(l, root, func(w WorkerUnit) bool { return w.Instance == instance })
}

func scanWorkerUnits(l layout.Layout, root string, keep func(WorkerUnit) bool) []WorkerUnit {
	seen := map[WorkerUnit]bool{}
	var out []WorkerUnit
	for _, dir := range []string{l.Units, path.Join(l.Units, "multi-user.target.wants")} {
		entries, _ := os.ReadDir(filepath.Join(root, dir))
		for _, e := range entries {
			wu, ok := ParseWorkerUnit(strings.TrimSuffix(e.Name(), ".d"))
			if ok && !seen[wu] && keep(wu) {
				seen[wu] = true
				out = append(out, wu)
			}
		}
	}
	slices.SortFunc(out, func(a, b WorkerUnit) int { return strings.Compare(a.Unit(), b.Unit()) })
	return out
}

// WorkerUnits lists the worker units on the node of app's instances.
func (n *Node) WorkerUnits(app string) []WorkerUnit {
	return scanWorkerUnits(n.Layout, n.Host.Root, func(w WorkerUnit) bool {
		a, _ := SplitName(w.Instance)
		return a == app
	})
}

// startWorkers asks systemd to start the instance's workers, written and
// loaded already, without waiting: each first waits for its turn (see
// jobrun), which lasts until the instance that ran them before has
// stopped them.
func startWorkers(ctx context.Context, sd system.Systemd, name string, workers []Worker) error {
	if len(workers) == 0 {
		return nil
	}
	units := make([]string, len(workers))
	for k, wk := range workers {
		units[k] = WorkerUnitName(name, wk.Name, wk.Replica)
	}
	if err := sd.StartNoBlock(ctx, units...); err != nil {
		return fmt.Errorf("start the workers of %s: %w", name, err)
	}
	return nil
}

// SetWorkers makes inst, which runs already, run exactly workers: it
// stops and removes its worker units that are not among them, writes and
// starts the others (those running stay as they are). It returns the
// units it started and stopped.
func (n *Node) SetWorkers(ctx context.Context, inst *Instance, workers []Worker) (started, stopped []string, err error) {
	want := map[string]Worker{}
	for _, wk := range workers {
		want[WorkerUnitName(inst.Name, wk.Name, wk.Replica)] = wk
	}
	var drop []WorkerUnit
	for _, wu := range workerUnitsOnDisk(n.Layout, n.Host.Root, inst.Name) {
		if _, ok := want[wu.Unit()]; !ok {
			drop = append(drop, wu)
		}
	}
	if stopped, err = n.stopWorkerUnits(ctx, drop); err != nil {
		return nil, stopped, err
	}
	files, err := inst.workerFiles(workers)
	if err != nil {
		return nil, stopped, err
	}
	changed := false
	for _, f := range files {
		ch, err := n.Host.WriteFile(f.Path, f.Data, host.Attr{Mode: f.Mode})
		if err != nil {
			return nil, stopped, err
		}
		changed = changed || ch
	}
	var links []Link
	for u := range want {
		links = append(links, workerLink(n.Layout, u))
	}
	if err := writeLinks(n.Host, links); err != nil {
		return nil, stopped, err
	}
	sd := n.systemd()
	if changed {
		if err := sd.DaemonReload(ctx); err != nil {
			return nil, stopped, err
		}
	}
	var start []Worker
	units := slices.Sorted(maps.Keys(want))
	states := sd.States(ctx, units...)
	for k, u := range units {
		// A running worker whose unit changed keeps running as it was
		// until it restarts; its instance's files do not change.
		if states[k] != "active" && states[k] != "activating" && states[k] != "reloading" {
			start = append(start, want[u])
			started = append(started, u)
		}
	}
	return started, stopped, startWorkers(ctx, sd, inst.Name, start)
}

// StopWorkers stops and removes every worker unit of the instance; it
// returns the units stopped.
func (n *Node) StopWorkers(ctx context.Context, name string) ([]string, error) {
	return n.stopWorkerUnits(ctx, workerUnitsOnDisk(n.Layout, n.Host.Root, name))
}

// stopWorkerUnits asks systemd to stop worker units (gracefully, without
// waiting: KillSignal, then a kill after TimeoutStopSec) and removes
// their drop-ins and links.
func (n *Node) stopWorkerUnits(ctx context.Context, units []WorkerUnit) ([]string, error) {
	if len(units) == 0 {
		return nil, nil
	}
	names := make([]string, len(units))
	var errs []error
	for k, wu := range units {
		names[k] = wu.Unit()
		for _, p := range []string{workerLink(n.Layout, names[k]).Path, path.Dir(dropIn(n.Layout, names[k], workerDropIn))} {
			if err := os.RemoveAll(n.Host.Path(p)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	if err := n.systemd().Stop(ctx, names...); err != nil {
		errs = append(errs, fmt.Errorf("stop workers: %w", err))
	}
	return names, errors.Join(errs...)
}

// WorkerState is what systemd says about a worker unit.
type WorkerState struct {
	WorkerUnit
	// Active and Sub are systemd's ActiveState and SubState.
	Active, Sub string
	// Restarts counts restarts after failures since the agent started it.
	Restarts int
	// PID is the worker's main process, 0 when none runs.
	PID int
	// Since is when it last started, zero if never.
	Since time.Time
	// Result is systemd's word for how it last ended ("success",
	// "exit-code", "signal", ...); Status the exit status.
	Result string
	Status int
}

// WorkerStates asks systemd about the worker units of app's instances.
func (n *Node) WorkerStates(ctx context.Context, app string) ([]WorkerState, error) {
	units := n.WorkerUnits(app)
	names := make([]string, len(units))
	for k, wu := range units {
		names[k] = wu.Unit()
	}
	props, err := n.systemd().ShowUnits(ctx, names, "ActiveState", "SubState", "NRestarts", "MainPID", "ExecMainStartTimestamp", "Result", "ExecMainStatus")
	if err != nil {
		return nil, err
	}
	byName := map[string]map[string]string{}
	for _, p := range props {
		byName[p["Id"]] = p
	}
	out := make([]WorkerState, len(units))
	for k, wu := range units {
		p := byName[wu.Unit()]
		out[k] = WorkerState{WorkerUnit: wu, Active: p["ActiveState"], Sub: p["SubState"], Result: p["Result"],
			Restarts: atoi(p["NRestarts"]), PID: atoi(p["MainPID"]), Status: atoi(p["ExecMainStatus"]), Since: unixTime(p["ExecMainStartTimestamp"])}
	}
	return out, nil
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// unixTime reads a timestamp as systemctl show --timestamp=unix writes
// it ("@1733356800"); zero for none.
func unixTime(s string) time.Time {
	sec, err := strconv.ParseInt(strings.TrimPrefix(s, "@"), 10, 64)
	if err != nil || sec <= 0 {
		return time.Time{}
	}
	return time.Unix(sec, 0).UTC()
}
