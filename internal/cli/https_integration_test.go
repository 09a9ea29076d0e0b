package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/acmetest"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

// httpsClient asks addr (the node) for https://host/target, trusting
// roots, never following redirects.
func httpsGet(addr, host, target string, roots *x509.CertPool) (int, string, *x509.Certificate, error) {
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: host},
		DialTLSContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			d := tls.Dialer{Config: &tls.Config{RootCAs: roots, ServerName: host}}
			return d.DialContext(ctx, "tcp", net.JoinHostPort(addr, "443"))
		},
		DisableKeepAlives: true,
		Proxy:             nil,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Timeout: 30 * time.Second, Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get("https://" + host + target)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.TLS.PeerCertificates[0], nil
}

// redirectOf asks addr for http://host/target and returns the redirect.
func redirectOf(t *testing.T, addr, host, target string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+target, nil)
	req.Host = host
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET http://%s%s: %v", host, target, err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}

// certificateOf returns what query says of loc's certificate.
func certificateOf(q protocol.QueryResult, loc string) *protocol.CertificateInfo {
	for _, r := range q.Routes {
		if r.Location == loc {
			return r.Certificate
		}
	}
	return nil
}

// localAddrTo is this machine's address on the way to ip.
func localAddrTo(t *testing.T, ip string) string {
	t.Helper()
	c, err := net.Dial("udp", net.JoinHostPort(ip, "80"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String()
}

// testHTTPS runs the HTTPS subtests on the shared node: first with the
// node's own CA (a local node's default), then with a real ACME CA
// (Pebble, in this process) that validates the node over HTTP-01 through
// its front server. It returns a check that the ACME certificate is
// still the one served (after a reboot), to run at the end.
func testHTTPS(t *testing.T, e *localEnv, node, addr, app string, w web, sh func(*testing.T, string) string) (stillServed func(t *testing.T)) {
	t.Run("https with the node's own CA", func(t *testing.T) {
		out := e.ok("update", app, "https://own.test", "--node", node)
		if !strings.Contains(out, "certificate for own.test from") {
			t.Errorf("update did not report the certificate:\n%s", out)
		}
		if code, loc := redirectOf(t, addr, "own.test", "/a/b?c=d"); code != http.StatusPermanentRedirect || loc != "https://own.test/a/b?c=d" {
			t.Errorf("plain http = %d %q", code, loc)
		}
		pemOut := e.ok("node-ca", node)
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM([]byte(pemOut)) {
			t.Fatalf("node-ca printed no certificate:\n%s", pemOut)
		}
		code, body, _, err := httpsGet(addr, "own.test", "/", roots)
		if err != nil || code != 200 || !strings.Contains(body, "Hello") {
			t.Fatalf("https://own.test/ with node-ca's root = %d %v", code, err)
		}
		if c := certificateOf(e.query(node), "https://own.test"); c == nil || c.NotAfter.IsZero() || c.Error != "" {
			t.Errorf("query's certificate = %+v", c)
		}
	})

	// The CA: on this machine, at the address the node reaches it by;
	// it validates HTTP-01 on the node's port 80 and finds nothing on
	// the TLS-ALPN-01 port, so HTTP-01 through the node's own front
	// server is the only way a certificate can be had. Certificates live
	// a minute, so Caddy renews within the test.
	closed := func() int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}()
	pebble := acmetest.Start(t, acmetest.Options{IP: localAddrTo(t, addr), HTTPPort: 80, TLSPort: closed, Validity: time.Minute})
	pebble.SetA("acme.test", addr)
	pebble.ServFail("broken.test")
	root := filepath.Join(e.home, "pebble-ca.pem")
	if err := os.WriteFile(root, pebble.CARootPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	var first *x509.Certificate

	t.Run("https from an ACME CA over HTTP-01, no request failing meanwhile", func(t *testing.T) {
		e.appendConfig(fmt.Sprintf("acme_ca = %s\nacme_ca_root = %s\nacme_email = ops@example.com\n", pebble.DirectoryURL, root))
		e.ok("setup-node", node)
		l := startLoad(t, w.addr, "zd.test")
		out := e.ok("update", app, "https://acme.test", "--node", node)
		time.Sleep(time.Second)
		l.stop()
		if !strings.Contains(out, "certificate for acme.test from Pebble") {
			t.Errorf("update did not report the certificate:\n%s", out)
		}
		if !pebble.ValidatedHTTP01("acme.test") {
			t.Error("the CA did not validate acme.test over HTTP-01")
		}
		var err error
		var code int
		code, _, first, err = httpsGet(addr, "acme.test", "/", pebble.Roots())
		if err != nil || code != 200 {
			t.Fatalf("https://acme.test/ = %d %v", code, err)
		}
		if c := certificateOf(e.query(node), "https://acme.test"); c == nil || !strings.Contains(c.Issuer, "Pebble") {
			t.Errorf("query's certificate = %+v", c)
		}
	})
	if first == nil {
		t.Fatal("no ACME certificate; the rest depends on it")
	}

	t.Run("kept across restarts and redeploys", func(t *testing.T) {
		sh(t, "systemctl restart toppcloud-router.service caddy.service")
		e.ok("update", app, "https://acme.test", "--node", node, "--force")
		var cert *x509.Certificate
		waitFor(t, 30*time.Second, func() bool {
			_, _, c, err := httpsGet(addr, "acme.test", "/", pebble.Roots())
			cert = c
			return err == nil
		})
		if cert.SerialNumber.Cmp(first.SerialNumber) != 0 && time.Until(first.NotAfter) > 15*time.Second {
			t.Errorf("a restart and a redeploy replaced the certificate (serial %x, was %x) before it was due", cert.SerialNumber, first.SerialNumber)
		}
		if mode := strings.TrimSpace(sh(t, "stat -c '%U %a' /var/lib/toppcloud/caddy")); mode != "caddy 700" {
			t.Errorf("storage is %q, want caddy's, 0700", mode)
		}
	})

	t.Run("prev.HOST of an https location gets its own certificate over HTTP-01", func(t *testing.T) {
		// The redeploy above made the first instance acme.test's previous
		// one.
		pebble.SetA("prev.acme.test", addr)
		var code int
		var body string
		waitFor(t, time.Minute, func() bool {
			var err error
			code, body, _, err = httpsGet(addr, "prev.acme.test", "/", pebble.Roots())
			// 200 once the previous instance is armed, which the update
			// has done in the background.
			return err == nil && code == 200
		})
		if code != 200 || !strings.Contains(body, "Hello") {
			t.Errorf("https://prev.acme.test/ = %d\n%s", code, body)
		}
		if !pebble.ValidatedHTTP01("prev.acme.test") {
			t.Error("the CA did not validate prev.acme.test over HTTP-01")
		}
	})

	t.Run("renewed before it expires", func(t *testing.T) {
		for time.Now().Before(first.NotAfter) {
			_, _, c, err := httpsGet(addr, "acme.test", "/", pebble.Roots())
			if err == nil && c.SerialNumber.Cmp(first.SerialNumber) != 0 && c.NotAfter.After(first.NotAfter) {
				return
			}
			time.Sleep(time.Second)
		}
		t.Fatalf("acme.test's certificate was not renewed before it expired; the front server's lines about it:\n%s",
			sh(t, "journalctl -u caddy.service -o cat --no-pager | grep acme.test | tail -40"))
	})

	t.Run("a failed issuance is reported with the CA's reason and http keeps serving", func(t *testing.T) {
		code, out, stderr := e.run2("update", app, "https://broken.test", "--node", node)
		if code != ExitOK || !strings.Contains(stderr+out, "no certificate for broken.test yet") || !strings.Contains(stderr+out, "Could not resolve") {
			t.Errorf("update to https://broken.test: exit %d\n%s%s", code, stderr, out)
		}
		if code, loc := redirectOf(t, addr, "broken.test", "/x"); code != http.StatusPermanentRedirect || loc != "https://broken.test/x" {
			t.Errorf("plain http to broken.test = %d %q", code, loc)
		}
		w.expect("zd.test", "/", 200, "Hello")
		if c := certificateOf(e.query(node), "https://broken.test"); c == nil || !c.NotAfter.IsZero() || !strings.Contains(c.Error, "Could not resolve") {
			t.Errorf("query's certificate = %+v", c)
		}
		if _, out, _ := e.run2("logs", "https://broken.test", "--node", node); !strings.Contains(out, "front server: ") || !strings.Contains(out, "could not get certificate from issuer") {
			t.Errorf("logs lack the front server's lines:\n%s", out)
		}
	})

	return func(t *testing.T) {
		_, _, c, err := httpsGet(addr, "acme.test", "/", pebble.Roots())
		if err != nil {
			t.Fatalf("https://acme.test/ after the reboot: %v", err)
		}
		if !c.NotAfter.After(first.NotAfter) {
			t.Errorf("served certificate expires %v, not the renewed one", c.NotAfter)
		}
	}
}

// testRouteChangesUnderLoad adds and removes a location, disables and
// enables an app, while clients send GET and POST on new and kept-alive
// connections to another app: none may fail.
func testRouteChangesUnderLoad(t *testing.T, e *localEnv, node string, w web) {
	t.Run("route changes under load fail no request", func(t *testing.T) {
		mover := copyApp(t, "python", map[string]string{"app.ini": "[production]\napp_name = mover\nrunner = app.py\n"})
		e.ok("update", mover, "mover.test", "--node", node)
		l := startLoad(t, w.addr, "zd.test")
		for i := range 3 {
			loc := fmt.Sprintf("mover-%d.test", i)
			e.ok("update", mover, loc, "--node", node)
			e.ok("deactivate", loc, "--node", node)
			e.ok("disable", "--by-name", "mover", "--node", node)
			e.ok("enable", "--by-name", "mover", "--node", node)
		}
		time.Sleep(time.Second)
		l.stop()
		w.expect("mover.test", "/", 200, "Hello")
	})
}

// appendConfig adds lines to the [provider:default] section (the last in
// the file).
func (e *localEnv) appendConfig(lines string) {
	e.t.Helper()
	f, err := os.OpenFile(filepath.Join(e.home, ".toppcloud.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(lines); err != nil {
		e.t.Fatal(err)
	}
}
