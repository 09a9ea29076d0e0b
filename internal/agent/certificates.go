package agent

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/certs"
	"github.com/toppcloud/toppcloud/internal/agent/router"
	"github.com/toppcloud/toppcloud/internal/agent/setup"
	"github.com/toppcloud/toppcloud/internal/agent/system"
	"github.com/toppcloud/toppcloud/internal/location"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

// What the agent reads of the front server's log for certificates: the
// last lines, enough for the attempts of every name of a busy node.
const frontLogLines = 5000

// DefaultCertificateWait bounds how long a deploy to an https location
// waits for the front server to obtain the certificate before it reports
// how far it got (the deploy has succeeded either way).
const DefaultCertificateWait = 60 * time.Second

// certificateHost is the name an https location's certificate is for;
// "" for http locations and wildcards (each name they serve gets its own
// at its first visit).
func certificateHost(l location.Location) string {
	if !l.HTTPS() || l.Wildcard() || l.CatchAll() {
		return ""
	}
	return l.Host
}

// frontLog reads the front server's recent log.
func (a *Agent) frontLog(ctx context.Context) []byte {
	lines, err := system.Systemd{Runner: a.Host.Runner}.Journal(ctx, setup.FrontUnit, frontLogLines, "cat")
	if err != nil {
		return nil
	}
	return []byte(strings.Join(lines, "\n"))
}

// certificateInfo tells what the front server has for host, from its
// storage and log.
func (a *Agent) certificateInfo(host string, log []byte) *protocol.CertificateInfo {
	info := &protocol.CertificateInfo{Host: host}
	if held, err := certs.Find(a.Host.Path(a.Layout.CaddyStorage), host); err == nil && held != nil {
		info.NotAfter, info.Issuer = held.NotAfter, held.Issuer
	}
	if at, ok := certs.LastAttempt(log, host); ok && !at.OK {
		info.Error, info.ErrorAt = at.Error, at.At
	}
	return info
}

// obtainCertificate makes the front server get host's certificate now,
// as a first visitor's handshake would, and says how it went: the deploy
// succeeded either way, so problems are warnings with the CA's reason.
func (a *Agent) obtainCertificate(ctx context.Context, c *Call, st *protocol.Step, host string) string {
	opt, err := a.routerOptions()
	if err != nil {
		c.Warnf("certificate for %s: %v", host, err)
		return "not asked for"
	}
	addr, err := certs.LoopbackAddr(cmp.Or(opt.HTTPSAddr, router.DefaultHTTPSAddr))
	if err != nil {
		c.Warnf("certificate for %s: %v", host, err)
		return "not asked for"
	}
	st.Progress("asking the front server for " + host + "'s certificate")
	wait := DefaultCertificateWait
	if a.CertificateWait > 0 {
		wait = a.CertificateWait
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	type result struct {
		cert *x509.Certificate
		err  error
	}
	done := make(chan result, 1)
	go func() {
		for {
			crt, err := certs.Obtain(ctx, addr, host)
			// The front server ends a handshake it has kept waiting for
			// longer than router.ReadHeaderTimeout while
			// the CA still validates: the issuance goes on, so ask again.
			if err != nil && ctx.Err() == nil && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
				select {
				case <-ctx.Done():
				case <-time.After(250 * time.Millisecond):
				}
				continue
			}
			done <- result{crt, err}
			return
		}
	}()
	// Caddy keeps the handshake waiting while it retries a failed try:
	// its log tells sooner.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	start := time.Now().Add(-time.Second)
	for {
		select {
		case r := <-done:
			if r.err == nil {
				return fmt.Sprintf("certificate for %s from %s, valid until %s", host, r.cert.Issuer.CommonName, r.cert.NotAfter.UTC().Format(time.RFC3339))
			}
			return a.certificateProblem(c, host, start, r.err)
		case <-tick.C:
			if at, ok := certs.LastAttempt(a.frontLog(ctx), host); ok && !at.OK && at.At.After(start) {
				cancel()
				<-done
				return a.certificateProblem(c, host, start, errors.New(at.Error))
			}
		}
	}
}

func (a *Agent) certificateProblem(c *Call, host string, since time.Time, err error) string {
	reason := err.Error()
	if at, ok := certs.LastAttempt(a.frontLog(context.Background()), host); ok && !at.OK && at.At.After(since) {
		reason = at.Error
	}
	c.Warnf("no certificate for %s yet: %s. Plain HTTP answers (with a redirect to https); the node tries again at the next https visit. Check that %s points at this node and that ports 80 and 443 are open; `toppcloud logs https://%s` shows the front server's lines about it", host, reason, host, host)
	return "no certificate for " + host + " yet"
}

// nodeCA returns the root of the node's internal CA.
func (a *Agent) nodeCA(ctx context.Context, c *Call, _ *struct{}) (*protocol.NodeCAResult, error) {
	pem, err := a.Host.ReadFile(certs.InternalRoot(a.Layout.CaddyStorage))
	if errors.Is(err, os.ErrNotExist) {
		tls, _ := setup.ReadTLSSettings(a.Host, a.Layout)
		msg := "the node has no internal CA yet: the front server makes it when it starts with the internal issuer"
		if tls.Issuer != protocol.IssuerInternal {
			msg = "the node gets its certificates from an ACME CA (" + orDefault(tls.ACMECA, "Let's Encrypt") + "), not from a CA of its own; set acme_ca = internal and run setup-node to use one"
		}
		return nil, &protocol.Error{Code: protocol.CodeNotFound, Message: msg}
	}
	if err != nil {
		return nil, err
	}
	return &protocol.NodeCAResult{RootPEM: string(pem)}, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
