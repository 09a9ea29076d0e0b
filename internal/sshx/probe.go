package sshx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"golang.org/x/crypto/ssh"
)

// errProbed stops a probe's handshake once the host key is known.
var errProbed = errors.New("host key received")

// ProbeHostKey connects to addr (host:port; a bare host means port 22) and
// returns the server's host key as an authorized_keys line
// ("ssh-ed25519 AAAA..."), stopping right after the key exchange, before
// any authentication. It asks for ed25519 first, as Dial does, so the key
// probed at creation is the one later connections see. It does not retry:
// provider.WaitUntilReady calls it in a loop until sshd answers.
//
// The key exchange proves the server holds the key's private half, but not
// who the server is: pin a probed key only for a node you just created (or
// after checking its fingerprint).
func ProbeHostKey(ctx context.Context, addr string) (string, error) {
	addr, err := normalizeAddr(addr)
	if err != nil {
		return "", err
	}
	timeout := DefaultDialTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	var key ssh.PublicKey
	ccfg := &ssh.ClientConfig{
		User: "toppcloud-probe",
		HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
			key = k
			return errProbed
		},
		HostKeyAlgorithms: preferredHostKeyAlgorithms(),
	}
	_, err = dialOnce(ctx, addr, ccfg, timeout)
	if key != nil {
		return KeyLine(key), nil
	}
	if err == nil {
		// Unreachable: the callback always fails the handshake.
		return "", fmt.Errorf("probe host key of %s: handshake completed without a key", addr)
	}
	return "", fmt.Errorf("probe host key of %s: %w", displayAddr(addr), err)
}
