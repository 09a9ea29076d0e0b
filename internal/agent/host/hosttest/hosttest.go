// Package hosttest gives agent tests a node without a node: a temporary
// root directory with account files, a fake command Runner that answers
// only the programs a test declares, and ownership kept in memory (so tests
// need not run as root to "chown").
package hosttest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/toppcloud/toppcloud/internal/agent/host"
)

// Passwd and Group are the account files New writes: root and the
// accounts a Debian system has before setup-node.
const (
	Passwd = "root:x:0:0:root:/root:/bin/bash\n" +
		"daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n" +
		"www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
	Group = "root:x:0:\n" +
		"daemon:x:1:\n" +
		"adm:x:4:\n" +
		"www-data:x:33:\n" +
		"sudo:x:27:\n" +
		"nogroup:x:65534:\n"
)

// New returns a Host rooted in a temporary directory holding /etc/passwd
// and /etc/group, with the Runner r (a new fake when nil) and in-memory
// owners.
func New(t testing.TB, r *Runner) *host.Host {
	t.Helper()
	root := t.TempDir()
	WriteFile(t, root, "/etc/passwd", Passwd)
	WriteFile(t, root, "/etc/group", Group)
	if r == nil {
		r = NewRunner(t)
	}
	return &host.Host{Root: root, Runner: r, Owners: NewOwners()}
}

// WriteFile writes content at node path p under root, creating parents.
func WriteFile(t testing.TB, root, p, content string) {
	t.Helper()
	real := filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(real), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(real, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Owners keeps owners in memory, by inode (so a renamed file keeps its
// owner, as on a real file system); a file never chowned is owned by 0:0.
type Owners struct {
	mu sync.Mutex
	m  map[uint64][2]int
}

var _ host.Owners = (*Owners)(nil)

// NewOwners returns empty in-memory ownership.
func NewOwners() *Owners { return &Owners{m: map[uint64][2]int{}} }

func inode(path string) (uint64, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("%s: no inode", path)
	}
	return st.Ino, nil
}

// Owner returns path's recorded owner.
func (o *Owners) Owner(path string) (int, int, error) {
	ino, err := inode(path)
	if err != nil {
		return 0, 0, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	v := o.m[ino]
	return v[0], v[1], nil
}

// Chown records path's owner.
func (o *Owners) Chown(path string, uid, gid int) error {
	ino, err := inode(path)
	if err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.m[ino] = [2]int{uid, gid}
	return nil
}

// Handler answers a command: what it writes to stdout, and an error (use
// Fail for a failed command).
type Handler func(c host.Command) (stdout string, err error)

// Runner is a fake host.Runner. Programs are matched by argv[0]; a program
// without a handler fails the test.
type Runner struct {
	t        testing.TB
	mu       sync.Mutex
	handlers map[string]Handler
	calls    [][]string
}

var _ host.Runner = (*Runner)(nil)

// NewRunner returns a Runner with no handlers.
func NewRunner(t testing.TB) *Runner {
	return &Runner{t: t, handlers: map[string]Handler{}}
}

// Handle sets the handler of program (argv[0]), replacing any earlier one.
func (r *Runner) Handle(program string, h Handler) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.handlers[program] = h
}

// Calls returns every argv run so far.
func (r *Runner) Calls() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([][]string, len(r.calls))
	for i, c := range r.calls {
		out[i] = slices.Clone(c)
	}
	return out
}

// CallLines returns Calls as space-joined lines.
func (r *Runner) CallLines() []string {
	var out []string
	for _, c := range r.Calls() {
		out = append(out, strings.Join(c, " "))
	}
	return out
}

// Reset forgets the recorded calls.
func (r *Runner) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = nil
}

// Run answers c with its program's handler. Output lines go to c.Line as
// the real runner would send them.
func (r *Runner) Run(ctx context.Context, c host.Command) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(c.Argv) == 0 {
		r.t.Errorf("hosttest: empty command")
		return nil, fmt.Errorf("empty command")
	}
	r.mu.Lock()
	r.calls = append(r.calls, slices.Clone(c.Argv))
	h := r.handlers[c.Argv[0]]
	r.mu.Unlock()
	if h == nil {
		r.t.Errorf("hosttest: unexpected command %q", c.Argv)
		return nil, &host.CommandError{Argv: c.Argv, Status: 127, Tail: []string{c.Argv[0] + ": command not found"}}
	}
	if c.Stdin != nil {
		// Read it as a real program might, so writers do not block; the
		// handler gets what was read.
		data, _ := io.ReadAll(c.Stdin)
		c.Stdin = bytes.NewReader(data)
	}
	out, err := h(c)
	if c.Stdout != nil {
		if _, werr := io.WriteString(c.Stdout, out); werr != nil && err == nil {
			err = werr
		}
		out = ""
	}
	if c.Line != nil {
		for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
			if l != "" {
				c.Line(l)
			}
		}
		var ce *host.CommandError
		if err != nil && asCommandError(err, &ce) {
			for _, l := range ce.Tail {
				c.Line(l)
			}
		}
	}
	return []byte(out), err
}

func asCommandError(err error, target **host.CommandError) bool {
	ce, ok := err.(*host.CommandError)
	if ok {
		*target = ce
	}
	return ok
}

// Fail returns the error of a command that exited with status and printed
// output (its tail).
func Fail(c host.Command, status int, output string) error {
	return &host.CommandError{Argv: c.Argv, Status: status, Tail: strings.Split(strings.TrimRight(output, "\n"), "\n")}
}

// Answers is a Handler for exact command lines (argv joined by spaces):
// each answers with its output, or fails with status 1 and the message
// after "ERR:". Any other line fails the test.
func Answers(t testing.TB, answers map[string]string) Handler {
	return func(c host.Command) (string, error) {
		line := strings.Join(c.Argv, " ")
		out, ok := answers[line]
		if !ok {
			t.Errorf("hosttest: unexpected command %q", line)
			return "", Fail(c, 127, "unexpected command")
		}
		if msg, ok := strings.CutPrefix(out, "ERR:"); ok {
			return "", Fail(c, 1, msg)
		}
		return out, nil
	}
}

// OK answers any command with empty output.
func OK(host.Command) (string, error) { return "", nil }
