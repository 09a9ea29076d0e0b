package sitetest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"testing"
	"time"
)

// secureHost is the site's https location: TLS ends at the balancer.
const secureHost = "secure.test"

// schemeApp answers "NODE SCHEME CLIENT": where the request went,
// whether the app believes it came over https, and the client address it
// was given (REMOTE_ADDR, which toppcloud's WSGI wrapper sets from the
// X-Forwarded-For the node's front server passes on).
const schemeApp = `import socket
NODE = socket.gethostname()


def application(environ, start_response):
    out = '%s %s %s\n' % (NODE, environ['wsgi.url_scheme'], environ.get('REMOTE_ADDR') or '-')
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [out.encode()]
`

// writeSchemeApp writes schemeApp into a new temporary directory.
func writeSchemeApp(t *testing.T) string {
	t.Helper()
	return writeFiles(t, map[string]string{
		"app.ini": "[production]\napp_name = scheme\nrunner = app.py\n",
		"app.py":  schemeApp,
	})
}

// httpsDo asks addr:443 for https://host/target with a custom header set
// (pairs of name, value), trusting roots, without following redirects.
func httpsDo(addr, host, target string, roots *x509.CertPool, header ...string) (int, string, error) {
	conf := &tls.Config{RootCAs: roots, ServerName: host}
	tr := &http.Transport{
		TLSClientConfig: conf,
		DialTLSContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			d := tls.Dialer{Config: conf}
			return d.DialContext(ctx, "tcp", net.JoinHostPort(addr, "443"))
		},
		DisableKeepAlives: true,
		Proxy:             nil,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Timeout: 30 * time.Second, Transport: tr}
	req, err := http.NewRequest(http.MethodGet, "https://"+host+target, nil)
	if err != nil {
		return 0, "", err
	}
	return send(client, req, header...)
}
