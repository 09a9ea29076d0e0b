package provider

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// scriptDriver returns the nodes of a script, one per GetNode call,
// repeating the last.
type scriptDriver struct {
	Driver
	mu     sync.Mutex
	script []any // Node or error
	calls  int
}

func (d *scriptDriver) GetNode(ctx context.Context, id string) (Node, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	i := min(d.calls, len(d.script)-1)
	d.calls++
	switch v := d.script[i].(type) {
	case Node:
		return v, nil
	case error:
		return Node{}, v
	}
	panic("bad script")
}

func TestWaitUntilReady(t *testing.T) {
	pending := Node{ID: "1", State: StatePending}
	running := Node{ID: "1", State: StateRunning}
	ready := Node{ID: "1", State: StateRunning, PublicIPs: []string{"192.0.2.1"}, SSHPort: 2222}
	fast := WaitOptions{PollInterval: time.Millisecond, MaxPoll: 2 * time.Millisecond,
		RunningTimeout: time.Second, AddressTimeout: time.Second, SSHTimeout: time.Second}

	t.Run("phases in order", func(t *testing.T) {
		d := &scriptDriver{script: []any{pending, fmt.Errorf("HTTP 500"), running, ready}}
		probes := 0
		o := fast
		var phases []string
		o.Progress = func(p Progress) {
			if p.Done {
				phases = append(phases, p.Phase)
			}
		}
		o.ProbeHostKey = func(ctx context.Context, addr string) (string, error) {
			if addr != "192.0.2.1:2222" {
				t.Errorf("probed %s", addr)
			}
			probes++
			if probes < 3 {
				return "", errors.New("connection refused")
			}
			return "ssh-ed25519 AAAA", nil
		}
		n, key, err := WaitUntilReady(context.Background(), d, "1", o)
		if err != nil {
			t.Fatal(err)
		}
		if key != "ssh-ed25519 AAAA" || n.Address() != "192.0.2.1" {
			t.Errorf("got %+v %q", n, key)
		}
		if fmt.Sprint(phases) != "[running address ssh]" {
			t.Errorf("phases done = %v", phases)
		}
	})

	t.Run("error state fails at once", func(t *testing.T) {
		d := &scriptDriver{script: []any{pending, Node{ID: "1", State: StateError}}}
		o := fast
		o.ProbeHostKey = func(context.Context, string) (string, error) { return "", nil }
		_, _, err := WaitUntilReady(context.Background(), d, "1", o)
		if !errors.Is(err, ErrNodeFailed) {
			t.Fatalf("err = %v, want ErrNodeFailed", err)
		}
	})

	t.Run("auth error fails at once", func(t *testing.T) {
		d := &scriptDriver{script: []any{fmt.Errorf("x: %w", ErrAuth)}}
		o := fast
		o.ProbeHostKey = func(context.Context, string) (string, error) { return "", nil }
		_, _, err := WaitUntilReady(context.Background(), d, "1", o)
		if !errors.Is(err, ErrAuth) || d.calls != 1 {
			t.Fatalf("err = %v after %d calls, want ErrAuth after 1", err, d.calls)
		}
	})

	t.Run("phase timeout names the phase", func(t *testing.T) {
		d := &scriptDriver{script: []any{running}}
		o := fast
		o.AddressTimeout = 20 * time.Millisecond
		o.ProbeHostKey = func(context.Context, string) (string, error) { return "", nil }
		_, _, err := WaitUntilReady(context.Background(), d, "1", o)
		var te *TimeoutError
		if !errors.As(err, &te) || te.Phase != PhaseAddress {
			t.Fatalf("err = %v, want a TimeoutError for the address phase", err)
		}
	})

	t.Run("ssh timeout keeps the last error", func(t *testing.T) {
		d := &scriptDriver{script: []any{ready}}
		o := fast
		o.SSHTimeout = 20 * time.Millisecond
		o.ProbeHostKey = func(context.Context, string) (string, error) { return "", errors.New("no route to host") }
		_, _, err := WaitUntilReady(context.Background(), d, "1", o)
		var te *TimeoutError
		if !errors.As(err, &te) || te.Phase != PhaseSSH || te.Last != "no route to host" {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("cancel", func(t *testing.T) {
		d := &scriptDriver{script: []any{pending}}
		o := fast
		o.ProbeHostKey = func(context.Context, string) (string, error) { return "", nil }
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		_, _, err := WaitUntilReady(ctx, d, "1", o)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want the context's error", err)
		}
	})

	t.Run("needs a probe", func(t *testing.T) {
		if _, _, err := WaitUntilReady(context.Background(), &scriptDriver{script: []any{ready}}, "1", WaitOptions{}); err == nil {
			t.Fatal("want an error without ProbeHostKey")
		}
	})
}
