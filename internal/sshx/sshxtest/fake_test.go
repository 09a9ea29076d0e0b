package sshxtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/toppcloud/toppcloud/internal/sshx"
)

// recordTB captures what a Fake reports, so these tests can check that it
// fails a test without failing this one.
type recordTB struct {
	testing.TB
	mu       sync.Mutex
	errs     []string
	cleanups []func()
}

func (r *recordTB) Helper() {}
func (r *recordTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *recordTB) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
func (r *recordTB) finish() []string {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
	return r.errs
}

func TestFake_CannedAnswers(t *testing.T) {
	rec := &recordTB{TB: t}
	f := NewFake(rec)
	f.Expect("systemctl", "is-active", "caddy").Stdout("active\n")
	f.Expect("apt-get", "install", "-y", "nosuch").Stderr("E: Unable to locate package nosuch\n").Exit(100)
	f.Expect("tee", "/etc/x").WantStdin("content").Stdout("content")

	out, err := sshx.Output(t.Context(), f, []string{"systemctl", "is-active", "caddy"}, nil)
	if err != nil || string(out) != "active\n" {
		t.Errorf("Output = %q, %v", out, err)
	}
	var stderr bytes.Buffer
	err = f.Run(t.Context(), []string{"apt-get", "install", "-y", "nosuch"}, sshx.RunOptions{Stderr: &stderr})
	var ee *sshx.ExitError
	if !errors.As(err, &ee) || ee.Status != 100 || ee.Stderr != "E: Unable to locate package nosuch" || ee.Cmd != "apt-get install -y nosuch" {
		t.Errorf("err = %#v", err)
	}
	if stderr.String() != "E: Unable to locate package nosuch\n" {
		t.Errorf("stderr = %q", stderr.String())
	}
	if _, err := sshx.Output(t.Context(), f, []string{"tee", "/etc/x"}, strings.NewReader("content")); err != nil {
		t.Error(err)
	}
	calls := f.Calls()
	if len(calls) != 3 || string(calls[2].Stdin) != "content" || calls[0].Stdin != nil {
		t.Errorf("calls = %+v", calls)
	}
	if errs := rec.finish(); len(errs) != 0 {
		t.Errorf("unexpected failures: %q", errs)
	}
}

func TestFake_FailsTestOnSurprises(t *testing.T) {
	rec := &recordTB{TB: t}
	f := NewFake(rec)
	f.Expect("a").Times(1)
	f.Expect("b").Times(2)
	f.Expect("c").WantStdin("right")

	if err := f.Run(t.Context(), []string{"rm", "-rf", "/"}, sshx.RunOptions{}); err == nil {
		t.Error("unexpected command returned nil")
	}
	f.Run(t.Context(), []string{"a"}, sshx.RunOptions{})
	if err := f.Run(t.Context(), []string{"a"}, sshx.RunOptions{}); err == nil {
		t.Error("second call of a Times(1) command returned nil")
	}
	f.Run(t.Context(), []string{"b"}, sshx.RunOptions{})
	f.Run(t.Context(), []string{"c"}, sshx.RunOptions{Stdin: strings.NewReader("wrong")})
	errs := rec.finish()
	want := []string{
		"unexpected command: rm -rf /",
		"run more often than expected: a",
		"c: stdin differs",
		"b expected 2 time(s), run 1",
	}
	if len(errs) != len(want) {
		t.Fatalf("failures = %q", errs)
	}
	for i, w := range want {
		if !strings.Contains(errs[i], w) {
			t.Errorf("failure %d = %q, want it to contain %q", i, errs[i], w)
		}
	}
}

func TestFake_OrderedAnswersAndDo(t *testing.T) {
	rec := &recordTB{TB: t}
	f := NewFake(rec)
	f.Expect("status").Stdout("starting").Times(1)
	f.Expect("status").Stdout("running")
	var got string
	f.Expect("write").Do(func(o sshx.RunOptions) error {
		b := new(bytes.Buffer)
		b.ReadFrom(o.Stdin)
		got = b.String()
		return nil
	})
	for _, want := range []string{"starting", "running", "running"} {
		out, _ := sshx.Output(t.Context(), f, []string{"status"}, nil)
		if string(out) != want {
			t.Errorf("status = %q, want %q", out, want)
		}
	}
	sshx.Output(t.Context(), f, []string{"write"}, strings.NewReader("payload"))
	if got != "payload" {
		t.Errorf("Do saw stdin %q", got)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := f.Run(ctx, []string{"status"}, sshx.RunOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: %v", err)
	}
	if errs := rec.finish(); len(errs) != 0 {
		t.Errorf("unexpected failures: %q", errs)
	}
}

func TestFake_Upload(t *testing.T) {
	rec := &recordTB{TB: t}
	f := NewFake(rec)
	f.Expect(sshx.UploadArgv("/usr/local/bin/toppcloud", 0o755, 6)...).WantStdin("binary").Times(1)
	if err := sshx.Upload(t.Context(), f, "/usr/local/bin/toppcloud", strings.NewReader("binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	if errs := rec.finish(); len(errs) != 0 {
		t.Errorf("unexpected failures: %q", errs)
	}
}
