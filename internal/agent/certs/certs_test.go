package certs

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func selfSigned(t *testing.T, cn string, notAfter time.Time) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, Issuer: pkix.Name{CommonName: cn},
		DNSNames: []string{cn}, NotBefore: notAfter.Add(-time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key
}

func TestFind(t *testing.T) {
	storage := t.TempDir()
	later := time.Now().Add(48 * time.Hour).Truncate(time.Second)
	for issuer, notAfter := range map[string]time.Time{"local": later.Add(-24 * time.Hour), "acme.test-dir": later} {
		pemData, _ := selfSigned(t, "site.test", notAfter)
		dir := filepath.Join(storage, "certificates", issuer, "site.test")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "site.test.crt"), pemData, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	h, err := Find(storage, "Site.Test")
	if err != nil || h == nil || !h.NotAfter.Equal(later) || filepath.Base(filepath.Dir(filepath.Dir(h.Path))) != "acme.test-dir" {
		t.Fatalf("Find = %+v, %v; want the one that expires last", h, err)
	}
	if h, err := Find(storage, "other.test"); h != nil || err != nil {
		t.Fatalf("Find(other.test) = %+v, %v", h, err)
	}
}

// Lines as Caddy 2.6.2 logged them in the router's ACME test.
const caddyLog = `{"level":"info","ts":1796401071.6684256,"logger":"tls","msg":"served key authentication certificate","server_name":"secure.test","challenge":"tls-alpn-01"}
{"level":"info","ts":1796401071.9,"logger":"tls.obtain","msg":"certificate obtained successfully","identifier":"secure.test"}
{"level":"info","ts":1796401072.1784043,"logger":"tls.renew","msg":"certificate renewed successfully","identifier":"secure.test"}
{"level":"info","ts":1796401072.6639032,"logger":"tls.on_demand","msg":"obtaining new certificate","remote_ip":"127.0.0.1","remote_port":"49290","server_name":"broken.test"}
{"level":"error","ts":1796401072.9436066,"logger":"tls.obtain","msg":"could not get certificate from issuer","identifier":"broken.test","issuer":"127.0.0.1:39197-dir","error":"HTTP 400 urn:ietf:params:acme:error:malformed - Could not resolve URL \"broken.test\""}
{"level":"error","ts":1796401072.9436498,"logger":"tls.obtain","msg":"will retry","error":"[broken.test] Obtain: ...","attempt":1}
not json at all broken.test
`

func TestLastAttempt(t *testing.T) {
	a, ok := LastAttempt([]byte(caddyLog), "SECURE.test")
	if !ok || !a.OK || a.At.Unix() != 1796401072 {
		t.Errorf("secure.test: %+v %v", a, ok)
	}
	a, ok = LastAttempt([]byte(caddyLog), "broken.test")
	if !ok || a.OK || a.Error != `HTTP 400 urn:ietf:params:acme:error:malformed - Could not resolve URL "broken.test"` {
		t.Errorf("broken.test: %+v %v", a, ok)
	}
	if _, ok := LastAttempt([]byte(caddyLog), "test"); ok {
		t.Error("a name that is part of others matched")
	}
}

func TestObtain(t *testing.T) {
	pemData, key := selfSigned(t, "site.test", time.Now().Add(time.Hour))
	block, _ := pem.Decode(pemData)
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	var sni string
	srv.TLS = &tls.Config{GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		sni = h.ServerName
		return &tls.Certificate{Certificate: [][]byte{block.Bytes}, PrivateKey: key}, nil
	}}
	srv.StartTLS()
	defer srv.Close()
	c, err := Obtain(context.Background(), srv.Listener.Addr().String(), "site.test")
	if err != nil || c.Subject.CommonName != "site.test" || sni != "site.test" {
		t.Fatalf("Obtain = %v, %v (SNI %q)", c, err, sni)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	if _, err := Obtain(context.Background(), closed, "site.test"); !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("Obtain from a closed port = %v", err)
	}
}

func TestLoopbackAddr(t *testing.T) {
	for in, want := range map[string]string{":443": "127.0.0.1:443", "0.0.0.0:8443": "127.0.0.1:8443", "10.0.0.5:443": "10.0.0.5:443", "[::]:443": "127.0.0.1:443"} {
		if got, err := LoopbackAddr(in); err != nil || got != want {
			t.Errorf("LoopbackAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := LoopbackAddr("443"); err == nil {
		t.Error("LoopbackAddr(443) succeeded")
	}
}
