// Package certs tells what a node's front server (Caddy, with on-demand
// TLS) has done about the certificate of a name: the one it holds in its
// storage, and from its log why it could not obtain or renew one; and it
// makes the front server obtain one now, by opening a TLS connection for
// the name, as a browser's first visit would.
package certs

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Held is a certificate the front server keeps for a name.
type Held struct {
	NotBefore, NotAfter time.Time
	// Issuer is the issuing CA's common name.
	Issuer string
	// Path is the certificate's file in the storage.
	Path string
}

// Find returns the certificate the storage (Caddy's file_system storage
// root) holds for host, the one that expires last if several issuers
// made one; nil when there is none.
func Find(storage, host string) (*Held, error) {
	name := storageName(host)
	paths, err := filepath.Glob(filepath.Join(storage, "certificates", "*", name, name+".crt"))
	if err != nil {
		return nil, err
	}
	var best *Held
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read certificate: %w", err)
		}
		block, _ := pem.Decode(data)
		if block == nil {
			return nil, fmt.Errorf("%s: not PEM", p)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if best == nil || c.NotAfter.After(best.NotAfter) {
			best = &Held{NotBefore: c.NotBefore, NotAfter: c.NotAfter, Issuer: c.Issuer.CommonName, Path: p}
		}
	}
	return best, nil
}

// storageName is how Caddy's storage names a host's directory and files.
func storageName(host string) string {
	host = strings.ToLower(host)
	if strings.HasPrefix(host, "*.") {
		return "wildcard_" + host[1:]
	}
	return host
}

// InternalRoot is where Caddy keeps its internal CA's root certificate
// under the storage.
func InternalRoot(storage string) string {
	return filepath.Join(storage, "pki", "authorities", "local", "root.crt")
}

// Attempt is what the front server's log says of one try to obtain or
// renew the certificate of a name.
type Attempt struct {
	At time.Time
	OK bool
	// Error is Caddy's reason when the try failed (the CA's answer).
	Error string
}

// Caddy's log messages (certmagic's, as logged by Caddy 2.6) that end an
// attempt.
const (
	msgObtained = "certificate obtained successfully"
	msgRenewed  = "certificate renewed successfully"
	msgFailed   = "could not get certificate from issuer"
)

// LastAttempt reads the front server's log (JSON lines, as journald keeps
// them with -o cat) and returns the last attempt for host; ok is false
// when the log has none.
func LastAttempt(log []byte, host string) (a Attempt, ok bool) {
	host = strings.ToLower(host)
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.Contains(line, []byte(host)) {
			continue
		}
		var e struct {
			TS         float64 `json:"ts"`
			Msg        string  `json:"msg"`
			Identifier string  `json:"identifier"`
			Error      string  `json:"error"`
		}
		if json.Unmarshal(line, &e) != nil || strings.ToLower(e.Identifier) != host {
			continue
		}
		switch e.Msg {
		case msgObtained, msgRenewed:
			a, ok = Attempt{At: fromUnix(e.TS), OK: true}, true
		case msgFailed:
			a, ok = Attempt{At: fromUnix(e.TS), Error: e.Error}, true
		}
	}
	return a, ok
}

func fromUnix(ts float64) time.Time {
	sec, frac := math.Modf(ts)
	return time.Unix(int64(sec), int64(frac*1e9))
}

// ErrNoCertificate: the front server did not complete a TLS handshake
// for the name.
var ErrNoCertificate = errors.New("no certificate")

// Obtain opens a TLS connection to the front server at addr for host,
// which makes it obtain host's certificate if it has none (on-demand TLS),
// and returns the certificate it then serves. The connection is the
// node's own, to itself: it checks nothing about the certificate (a
// client decides whom it trusts; here only getting one matters).
//
// Caddy keeps the handshake waiting while it obtains, and after a failed
// try while it retries: ctx bounds the wait, and the reason is in the
// front server's log (LastAttempt).
func Obtain(ctx context.Context, addr, host string) (*x509.Certificate, error) {
	d := tls.Dialer{Config: &tls.Config{ServerName: host, InsecureSkipVerify: true}}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%w for %s: %w", ErrNoCertificate, host, err)
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w for %s: the server sent none", ErrNoCertificate, host)
	}
	return certs[0], nil
}

// LoopbackAddr turns a listen address (":443", "10.0.0.5:443") into one
// the node can dial itself at.
func LoopbackAddr(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", err
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}
