package agent

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/instance"
	"github.com/toppcloud/toppcloud/internal/agent/system"
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
	data, _ := os.ReadFile(logFile)
	for _, l := range lastLines(strings.TrimRight(string(data), "\n"), n) {
		if l != "" {
			send(protocol.StreamErrorsLog, l)
		}
	}
	// Every instance of the app, so a failed start or the drained old one
	// shows too.
	units := instance.UnitName(rt.App + ".*")
	if !args.Follow {
		lines, err := a.systemd().Journal(ctx, units, n, "short-iso")
		if err != nil {
			return nil, err
		}
		for _, l := range lines {
			if l != "" {
				send(protocol.StreamJournal, l)
			}
		}
		if host := certificateHost(rt.Location); host != "" {
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
		err := a.systemd().FollowJournal(ctx, units, n, "short-iso", func(l string) { send(protocol.StreamJournal, l) })
		if err != nil && ctx.Err() == nil {
			send(protocol.StreamWarning, "journalctl: "+err.Error())
		}
	})
	wg.Go(func() {
		followFile(ctx, logFile, int64(len(data)), func(l string) { send(protocol.StreamErrorsLog, l) })
	})
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
