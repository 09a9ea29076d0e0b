package router

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/acmetest"
	"github.com/toppcloud/toppcloud/internal/httpload"
)

// TestCaddy_ACME gets real certificates from a real ACME CA (Pebble, in
// this process) through the front server's on-demand TLS: the first
// handshake for an https location's name obtains one (TLS-ALPN-01 here;
// the node tests do HTTP-01), it comes back from storage after a restart,
// a short lifetime makes Caddy renew it, a name whose DNS is broken gets
// none while plain HTTP keeps serving, and Caddy's log says why. Requests to another app
// run throughout and must all succeed.
func TestCaddy_ACME(t *testing.T) {
	requireCaddy(t)
	dir := t.TempDir()
	ports := freePorts(t, 2)
	opt := testOptions(t, dir, ports[0])
	_, httpsPort, _ := splitAddr(opt.HTTPSAddr)
	// Validation over TLS-ALPN-01 only (the node tests do HTTP-01): the
	// CA's HTTP-01 port is one where nothing listens.
	pebble := acmetest.Start(t, acmetest.Options{HTTPPort: ports[1], TLSPort: httpsPort, Validity: 30 * time.Second})
	caRoot := filepath.Join(dir, "acme-ca.pem")
	if err := os.WriteFile(caRoot, pebble.CARootPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	opt.Issuer, opt.ACMECA, opt.ACMECARoot, opt.ACMEEmail = IssuerACME, pebble.DirectoryURL, caRoot, "ops@example.com"

	tb := &Table{}
	backends := map[string]Backend{}
	route := func(loc, name string) {
		mustSet(t, tb, loc, name, name+".1")
		b := nodeBackends().Backend(KindPython, name, name+".1")
		b.Upstream = unixUpstream(t, filepath.Join(dir, name+".sock"), report(name+".1"))
		b.StaticDir, b.WritableRoot = "", ""
		backends[tb.RoutesFor(name)[0].Location.Key()] = b
	}
	route("plain.test", "plain")
	route("https://secure.test", "secure")
	route("https://broken.test", "broken")
	r, err := Render(tb, backends, opt)
	if err != nil || len(r.Warnings) > 0 {
		t.Fatal(err, r.Warnings)
	}
	c := startPair(t, dir, r)
	pebble.SetA("secure.test", "127.0.0.1")
	pebble.ServFail("broken.test")

	// Load on the plain app while certificates are obtained, renewed and
	// refused: POSTs, on new and on kept-alive connections (stopped while
	// the front server is restarted on purpose).
	web := "127.0.0.1:" + strconv.Itoa(ports[0])
	var loads []*httpload.Load
	startLoads := func() {
		loads = []*httpload.Load{
			startLoad(web, "plain.test", "/x", http.MethodPost, false, 1, 5*time.Millisecond),
			startLoad(web, "plain.test", "/x", http.MethodPost, true, 1, 5*time.Millisecond),
		}
	}
	stopLoads := func() {
		for _, l := range loads {
			r := l.Stop()
			t.Logf("plain app during issuance: %d requests ok, %d failed", r.OK, len(r.Failures))
			if len(r.Failures) > 0 {
				t.Errorf("%d requests to the plain app failed during issuance, e.g. %q", len(r.Failures), r.Failures[:min(5, len(r.Failures))])
			}
		}
		loads = nil
	}
	startLoads()
	defer func() { stopLoads() }()

	handshake := func(name string, timeout time.Duration) (*x509.Certificate, error) {
		d := &tls.Dialer{Config: &tls.Config{ServerName: name, RootCAs: pebble.Roots()}}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		conn, err := d.DialContext(ctx, "tcp", opt.HTTPSAddr)
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		return conn.(*tls.Conn).ConnectionState().PeerCertificates[0], nil
	}

	first, err := handshake("secure.test", time.Minute)
	if err != nil {
		t.Fatalf("first handshake for secure.test (obtains its certificate): %v", err)
	}
	t.Run("served over https with the certificate", func(t *testing.T) {
		f := newFront(t, opt.HTTPSAddr, &tls.Config{RootCAs: pebble.Roots()})
		if s := f.get("secure.test", "/x").seen; s == nil || s.Upstream != "secure.1" || s.Headers["X-Forwarded-Proto"] != "https" {
			t.Errorf("https request saw %+v", s)
		}
		if got := newFront(t, web, nil).get("secure.test", "/a?b=c"); got.status != 308 || got.header.Get("Location") != "https://secure.test:"+strconv.Itoa(httpsPort)+"/a?b=c" {
			t.Errorf("plain request = %d %q", got.status, got.header.Get("Location"))
		}
	})
	t.Run("kept in storage with the ACME account", func(t *testing.T) {
		for _, glob := range []string{"certificates/*/secure.test/secure.test.crt", "acme/*/users/ops@example.com/*.key"} {
			if m, _ := filepath.Glob(filepath.Join(opt.StorageDir, glob)); len(m) == 0 {
				t.Errorf("nothing in storage matches %s", glob)
			}
		}
	})
	// A restart: the certificate comes back from storage, and is still
	// renewed at the handshakes that find it old.
	stopLoads()
	c.front.kill()
	c.front = startCaddy(t, dir, "front-again", r.Front)
	startLoads()
	t.Run("kept across a restart of the front server", func(t *testing.T) {
		cert, err := handshake("secure.test", time.Minute)
		if err != nil || cert.SerialNumber.Cmp(first.SerialNumber) != 0 {
			t.Fatalf("after a restart: %v, serial %v (was %v)", err, cert, first.SerialNumber)
		}
	})
	t.Run("renewed before it expires", func(t *testing.T) {
		// Caddy renews a certificate in the last third of its life, on
		// the handshakes that find it there (on-demand certificates).
		deadline := first.NotAfter.Add(-time.Second)
		for time.Now().Before(deadline) {
			time.Sleep(time.Second)
			cert, err := handshake("secure.test", time.Minute)
			if err != nil {
				t.Fatalf("handshake during renewal: %v", err)
			}
			if cert.SerialNumber.Cmp(first.SerialNumber) != 0 {
				if !cert.NotAfter.After(first.NotAfter) {
					t.Errorf("renewed certificate expires %v, not after the first's %v", cert.NotAfter, first.NotAfter)
				}
				return
			}
		}
		t.Fatal("the certificate was not renewed before it expired")
	})
	t.Run("a name with broken DNS gets no certificate and Caddy says why", func(t *testing.T) {
		// Caddy 2.6.2 keeps a handshake waiting while it retries (up to
		// 3 minutes): give up on it early and read the reason.
		if _, err := handshake("broken.test", 5*time.Second); err == nil {
			t.Fatal("handshake for broken.test succeeded")
		}
		if got := newFront(t, web, nil).get("broken.test", "/x"); got.status != 308 {
			t.Errorf("plain request to broken.test = %d, want its redirect", got.status)
		}
		var reason string
		for deadline := time.Now().Add(30 * time.Second); reason == "" && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			logs, _ := os.ReadFile(c.front.log)
			for _, l := range strings.Split(string(logs), "\n") {
				if strings.Contains(l, `"could not get certificate from issuer"`) && strings.Contains(l, `"identifier":"broken.test"`) {
					reason = l
				}
			}
		}
		if !strings.Contains(reason, "Could not resolve") {
			t.Errorf("the front server's log does not say why broken.test got no certificate: %q", reason)
		}
	})
	t.Run("no certificate for a name no route has", func(t *testing.T) {
		if _, err := handshake("other.test", 5*time.Second); err == nil {
			t.Fatal("handshake for other.test succeeded")
		}
		if strings.Contains(pebble.Log(), "other.test") {
			t.Error("the CA was asked for other.test")
		}
	})
}
