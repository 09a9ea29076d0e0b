package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
)

// Command is one program to run: argv, never a shell line.
type Command struct {
	Argv []string
	// Env is added to the base environment (BaseEnv).
	Env []string
	// Stdin is the program's input; nil means none.
	Stdin io.Reader
	// Stdout, if set, receives the program's standard output instead of
	// the bytes Run returns (which are then nil): a database dump of
	// gigabytes goes straight to its file, not through memory. Line then
	// sees only standard error.
	Stdout io.Writer
	// Stderr, if set, receives the program's standard error instead of
	// Line and the error's tail (a program whose output is the user's:
	// run).
	Stderr io.Writer
	// Line, if set, receives each line the program writes to stdout or
	// stderr, as it comes (for progress and log lines).
	Line func(line string)
}

func (c Command) String() string { return strings.Join(c.Argv, " ") }

// Runner runs commands on the node and returns their standard output. A
// command that fails returns *CommandError.
type Runner interface {
	Run(ctx context.Context, c Command) ([]byte, error)
}

// TailLines is how many lines of output a CommandError keeps.
const TailLines = 20

// CommandError is a command that ran and failed, or could not start.
type CommandError struct {
	Argv []string
	// Status is the exit status; -1 when the program did not start or was
	// killed.
	Status int
	// Tail is the last lines of its output (stdout and stderr, merged).
	Tail []string
	Err  error
}

func (e *CommandError) Error() string {
	msg := fmt.Sprintf("%s failed", strings.Join(e.Argv, " "))
	if e.Status >= 0 {
		msg = fmt.Sprintf("%s exited with status %d", strings.Join(e.Argv, " "), e.Status)
	} else if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	if last := e.LastLine(); last != "" {
		msg += ": " + last
	}
	return msg
}

func (e *CommandError) Unwrap() error { return e.Err }

// LastLine returns the last non-empty line of the output, which is
// usually the program's own error message.
func (e *CommandError) LastLine() string {
	for i := len(e.Tail) - 1; i >= 0; i-- {
		if s := strings.TrimSpace(e.Tail[i]); s != "" {
			return s
		}
	}
	return ""
}

// ExitStatus returns err's exit status if it is a *CommandError of a
// program that ran, else -1.
func ExitStatus(err error) int {
	var ce *CommandError
	if errors.As(err, &ce) {
		return ce.Status
	}
	return -1
}

// BaseEnv is the environment of every command: a fixed PATH, the C
// locale (so messages we match and show are not translated), and no
// questions from Debian's tools.
var BaseEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"LC_ALL=C",
	"LANG=C",
	"HOME=/root",
	"DEBIAN_FRONTEND=noninteractive",
	"APT_LISTCHANGES_FRONTEND=none",
	"NEEDRESTART_MODE=a",
}

// Exec runs commands for real.
type Exec struct{}

// Run runs c and waits for it.
func (Exec) Run(ctx context.Context, c Command) ([]byte, error) {
	if len(c.Argv) == 0 {
		return nil, errors.New("run: empty command")
	}
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	cmd.Env = append(append([]string(nil), BaseEnv...), c.Env...)
	cmd.Stdin = c.Stdin
	tail := &lineTail{max: TailLines, line: c.Line}
	var stdout bytes.Buffer
	if c.Stdout != nil {
		cmd.Stdout = c.Stdout
	} else {
		cmd.Stdout = io.MultiWriter(&stdout, tail.writer())
	}
	cmd.Stderr = tail.writer()
	if c.Stderr != nil {
		cmd.Stderr = c.Stderr
	}
	err := cmd.Run()
	tail.flush()
	if c.Stdout != nil {
		if err == nil {
			return nil, nil
		}
		stdout.Reset()
	}
	if err == nil {
		return stdout.Bytes(), nil
	}
	ce := &CommandError{Argv: c.Argv, Status: -1, Tail: tail.lines(), Err: err}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.Exited() {
		ce.Status = ee.ExitCode()
	}
	if ctx.Err() != nil {
		ce.Err = ctx.Err()
	}
	return stdout.Bytes(), ce
}

// lineTail splits output into lines, passes each to line, and keeps the
// last max of them. stdout and stderr each get their own writer (so a
// partial line of one is not glued to the other) sharing one tail.
type lineTail struct {
	mu    sync.Mutex
	max   int
	line  func(string)
	tail  []string
	parts []*partWriter
}

type partWriter struct {
	t   *lineTail
	buf []byte
}

func (t *lineTail) writer() io.Writer {
	w := &partWriter{t: t}
	t.parts = append(t.parts, w)
	return w
}

func (w *partWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.t.add(string(bytes.TrimRight(w.buf[:i], "\r")))
		w.buf = w.buf[i+1:]
	}
	// A program printing without newlines (a progress bar) must not grow
	// the buffer forever.
	if len(w.buf) > 64<<10 {
		w.t.add(string(w.buf))
		w.buf = w.buf[:0]
	}
	return len(p), nil
}

func (t *lineTail) add(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.tail = append(t.tail, s)
	if len(t.tail) > t.max {
		t.tail = t.tail[len(t.tail)-t.max:]
	}
	if t.line != nil {
		t.line(s)
	}
}

func (t *lineTail) flush() {
	for _, w := range t.parts {
		if len(w.buf) > 0 {
			t.add(string(w.buf))
			w.buf = nil
		}
	}
}

func (t *lineTail) lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.tail...)
}
