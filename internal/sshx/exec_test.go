package sshx_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/sshx"
	"github.com/toppcloud/toppcloud/internal/sshx/sshxtest"
)

// hangGuard bounds waits in tests that would otherwise hang on a bug. It
// is not a timing assertion: a healthy run takes milliseconds.
const hangGuard = 20 * time.Second

func shellClient(t *testing.T) *sshx.Client {
	t.Helper()
	key := sshxtest.NewSigner(t)
	srv := sshxtest.NewServer(t, sshxtest.ShellHandler, key.PublicKey())
	return srv.Dial(t, key)
}

// lineWriter sends each complete line written to it on a channel.
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines chan string
}

func newLineWriter() *lineWriter { return &lineWriter{lines: make(chan string, 100)} }

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		line, err := w.buf.ReadString('\n')
		if err != nil {
			w.buf.WriteString(line)
			return len(p), nil
		}
		w.lines <- strings.TrimSuffix(line, "\n")
	}
}

func waitLine(t *testing.T, ch <-chan string, want string) {
	t.Helper()
	select {
	case got := <-ch:
		if got != want {
			t.Fatalf("line = %q, want %q", got, want)
		}
	case <-time.After(hangGuard):
		t.Fatalf("no line %q: output is not streamed", want)
	}
}

// TestClient_RunStreamsOutput proves output arrives while the command
// runs: the handler writes its second line only after the client has seen
// the first, which deadlocks if Run buffers.
func TestClient_RunStreamsOutput(t *testing.T) {
	key := sshxtest.NewSigner(t)
	seen := make(chan struct{})
	srv := sshxtest.NewServer(t, func(e *sshxtest.Exec) int {
		fmt.Fprintln(e.Stdout, "out1")
		fmt.Fprintln(e.Stderr, "err1")
		select {
		case <-seen:
		case <-e.Ctx.Done():
			return 1
		}
		fmt.Fprintln(e.Stdout, "out2")
		return 0
	}, key.PublicKey())
	c := srv.Dial(t, key)

	stdout, stderr := newLineWriter(), newLineWriter()
	done := make(chan error, 1)
	go func() {
		done <- c.Run(t.Context(), []string{"anything"}, sshx.RunOptions{Stdout: stdout, Stderr: stderr})
	}()
	waitLine(t, stdout.lines, "out1")
	waitLine(t, stderr.lines, "err1")
	close(seen)
	waitLine(t, stdout.lines, "out2")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestClient_RunStreamsStdin proves stdin is sent as it is written: the
// remote cat echoes each line before the next is written.
func TestClient_RunStreamsStdin(t *testing.T) {
	c := shellClient(t)
	pr, pw := io.Pipe()
	stdout := newLineWriter()
	done := make(chan error, 1)
	go func() { done <- c.Run(t.Context(), []string{"cat"}, sshx.RunOptions{Stdin: pr, Stdout: stdout}) }()
	for _, l := range []string{"first", "second", "third"} {
		if _, err := io.WriteString(pw, l+"\n"); err != nil {
			t.Fatal(err)
		}
		waitLine(t, stdout.lines, l)
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestClient_RunArgvReachesCommandIntact(t *testing.T) {
	c := shellClient(t)
	argv := []string{"it's", "$HOME", "a b", "", "semi;colon", "new\nline", "\xff\x01", "*"}
	out, err := c.Output(t.Context(), append([]string{"printf", `%s\0`}, argv...), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", argv) {
		t.Errorf("remote argv = %q, want %q", got, argv)
	}
}

func TestClient_RunExitError(t *testing.T) {
	c := shellClient(t)
	var stderr bytes.Buffer
	err := c.Run(t.Context(), []string{"sh", "-c", "echo partial; echo first >&2; echo 'E: it broke' >&2; exit 3"}, sshx.RunOptions{Stderr: &stderr})
	var ee *sshx.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("err = %v (%T), want *sshx.ExitError", err, err)
	}
	if ee.Status != 3 || ee.Signal != "" {
		t.Errorf("status %d signal %q, want 3", ee.Status, ee.Signal)
	}
	if ee.Stderr != "first\nE: it broke" {
		t.Errorf("Stderr = %q", ee.Stderr)
	}
	if stderr.String() != "first\nE: it broke\n" {
		t.Errorf("streamed stderr = %q", stderr.String())
	}
	if !strings.HasPrefix(ee.Cmd, "sh -c ") || ee.Host != "root@127.0.0.1:"+strings.Split(c.Addr(), ":")[1] {
		t.Errorf("Cmd %q Host %q", ee.Cmd, ee.Host)
	}
	for _, want := range []string{"exited with status 3", "E: it broke", "root@127.0.0.1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
}

func TestClient_RunStderrTailIsBounded(t *testing.T) {
	c := shellClient(t)
	// 100 KB of stderr; the error keeps only the end, from a line start.
	err := c.Run(t.Context(), []string{"sh", "-c", `i=0; while [ $i -lt 5000 ]; do echo "line $i of noise"; i=$((i+1)); done >&2; exit 1`}, sshx.RunOptions{})
	var ee *sshx.ExitError
	if !errors.As(err, &ee) {
		t.Fatal(err)
	}
	if len(ee.Stderr) > 4096 || !strings.HasPrefix(ee.Stderr, "line ") || !strings.HasSuffix(ee.Stderr, "line 4999 of noise") {
		t.Errorf("tail (%d bytes) = %q...", len(ee.Stderr), ee.Stderr[:40])
	}
}

func TestClient_RunKilledBySignal(t *testing.T) {
	key := sshxtest.NewSigner(t)
	srv := sshxtest.NewServer(t, func(e *sshxtest.Exec) int {
		e.KilledBy = "KILL"
		return 0
	}, key.PublicKey())
	err := srv.Dial(t, key).Run(t.Context(), []string{"x"}, sshx.RunOptions{})
	var ee *sshx.ExitError
	if !errors.As(err, &ee) || ee.Signal != "KILL" || ee.Status != 128+9 {
		t.Fatalf("err = %#v", err)
	}
	if !strings.Contains(err.Error(), "SIGKILL") {
		t.Errorf("message %q does not name the signal", err)
	}
}

func TestClient_RunCancel(t *testing.T) {
	key := sshxtest.NewSigner(t)
	started := make(chan struct{})
	got := make(chan string, 2)
	srv := sshxtest.NewServer(t, func(e *sshxtest.Exec) int {
		if e.Command == "true" {
			return 0
		}
		close(started)
		select {
		case sig := <-e.Signals:
			got <- "signal " + sig
		case <-time.After(hangGuard):
		}
		<-e.Ctx.Done()
		got <- "closed"
		return 0
	}, key.PublicKey())
	c := srv.Dial(t, key)

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, []string{"sleep", "1000"}, sshx.RunOptions{}) }()
	<-started
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(hangGuard):
		t.Fatal("Run did not return after cancel")
	}
	for _, want := range []string{"signal TERM", "closed"} {
		select {
		case g := <-got:
			if g != want {
				t.Errorf("server saw %q, want %q", g, want)
			}
		case <-time.After(hangGuard):
			t.Fatalf("server never saw %q", want)
		}
	}
	// The connection is still usable.
	if _, err := c.Output(t.Context(), []string{"true"}, nil); err != nil {
		t.Errorf("after cancel: %v", err)
	}
}

func TestClient_RunCancelKillsRealCommand(t *testing.T) {
	c := shellClient(t)
	ctx, cancel := context.WithCancel(t.Context())
	stdout := newLineWriter()
	done := make(chan error, 1)
	go func() {
		done <- c.Run(ctx, []string{"sh", "-c", "echo started; exec sleep 1000"}, sshx.RunOptions{Stdout: stdout})
	}()
	waitLine(t, stdout.lines, "started")
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
	case <-time.After(hangGuard):
		t.Fatal("Run did not return after cancel")
	}
}

func TestClient_RunCancelledBeforeStart(t *testing.T) {
	c := shellClient(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := c.Run(ctx, []string{"true"}, sshx.RunOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

type failingReader struct {
	data []byte
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestClient_RunStdinReadErrorStopsCommand(t *testing.T) {
	c := shellClient(t)
	dst := filepath.Join(t.TempDir(), "out")
	boom := errors.New("disk read error")
	err := c.Run(t.Context(), []string{"sh", "-c", `cat > "$1" && echo complete >> "$1"`, "sh", dst},
		sshx.RunOptions{Stdin: &failingReader{data: []byte("partial"), err: boom}})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the read error", err)
	}
	if b, _ := os.ReadFile(dst); strings.Contains(string(b), "complete") {
		t.Errorf("command ran to completion on truncated input: %q", b)
	}
}

func TestClient_RunRejectsNUL(t *testing.T) {
	c := shellClient(t)
	if err := c.Run(t.Context(), []string{"echo", "a\x00"}, sshx.RunOptions{}); !errors.Is(err, sshx.ErrNULInArg) {
		t.Fatalf("err = %v", err)
	}
}

func TestClient_ConcurrentRuns(t *testing.T) {
	c := shellClient(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			out, err := c.Output(t.Context(), []string{"echo", fmt.Sprint(i)}, nil)
			if err != nil || string(out) != fmt.Sprintf("%d\n", i) {
				t.Errorf("run %d: %q, %v", i, out, err)
			}
		})
	}
	wg.Wait()
}

// TestClient_StartLineProtocol speaks a line protocol over Start, as the
// client does with the node agent.
func TestClient_StartLineProtocol(t *testing.T) {
	key := sshxtest.NewSigner(t)
	srv := sshxtest.NewServer(t, func(e *sshxtest.Exec) int {
		sc := bufio.NewScanner(e.Stdin)
		for sc.Scan() {
			fmt.Fprintf(e.Stdout, "{\"echo\":%q}\n", sc.Text())
		}
		fmt.Fprintln(e.Stderr, "bye")
		return 0
	}, key.PublicKey())
	c := srv.Dial(t, key)
	var stderr bytes.Buffer
	s, err := c.Start(t.Context(), []string{"toppcloud", "node", "ping"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(s.Stdout)
	for _, msg := range []string{"a", "b"} {
		fmt.Fprintln(s.Stdin, msg)
		line, err := r.ReadString('\n')
		if err != nil || line != fmt.Sprintf("{\"echo\":%q}\n", msg) {
			t.Fatalf("reply %q, %v", line, err)
		}
	}
	s.Stdin.Close()
	if err := s.Wait(); err != nil {
		t.Fatal(err)
	}
	if stderr.String() != "bye\n" {
		t.Errorf("stderr = %q", stderr.String())
	}
	if got := srv.Execs(); len(got) != 1 || got[0] != "toppcloud node ping" {
		t.Errorf("execs = %q", got)
	}
}

func TestClient_StartExitErrorAndClose(t *testing.T) {
	c := shellClient(t)
	s, err := c.Start(t.Context(), []string{"sh", "-c", "echo nope >&2; exit 2"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, s.Stdout)
	var ee *sshx.ExitError
	if err := s.Wait(); !errors.As(err, &ee) || ee.Status != 2 || ee.Stderr != "nope" {
		t.Fatalf("err = %v", err)
	}

	s, err = c.Start(t.Context(), []string{"sleep", "1000"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Wait after Close returned nil")
		}
	case <-time.After(hangGuard):
		t.Fatal("Wait hangs after Close")
	}
}
