package instance

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
)

// Ports for command apps come from this range: below Linux's ephemeral
// range (32768-60999), so a port that is free now is not taken a moment
// later by some outgoing connection, and above the usual services.
const (
	PortMin = 20000
	PortMax = 29999
)

// ErrNoPort means every port of the range is in use or excluded.
var ErrNoPort = errors.New("no free port")

// FreePort picks a port on 127.0.0.1 in [PortMin, PortMax] that nothing
// listens on now and that inUse does not report (the ports of other
// instances, running or not, which the caller knows from its records).
// It starts at a random place so two picks rarely race for one port; the
// check is a bind, so it is only as good as the moment it is made.
func FreePort(inUse func(port int) bool) (int, error) {
	return freePort(inUse, PortMin, PortMax, rand.IntN)
}

func freePort(inUse func(int) bool, lo, hi int, intn func(int) int) (int, error) {
	n := hi - lo + 1
	start := intn(n)
	for k := 0; k < n; k++ {
		p := lo + (start+k)%n
		if inUse != nil && inUse(p) {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		if err := ln.Close(); err != nil {
			return 0, fmt.Errorf("free port: %w", err)
		}
		return p, nil
	}
	return 0, fmt.Errorf("free port in %d-%d: %w", lo, hi, ErrNoPort)
}
