package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

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
	var end int64
	if args.Job == "" {
		var err error
		data, end, err = readLogTail(logFile, maxLogTail)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			send(protocol.StreamWarning, fmt.Sprintf("%s not shown: %v", ErrorsLog, err))
		}
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
			followFile(ctx, logFile, end, func(l string) { send(protocol.StreamErrorsLog, l) })
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

// Bounds on reading an app's errors.log. The file and its directory
// are the app's: it may be a symlink to /dev/zero or a root-only file, a
// FIFO, a sparse terabyte, or a line that never ends, and the agent reads
// it as root.
const (
	// maxLogTail is how much of the end of the file logs reads.
	maxLogTail = 1 << 20
	// maxLogLine cuts a line without a newline into pieces of this size.
	maxLogLine = 64 << 10
	// maxLogRead is the most one poll of a follow reads.
	maxLogRead = 1 << 20
)

// openLog opens an app-owned log file for reading as root: not through a
// symlink, without blocking on a FIFO, and only if it is a regular file.
func openLog(file string) (*os.File, int64, error) {
	fd, err := unix.Open(file, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		if err == unix.ELOOP {
			return nil, 0, fmt.Errorf("%s is a symlink", path.Base(file))
		}
		return nil, 0, &fs.PathError{Op: "open", Path: file, Err: err}
	}
	f := os.NewFile(uintptr(fd), file)
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("%s is not a regular file (%s)", path.Base(file), st.Mode().Type())
	}
	return f, st.Size(), nil
}

// readLogTail returns at most max bytes from the end of file, starting at
// a line, and the offset it read up to.
func readLogTail(file string, max int64) ([]byte, int64, error) {
	f, size, err := openLog(file)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	start := max64(0, size-max)
	b := make([]byte, size-start)
	n, err := f.ReadAt(b, start)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, 0, err
	}
	b = b[:n]
	if start > 0 {
		// The first line is cut: drop it.
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return b, start + int64(n), nil
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// followFile sends the lines appended to file after offset until ctx
// ends; a rotated (shorter) file is read from its start. Every poll reads
// at most maxLogRead bytes, and a line longer than maxLogLine is sent in
// pieces.
func followFile(ctx context.Context, file string, offset int64, line func(string)) {
	var partial []byte
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(logPoll):
		}
		f, size, err := openLog(file)
		if err != nil {
			continue
		}
		if size < offset {
			offset, partial = 0, nil
		}
		b := make([]byte, min(size-offset, maxLogRead))
		n, err := f.ReadAt(b, offset)
		f.Close()
		if err != nil && !errors.Is(err, io.EOF) {
			continue
		}
		offset += int64(n)
		partial = append(partial, b[:n]...)
		for {
			i := bytes.IndexByte(partial, '\n')
			if i < 0 && len(partial) < maxLogLine {
				break
			}
			if i < 0 || i > maxLogLine {
				line(string(partial[:maxLogLine]))
				partial = partial[maxLogLine:]
				continue
			}
			line(string(partial[:i]))
			partial = partial[i+1:]
		}
		// What is left is shorter than a line: keep it, not the buffer.
		partial = append([]byte(nil), partial...)
	}
}
