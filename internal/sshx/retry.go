package sshx

import (
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
)

// retryable reports whether a failed dial may succeed if tried again soon:
// the server is not listening yet, is unreachable for now, or accepted and
// dropped the connection (sshd still starting, or over MaxStartups).
func retryable(err error) bool {
	for _, errno := range []syscall.Errno{
		syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED,
		syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.EHOSTDOWN,
		syscall.ETIMEDOUT, syscall.EPIPE,
	} {
		if errors.Is(err, errno) {
			return true
		}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return dns.IsTemporary || dns.IsTimeout
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// isAuthFailure recognizes a refused login. x/crypto reports it only as
// text, so match its messages (and OpenSSH's "too many failures"
// disconnect).
func isAuthFailure(err error) bool {
	s := err.Error()
	return strings.Contains(s, "unable to authenticate") ||
		strings.Contains(s, "no supported methods remain") ||
		strings.Contains(s, "Too many authentication failures")
}

// hint says what to check after a network failure.
func hint(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return ": is the node running, and does sshd listen on that port?"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return ": check the address and your network"
	case errors.As(err, &ne) && ne.Timeout():
		return ": check the address, and that no firewall drops SSH"
	}
	return ""
}
