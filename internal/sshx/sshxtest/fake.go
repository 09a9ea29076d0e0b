package sshxtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/toppcloud/toppcloud/internal/sshx"
)

// Fake is an sshx.Runner for unit tests. It answers the commands declared
// with Expect (exact argv) and fails the test on any other command,
// returning an error to the code under test as well. It records every call.
// It is safe for concurrent use.
type Fake struct {
	t       testing.TB
	mu      sync.Mutex
	expects []*Expectation
	calls   []Call
}

var _ sshx.Runner = (*Fake)(nil)

// Call is one command run through a Fake.
type Call struct {
	Argv  []string
	Stdin []byte // all of it; nil when the caller gave no Stdin
}

// Expectation is the canned answer to one argv. Its setters return it, for
// chaining.
type Expectation struct {
	argv           []string
	stdout, stderr string
	status         int
	err            error
	wantStdin      *string
	times          int
	do             func(sshx.RunOptions) error
	used           int
}

// NewFake returns a Fake that, at the end of the test, also fails it if an
// expectation with Times(n) was used fewer than n times.
func NewFake(t testing.TB) *Fake {
	f := &Fake{t: t}
	t.Cleanup(func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, e := range f.expects {
			if e.times > 0 && e.used < e.times {
				t.Errorf("sshxtest.Fake: %s expected %d time(s), run %d", show(e.argv), e.times, e.used)
			}
		}
	})
	return f
}

// Expect declares an answer for exactly argv: by default empty output and
// exit status 0, any number of times. Several expectations for one argv
// are used in the order declared, each until its Times are used up.
func (f *Fake) Expect(argv ...string) *Expectation {
	e := &Expectation{argv: slices.Clone(argv)}
	f.mu.Lock()
	f.expects = append(f.expects, e)
	f.mu.Unlock()
	return e
}

// Stdout sets what the command writes to stdout.
func (e *Expectation) Stdout(s string) *Expectation { e.stdout = s; return e }

// Stderr sets what the command writes to stderr.
func (e *Expectation) Stderr(s string) *Expectation { e.stderr = s; return e }

// Exit sets the exit status; non-zero makes Run return *sshx.ExitError.
func (e *Expectation) Exit(status int) *Expectation { e.status = status; return e }

// Fail makes Run return err (a connection failure, say) after the output.
func (e *Expectation) Fail(err error) *Expectation { e.err = err; return e }

// WantStdin makes the test fail unless the command's stdin is exactly s.
func (e *Expectation) WantStdin(s string) *Expectation { e.wantStdin = &s; return e }

// Times limits the expectation to n calls and requires all n by the end of
// the test. Without it an expectation answers any number of calls.
func (e *Expectation) Times(n int) *Expectation { e.times = n; return e }

// Do runs fn instead of the canned answer, for commands whose effect the
// test must simulate. Stdin has already been read and checked; fn gets it
// as opts.Stdin.
func (e *Expectation) Do(fn func(opts sshx.RunOptions) error) *Expectation { e.do = fn; return e }

// Calls returns the commands run so far, in order.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// Run answers argv as declared; see Expect.
func (f *Fake) Run(ctx context.Context, argv []string, opts sshx.RunOptions) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("run %s: %w", show(argv), err)
	}
	call := Call{Argv: slices.Clone(argv)}
	if opts.Stdin != nil {
		b, err := io.ReadAll(opts.Stdin)
		if err != nil {
			return fmt.Errorf("run %s: read stdin: %w", show(argv), err)
		}
		call.Stdin = b
	}

	f.mu.Lock()
	f.calls = append(f.calls, call)
	var e *Expectation
	exhausted := false
	for _, x := range f.expects {
		if !slices.Equal(x.argv, argv) {
			continue
		}
		if x.times > 0 && x.used >= x.times {
			exhausted = true
			continue
		}
		x.used++
		e = x
		break
	}
	f.mu.Unlock()

	if e == nil {
		why := "unexpected command"
		if exhausted {
			why = "command run more often than expected"
		}
		f.t.Errorf("sshxtest.Fake: %s: %s", why, show(argv))
		return fmt.Errorf("sshxtest.Fake: %s: %s", why, show(argv))
	}
	if e.wantStdin != nil && string(call.Stdin) != *e.wantStdin {
		f.t.Errorf("sshxtest.Fake: %s: stdin differs\n got  %s\n want %s", show(argv), excerpt(call.Stdin), excerpt([]byte(*e.wantStdin)))
	}
	if e.do != nil {
		opts.Stdin = bytes.NewReader(call.Stdin)
		return e.do(opts)
	}
	if opts.Stdout != nil {
		io.WriteString(opts.Stdout, e.stdout)
	}
	if opts.Stderr != nil {
		io.WriteString(opts.Stderr, e.stderr)
	}
	if e.err != nil {
		return e.err
	}
	if e.status != 0 {
		cmd, _ := sshx.Command(argv)
		return &sshx.ExitError{Host: "root@fake", Cmd: cmd, Status: e.status, Stderr: strings.TrimSpace(e.stderr)}
	}
	return nil
}

func show(argv []string) string {
	s, err := sshx.Command(argv)
	if err != nil {
		return fmt.Sprintf("%q", argv)
	}
	return s
}

func excerpt(b []byte) string {
	if len(b) > 200 {
		return fmt.Sprintf("%q… (%d bytes)", b[:200], len(b))
	}
	return fmt.Sprintf("%q", b)
}
