// Package acmetest runs a real ACME CA for tests: Pebble (Let's Encrypt's
// test CA, github.com/letsencrypt/pebble/v2) and the DNS server its
// validation authority asks (challtestsrv), both in the test's process on
// addresses a local node can reach. Tests point a node's Caddy at
// DirectoryURL, trust CARootPEM for the directory's own certificate, set
// DNS records with SetA, and check served certificates against Roots.
package acmetest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/letsencrypt/challtestsrv"
	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
)

// Options say where the CA listens and how it validates.
type Options struct {
	// IP is the address of this machine that nodes reach (for a local
	// node, the host's end of its network link). The directory listens
	// there and its certificate names it. Default 127.0.0.1.
	IP string
	// HTTPPort and TLSPort are where the validation authority connects
	// for HTTP-01 and TLS-ALPN-01 (80 and 443 by default). A port where
	// nothing listens makes that challenge type fail.
	HTTPPort, TLSPort int
	// Validity is the lifetime of issued certificates (default 90 days).
	// A short one makes Caddy renew soon.
	Validity time.Duration
}

// Server is a running Pebble and its DNS server.
type Server struct {
	// DirectoryURL is the ACME directory (https).
	DirectoryURL string
	// CARootPEM is the root that signed the directory's TLS certificate:
	// what a client must trust to talk to the CA (acme_ca_root).
	CARootPEM []byte

	ca   *ca.CAImpl
	dns  *challtestsrv.ChallSrv
	logs *syncBuffer
}

// Start runs Pebble and challtestsrv until the test ends. Pebble reads
// its knobs from the environment, so Start sets them with t.Setenv (no
// random validation sleeps, no rejected nonces): tests that call it
// cannot be parallel.
func Start(t testing.TB, opt Options) *Server {
	t.Helper()
	if opt.IP == "" {
		opt.IP = "127.0.0.1"
	}
	if opt.HTTPPort == 0 {
		opt.HTTPPort = 80
	}
	if opt.TLSPort == 0 {
		opt.TLSPort = 443
	}
	if opt.Validity == 0 {
		opt.Validity = 90 * 24 * time.Hour
	}
	for k, v := range map[string]string{"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"} {
		t.Setenv(k, v)
	}
	s := &Server{logs: &syncBuffer{}}
	logger := log.New(s.logs, "", log.Ltime|log.Lmicroseconds)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pebble's log (last 8 KB):\n%s", s.logs.tail(8192))
		}
	})

	// DNS: only the records a test sets; every other name has none.
	dnsLn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dnsAddr := dnsLn.LocalAddr().String()
	dnsLn.Close()
	s.dns, err = challtestsrv.New(challtestsrv.Config{DNSAddrs: []string{dnsAddr}, Log: logger})
	if err != nil {
		t.Fatal(err)
	}
	s.dns.SetDefaultDNSIPv4("")
	s.dns.SetDefaultDNSIPv6("")
	go s.dns.Run()
	t.Cleanup(s.dns.Shutdown)

	store := db.NewMemoryStore()
	s.ca = ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{
		"default": {Description: "test", ValidityPeriod: uint64(opt.Validity / time.Second)},
	})
	vaImpl := va.New(logger, opt.HTTPPort, opt.TLSPort, false, dnsAddr, store)
	wfeImpl := wfe.New(logger, store, vaImpl, s.ca, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)

	cert, rootPEM, err := serverCert(opt.IP)
	if err != nil {
		t.Fatal(err)
	}
	s.CARootPEM = rootPEM
	ln, err := net.Listen("tcp", net.JoinHostPort(opt.IP, "0"))
	if err != nil {
		t.Fatalf("acmetest: listen on %s (the address nodes reach this machine at): %v", opt.IP, err)
	}
	srv := &http.Server{
		Handler:   wfeImpl.Handler(),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		ErrorLog:  logger,
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	s.DirectoryURL = "https://" + net.JoinHostPort(opt.IP, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)) + wfe.DirectoryPath
	return s
}

// SetA makes host resolve to ips for the validation authority.
func (s *Server) SetA(host string, ips ...string) {
	s.dns.AddDNSARecord(host, ips)
}

// ServFail makes every lookup of host fail (a broken DNS zone).
func (s *Server) ServFail(host string) {
	s.dns.DeleteDNSARecord(host)
	s.dns.AddDNSServFailRecord(host)
}

// Roots returns the roots Pebble issues certificates under, to verify a
// served certificate with.
func (s *Server) Roots() *x509.CertPool {
	pool := x509.NewCertPool()
	if root := s.ca.GetRootCert(0); root != nil {
		pool.AddCert(root.Cert)
	}
	return pool
}

// Log returns what Pebble and the DNS server logged so far.
func (s *Server) Log() string { return s.logs.String() }

// ValidatedHTTP01 reports whether the validation authority fetched an
// HTTP-01 challenge for host (it logs the URL, with its port).
func (s *Server) ValidatedHTTP01(host string) bool {
	return strings.Contains(s.Log(), "Attempting to validate w/ HTTP: http://"+host+":")
}

// serverCert makes a throwaway root and a certificate for ip signed by it:
// Pebble's directory must speak TLS, and the node must be able to verify
// it (Caddy's trusted_roots_pem_files).
func serverCert(ip string) (tls.Certificate, []byte, error) {
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	rootTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "toppcloud acmetest root"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	addr := net.ParseIP(ip)
	if addr == nil {
		return tls.Certificate{}, nil, fmt.Errorf("acmetest: %q is not an IP address", ip)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: ip},
		IPAddresses:  []net.IP{addr},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, root, &key.PublicKey, rootKey)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	cert := tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: key}
	return cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER}), nil
}

// syncBuffer collects log output written from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func (b *syncBuffer) tail(n int) string {
	s := b.String()
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return s
}
