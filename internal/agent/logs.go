package agent

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/instance"
	"github.com/toppcloud/toppcloud/internal/agent/system"
	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

// Log defaults.
const (
	DefaultLogLines = 50
	maxLogLines     = 10000
	// logPoll is how often a followed errors.log is checked for more.
	logPoll = 250 * time.Millisecond
	// logHeartbeat is how often a follow checks that the client is
	// still there.
	logHeartbeat = 5 * time.Second
)

// ErrorsLog is the file the WSGI bootstrap appends an app's per-request
// output to, in its log directory.
const ErrorsLog = "errors.log"

func (a *Agent) systemd() system.Systemd { return system.Systemd{Runner: a.Host.Runner} }

func (a *Agent) logs(ctx context.Context, c *Call, args *protocol.LogsArgs) (*protocol.LogsResult, error) {
	_, rt, err := a.routeAt(c, args.Location)
	if err != nil {
		return nil, err
	}
	// Every instance of the app, so a failed start or the drained old one
	// shows too, and its jobs; or one job alone.
	units := []string{instance.UnitName(rt.App + ".*"), instance.WorkerUnitPattern(rt.App, ""), instance.CronUnitName(rt.App, "*", ".service")}
	if args.Job != "" {
		if units, err = a.jobUnits(c, rt.App, args.Job); err != nil {
			return nil, err
		}
	}
	n := args.Lines
	if n <= 0 {
		n = DefaultLogLines
	}
	n = min(n, maxLogLines)
	res := &protocol.LogsResult{App: rt.App, Instance: rt.Live}

	// The client going away ends a follow: the next write fails.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	send := func(stream, line string) {
		mu.Lock()
		defer mu.Unlock()
		if err := c.Out.Log(stream, line); err != nil {
			cancel()
		}
	}

	logFile := a.Host.Path(path.Join(a.Layout.AppLogDir(rt.App), ErrorsLog))
	var data []byte
	if args.Job == "" {
		data, _ = os.ReadFile(logFile)
	}
	for _, l := range lastLines(strings.TrimRight(string(data), "\n"), n) {
		if l != "" {
			send(protocol.StreamErrorsLog, l)
		}
	}
	if !args.Follow {
		lines, err := a.systemd().JournalUnits(ctx, units, n, "short-iso")
		if err != nil {
			return nil, err
		}
		for _, l := range lines {
			if l != "" {
				send(protocol.StreamJournal, l)
			}
		}
		if host := certificateHost(rt.Location); host != "" && args.Job == "" {
			for _, l := range lastLines(frontLinesAbout(a.frontLog(ctx), host), n) {
				send(protocol.StreamFrontServer, l)
			}
		}
		return res, nil
	}

	var wg sync.WaitGroup
	// A quiet log writes nothing that would notice the client leaving; a
	// heartbeat (an event the client ignores) does.
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(logHeartbeat):
			}
			mu.Lock()
			err := c.Out.Event(protocol.Event{Step: "follow", Status: protocol.StepProgress})
			mu.Unlock()
			if err != nil {
				cancel()
			}
		}
	})
	wg.Go(func() {
		err := a.systemd().FollowJournalUnits(ctx, units, n, "short-iso", func(l string) { send(protocol.StreamJournal, l) })
		if err != nil && ctx.Err() == nil {
			send(protocol.StreamWarning, "journalctl: "+err.Error())
		}
	})
	if args.Job == "" {
		wg.Go(func() {
			followFile(ctx, logFile, int64(len(data)), func(l string) { send(protocol.StreamErrorsLog, l) })
		})
	}
	wg.Wait()
	return res, nil
}

// frontLinesAbout returns the front server's log lines about host's
// certificate (Caddy names it as identifier or server_name).
func frontLinesAbout(log []byte, host string) string {
	var out []string
	for _, l := range strings.Split(string(log), "\n") {
		if strings.Contains(l, `"identifier":"`+host+`"`) || strings.Contains(l, `"server_name":"`+host+`"`) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// jobUnits are the units whose journal is the output of app's job:
// its cron runs, or its worker's copies in every instance.
func (a *Agent) jobUnits(c *Call, app, job string) ([]string, error) {
	if err := appconfig.CheckJobName(job); err != nil {
		return nil, badRequest("--job: %v", err)
	}
	nodes := a.instances()
	isCron := slices.Contains(nodes.CronJobs(app), job)
	isWorker := slices.ContainsFunc(nodes.WorkerUnits(app), func(w instance.WorkerUnit) bool { return w.Name == job })
	var names []string
	if t, err := a.loadTable(c); err == nil {
		if owner := a.jobsOwner(app, t, ""); owner != "" {
			if _, cfg, err := a.ownerConfig(owner); err == nil {
				cr, w := cfg.Job(job)
				isCron, isWorker = isCron || cr != nil, isWorker || w != nil
				names = cfg.JobNames()
			}
		}
	}
	switch {
	case isCron:
		return []string{instance.CronUnitName(app, job, ".service")}, nil
	case isWorker:
		return []string{instance.WorkerUnitPattern(app, job)}, nil
	case len(names) == 0:
		return nil, notFound("%s has no cron or worker entries (app.ini's cron.NAME, worker.NAME)", app)
	}
	return nil, notFound("%s has no job %s (its jobs: %s)", app, job, strings.Join(names, ", "))
}

// followFile sends the lines appended to file after offset until ctx
// ends; a rotated (shorter) file is read from its start.
func followFile(ctx context.Context, file string, offset int64, line func(string)) {
	var partial []byte
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(logPoll):
		}
		f, err := os.Open(file)
		if err != nil {
			continue
		}
		if st, err := f.Stat(); err == nil && st.Size() < offset {
			offset, partial = 0, nil
		}
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			continue
		}
		b, err := io.ReadAll(io.LimitReader(f, 1<<20))
		f.Close()
		if err != nil && !errors.Is(err, io.EOF) {
			continue
		}
		offset += int64(len(b))
		partial = append(partial, b...)
		for {
			i := bytes.IndexByte(partial, '\n')
			if i < 0 {
				break
			}
			line(string(partial[:i]))
			partial = partial[i+1:]
		}
	}
}
