package router

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/httpload"
	"github.com/toppcloud/toppcloud/internal/integration"
)

const caddyBinary = "/usr/bin/caddy"

func requireCaddy(t *testing.T) {
	t.Helper()
	integration.NeedFile(t, caddyBinary, "caddy")
}

// seen is what a test upstream reports about the request it got.
type seen struct {
	Upstream  string            `json:"upstream"`
	Method    string            `json:"method"`
	Host      string            `json:"host"`
	Path      string            `json:"path"`
	Query     string            `json:"query"`
	MatchPath string            `json:"match_path"`
	Prefix    string            `json:"prefix"`
	Headers   map[string]string `json:"headers"`
	Env       map[string]string `json:"env,omitempty"`
}

func report(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := seen{
			Upstream: name, Method: r.Method, Host: r.Host, Path: r.URL.Path, Query: r.URL.RawQuery,
			MatchPath: r.Header.Get(MatchPathHeader), Prefix: r.Header.Get(ForwardedPrefixHeader),
			Headers: map[string]string{},
		}
		for k := range r.Header {
			s.Headers[k] = strings.Join(r.Header.Values(k), ",")
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s)
	}
}

// freePorts returns n distinct free loopback ports.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// unixUpstream serves h on a unix socket and returns Caddy's dial address.
func unixUpstream(t *testing.T, sock string, h http.Handler) string {
	t.Helper()
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return "unix/" + sock
}

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// caddyProc is a real caddy run in a temp dir, killed at the end of the test.
type caddyProc struct {
	admin *Admin
	log   string
	path  string // the config file it started from
	// kill ends the process (and waits for it).
	kill func()
}

// caddyPair is a node's two Caddy processes: the front server and the
// router.
type caddyPair struct {
	front, router *caddyProc
}

// startPair starts the router, then the front server (which proxies to
// the router's sockets).
func startPair(t *testing.T, dir string, r *Rendered) *caddyPair {
	t.Helper()
	router := startCaddy(t, dir, "router", r.Router)
	front := startCaddy(t, dir, "front", r.Front)
	return &caddyPair{front: front, router: router}
}

// applier is what the agent would use for this pair.
func (p *caddyPair) applier() *Applier {
	return &Applier{
		Front:  ConfigTarget{Admin: p.front.admin, Path: p.front.path},
		Router: ConfigTarget{Admin: p.router.admin, Path: p.router.path},
	}
}

// startCaddy runs caddy with config (written to dir/NAME.json, its log in
// dir/NAME.log).
func startCaddy(t *testing.T, dir, name string, config []byte) *caddyProc {
	t.Helper()
	cfgPath := filepath.Join(dir, name+".json")
	if err := os.WriteFile(cfgPath, config, 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(caddyBinary, "run", "--config", cfgPath)
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logf.Close() }()
	kill := sync.OnceFunc(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	t.Cleanup(func() {
		kill()
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				t.Logf("%s's log (last 4 KB):\n%s", name, tail(b, 4096))
			}
		}
	})

	var cfg struct {
		Admin struct{ Listen string }
	}
	if err := json.Unmarshal(config, &cfg); err != nil {
		t.Fatal(err)
	}
	p := &caddyProc{admin: NewAdmin(strings.TrimPrefix(cfg.Admin.Listen, "unix/")), log: logPath, path: cfgPath, kill: kill}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := p.admin.Current(ctx)
		cancel()
		if err == nil {
			return p
		}
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("caddy exited: %v\n%s", err, tail(b, 4096))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("caddy admin API never answered: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// front sends requests to one Caddy listener with any Host header, never
// following redirects and never reusing connections (a reload closes idle
// ones, which is not what these tests look at).
type front struct {
	t      *testing.T
	addr   string
	client *http.Client
	scheme string
}

func newFront(t *testing.T, addr string, tlsConf *tls.Config) *front {
	tr := &http.Transport{DisableKeepAlives: true, TLSClientConfig: tlsConf}
	scheme := "http"
	if tlsConf != nil {
		scheme = "https"
		// Dial the listener whatever the URL's host: the host is only
		// there for SNI and the Host header.
		tr.DialTLSContext = func(ctx context.Context, network, a string) (net.Conn, error) {
			host, _, _ := net.SplitHostPort(a)
			c := tlsConf.Clone()
			c.ServerName = host
			d := tls.Dialer{Config: c}
			return d.DialContext(ctx, "tcp", addr)
		}
	}
	return &front{t: t, addr: addr, scheme: scheme, client: &http.Client{
		Transport:     tr,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

type answer struct {
	status int
	header http.Header
	body   string
	seen   *seen
}

func (f *front) get(host, target string, hdr ...string) answer {
	f.t.Helper()
	url := f.scheme + "://" + f.addr + target
	if f.scheme == "https" {
		h, _, err := net.SplitHostPort(host)
		if err != nil {
			h = host
		}
		url = "https://" + net.JoinHostPort(h, "443") + target
	}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	req.Host = host
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := f.client.Do(req)
	if err != nil {
		f.t.Fatalf("GET %s%s: %v", host, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	a := answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		var s seen
		if err := json.Unmarshal(b, &s); err == nil && s.Upstream != "" {
			a.seen = &s
		}
	}
	return a
}

// world is the node the integration tests route for.
type world struct {
	dir                          string
	table                        *Table
	backends                     map[string]Backend
	opt                          Options
	httpPort, httpsPort, altPort int
	askPort                      int
	slowStarted, slowRelease     chan struct{}
	releaseOnce                  sync.Once
}

// release lets the slow upstream answer; also run at cleanup, since
// httptest.Server.Close waits for handlers.
func (w *world) release() { w.releaseOnce.Do(func() { close(w.slowRelease) }) }

func newWorld(t *testing.T) *world {
	dir := t.TempDir()
	ports := freePorts(t, 4)
	w := &world{
		dir: dir, httpPort: ports[0], httpsPort: ports[1], altPort: ports[2], askPort: ports[3],
		backends:    map[string]Backend{},
		slowStarted: make(chan struct{}, 1), slowRelease: make(chan struct{}),
	}
	run := filepath.Join(dir, "run")
	lay := backendLayout{WWW: filepath.Join(dir, "www"), Apps: filepath.Join(dir, "apps"), Run: run}
	for _, d := range []string{run, lay.WWW, lay.Apps} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	w.opt = Options{
		HTTPAddr:          "127.0.0.1:" + strconv.Itoa(w.httpPort),
		HTTPSAddr:         "127.0.0.1:" + strconv.Itoa(w.httpsPort),
		AdminSocket:       filepath.Join(run, "caddy-admin.sock"),
		RouterAdminSocket: filepath.Join(run, "router-admin.sock"),
		RouterDir:         run,
		AskAddr:           "127.0.0.1:" + strconv.Itoa(ports[3]),
		Issuer:            IssuerInternal,
		StorageDir:        filepath.Join(dir, "caddy-storage"),
		GracePeriod:       time.Minute,
	}
	w.table = &Table{}
	add := func(l, app, inst string, kind Kind, h http.Handler) Backend {
		t.Helper()
		mustSet(t, w.table, l, app, inst)
		b := lay.Backend(kind, app, inst)
		if h != nil {
			b.Upstream = unixUpstream(t, filepath.Join(run, inst+".sock"), h)
		}
		w.backends[inst] = b
		return b
	}

	site := add("site.test", "site", "site.1", KindPython, report("site.1"))
	writeFiles(t, site.StaticDir, map[string]string{
		"a.txt": "static-a", "both.txt": "from-static", "docs/index.html": "docs-index",
	})
	writeFiles(t, site.WritableRoot, map[string]string{
		"site.test/host.txt": "wr-host", "site.test/both.txt": "from-host",
		"site.test/host2.txt": "wr-host-2", "host2.txt": "wr-general", "common.txt": "wr-common",
	})
	blog := add("site.test/blog", "blog", "blog.1", KindPython, report("blog.1"))
	writeFiles(t, blog.StaticDir, map[string]string{"style.css": "blog-css", "index.html": "blog-static-index"})
	add("site.test/blogger", "blogger", "blogger.1", KindPython, report("blogger.1"))
	add(".wild.test", "wild", "wild.1", KindPaste, report("wild.1"))
	wild := w.backends["wild.1"]
	writeFiles(t, wild.WritableRoot, map[string]string{"a.wild.test/who.txt": "wr-a-wild", "who.txt": "wr-wild-general"})
	add(".deep.wild.test", "deep", "deep.1", KindPython, report("deep.1"))
	add("*", "catch", "catch.1", KindPython, report("catch.1"))
	add("*/blog", "catchblog", "catchblog.1", KindPython, report("catchblog.1"))

	// A command app on TCP, mounted at a path.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cmdSrv := httptest.NewUnstartedServer(report("go.1"))
	cmdSrv.Listener = l
	cmdSrv.Start()
	t.Cleanup(cmdSrv.Close)
	gob := add("site.test/go", "goapp", "go.1", KindCommand, nil)
	gob.Upstream = l.Addr().String()
	w.backends["go.1"] = gob

	// A PHP app: Go's FastCGI responder stands in for php-fpm.
	php := add("site.test/wiki", "wiki", "wiki.1", KindPHP, nil)
	php.PHPRoot = filepath.Join(lay.WWW, "wiki.1", "htdocs")
	writeFiles(t, php.PHPRoot, map[string]string{
		"index.php": "<?php", "other.php": "<?php", "logo.png": "png-bytes", "sub/index.php": "<?php",
	})
	fl, err := net.Listen("unix", filepath.Join(run, "wiki.1.php.sock"))
	if err != nil {
		t.Fatal(err)
	}
	go fcgiParams(fl, "wiki.1")
	t.Cleanup(func() { fl.Close() })
	php.Upstream = "unix/" + fl.Addr().String()
	w.backends["wiki.1"] = php

	// A PHP app whose front controller (the runner) lives outside
	// php_root, with SCRIPT_FILENAME as a sandboxed php-fpm sees it.
	shop := add("site.test/shop", "shop", "shop.1", KindPHP, nil)
	shop.PHPRoot = filepath.Join(lay.WWW, "shop.1", "web")
	shop.PHPScriptRoot = "/srv/instance/web"
	shop.PHPFrontController = "/srv/instance/index.php"
	writeFiles(t, shop.PHPRoot, map[string]string{"page.php": "<?php", "img.png": "img-bytes"})
	sl, err := net.Listen("unix", filepath.Join(run, "shop.1.php.sock"))
	if err != nil {
		t.Fatal(err)
	}
	go fcgiParams(sl, "shop.1")
	t.Cleanup(func() { sl.Close() })
	shop.Upstream = "unix/" + sl.Addr().String()
	w.backends["shop.1"] = shop

	stat := add("static.test", "docs", "docs.1", KindStatic, nil)
	writeFiles(t, stat.StaticDir, map[string]string{"index.html": "static-home", "guide/index.html": "static-guide"})

	add("off.test", "off", "off.1", KindPython, report("off.1"))
	if _, err := w.table.Disable("off"); err != nil {
		t.Fatal(err)
	}
	add("ported.test:"+strconv.Itoa(w.altPort), "ported", "ported.1", KindPython, report("ported.1"))
	add("https://secure.test", "secure", "secure.1", KindPython, report("secure.1"))
	// A deploy made old.2 live; old.1 answers at prev.old.test.
	add("old.test", "old", "old.1", KindPython, report("old.1"))
	add("old.test", "old", "old.2", KindPython, report("old.2"))

	add("site.test/slow", "slow", "slow.1", KindPython, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.slowStarted <- struct{}{}
		<-w.slowRelease
		report("slow.1")(rw, r)
	}))
	t.Cleanup(w.release) // before the server's Close, which runs after it

	// The instance a later Load switches site.test to.
	w.backends["site.2"] = lay.Backend(KindPython, "site", "site.2")
	b2 := w.backends["site.2"]
	b2.Upstream = unixUpstream(t, filepath.Join(run, "site.2.sock"), report("site.2"))
	w.backends["site.2"] = b2
	return w
}

func (w *world) render(t *testing.T) *Rendered {
	t.Helper()
	r, err := Render(w.table, byRoute(w.table, w.backends), w.opt)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Warnings) > 0 {
		t.Fatalf("render warnings: %v", r.Warnings)
	}
	return r
}

func TestCaddy_Integration(t *testing.T) {
	requireCaddy(t)
	w := newWorld(t)
	config := w.render(t)
	c := startPair(t, w.dir, config)
	web := newFront(t, "127.0.0.1:"+strconv.Itoa(w.httpPort), nil)

	t.Run("routing agrees with Match", func(t *testing.T) {
		// Requests that reach an app, a redirect, the not-found or the
		// disabled page: Caddy must do what Match says.
		cases := []struct{ host, target string }{
			{"site.test", "/"}, {"SITE.test", "/x/y?q=1"}, {"site.test:" + strconv.Itoa(w.httpPort), "/"},
			{"site.test", "/blog/post/1"}, {"site.test", "/blogger/"},
			{"site.test", "/blogs"}, {"site.test", "/Blog/"}, {"site.test", "/blog"},
			{"site.test", "/blog?page=2"}, {"site.test", "/blog?"}, {"site.test", "/x/../blog/a"},
			{"site.test", "/bl%6Fg/a"}, {"site.test", "/go"}, {"site.test", "/go/api/v1?x=1"},
			{"wild.test", "/"}, {"a.wild.test", "/p"}, {"a.b.wild.test", "/"}, {"deep.wild.test", "/"},
			{"x.deep.wild.test", "/"}, {"xwild.test", "/"}, {"unknown.example", "/"},
			{"unknown.example", "/blog/x"}, {"unknown.example", "/blog"},
			{"off.test", "/"}, {"off.test", "/anything"},
			{"ported.test:" + strconv.Itoa(w.httpPort), "/"},
			{"ported.test:" + strconv.Itoa(w.altPort), "/a"},
			// prev. hosts: the previous instance, else not found (not
			// the catch-all app).
			{"old.test", "/"}, {"prev.old.test", "/x"}, {"PREV.old.test", "/"},
			{"prev.site.test", "/"}, {"prev.site.test", "/blog/x"}, {"prev.a.wild.test", "/"},
		}
		for _, tc := range cases {
			got := web.get(tc.host, tc.target)
			want := Match(w.table, Request{Host: tc.host, Target: tc.target})
			if got.status != want.Status {
				t.Errorf("%s%s: caddy %d, Match %d (%+v)", tc.host, tc.target, got.status, want.Status, want)
				continue
			}
			switch want.Status {
			case 200:
				if got.seen == nil || got.seen.Upstream != want.Route.Live {
					t.Errorf("%s%s: answered by %+v, Match says %s", tc.host, tc.target, got.seen, want.Route.Live)
				}
			case 308:
				if loc := got.header.Get("Location"); loc != want.Redirect {
					t.Errorf("%s%s: Location %q, Match %q", tc.host, tc.target, loc, want.Redirect)
				}
			}
		}
	})

	t.Run("apps learn their mount", func(t *testing.T) {
		s := web.get("site.test", "/blog/post/1?x=y").seen
		if s == nil || s.Path != "/blog/post/1" || s.MatchPath != "/blog" || s.Query != "x=y" || s.Host != "site.test" {
			t.Errorf("python under /blog saw %+v", s)
		}
		if s := web.get("site.test", "/deep/x").seen; s == nil || s.MatchPath != "/" || s.Path != "/deep/x" {
			t.Errorf("python at / saw %+v", s)
		}
		s = web.get("site.test", "/go/api/v1?x=1").seen
		if s == nil || s.Path != "/api/v1" || s.Prefix != "/go" || s.MatchPath != "/go" || s.Query != "x=1" {
			t.Errorf("command app under /go saw %+v", s)
		}
		if s := web.get("site.test", "/go/").seen; s == nil || s.Path != "/" {
			t.Errorf("command app at /go/ saw %+v", s)
		}
	})

	t.Run("client copies of our headers are dropped", func(t *testing.T) {
		s := web.get("site.test", "/blog/x", MatchPathHeader, "/evil", ForwardedPrefixHeader, "/evil")
		if s.seen == nil || s.seen.MatchPath != "/blog" || s.seen.Headers[ForwardedPrefixHeader] != "" {
			t.Errorf("python saw %+v", s.seen)
		}
		s = web.get("site.test", "/go/x", MatchPathHeader, "/evil", ForwardedPrefixHeader, "/evil")
		if s.seen == nil || s.seen.MatchPath != "/go" || s.seen.Prefix != "/go" {
			t.Errorf("command app saw %+v", s.seen)
		}
		s = web.get("site.test", "/wiki/x", MatchPathHeader, "/evil")
		if s.seen == nil || s.seen.Headers[MatchPathHeader] != "" {
			t.Errorf("php saw %+v", s.seen)
		}
	})

	t.Run("static, then writable-root/HOST, then writable-root, then the app", func(t *testing.T) {
		for _, tc := range []struct{ host, target, body string }{
			{"site.test", "/a.txt", "static-a"},
			{"site.test", "/both.txt", "from-static"},
			{"site.test", "/host.txt", "wr-host"},
			{"Site.Test", "/host.txt", "wr-host"},
			{"site.test", "/host2.txt", "wr-host-2"},
			{"site.test", "/common.txt", "wr-common"},
			{"site.test", "/docs/", "docs-index"},
			{"site.test", "/blog/style.css", "blog-css"},
			{"site.test", "/blog/", "blog-static-index"},
			{"a.wild.test", "/who.txt", "wr-a-wild"},
			{"b.wild.test", "/who.txt", "wr-wild-general"},
			{"static.test", "/", "static-home"},
			{"static.test", "/guide/", "static-guide"},
		} {
			got := web.get(tc.host, tc.target)
			if got.status != 200 || got.body != tc.body {
				t.Errorf("%s%s = %d %q, want %q", tc.host, tc.target, got.status, tc.body, tc.body)
			}
		}
		// A directory without its slash gets one, under the mount.
		if got := web.get("site.test", "/docs"); got.status != 308 || got.header.Get("Location") != "/docs/" {
			t.Errorf("/docs = %d %q", got.status, got.header.Get("Location"))
		}
		// Files below the mount are not found from above it.
		if got := web.get("site.test", "/style.css"); got.seen == nil || got.seen.Upstream != "site.1" {
			t.Errorf("/style.css should reach site.1: %+v", got)
		}
		// No static file: the app answers.
		if got := web.get("site.test", "/nope.txt"); got.seen == nil || got.seen.Upstream != "site.1" {
			t.Errorf("/nope.txt should reach site.1: %+v", got)
		}
		// A Host header that is not a plain name never becomes a path.
		if got := web.get("..", "/who.txt"); got.seen == nil || got.seen.Upstream != "catch.1" {
			t.Errorf("Host '..' should reach the catch-all app: %+v", got)
		}
		if got := web.get("static.test", "/missing"); got.status != 404 || !strings.Contains(got.body, "<title>Not Found</title>") {
			t.Errorf("static site missing file = %d %q", got.status, got.body)
		}
	})

	t.Run("php", func(t *testing.T) {
		s := web.get("site.test", "/wiki/some/page?a=b").seen
		if s == nil || s.Env["SCRIPT_NAME"] != "/wiki/index.php" || s.Env["SILVER_MATCH_PATH"] != "/wiki" ||
			!strings.HasSuffix(s.Env["SCRIPT_FILENAME"], "/wiki.1/htdocs/index.php") || s.Env["REQUEST_URI"] != "/wiki/some/page?a=b" {
			t.Errorf("front controller saw %+v", s)
		}
		s = web.get("site.test", "/wiki/other.php/extra").seen
		if s == nil || s.Env["SCRIPT_NAME"] != "/wiki/other.php" || !strings.HasSuffix(s.Env["SCRIPT_FILENAME"], "/htdocs/other.php") {
			t.Errorf("other.php saw %+v", s)
		}
		if got := web.get("site.test", "/wiki/logo.png"); got.status != 200 || got.body != "png-bytes" {
			t.Errorf("php static file = %d %q", got.status, got.body)
		}
		if got := web.get("site.test", "/wiki/sub"); got.status != 308 || got.header.Get("Location") != "/wiki/sub/" {
			t.Errorf("php dir = %d %q", got.status, got.header.Get("Location"))
		}
		if s := web.get("site.test", "/wiki/sub/").seen; s == nil || s.Env["SCRIPT_NAME"] != "/wiki/sub/index.php" {
			t.Errorf("php sub/ saw %+v", s)
		}
	})

	t.Run("php front controller", func(t *testing.T) {
		for _, target := range []string{"/shop/some/page?a=b", "/shop/missing.php", "/shop/"} {
			s := web.get("site.test", target).seen
			path, _, _ := strings.Cut(strings.TrimPrefix(target, "/shop"), "?")
			if s == nil || s.Env["SCRIPT_FILENAME"] != "/srv/instance/index.php" || s.Env["SCRIPT_NAME"] != "/shop/index.php" ||
				s.Env["PATH_INFO"] != path || s.Env["REQUEST_URI"] != target || s.Env["SILVER_MATCH_PATH"] != "/shop" {
				t.Errorf("%s: front controller saw %+v", target, s)
			}
		}
		s := web.get("site.test", "/shop/page.php/extra").seen
		if s == nil || s.Env["SCRIPT_FILENAME"] != "/srv/instance/web/page.php" || s.Env["SCRIPT_NAME"] != "/shop/page.php" || s.Env["PATH_INFO"] != "/extra" {
			t.Errorf("page.php saw %+v", s)
		}
		if got := web.get("site.test", "/shop/img.png"); got.status != 200 || got.body != "img-bytes" {
			t.Errorf("file under php_root = %d %q", got.status, got.body)
		}
	})

	t.Run("internal header stripped", func(t *testing.T) {
		s := web.get("site.test", "/x", InternalHeader, "forged").seen
		if s == nil || s.Headers[InternalHeader] != "" {
			t.Errorf("the app saw %+v", s)
		}
	})

	t.Run("pages", func(t *testing.T) {
		got := web.get("off.test", "/x")
		if got.status != 503 || !strings.Contains(got.body, "Temporarily Unavailable") || got.header.Get("Content-Type") != "text/html; charset=utf-8" {
			t.Errorf("disabled = %d %q %q", got.status, got.header.Get("Content-Type"), got.body)
		}
		got = web.get("ported.test:"+strconv.Itoa(w.httpPort), "/x")
		if got.status != 200 || got.seen.Upstream != "catch.1" {
			t.Errorf("ported.test on the wrong port should fall to the catch-all: %+v", got)
		}
	})

	t.Run("extra port listener", func(t *testing.T) {
		alt := newFront(t, "127.0.0.1:"+strconv.Itoa(w.altPort), nil)
		if s := alt.get("ported.test:"+strconv.Itoa(w.altPort), "/a").seen; s == nil || s.Upstream != "ported.1" {
			t.Errorf("ported.test on its port: %+v", s)
		}
	})

	t.Run("https with the internal issuer", func(t *testing.T) {
		got := web.get("secure.test", "/login?next=/")
		want := "https://secure.test:" + strconv.Itoa(w.httpsPort) + "/login?next=/"
		if got.status != 308 || got.header.Get("Location") != want {
			t.Fatalf("plain request = %d %q, want 308 %q", got.status, got.header.Get("Location"), want)
		}
		pool := x509.NewCertPool()
		rootPath := filepath.Join(w.opt.StorageDir, "pki", "authorities", "local", "root.crt")
		var secure *front
		deadline := time.Now().Add(30 * time.Second)
		for {
			// The CA and the certificate are made in the background after
			// a load; wait for them.
			if pem, err := os.ReadFile(rootPath); err == nil && pool.AppendCertsFromPEM(pem) {
				secure = newFront(t, "127.0.0.1:"+strconv.Itoa(w.httpsPort), &tls.Config{RootCAs: pool})
				req, _ := http.NewRequest("GET", "https://secure.test/", nil)
				if resp, err := secure.client.Do(req); err == nil {
					resp.Body.Close()
					break
				} else if time.Now().After(deadline) {
					t.Fatalf("TLS handshake: %v", err)
				}
			} else if time.Now().After(deadline) {
				t.Fatalf("no internal CA at %s", rootPath)
			}
			time.Sleep(100 * time.Millisecond)
		}
		s := secure.get("secure.test", "/x").seen
		if s == nil || s.Upstream != "secure.1" || s.Headers["X-Forwarded-Proto"] != "https" ||
			s.Headers["X-Forwarded-For"] != "127.0.0.1" || s.Headers["X-Forwarded-Host"] != "secure.test" {
			t.Errorf("https request saw %+v", s)
		}
		// No certificate for a name no https route has: the handshake
		// fails, and nothing is issued for it.
		req, _ := http.NewRequest("GET", "https://site.test/", nil)
		if resp, err := secure.client.Do(req); err == nil {
			resp.Body.Close()
			t.Error("TLS handshake for site.test (an http:// route) succeeded")
		}
		if _, err := os.Stat(filepath.Join(w.opt.StorageDir, "certificates", "local", "site.test")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a certificate was made for site.test: %v", err)
		}
	})

	t.Run("apps see the client as the front server saw it", func(t *testing.T) {
		s := web.get("site.test", "/x", "X-Forwarded-For", "6.6.6.6", "X-Forwarded-Proto", "https").seen
		if s == nil || s.Headers["X-Forwarded-For"] != "127.0.0.1" || s.Headers["X-Forwarded-Proto"] != "http" || s.Headers["X-Forwarded-Host"] != "site.test" {
			t.Errorf("python saw %+v", s)
		}
		s = web.get("site.test", "/wiki/x").seen
		if s == nil || s.Env["REMOTE_ADDR"] != "127.0.0.1" || s.Env["REQUEST_SCHEME"] != "http" || s.Env["HTTPS"] != "" {
			t.Errorf("php saw %+v", s)
		}
	})

	t.Run("the router answers the front server's certificate questions", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			want int
		}{{"secure.test", 200}, {"SECURE.test", 200}, {"site.test", 404}, {"x.secure.test", 404}, {"secure.test.evil", 404}, {"", 404}} {
			resp, err := http.Get("http://" + w.opt.AskAddr + AskPath + "?domain=" + tc.name)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("ask %q = %d, want %d", tc.name, resp.StatusCode, tc.want)
			}
		}
	})

	t.Run("admin client and applier", func(t *testing.T) {
		ctx := context.Background()
		did, err := c.applier().Apply(ctx, config)
		if err != nil || did != (Applied{}) {
			t.Fatalf("Apply of the running configs = %+v, %v; want no load (Caddy's GET /config/ must round-trip our JSON)", did, err)
		}
		// Our renderer always emits the same admin section; a refused
		// config must leave the admin API where it was.
		bad := fmt.Sprintf(`{"admin":{"listen":"unix/%s","config":{"persist":false}},"apps":{"http":{"servers":{"x":{"listen":["127.0.0.1:1"],"routes":[{"handle":[{"handler":"nope"}]}]}}}}}`, w.opt.RouterAdminSocket)
		err = c.router.admin.Load(ctx, []byte(bad))
		var ae *AdminError
		if !errors.As(err, &ae) || ae.Status != 400 || !strings.Contains(ae.Message, "nope") {
			t.Fatalf("bad config: err = %v", err)
		}
		if got := web.get("site.test", "/"); got.seen == nil || got.seen.Upstream != "site.1" {
			t.Fatalf("after a refused load the old config must still serve: %+v", got)
		}
		if _, err := c.router.admin.Current(ctx); err != nil {
			t.Fatalf("admin API after a refused load: %v", err)
		}
		if _, err := NewAdmin(filepath.Join(w.dir, "nothing.sock")).Current(ctx); !errors.Is(err, ErrAdminUnreachable) {
			t.Fatalf("missing socket: err = %v", err)
		}
	})

	t.Run("load a change while a request is in flight", func(t *testing.T) {
		ctx := context.Background()
		slowDone := make(chan answer, 1)
		go func() {
			// A fresh front: t.Fatal must not run off the test goroutine.
			f := newFront(t, web.addr, nil)
			req, _ := http.NewRequest("GET", "http://"+web.addr+"/slow/x", nil)
			req.Host = "site.test"
			resp, err := f.client.Do(req)
			if err != nil {
				slowDone <- answer{status: -1, body: err.Error()}
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			slowDone <- answer{status: resp.StatusCode, body: string(b)}
		}()
		select {
		case <-w.slowStarted:
		case <-time.After(30 * time.Second):
			t.Fatal("slow request never reached its upstream")
		}

		mustSet(t, w.table, "site.test", "site", "site.2")
		next := w.render(t)
		a := c.applier()
		did, err := a.Apply(ctx, next)
		if err != nil || did != (Applied{Router: true}) {
			t.Fatalf("Apply = %+v, %v; want the router's config loaded, the front server's untouched", did, err)
		}
		// /load returns once the new servers run; the old server's accept
		// loop can still take a connection for a moment (the listening
		// socket is shared), so the first request may see the old
		// config. Within a short while every request must see the new.
		deadline := time.Now().Add(5 * time.Second)
		for {
			got := web.get("site.test", "/")
			if got.seen != nil && got.seen.Upstream == "site.2" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after the load: %+v", got)
			}
			time.Sleep(20 * time.Millisecond)
		}
		for range 20 {
			if got := web.get("site.test", "/"); got.seen == nil || got.seen.Upstream != "site.2" {
				t.Fatalf("the old config answered again after the new one did: %+v", got)
			}
		}
		if got := web.get("site.test", "/blog/"); got.body != "blog-static-index" {
			t.Fatalf("unchanged route after the load: %+v", got)
		}
		onDisk, _ := os.ReadFile(c.router.path)
		if string(onDisk) != string(next.Router) {
			t.Fatal("config file not updated after the load")
		}
		if did, err := a.Apply(ctx, next); err != nil || did != (Applied{}) {
			t.Fatalf("second Apply = %+v, %v; want no load", did, err)
		}

		w.release()
		select {
		case got := <-slowDone:
			if got.status != 200 || !strings.Contains(got.body, `"upstream":"slow.1"`) {
				t.Fatalf("in-flight request = %d %s", got.status, got.body)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("in-flight request never completed")
		}
	})
}

// testOptions are Options for a pair of Caddy processes under dir, the
// front server's plain listener on 127.0.0.1:httpPort.
func testOptions(t *testing.T, dir string, httpPort int) Options {
	ports := freePorts(t, 2)
	return Options{
		HTTPAddr:          "127.0.0.1:" + strconv.Itoa(httpPort),
		HTTPSAddr:         "127.0.0.1:" + strconv.Itoa(ports[0]),
		AdminSocket:       filepath.Join(dir, "admin.sock"),
		RouterAdminSocket: filepath.Join(dir, "router-admin.sock"),
		RouterDir:         dir,
		AskAddr:           "127.0.0.1:" + strconv.Itoa(ports[1]),
		Issuer:            IssuerInternal,
		StorageDir:        filepath.Join(dir, "caddy-storage"),
	}
}

// TestCaddy_RouteChangesUnderLoad sends requests continuously from several
// clients to one app while other routes change (a location added and
// removed, an app disabled and enabled, the app's own instance switched
// by a new config), and requires every request to succeed: GET and POST,
// on new and on kept-alive connections, to an app that does not read the
// POST body.
//
// What used to fail, with one Caddy (measured with Caddy 2.6.2; rerun the
// numbers with bench/routechange):
//   - kept-alive POSTs at a reload: a config load shuts the old servers
//     down, and Go's Shutdown closes idle keep-alive connections; a
//     request the client sent on one at that instant gets EOF or a reset.
//     Clients retry idempotent requests only. Now route changes reload
//     the router only, whose connections from the front server are never
//     idle (used once), and the front server keeps its config.
//   - POSTs to an app that answers without reading the body, reload or
//     not: see singleUseTransport.
func TestCaddy_RouteChangesUnderLoad(t *testing.T) {
	requireCaddy(t)
	w := newWorld(t)
	c := startPair(t, w.dir, w.render(t))
	a := c.applier()
	addr := "127.0.0.1:" + strconv.Itoa(w.httpPort)
	frontBefore, err := c.front.admin.Current(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	extra, err := ParsePattern("extra.test/new")
	if err != nil {
		t.Fatal(err)
	}
	changes := []func(){
		func() { mustSet(t, w.table, "extra.test/new", "blogger", "blogger.1") },
		func() { w.table.Remove([]Pattern{extra}, false) },
		func() { _, _ = w.table.Disable("blogger") },
		func() { w.table.Enable("blogger") },
		func() { mustSet(t, w.table, "site.test", "site", "site.2") },
		func() { mustSet(t, w.table, "site.test", "site", "site.1") },
	}
	for _, mode := range []struct {
		name      string
		method    string
		keepAlive bool
	}{
		{"keep-alive GET", http.MethodGet, true},
		{"new connection GET", http.MethodGet, false},
		{"keep-alive POST", http.MethodPost, true},
		{"new connection POST", http.MethodPost, false},
	} {
		t.Run(mode.name, func(t *testing.T) {
			r := loadDuringChanges(t, addr, mode.method, mode.keepAlive, func(i int) {
				changes[i%len(changes)]()
				did, err := a.Apply(context.Background(), w.render(t))
				if err != nil {
					t.Error(err)
				}
				if did.Front {
					t.Error("a route change loaded a new config into the front server")
				}
			})
			t.Logf("%d route changes under load (%s): %d requests ok, %d failed", 2*len(changes), mode.name, r.OK, len(r.Failures))
			if r.OK == 0 {
				t.Error("no request succeeded")
			}
			if len(r.Failures) > 0 {
				t.Errorf("%d requests failed during route changes, e.g. %q", len(r.Failures), r.Failures[:min(len(r.Failures), 5)])
			}
		})
	}
	frontAfter, err := c.front.admin.Current(context.Background())
	if err != nil || !sameJSON(frontBefore, frontAfter) {
		t.Errorf("the front server's config changed (%v)", err)
	}
}

// loadDuringChanges runs 4 clients against addr while change(0..11) runs,
// with traffic on each state in between.
func loadDuringChanges(t *testing.T, addr, method string, keepAlive bool, change func(i int)) httpload.Result {
	l := startLoad(addr, "site.test", "/blog/x", method, keepAlive, 4, 0)
	for i := range 12 {
		change(i)
		// Let some traffic run on each config before the next change.
		l.Wait(50, 30*time.Second)
	}
	return l.Stop()
}

// startLoad starts clients sending requests without pause (or with a
// pause between requests), counting the ones that fail: a transport
// error or any status but 200.
func startLoad(addr, host, target, method string, keepAlive bool, clients int, pause time.Duration) *httpload.Load {
	cfg := httpload.Config{Addr: addr, Host: host, Path: target, Body: "form=data", Pause: pause, Timeout: 10 * time.Second}
	for range clients {
		cfg.Clients = append(cfg.Clients, httpload.Client{Method: method, KeepAlive: keepAlive})
	}
	return httpload.Start(cfg)
}

// TestCaddy_ValidateGolden runs `caddy validate` on every golden config:
// Caddy decodes modules strictly, so a field it does not know fails here.
func TestCaddy_ValidateGolden(t *testing.T) {
	requireCaddy(t)
	front, err := filepath.Glob(filepath.Join("testdata", "*.front.json"))
	if err != nil {
		t.Fatal(err)
	}
	router, err := filepath.Glob(filepath.Join("testdata", "*.router.json"))
	files := append(front, router...)
	if err != nil || len(front) == 0 || len(router) == 0 {
		t.Fatalf("no golden configs: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			dir := t.TempDir()
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			// Keep provisioning (the internal CA) inside the temp dir, and
			// trust a root file that exists here (the system's bundle).
			data = []byte(strings.ReplaceAll(string(data), "/var/lib/toppcloud/caddy", filepath.Join(dir, "storage")))
			data = []byte(strings.ReplaceAll(string(data), "/etc/toppcloud/acme-ca-root.pem", "/etc/ssl/certs/ca-certificates.crt"))
			cfg := filepath.Join(dir, "caddy.json")
			if err := os.WriteFile(cfg, data, 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(caddyBinary, "validate", "--config", cfg)
			cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "Valid configuration") {
				t.Fatalf("caddy validate: %v\n%s", err, tail(out, 4096))
			}
		})
	}
}

// TestCaddy_SlotSwitchUnderLoad checks the switch the agent relies on:
// a route whose upstream and static directory are reached through one
// symlink ("slot") follows an atomic replacement of that symlink with no
// new config, under load with and without keep-alive, GET and POST,
// without a failed request; and once switched, the old upstream gets no
// further request (Caddy pools no connection to it).
func TestCaddy_SlotSwitchUnderLoad(t *testing.T) {
	requireCaddy(t)
	dir := t.TempDir()
	port := freePorts(t, 1)[0]
	var mu sync.Mutex
	hits := map[string]int{}
	for _, name := range []string{"a", "b"} {
		inst := filepath.Join(dir, "instances", name)
		writeFiles(t, filepath.Join(inst, "www", "static"), map[string]string{"who.txt": "static-" + name})
		sock := filepath.Join(dir, name+".sock")
		unixUpstream(t, sock, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			mu.Lock()
			hits[name]++
			mu.Unlock()
			_, _ = io.WriteString(rw, "app-"+name)
		}))
		if err := os.Symlink(sock, filepath.Join(inst, "sock")); err != nil {
			t.Fatal(err)
		}
	}
	slots := filepath.Join(dir, "slots")
	if err := os.MkdirAll(slots, 0o755); err != nil {
		t.Fatal(err)
	}
	slot := filepath.Join(slots, "switch")
	point := func(name string) {
		t.Helper()
		tmp := slot + ".tmp"
		_ = os.Remove(tmp)
		if err := os.Symlink(filepath.Join(dir, "instances", name), tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, slot); err != nil {
			t.Fatal(err)
		}
	}
	point("a")
	tb := &Table{}
	mustSet(t, tb, "switch.test", "sw", "sw.1")
	backends := map[string]Backend{tb.Routes[0].Location.Key(): {
		Kind: KindPython, Upstream: "unix/" + filepath.Join(slot, "sock"), StaticDir: filepath.Join(slot, "www", "static"),
	}}
	r, err := Render(tb, backends, testOptions(t, dir, port))
	if err != nil {
		t.Fatal(err)
	}
	startPair(t, dir, r)
	addr := "127.0.0.1:" + strconv.Itoa(port)

	var ok, failed int
	var failures []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 4 {
		keepAlive, post := i%2 == 0, i >= 2
		wg.Go(func() {
			client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: !keepAlive}}
			defer client.CloseIdleConnections()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				method, target, body := http.MethodGet, "/x", io.Reader(nil)
				if post {
					method, body = http.MethodPost, strings.NewReader("form=data")
				}
				if n%5 == 4 {
					method, target, body = http.MethodGet, "/who.txt", nil
				}
				req, _ := http.NewRequest(method, "http://"+addr+target, body)
				req.Host = "switch.test"
				resp, err := client.Do(req)
				var b []byte
				if err == nil {
					b, _ = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				mu.Lock()
				switch {
				case err != nil:
					failed++
					failures = append(failures, err.Error())
				case resp.StatusCode != 200 || !(strings.HasPrefix(string(b), "app-") || strings.HasPrefix(string(b), "static-")):
					failed++
					failures = append(failures, fmt.Sprintf("%s %q", resp.Status, b))
				default:
					ok++
				}
				mu.Unlock()
			}
		})
	}
	waitFor := func(n int) {
		mu.Lock()
		target := ok + failed + n
		mu.Unlock()
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
			mu.Lock()
			done := ok+failed >= target
			mu.Unlock()
			if done {
				return
			}
		}
	}
	for i := range 20 {
		waitFor(40)
		point([]string{"b", "a"}[i%2])
	}
	waitFor(40)
	// The last switch went to "a"; now to "b" for good.
	point("b")
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	before := hits["a"]
	mu.Unlock()
	waitFor(200)
	close(stop)
	wg.Wait()
	t.Logf("21 switches under load: %d requests ok, %d failed", ok, failed)
	if failed > 0 {
		t.Errorf("%d requests failed, e.g. %q", failed, failures[:min(5, len(failures))])
	}
	if hits["a"] != before {
		t.Errorf("the old upstream got %d requests after the switch away from it", hits["a"]-before)
	}
	front := newFront(t, addr, nil)
	if got := front.get("switch.test", "/who.txt"); got.body != "static-b" {
		t.Errorf("static file after the switch = %q", got.body)
	}
}
