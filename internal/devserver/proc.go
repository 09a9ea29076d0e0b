package devserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// proc is one child process of the server (the Python bootstrap, a
// command app, php -S): its output goes to the terminal and the last of
// it is kept for the error page.
type proc struct {
	name string
	cmd  *exec.Cmd
	tail *tailBuffer
	done chan struct{} // closed when the process has exited
	err  error         // its exit, set before done closes
}

// startProc starts cmd with its output copied to out and kept in a tail.
// Extra files are closed in the parent once the child has them.
func startProc(name string, cmd *exec.Cmd, out io.Writer) (*proc, error) {
	p := &proc{name: name, cmd: cmd, tail: newTailBuffer(64 << 10), done: make(chan struct{})}
	w := io.MultiWriter(out, p.tail)
	cmd.Stdout, cmd.Stderr = w, w
	setProcessGroup(cmd)
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitCode is the process's exit status, -1 if it was killed or is still
// running.
func (p *proc) exitCode() int {
	if !p.exited() {
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// stop ends the process and everything it started: SIGTERM to its group,
// then SIGKILL after grace.
func (p *proc) stop(grace time.Duration) {
	if p.exited() {
		return
	}
	terminateGroup(p.cmd)
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	killGroup(p.cmd)
	<-p.done
}

// exitError describes how the process ended, with its last output.
func (p *proc) exitError() *appError {
	how := "exited"
	if p.err != nil {
		how = p.err.Error()
	}
	return &appError{Title: fmt.Sprintf("%s %s", p.name, how), Output: p.tail.String(), Printed: true}
}

// waitPort waits until something accepts connections on addr, the
// process exits, or ctx ends.
func (p *proc) waitPort(ctx context.Context, dial func(ctx context.Context) error) error {
	for {
		if err := dial(ctx); err == nil {
			return nil
		}
		select {
		case <-p.done:
			return p.exitError()
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = t.buf[over:]
		// Start at a line.
		if i := bytes.IndexByte(t.buf, '\n'); i >= 0 {
			t.buf = t.buf[i+1:]
		}
	}
	return len(b), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimRight(string(t.buf), "\n")
}

// appError is what the browser and the terminal are shown when the app
// cannot answer: a load error with its traceback, a process that exited,
// an app.ini that does not parse.
type appError struct {
	Title  string
	Output string
	// Printed is true when Output is already in the terminal (the
	// process wrote it there).
	Printed bool
}

func (e *appError) Error() string {
	if e.Output == "" {
		return e.Title
	}
	return e.Title + ":\n" + e.Output
}

// asAppError turns any error into an appError for the error page.
func asAppError(err error) *appError {
	var ae *appError
	if errors.As(err, &ae) {
		return ae
	}
	return &appError{Title: err.Error()}
}

// environ turns a map into a process environment on top of base; the
// map wins.
func environ(base []string, env map[string]string) []string {
	out := make([]string, 0, len(base)+len(env))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if _, over := env[k]; !over {
			out = append(out, kv)
		}
	}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}
