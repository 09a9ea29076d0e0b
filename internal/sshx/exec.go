package sshx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/ssh"
)

// RunOptions are the streams of a command. Nil Stdin means empty input;
// nil Stdout or Stderr discards that output (stderr's tail is still kept
// for ExitError).
type RunOptions struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// stderrTail is how much of the end of stderr an ExitError keeps.
const stderrTail = 4096

// ExitError is returned when a remote command ran and failed, like
// *exec.ExitError.
type ExitError struct {
	// Host is user@host of the connection.
	Host string
	// Cmd is the command line as sent (argv quoted for the shell).
	Cmd string
	// Status is the exit status; 128+n when killed by signal n.
	Status int
	// Signal is the signal that killed the command ("TERM"), if any.
	Signal string
	// Stderr is the end of the command's stderr, trimmed of surrounding
	// white space.
	Stderr string
}

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("command %s on %s exited with status %d", truncate(e.Cmd, 120), e.Host, e.Status)
	if e.Signal != "" {
		msg += " (killed by SIG" + e.Signal + ")"
	}
	if e.Stderr != "" {
		lines := strings.Split(e.Stderr, "\n")
		msg += ": " + strings.TrimSpace(lines[len(lines)-1])
	}
	return msg
}

// Run runs argv on the server and waits for it to finish. argv is quoted
// with Command. Stdout and stderr are copied to opts as they arrive; stdin
// is streamed from opts.Stdin and closed at its EOF.
//
// A command that exits non-zero gives *ExitError. If reading opts.Stdin
// fails, the command is stopped (it must not act on truncated input) and
// the read error is returned. If ctx ends first, the remote command gets
// SIGTERM, the session is closed, and the error wraps ctx.Err().
//
// A Stdin reader that blocks forever (a terminal) keeps one goroutine
// blocked in Read after Run returns, as with os/exec.
func (c *Client) Run(ctx context.Context, argv []string, opts RunOptions) error {
	cmd, err := Command(argv)
	if err != nil {
		return fmt.Errorf("run %q on %s: %w", argv, c.target, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("run %s on %s: %w", truncate(cmd, 120), c.target, err)
	}
	sess, err := c.conn.NewSession()
	if err != nil {
		return fmt.Errorf("run %s on %s: open session: %w", truncate(cmd, 120), c.target, err)
	}
	defer sess.Close()

	tail := &tailBuffer{max: stderrTail}
	sess.Stdout = opts.Stdout
	sess.Stderr = tail
	if opts.Stderr != nil {
		sess.Stderr = io.MultiWriter(opts.Stderr, tail)
	}
	var stdin io.WriteCloser
	if opts.Stdin != nil {
		if stdin, err = sess.StdinPipe(); err != nil {
			return fmt.Errorf("run %s on %s: %w", truncate(cmd, 120), c.target, err)
		}
	}
	if err := sess.Start(cmd); err != nil {
		return fmt.Errorf("run %s on %s: %w", truncate(cmd, 120), c.target, err)
	}
	abort := func() {
		// Tell the process, then drop the channel: sshd closes the
		// process's pipes, which ends most commands even if the server
		// ignores signal requests.
		sess.Signal(ssh.SIGTERM)
		sess.Close()
	}
	stop := context.AfterFunc(ctx, abort)
	defer stop()

	var readErr atomic.Pointer[error]
	if stdin != nil {
		go func() {
			if err := copyStdin(stdin, opts.Stdin); err != nil {
				readErr.Store(&err)
				abort()
			}
		}()
	}
	err = sess.Wait()
	if p := readErr.Load(); p != nil {
		return fmt.Errorf("run %s on %s: read stdin: %w", truncate(cmd, 120), c.target, *p)
	}
	return c.result(ctx, cmd, err, tail)
}

// copyStdin copies r to the remote stdin and closes it at EOF. It returns
// only read errors: a write error means the command stopped reading,
// which its exit status will tell.
func copyStdin(w io.WriteCloser, r io.Reader) error {
	buf := make([]byte, 32*1024)
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return nil
			}
		}
		if rerr == io.EOF {
			w.Close()
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// result maps the outcome of Session.Wait to Run's errors.
func (c *Client) result(ctx context.Context, cmd string, err error, tail *tailBuffer) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("run %s on %s: %w", truncate(cmd, 120), c.target, ctx.Err())
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		return &ExitError{Host: c.target, Cmd: cmd, Status: ee.ExitStatus(), Signal: ee.Signal(), Stderr: tail.String()}
	}
	var missing *ssh.ExitMissingError
	if errors.As(err, &missing) {
		return fmt.Errorf("run %s on %s: the command ended without an exit status (connection lost?)", truncate(cmd, 120), c.target)
	}
	return fmt.Errorf("run %s on %s: %w", truncate(cmd, 120), c.target, err)
}

// Output runs argv with stdin and returns its stdout; see Run.
func (c *Client) Output(ctx context.Context, argv []string, stdin io.Reader) ([]byte, error) {
	return Output(ctx, c, argv, stdin)
}

// Output runs argv through r with stdin and returns its stdout. A failed
// command's stderr is in the *ExitError.
func Output(ctx context.Context, r Runner, argv []string, stdin io.Reader) ([]byte, error) {
	var out bytes.Buffer
	err := r.Run(ctx, argv, RunOptions{Stdin: stdin, Stdout: &out})
	return out.Bytes(), err
}

// Session is a command started with Start, for protocols spoken over its
// stdin and stdout (the node agent's JSON lines).
type Session struct {
	// Stdin is the command's standard input; Close it to send EOF.
	Stdin io.WriteCloser
	// Stdout is the command's standard output. Read it concurrently with
	// writing Stdin, or the command may block on a full window.
	Stdout io.Reader

	c    *Client
	ctx  context.Context
	sess *ssh.Session
	cmd  string
	tail *tailBuffer
	stop func() bool
}

// Start starts argv and returns at once. stderr, if not nil, receives the
// command's stderr as it arrives. Call Wait to collect the result; if ctx
// ends first, the command is signalled and the session closed.
func (c *Client) Start(ctx context.Context, argv []string, stderr io.Writer) (*Session, error) {
	cmd, err := Command(argv)
	if err != nil {
		return nil, fmt.Errorf("start %q on %s: %w", argv, c.target, err)
	}
	fail := func(err error) (*Session, error) {
		return nil, fmt.Errorf("start %s on %s: %w", truncate(cmd, 120), c.target, err)
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	sess, err := c.conn.NewSession()
	if err != nil {
		return fail(err)
	}
	s := &Session{c: c, ctx: ctx, sess: sess, cmd: cmd, tail: &tailBuffer{max: stderrTail}}
	sess.Stderr = s.tail
	if stderr != nil {
		sess.Stderr = io.MultiWriter(stderr, s.tail)
	}
	if s.Stdin, err = sess.StdinPipe(); err != nil {
		sess.Close()
		return fail(err)
	}
	if s.Stdout, err = sess.StdoutPipe(); err != nil {
		sess.Close()
		return fail(err)
	}
	if err := sess.Start(cmd); err != nil {
		sess.Close()
		return fail(err)
	}
	s.stop = context.AfterFunc(ctx, s.abort)
	return s, nil
}

// Wait waits for the command to exit and returns what Run would.
func (s *Session) Wait() error {
	err := s.sess.Wait()
	s.stop()
	s.sess.Close()
	return s.c.result(s.ctx, s.cmd, err, s.tail)
}

// Close stops the command (SIGTERM, then closing the session) without
// waiting for it.
func (s *Session) Close() error {
	s.abort()
	return nil
}

func (s *Session) abort() {
	s.sess.Signal(ssh.SIGTERM)
	s.sess.Close()
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu      sync.Mutex
	max     int
	buf     []byte
	dropped bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
		t.dropped = true
	}
	return len(p), nil
}

// String returns the kept tail trimmed of white space, starting at a line
// boundary when the beginning was dropped.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buf
	if t.dropped {
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return strings.TrimSpace(string(b))
}

// truncate shortens s for messages.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
