package provider

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/toppcloud/toppcloud/internal/backoff"
)

// Default timeouts for the phases of WaitUntilReady.
const (
	DefaultRunningTimeout = 10 * time.Minute
	DefaultAddressTimeout = 5 * time.Minute
	DefaultSSHTimeout     = 5 * time.Minute
	DefaultPollInterval   = 200 * time.Millisecond
	DefaultMaxPoll        = 5 * time.Second
)

// Phases of WaitUntilReady, in order.
const (
	PhaseRunning = "running"
	PhaseAddress = "address"
	PhaseSSH     = "ssh"
)

// WaitOptions tune WaitUntilReady. Zero values take the defaults.
type WaitOptions struct {
	RunningTimeout time.Duration
	AddressTimeout time.Duration
	SSHTimeout     time.Duration
	// PollInterval is the first delay between polls; it grows by half each
	// time up to MaxPoll, so fast backends are seen fast and slow APIs are
	// not hammered.
	PollInterval time.Duration
	MaxPoll      time.Duration
	// ProbeHostKey connects to addr (host:port) and returns sshd's host key
	// as an authorized_keys line, or an error while sshd is not answering.
	// Required: the CLI passes sshx.ProbeHostKey.
	ProbeHostKey func(ctx context.Context, addr string) (string, error)
	// Progress, if set, is called when a phase starts, on each poll and
	// when a phase is done.
	Progress func(Progress)
}

// Progress reports what WaitUntilReady is doing.
type Progress struct {
	Phase   string
	Node    Node
	Elapsed time.Duration // since WaitUntilReady started
	Done    bool          // this phase finished
	Detail  string        // last poll result ("state pending", "connection refused")
}

// TimeoutError says a phase did not finish in time.
type TimeoutError struct {
	Phase  string
	Waited time.Duration
	Last   string // the last thing seen ("state pending", "dial tcp: connection refused")
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("node not ready: phase %q did not finish within %s (last: %s)", e.Phase, e.Waited.Round(time.Second), e.Last)
}

// ErrNodeFailed is wrapped when the provider reports the node in state
// error or terminated while we wait: waiting longer cannot help.
var ErrNodeFailed = errors.New("node failed")

// WaitUntilReady waits until the node is running, has an address, and sshd
// answers with a host key, each phase under its own timeout. It returns the
// node as last seen and the host key line to pin.
func WaitUntilReady(ctx context.Context, d Driver, id string, o WaitOptions) (Node, string, error) {
	if o.ProbeHostKey == nil {
		return Node{}, "", errors.New("provider: WaitUntilReady needs ProbeHostKey")
	}
	if o.RunningTimeout == 0 {
		o.RunningTimeout = DefaultRunningTimeout
	}
	if o.AddressTimeout == 0 {
		o.AddressTimeout = DefaultAddressTimeout
	}
	if o.SSHTimeout == 0 {
		o.SSHTimeout = DefaultSSHTimeout
	}
	if o.PollInterval == 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.MaxPoll == 0 {
		o.MaxPoll = DefaultMaxPoll
	}
	start := time.Now()
	report := func(p Progress) {
		if o.Progress != nil {
			p.Elapsed = time.Since(start)
			o.Progress(p)
		}
	}

	var node Node
	// Phases 1 and 2 both poll the provider; an address often appears
	// together with "running" so one poll can finish both.
	pollNode := func(phase string, timeout time.Duration, done func(Node) bool) error {
		report(Progress{Phase: phase, Node: node})
		deadline := time.Now().Add(timeout)
		delay := backoff.Delay{Next: o.PollInterval, Max: o.MaxPoll}
		last := ""
		for {
			n, err := d.GetNode(ctx, id)
			switch {
			case err != nil && ctx.Err() != nil:
				return ctx.Err()
			case err != nil && (errors.Is(err, ErrAuth) || errors.Is(err, ErrNotFound)):
				return fmt.Errorf("wait for node %s: %w", id, err)
			case err != nil:
				// Transient API trouble: keep polling until the deadline.
				last = err.Error()
			default:
				node = n
				last = "state " + n.State.String()
				if n.State == StateError || n.State == StateTerminated {
					return fmt.Errorf("wait for node %s (%s): provider reports state %s: %w", n.Name, id, n.State, ErrNodeFailed)
				}
				if done(n) {
					report(Progress{Phase: phase, Node: node, Done: true, Detail: last})
					return nil
				}
			}
			report(Progress{Phase: phase, Node: node, Detail: last})
			if time.Now().After(deadline) {
				return &TimeoutError{Phase: phase, Waited: timeout, Last: last}
			}
			if err := delay.Wait(ctx); err != nil {
				return err
			}
		}
	}
	if err := pollNode(PhaseRunning, o.RunningTimeout, func(n Node) bool { return n.State == StateRunning }); err != nil {
		return node, "", err
	}
	if err := pollNode(PhaseAddress, o.AddressTimeout, func(n Node) bool { return n.Address() != "" }); err != nil {
		return node, "", err
	}

	report(Progress{Phase: PhaseSSH, Node: node})
	port := node.SSHPort
	if port == 0 {
		port = 22
	}
	addr := net.JoinHostPort(node.Address(), strconv.Itoa(port))
	deadline := time.Now().Add(o.SSHTimeout)
	delay := backoff.Delay{Next: o.PollInterval, Max: o.MaxPoll}
	for {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		key, err := o.ProbeHostKey(pctx, addr)
		cancel()
		if err == nil {
			report(Progress{Phase: PhaseSSH, Node: node, Done: true, Detail: "sshd answered"})
			return node, key, nil
		}
		if ctx.Err() != nil {
			return node, "", ctx.Err()
		}
		report(Progress{Phase: PhaseSSH, Node: node, Detail: err.Error()})
		if time.Now().After(deadline) {
			return node, "", &TimeoutError{Phase: PhaseSSH, Waited: o.SSHTimeout, Last: err.Error()}
		}
		if err := delay.Wait(ctx); err != nil {
			return node, "", err
		}
	}
}
