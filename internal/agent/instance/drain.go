package instance

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Draining: after the router switched away from an instance, the requests
// it had accepted (and the connections queued on its socket that it has
// not accepted yet) must finish before it is stopped, or they fail. The
// router opens one connection per request to a unix socket (no
// keep-alive), so the instance's in-flight requests are the connections to
// its socket, which the kernel lists in /proc/net/unix under the socket's
// path: the listener itself, connections accepted (state 03) and
// connections waiting in the backlog (state 02).

// Drain defaults.
const (
	// DefaultDrainTimeout bounds the wait for an old instance's requests;
	// what is still running then gets the graceful stop (SIGTERM,
	// DefaultGracefulTimeout).
	DefaultDrainTimeout = 30 * time.Second
	// DefaultDrainPoll is how often the connections are counted.
	DefaultDrainPoll = 20 * time.Millisecond
	// DefaultDrainSettle: a connect that began just before the switch
	// may show up a moment later; the count must stay zero this long.
	DefaultDrainSettle = 100 * time.Millisecond
)

// ProcNetUnix is the kernel's list of unix sockets of the network
// namespace.
const ProcNetUnix = "/proc/net/unix"

const soAcceptCon = 0x10000 // __SO_ACCEPTCON: a listening socket

// CountConnections returns how many connections to the unix socket at
// path the list (the content of /proc/net/unix) shows: accepted or
// waiting to be accepted, the listener excluded.
func CountConnections(list []byte, path string) (int, error) {
	sc := bufio.NewScanner(bytes.NewReader(list))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue // header
		}
		f := strings.Fields(sc.Text())
		// Num RefCount Protocol Flags Type St Inode [Path]
		if len(f) < 8 || strings.Join(f[7:], " ") != path {
			continue
		}
		flags, err := strconv.ParseUint(f[3], 16, 32)
		if err != nil {
			return 0, fmt.Errorf("%s: bad flags %q", ProcNetUnix, f[3])
		}
		if flags&soAcceptCon != 0 {
			continue
		}
		n++
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read %s: %w", ProcNetUnix, err)
	}
	return n, nil
}

// Drainer waits until nothing is in flight on an instance's socket.
type Drainer struct {
	// List returns the current /proc/net/unix; nil means reading
	// ProcNetUnix.
	List func() ([]byte, error)
	// Zero values mean the Default... constants.
	Timeout, Poll, Settle time.Duration
}

// Wait returns once no connection to the socket at path has been seen for
// Settle, reporting how many were in flight when it started; or after
// Timeout with how many remain (drained false). A socket that does not
// exist has nothing in flight.
func (d Drainer) Wait(ctx context.Context, path string) (initial, left int, drained bool, err error) {
	list := d.List
	if list == nil {
		list = func() ([]byte, error) { return os.ReadFile(ProcNetUnix) }
	}
	timeout := orDefault(d.Timeout, DefaultDrainTimeout)
	poll := orDefault(d.Poll, DefaultDrainPoll)
	settle := orDefault(d.Settle, DefaultDrainSettle)
	start := time.Now()
	var zeroSince time.Time
	for i := 0; ; i++ {
		b, err := list()
		if err != nil {
			return initial, 0, false, err
		}
		n, err := CountConnections(b, path)
		if err != nil {
			return initial, 0, false, err
		}
		if i == 0 {
			initial = n
		}
		now := time.Now()
		switch {
		case n > 0:
			zeroSince = time.Time{}
		case zeroSince.IsZero():
			zeroSince = now
		}
		if n == 0 && now.Sub(zeroSince) >= settle {
			return initial, 0, true, nil
		}
		if now.Sub(start) >= timeout {
			return initial, n, false, nil
		}
		select {
		case <-ctx.Done():
			return initial, n, false, ctx.Err()
		case <-time.After(poll):
		}
	}
}
