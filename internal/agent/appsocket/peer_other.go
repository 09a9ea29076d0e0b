//go:build !linux

package appsocket

import (
	"errors"
	"net"
)

// PeerUID needs Linux's sock_diag; the agent runs on Debian nodes, and
// the client binary only has to build elsewhere.
func PeerUID(*net.TCPConn) (int, error) {
	return -1, errors.New("peer owner: needs Linux (sock_diag)")
}
