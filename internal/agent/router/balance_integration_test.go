package router

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/httpload"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

// nodeOptions are a node's Options in dir with free loopback ports.
func nodeOptions(t *testing.T, dir string) Options {
	t.Helper()
	ports := freePorts(t, 3)
	run := filepath.Join(dir, "run")
	if err := os.MkdirAll(run, 0o755); err != nil {
		t.Fatal(err)
	}
	return Options{
		HTTPAddr:          "127.0.0.1:" + strconv.Itoa(ports[0]),
		HTTPSAddr:         "127.0.0.1:" + strconv.Itoa(ports[1]),
		AdminSocket:       filepath.Join(run, "caddy-admin.sock"),
		RouterAdminSocket: filepath.Join(run, "router-admin.sock"),
		RouterDir:         run,
		AskAddr:           "127.0.0.1:" + strconv.Itoa(ports[2]),
		Issuer:            IssuerInternal,
		StorageDir:        filepath.Join(dir, "caddy-storage"),
		GracePeriod:       time.Minute,
	}
}

// appNode stands in for a site's app node behind a balancer: its front
// server's health route, and an app that names the node, checks a POST's
// body and tells what X-Forwarded-* it got. It can be stopped and
// started again on the same address.
type appNode struct {
	t    *testing.T
	name string
	addr string
	mu   sync.Mutex
	srv  *http.Server
	done chan struct{}
}

func newAppNode(t *testing.T, name string) *appNode {
	n := &appNode{t: t, name: name, addr: "127.0.0.1:" + strconv.Itoa(freePorts(t, 1)[0])}
	n.start()
	t.Cleanup(n.stop)
	return n
}

func (n *appNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Host == protocol.HealthHost && r.URL.Path == protocol.HealthPath {
		fmt.Fprintln(w, "ok")
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil || (r.Method == http.MethodPost && string(body) != "form=data") {
		http.Error(w, fmt.Sprintf("body %q: %v", body, err), http.StatusBadRequest)
		return
	}
	// A little work, so that requests overlap a stop.
	time.Sleep(2 * time.Millisecond)
	fmt.Fprintf(w, "%s host=%s xff=%s xfp=%s xfh=%s\n", n.name, r.Host,
		r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Forwarded-Host"))
}

func (n *appNode) start() {
	n.t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	var l net.Listener
	var err error
	for range 50 { // the port may linger a moment after a stop
		if l, err = net.Listen("tcp", n.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		n.t.Fatal(err)
	}
	n.srv = &http.Server{Handler: n}
	n.done = make(chan struct{})
	go func(srv *http.Server, done chan struct{}) { _ = srv.Serve(l); close(done) }(n.srv, n.done)
}

// stop shuts the node down as systemd would stop a node: requests in
// flight finish, idle connections close, new connections are refused.
func (n *appNode) stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = n.srv.Shutdown(ctx)
	<-n.done
	n.srv = nil
}

// startBalancer renders and starts a balancer node's pair for sites.
func startBalancer(t *testing.T, opt Options, sites ...Balanced) (*caddyPair, func(...Balanced)) {
	t.Helper()
	render := func(sites []Balanced) *Rendered {
		o := opt
		o.Balanced = sites
		r, err := Render(&Table{}, nil, o)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	p := startPair(t, t.TempDir(), render(sites))
	apply := func(sites ...Balanced) {
		t.Helper()
		did, err := p.applier().Apply(context.Background(), render(sites))
		if err != nil {
			t.Fatal(err)
		}
		if did.Front {
			t.Error("a balance change loaded a new config into the front server")
		}
	}
	return p, apply
}

// waitHealthy waits until the node's health route answers.
func waitHealthy(t *testing.T, addr string) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+protocol.HealthPath, nil)
		req.Host = protocol.HealthHost
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
	}
	t.Fatalf("%s never became healthy", addr)
}

func TestCaddy_BalancerProxies(t *testing.T) {
	requireCaddy(t)
	web1, web2 := newAppNode(t, "web1"), newAppNode(t, "web2")
	opt := nodeOptions(t, t.TempDir())
	site, err := ParseBalanced(protocol.BalanceArgs{Site: "blog", Locations: []string{"blog.test", "other.test/api"},
		Upstreams: []string{web1.addr, web2.addr}})
	if err != nil {
		t.Fatal(err)
	}
	_, apply := startBalancer(t, opt, site)
	web := newFront(t, opt.HTTPAddr, nil)

	seen := map[string]bool{}
	for range 20 {
		a := web.get("blog.test", "/x?y=1", "X-Forwarded-For", "6.6.6.6")
		if a.status != 200 {
			t.Fatalf("GET blog.test: %d %s", a.status, a.body)
		}
		node, rest, _ := strings.Cut(a.body, " ")
		seen[node] = true
		// The client's own X-Forwarded-For is replaced; Host is kept.
		if want := "host=blog.test xff=127.0.0.1 xfp=http xfh=blog.test\n"; rest != want {
			t.Errorf("upstream saw %q, want %q", rest, want)
		}
	}
	if !seen["web1"] || !seen["web2"] {
		t.Errorf("requests went to %v, want both nodes", seen)
	}
	if a := web.get("other.test", "/api/v1"); a.status != 200 {
		t.Errorf("GET other.test/api/v1: %d", a.status)
	}
	// Outside the site's locations: the balancer's own router (nothing
	// deployed here).
	if a := web.get("other.test", "/"); a.status != 404 {
		t.Errorf("GET other.test/: %d, want 404", a.status)
	}
	if a := web.get(protocol.HealthHost, protocol.HealthPath); a.status != 200 {
		t.Errorf("the balancer's own health route: %d", a.status)
	}

	// Out: no new requests.
	site.Out = []string{web2.addr}
	apply(site)
	for range 20 {
		if a := web.get("blog.test", "/"); !strings.HasPrefix(a.body, "web1 ") {
			t.Fatalf("with web2 out, got %d %q", a.status, a.body)
		}
	}
}

// TestCaddy_BalancerUnderLoad: GETs and POSTs, on new and kept-alive
// connections, go on through a balancer while one app node is taken out,
// stopped, started and put back (as a rolling update or stop-node does),
// then while it stops without being taken out first (a crash).
func TestCaddy_BalancerUnderLoad(t *testing.T) {
	requireCaddy(t)
	web1, web2 := newAppNode(t, "web1"), newAppNode(t, "web2")
	opt := nodeOptions(t, t.TempDir())
	site, err := ParseBalanced(protocol.BalanceArgs{Site: "blog", Locations: []string{"blog.test"}, Upstreams: []string{web1.addr, web2.addr}})
	if err != nil {
		t.Fatal(err)
	}
	_, apply := startBalancer(t, opt, site)

	type mode struct {
		name      string
		method    string
		keepAlive bool
	}
	modes := []mode{
		{"keep-alive GET", http.MethodGet, true},
		{"new connection GET", http.MethodGet, false},
		{"keep-alive POST", http.MethodPost, true},
		{"new connection POST", http.MethodPost, false},
	}
	run := func(phase string, steps func(wait func())) map[string]*httpload.Load {
		loads := map[string]*httpload.Load{}
		for _, m := range modes {
			loads[m.name] = startLoad(opt.HTTPAddr, "blog.test", "/x", m.method, m.keepAlive, 2, 0)
		}
		wait := func() {
			for _, l := range loads {
				l.Wait(100, 30*time.Second)
			}
		}
		wait()
		steps(wait)
		for _, m := range modes {
			r := loads[m.name].Stop()
			t.Logf("%s, %s: %d requests ok, %d failed %q", phase, m.name, r.OK, len(r.Failures), r.Failures[:min(len(r.Failures), 3)])
			if r.OK == 0 {
				t.Errorf("%s, %s: no request succeeded", phase, m.name)
			}
			if len(r.Failures) > 0 && (m.method == http.MethodGet || phase == "planned") {
				t.Errorf("%s, %s: %d requests failed", phase, m.name, len(r.Failures))
			}
		}
		return loads
	}

	run("planned", func(wait func()) {
		out := site
		out.Out = []string{web2.addr}
		apply(out)
		time.Sleep(200 * time.Millisecond) // requests in flight to web2 finish
		web2.stop()
		wait()
		web2.start()
		waitHealthy(t, web2.addr)
		apply(site)
		wait()
	})
	// Unplanned: web2 goes away while it gets requests. GETs are tried
	// on web1; a POST that was sent to web2 fails (Caddy cannot resend
	// its body), then passive and active checks keep web2 out.
	run("unplanned", func(wait func()) {
		web2.stop()
		wait()
		web2.start()
		waitHealthy(t, web2.addr)
		time.Sleep(2 * BalanceHealthInterval) // the active checks see it again
		wait()
	})
}

// TestCaddy_TrustProxies: an app node's front server believes
// X-Forwarded-* from its balancer only, and serves an https location to
// it over plain HTTP when the balancer says the client used https.
func TestCaddy_TrustProxies(t *testing.T) {
	requireCaddy(t)
	dir := t.TempDir()
	opt := nodeOptions(t, dir)
	opt.TrustProxies = []string{"127.0.0.2"}
	tb := &Table{}
	mustSet(t, tb, "plain.test", "app", "app.1")
	mustSet(t, tb, "https://secure.test", "app", "app.1")
	b := Backend{Kind: KindCommand, Upstream: unixUpstream(t, filepath.Join(dir, "app.sock"), report("app"))}
	r, err := Render(tb, byRoute(tb, map[string]Backend{"app.1": b}), opt)
	if err != nil {
		t.Fatal(err)
	}
	startPair(t, dir, r)

	get := func(from, host string) answer {
		t.Helper()
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		client := &http.Client{
			Transport:     &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Timeout:       10 * time.Second,
		}
		req, _ := http.NewRequest(http.MethodGet, "http://"+opt.HTTPAddr+"/p", nil)
		req.Host = host
		req.Header.Set("X-Forwarded-For", "203.0.113.9")
		req.Header.Set("X-Forwarded-Proto", "https")
		req.Header.Set("X-Forwarded-Host", "forwarded.test")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		a := answer{status: resp.StatusCode, header: resp.Header}
		body, _ := io.ReadAll(resp.Body)
		a.body = string(body)
		if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			var s seen
			if jsonErr := json.Unmarshal(body, &s); jsonErr == nil {
				a.seen = &s
			}
		}
		return a
	}

	tests := []struct {
		from, host    string
		status        int
		xff, xfp, xfh string
	}{
		// The balancer: its headers are kept, and https says which
		// routes apply.
		{"127.0.0.2", "plain.test", 200, "203.0.113.9", "https", "forwarded.test"},
		{"127.0.0.2", "secure.test", 200, "203.0.113.9", "https", "forwarded.test"},
		// Anyone else: replaced, as on a node of its own; the https
		// location redirects.
		{"127.0.0.1", "plain.test", 200, "127.0.0.1", "http", "plain.test"},
		{"127.0.0.1", "secure.test", 308, "", "", ""},
	}
	for _, tc := range tests {
		a := get(tc.from, tc.host)
		if a.status != tc.status {
			t.Errorf("from %s, %s: status %d, want %d (%s)", tc.from, tc.host, a.status, tc.status, a.body)
			continue
		}
		if tc.status != 200 {
			continue
		}
		if a.seen == nil {
			t.Fatalf("from %s, %s: not the app: %s", tc.from, tc.host, a.body)
		}
		h := a.seen.Headers
		if h["X-Forwarded-For"] != tc.xff || h["X-Forwarded-Proto"] != tc.xfp || h["X-Forwarded-Host"] != tc.xfh {
			t.Errorf("from %s, %s: app saw X-Forwarded-For %q, -Proto %q, -Host %q; want %q %q %q", tc.from, tc.host,
				h["X-Forwarded-For"], h["X-Forwarded-Proto"], h["X-Forwarded-Host"], tc.xff, tc.xfp, tc.xfh)
		}
	}
}
