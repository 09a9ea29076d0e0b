package router

import (
	"cmp"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/location"
)

// Defaults for Options.
const (
	DefaultHTTPAddr  = ":80"
	DefaultHTTPSAddr = ":443"
	// DefaultAskAddr: see Options.AskAddr.
	DefaultAskAddr = "127.0.0.1:2020"
	// DefaultGracePeriod bounds how long Caddy lets requests that were in
	// flight when a new config loaded finish on the old one. Caddy 2.6's
	// own default is forever.
	DefaultGracePeriod = 30 * time.Second
)

// What the front server allows a client, so that slow or huge requests
// cost the node little and never tie up an app: it reads a request's
// headers within ReadHeaderTimeout and the whole request within
// ReadTimeout, closes idle keep-alive connections after IdleTimeout,
// refuses bodies over MaxBody (413), and reads a chunked body (one
// without a Content-Length, which a client can trickle for ever) to its
// end before the request goes on, refusing one over MaxBufferedBody. (A
// body with a small Content-Length is buffered too, see proxyRoutes.)
// An app's workers therefore only ever see requests whose bodies have
// arrived, or large uploads that arrive at the client's pace, bounded by
// ReadTimeout.
const (
	ReadHeaderTimeout = 15 * time.Second
	ReadTimeout       = 5 * time.Minute
	IdleTimeout       = 2 * time.Minute
	MaxBody           = 256 << 20
	MaxBufferedBody   = 16 << 20
)

// TLS issuers for https locations.
const (
	// IssuerACME gets public certificates (Let's Encrypt, ZeroSSL); the
	// node must be reachable under the name on ports 80 or 443.
	IssuerACME = "acme"
	// IssuerInternal signs certificates with Caddy's local CA: for nodes
	// without public DNS, and for tests.
	IssuerInternal = "internal"
)

// MatchPathHeader carries the mount path ("/blog") to python, paste and
// command apps; the WSGI bootstrap moves it into SCRIPT_NAME. Caddy deletes
// any copy a client sends before routing, so apps can trust it.
const MatchPathHeader = "X-Toppcloud-Match-Path"

// ForwardedPrefixHeader tells command apps, which get the request with the
// mount path stripped, where they are mounted (the usual convention of
// proxies for apps behind a path prefix).
const ForwardedPrefixHeader = "X-Forwarded-Prefix"

// InternalHeader carries an instance's token on the agent's own requests
// (update_fetch), which go to the instance directly. Caddy deletes any copy
// a client sends, so an app can trust what its bootstrap checks. It is
// instance.InternalHeader.
const InternalHeader = "X-Toppcloud-Internal"

var (
	//go:embed pages/notfound.html
	notFoundPage string
	//go:embed pages/disabled.html
	disabledPage string
)

// Kind is how an instance is run and reached.
type Kind string

// Instance kinds.
const (
	// KindPython: a WSGI app under gunicorn; gets the full path and
	// MatchPathHeader.
	KindPython Kind = "python"
	// KindPaste: a Paste Deploy app, served like KindPython.
	KindPaste Kind = "paste"
	// KindCommand: any program listening on Upstream; gets the path with
	// the mount stripped, and MatchPathHeader and ForwardedPrefixHeader.
	KindCommand Kind = "command"
	// KindPHP: php-fpm on Upstream, PHPRoot served php_fastcgi-style.
	KindPHP Kind = "php"
	// KindStatic: files only, no process.
	KindStatic Kind = "static"
)

// Backend says how to reach one live instance.
type Backend struct {
	Kind Kind
	// Upstream is the address Caddy dials: "unix//run/toppcloud/INSTANCE.sock"
	// or "127.0.0.1:PORT". Not used for KindStatic.
	Upstream string
	// StaticDir is the instance's static/ directory, served before the
	// app; "" for none.
	StaticDir string
	// WritableRoot is the app's writable-root directory: WritableRoot/HOST/
	// then WritableRoot/ are served after StaticDir; "" for none.
	WritableRoot string
	// PHPRoot is the directory php_root names (KindPHP only), as Caddy
	// sees it: existing .php files under it run, other existing files are
	// served as they are.
	PHPRoot string
	// PHPScriptRoot is the same directory as the PHP process sees it, for
	// SCRIPT_FILENAME; "" means PHPRoot. The two differ when Caddy reaches
	// the instance through a stable path (a slot symlink) that the
	// sandboxed php-fpm cannot see.
	PHPScriptRoot string
	// PHPFrontController is the script (as the PHP process sees it) that
	// answers every request naming no file under PHPRoot: the app's
	// runner, as in the original. "" means PHPRoot's index.php.
	PHPFrontController string
}

// Options are the node-wide settings of the rendered configs.
type Options struct {
	// HTTPAddr is the plain HTTP listener (DefaultHTTPAddr).
	HTTPAddr string
	// HTTPSAddr is the TLS listener (DefaultHTTPSAddr). It is always
	// open, so that a new https location needs no change of the front
	// server's config.
	HTTPSAddr string
	// AdminSocket is the unix socket of the front server's admin API
	// (the node's, layout.Default). No admin API listens on TCP.
	AdminSocket string
	// RouterAdminSocket is the router's admin API (the node's).
	RouterAdminSocket string
	// RouterDir holds the unix sockets the router listens on, one per
	// front server (the node's).
	RouterDir string
	// AskAddr is the loopback TCP address where the router tells the
	// front server which names may get a certificate (DefaultAskAddr):
	// Caddy 2.6 asks over plain HTTP on TCP only.
	AskAddr string
	// GracePeriod: see DefaultGracePeriod.
	GracePeriod time.Duration
	// Issuer is IssuerACME (the default) or IssuerInternal.
	Issuer string
	// ACMEEmail is given to the ACME CA, if set.
	ACMEEmail string
	// ACMECA is the ACME directory URL; "" is Let's Encrypt.
	ACMECA string
	// ACMECARoot is a PEM file (on the node) of roots to trust for the
	// ACME server's own certificate, for private CAs; "" trusts the
	// system's roots.
	ACMECARoot string
	// StorageDir is where the front server keeps certificates, ACME
	// account keys and its internal CA; "" leaves Caddy's default
	// ($XDG_DATA_HOME/caddy).
	StorageDir string
	// Balanced are the sites this node balances (a balancer's
	// balance.json): the router proxies their locations to the sites'
	// app nodes (see balancedInner). Their https locations get
	// certificates as routes do.
	Balanced []Balanced
	// TrustProxies are the addresses (IPs or CIDR ranges: a site's
	// balancer) whose X-Forwarded-* the front server believes (see
	// trustedRoutes); from anyone else they are replaced.
	TrustProxies []string
}

func (o Options) withDefaults() Options {
	if o.HTTPAddr == "" {
		o.HTTPAddr = DefaultHTTPAddr
	}
	if o.HTTPSAddr == "" {
		o.HTTPSAddr = DefaultHTTPSAddr
	}
	node := layout.Default()
	if o.AdminSocket == "" {
		o.AdminSocket = node.AdminSocket
	}
	if o.RouterAdminSocket == "" {
		o.RouterAdminSocket = node.RouterAdminSocket
	}
	if o.RouterDir == "" {
		o.RouterDir = node.RouterDir
	}
	if o.AskAddr == "" {
		o.AskAddr = DefaultAskAddr
	}
	if o.GracePeriod == 0 {
		o.GracePeriod = DefaultGracePeriod
	}
	if o.Issuer == "" {
		o.Issuer = IssuerACME
	}
	return o
}

func (o Options) check() error {
	for _, s := range []struct{ what, path string }{
		{"admin socket", o.AdminSocket}, {"router admin socket", o.RouterAdminSocket}, {"router directory", o.RouterDir},
	} {
		if !strings.HasPrefix(s.path, "/") || strings.ContainsAny(s.path, "{} ") {
			return fmt.Errorf("render: %s %q: must be an absolute path", s.what, s.path)
		}
	}
	if o.Issuer != IssuerACME && o.Issuer != IssuerInternal {
		return fmt.Errorf("render: unknown TLS issuer %q (use %q or %q)", o.Issuer, IssuerACME, IssuerInternal)
	}
	if o.ACMECARoot != "" && !filepath.IsAbs(o.ACMECARoot) {
		return fmt.Errorf("render: ACME CA root %q: must be an absolute path", o.ACMECARoot)
	}
	if o.ACMECA != "" && !strings.HasPrefix(o.ACMECA, "https://") {
		return fmt.Errorf("render: ACME directory %q: must be an https:// URL", o.ACMECA)
	}
	if !checkTrustProxies(o.TrustProxies) {
		return fmt.Errorf("render: trusted proxies %q: want IP addresses or CIDR ranges", o.TrustProxies)
	}
	host, _, err := splitAddr(o.AskAddr)
	if err != nil {
		return fmt.Errorf("render: ask address: %w", err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("render: ask address %q: must be a loopback IP and port", o.AskAddr)
	}
	return nil
}

// Rendered is the pair of Caddy configs for a table, and what had to be
// left out of them.
type Rendered struct {
	// Front is the front server's config (caddy.service): the public
	// listeners, TLS and certificates, and a proxy of every request to
	// the router. It depends on the set of ports and on Options only, so
	// adding or removing a location, disabling or enabling an app leaves
	// it byte-for-byte the same and the front server is not reloaded.
	Front []byte
	// Router is the router's config (toppcloud-router.service): the
	// route table. It is reloaded on route changes; it only ever has
	// single-use connections from the front server, so a reload fails no
	// request (see Render).
	Router []byte
	// Warnings name routes rendered as unavailable (no or bad backend) or
	// left out (port conflicts). The rest of the table is served.
	Warnings []error
}

// RouteError is a route Render could not serve as asked.
type RouteError struct {
	Route Route
	Err   error
}

func (e *RouteError) Error() string {
	if s := e.Route.site; s != nil {
		return fmt.Sprintf("location %s of site %s: %v", e.Route.Location, s.Site, e.Err)
	}
	return fmt.Sprintf("route %s (app %s, instance %s): %v", e.Route.Location, e.Route.App, e.Route.Live, e.Err)
}

func (e *RouteError) Unwrap() error { return e.Err }

// Names of the two servers of each config, and of the router's sockets.
const (
	serverHTTP  = "http"
	serverHTTPS = "https"
	serverAsk   = "tls-ask"
)

// AskPath is the path of the router's answer to "may NAME get a
// certificate?" on AskAddr.
const AskPath = "/tls-allowed"

// RouterSocket is the unix socket the router listens on for the front
// server named server ("http" or "https").
func (o Options) RouterSocket(server string) string {
	return filepath.Join(o.withDefaults().RouterDir, "router-"+server+".sock")
}

// Render turns the table into the front server's and the router's Caddy
// configs. backends maps each active route, by its location's Key, to how
// its live instance is reached; the live instance's name itself does not
// appear in the config, so a caller that reaches instances through stable
// paths (the agent's slots) switches instances without a new config. The
// output depends only on the inputs and is byte-for-byte stable: hosts
// most specific first, mounts longest first, so an unchanged table gives
// identical bytes and the agent can skip the reload.
//
// Why two Caddy processes: Caddy (2.6.2 as every later version) applies
// any config change by starting new servers and shutting the old ones
// down, and Go's http.Server.Shutdown closes idle keep-alive connections.
// A client that sends a request on such a connection at that instant
// gets EOF or a reset; browsers and Go retry idempotent requests, so the
// casualties are POSTs (bench/routechange measures them). The front
// server holds every client connection and never changes on a route
// change; the router does, and reloads harmlessly because the front
// server opens a new connection to it for every request (a new
// connection is never closed by a shutdown).
//
// Connections to the router and to unix-socket upstreams are used once
// (singleUseTransport): a pooled connection would outlive a switch of the
// socket path to another instance and keep sending requests to the old
// one, and the agent's drain counts an instance's connections. A unix
// socket connect costs microseconds.
//
// Per request the router does what Match describes, then, inside a
// mount: the instance's static/ file, then writable-root/HOST/, then
// writable-root/ (a directory serves its index.html), then the app. Every
// router server first deletes client-sent MatchPathHeader,
// ForwardedPrefixHeader and InternalHeader.
func Render(t *Table, backends map[string]Backend, opt Options) (*Rendered, error) {
	opt = opt.withDefaults()
	httpHost, httpPort, err := splitAddr(opt.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("render: http address: %w", err)
	}
	httpsHost, httpsPort, err := splitAddr(opt.HTTPSAddr)
	if err != nil {
		return nil, fmt.Errorf("render: https address: %w", err)
	}
	if httpPort == httpsPort {
		return nil, fmt.Errorf("render: http and https addresses share port %d", httpPort)
	}
	if err := opt.check(); err != nil {
		return nil, err
	}
	r := &renderer{t: t, backends: backends, opt: opt, httpsPort: httpsPort}

	// Balanced locations first: a table route at the same place is left
	// out.
	balanced, err := balancedRoutes(opt.Balanced)
	if err != nil {
		return nil, err
	}
	taken := map[string]bool{}
	for _, rt := range balanced {
		taken[rt.Location.Key()] = true
	}
	served := balanced
	for _, rt := range t.Served() {
		if taken[rt.Location.Key()] {
			if !rt.IsPrev() {
				r.warn(rt, errors.New("the location is balanced to a site's nodes: route left out"))
			}
			continue
		}
		served = append(served, rt)
	}

	// Which port each route is served on decides plain or TLS for that
	// port; the main two are fixed, others follow their routes' scheme.
	tlsPort := map[int]bool{httpPort: false, httpsPort: true}
	var routes []Route
	for _, rt := range served {
		if rt.served() && rt.Location.Port != 0 && rt.Location.Port != httpPort && rt.Location.Port != httpsPort && rt.Location.HTTPS() {
			tlsPort[rt.Location.Port] = true
		}
	}
	for _, rt := range served {
		if !rt.served() {
			continue
		}
		if p := rt.Location.Port; p != 0 {
			if isTLS, ok := tlsPort[p]; ok && isTLS != rt.Location.HTTPS() {
				if rt.IsPrev() {
					continue // left out with its route, which says so
				}
				r.warn(rt, fmt.Errorf("port %d is used for %s, not %s: route left out", p, schemeOf(isTLS), rt.Location.Scheme))
				continue
			}
			if _, ok := tlsPort[p]; !ok {
				tlsPort[p] = false
			}
		}
		routes = append(routes, rt)
	}

	// Two front servers, plain and TLS, each listening on all of its
	// ports; each hands its requests to its own router server, which
	// carries the route tree: routes with a port check the Host header's
	// port themselves, and the router knows plain from TLS by the socket
	// a request came in on.
	var plainListen, tlsListen []string
	for port, isTLS := range tlsPort {
		if isTLS {
			tlsListen = append(tlsListen, net.JoinHostPort(httpsHost, strconv.Itoa(port)))
		} else {
			plainListen = append(plainListen, net.JoinHostPort(httpHost, strconv.Itoa(port)))
		}
	}
	slices.Sort(plainListen)
	slices.Sort(tlsListen)

	front, err := r.front(httpPort, httpsPort, plainListen, tlsListen)
	if err != nil {
		return nil, err
	}
	router, err := r.router(routes)
	if err != nil {
		return nil, err
	}
	return &Rendered{Front: front, Router: router, Warnings: r.warnings}, nil
}

// front renders the front server's config.
func (r *renderer) front(httpPort, httpsPort int, plainListen, tlsListen []string) ([]byte, error) {
	opt := r.opt
	app := httpApp{GracePeriod: opt.GracePeriod.String(), Servers: map[string]*caddyServer{}}
	if httpPort != 80 {
		app.HTTPPort = httpPort
	}
	if httpsPort != 443 {
		app.HTTPSPort = httpsPort
	}
	for _, l := range []struct {
		name   string
		listen []string
		tls    bool
	}{{serverHTTP, plainListen, false}, {serverHTTPS, tlsListen, true}} {
		srv := &caddyServer{
			Listen: l.listen,
			// No HTTP/3: Caddy 2.6 closes HTTP/3 connections abruptly
			// when its config changes.
			Protocols: []string{"h1", "h2"},
			// Every name is routed by the router and certificates are
			// obtained on demand for the names it allows: no automatic
			// HTTPS, so no surprise redirects or certificate requests
			// for plain-http routes. ACME HTTP-01 challenges are
			// answered by every server regardless.
			AutomaticHTTPS:    autoHTTPS{Disable: true},
			ReadHeaderTimeout: ReadHeaderTimeout.String(),
			ReadTimeout:       ReadTimeout.String(),
			IdleTimeout:       IdleTimeout.String(),
			// Small bodies are buffered here too: see proxyRoutes.
			Routes: withTrusted(frontRoutes(reverseProxyHandler{
				Handler:   "reverse_proxy",
				Transport: singleUseTransport(),
				Upstreams: []upstream{{Dial: "unix/" + opt.RouterSocket(l.name)}},
			}), trustedRoutes(opt)),
			// The router down or restarting: the unavailable page.
			Errors: &serverErrors{Routes: errorRoutes()},
		}
		if l.tls {
			srv.TLSConnectionPolicies = []tlsConnPolicy{{}}
		}
		app.Servers[l.name] = srv
	}

	iss := issuer{Module: opt.Issuer}
	if opt.Issuer == IssuerACME {
		iss.CA, iss.Email = opt.ACMECA, opt.ACMEEmail
		if opt.ACMECARoot != "" {
			iss.TrustedRootsPEMFiles = []string{opt.ACMECARoot}
		}
	}
	cfg := caddyConfig{
		Admin: caddyAdmin{Listen: "unix/" + opt.AdminSocket},
		Apps: caddyApps{
			HTTP: app,
			// On demand: a certificate is obtained at the first
			// handshake for a name the router allows (the agent makes
			// that handshake itself when it adds an https location), so
			// a new https location changes no config.
			TLS: &tlsApp{Automation: tlsAutomation{
				Policies: []automationPolicy{{Issuers: []issuer{iss}, OnDemand: true}},
				OnDemand: onDemandConf{Ask: "http://" + opt.AskAddr + AskPath},
			}},
		},
	}
	if opt.Issuer == IssuerInternal {
		cfg.Apps.PKI = &pkiApp{CertificateAuthorities: map[string]pkiCA{"local": {InstallTrust: false}}}
	}
	if opt.StorageDir != "" {
		cfg.Storage = &caddyStorage{Module: "file_system", Root: opt.StorageDir}
	}
	return marshalConfig(cfg)
}

// router renders the router's config.
func (r *renderer) router(routes []Route) ([]byte, error) {
	opt := r.opt
	app := httpApp{GracePeriod: opt.GracePeriod.String(), Servers: map[string]*caddyServer{}}
	for _, s := range []struct {
		name string
		tls  bool
	}{{serverHTTP, false}, {serverHTTPS, true}} {
		app.Servers[s.name] = &caddyServer{
			Listen:         []string{"unix/" + opt.RouterSocket(s.name)},
			Protocols:      []string{"h1"},
			AutomaticHTTPS: autoHTTPS{Disable: true},
			Routes:         r.serverRoutes(routes, s.tls),
			Errors:         &serverErrors{Routes: errorRoutes()},
		}
	}
	app.Servers[serverAsk] = &caddyServer{
		Listen:         []string{opt.AskAddr},
		Protocols:      []string{"h1"},
		AutomaticHTTPS: autoHTTPS{Disable: true},
		Routes:         askRoutes(routes),
	}
	return marshalConfig(caddyConfig{
		Admin: caddyAdmin{Listen: "unix/" + opt.RouterAdminSocket},
		Apps:  caddyApps{HTTP: app},
	})
}

func marshalConfig(cfg caddyConfig) ([]byte, error) {
	out, err := json.MarshalIndent(cfg, "", "\t")
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	return append(out, '\n'), nil
}

// askRoutes answer the front server's "may NAME get a certificate?"
// (GET AskPath?domain=NAME): 200 for the hosts of https routes, for
// `.example.com` the domain and every name below it;
// 404 for anything else, so that no client can make the node request
// certificates for names it does not serve.
func askRoutes(routes []Route) []caddyRoute {
	var patterns []string
	for _, rt := range routes {
		if !rt.Location.HTTPS() {
			continue
		}
		l := rt.Location
		if l.Wildcard() {
			patterns = append(patterns, `(?:[a-z0-9-]+\.)*`+regexp.QuoteMeta(l.Host[1:]))
		} else {
			patterns = append(patterns, regexp.QuoteMeta(l.Host))
		}
	}
	slices.Sort(patterns)
	patterns = slices.Compact(patterns)
	var out []caddyRoute
	if len(patterns) > 0 {
		out = append(out, caddyRoute{
			Match: []matcherSet{{
				Path: []string{AskPath},
				VarsRegexp: map[string]regexpMatcher{"{http.request.uri.query.domain}": {
					Pattern: `(?i)^(?:` + strings.Join(patterns, "|") + `)$`,
				}},
			}},
			Handle:   []handler{staticResponse{Handler: "static_response", StatusCode: "200"}},
			Terminal: true,
		})
	}
	return append(out, caddyRoute{Handle: []handler{staticResponse{Handler: "static_response", StatusCode: "404"}}})
}

func schemeOf(isTLS bool) string {
	if isTLS {
		return location.HTTPS
	}
	return location.HTTP
}

func splitAddr(addr string) (host string, port int, err error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("%q: bad port", addr)
	}
	return host, port, nil
}

type renderer struct {
	t         *Table
	backends  map[string]Backend
	opt       Options
	httpsPort int
	warnings  []error
}

// warn records a problem with a route once, though the route is rendered
// on both router servers.
func (r *renderer) warn(rt Route, err error) {
	for _, w := range r.warnings {
		if re := w.(*RouteError); re.Route.Location == rt.Location && re.Err.Error() == err.Error() {
			return
		}
	}
	r.warnings = append(r.warnings, &RouteError{Route: rt, Err: err})
}

// notFound and unavailable end a request with an error; the server's
// error routes (errorRoutes) turn it into our page.
func notFound() handler {
	return errorHandler{Handler: "error", Error: "no route for this request", StatusCode: 404}
}

func unavailable(why string) handler {
	return errorHandler{Handler: "error", Error: why, StatusCode: 503}
}

func redirect(location string) handler {
	return staticResponse{Handler: "static_response", StatusCode: "308", Headers: map[string][]string{"Location": {location}}}
}

// errorRoutes render the built-in pages: not-found for 404 (no route, no
// file for a static site), unavailable for 503 (disabled app, broken
// route) and for 502/504 (the instance does not answer). Other errors keep
// Caddy's empty response.
func errorRoutes() []caddyRoute {
	html := map[string][]string{"Content-Type": {"text/html; charset=utf-8"}}
	const status = "{http.error.status_code}"
	return []caddyRoute{
		{
			Match:  []matcherSet{{Vars: map[string][]string{status: {"404"}}}},
			Handle: []handler{staticResponse{Handler: "static_response", StatusCode: "404", Headers: html, Body: notFoundPage}},
		},
		{
			Match:  []matcherSet{{Vars: map[string][]string{status: {"502", "503", "504"}}}},
			Handle: []handler{staticResponse{Handler: "static_response", StatusCode: status, Headers: html, Body: disabledPage}},
		},
	}
}

// serverRoutes is the route list of a router server (tls: the one behind
// the front's TLS server): strip the headers we own, then one terminal
// route per host (most specific first), then the not-found page.
func (r *renderer) serverRoutes(routes []Route, tls bool) []caddyRoute {
	out := []caddyRoute{{Handle: []handler{headersHandler{
		Handler: "headers",
		Request: &headerOps{Delete: []string{ForwardedPrefixHeader, MatchPathHeader, InternalHeader}},
	}}}, healthRoute()}

	byHost := map[string][]Route{}
	for _, rt := range routes {
		byHost[rt.Location.Host] = append(byHost[rt.Location.Host], rt)
	}
	hosts := make([]string, 0, len(byHost))
	for h := range byHost {
		hosts = append(hosts, h)
	}
	slices.SortFunc(hosts, compareHostSpecificity)

	for _, h := range hosts {
		group := byHost[h]
		sortMounts(group)
		var mounts []caddyRoute
		for _, rt := range group {
			mounts = append(mounts, r.mountRoute(rt, tls))
		}
		mounts = append(mounts, caddyRoute{Handle: []handler{notFound()}})
		cr := caddyRoute{
			Handle:   []handler{subrouteHandler{Handler: "subroute", Routes: mounts}},
			Terminal: true,
		}
		if h != location.CatchAll {
			cr.Match = []matcherSet{{HeaderRegexp: map[string]regexpMatcher{"Host": {Pattern: hostPattern(group)}}}}
		}
		out = append(out, cr)
	}
	return append(out, caddyRoute{Handle: []handler{notFound()}})
}

// compareHostSpecificity orders hosts as Match picks them: exact hosts
// (disjoint, so by name), then wildcards longest suffix first, then "*".
func compareHostSpecificity(a, b string) int {
	rank := func(h string) int {
		switch {
		case h == location.CatchAll:
			return 2
		case strings.HasPrefix(h, "."):
			return 1
		}
		return 0
	}
	if c := cmp.Compare(rank(a), rank(b)); c != 0 {
		return c
	}
	if c := cmp.Compare(len(b), len(a)); c != 0 && rank(a) == 1 {
		return c
	}
	return strings.Compare(a, b)
}

// hostPattern is the Host header regexp for one host's routes. Caddy's
// host matcher takes "*.example.com" as exactly one label, so suffix
// wildcards need a regexp; exact hosts use one too, to carry the port
// rule: any port if some route has none, else one of the routes' ports.
func hostPattern(group []Route) string {
	l := group[0].Location
	var host string
	switch {
	case l.Wildcard():
		host = `(?:[^:]*\.)?` + regexp.QuoteMeta(l.Host[1:])
	case strings.Contains(l.Host, ":"):
		host = `\[` + regexp.QuoteMeta(l.Host) + `\]`
	default:
		host = regexp.QuoteMeta(l.Host)
	}
	var ports []string
	for _, rt := range group {
		if rt.Location.Port == 0 {
			return `(?i)^` + host + `(?::[0-9]*)?$`
		}
		ports = append(ports, strconv.Itoa(rt.Location.Port))
	}
	slices.Sort(ports)
	ports = slices.Compact(ports)
	return `(?i)^` + host + `:(?:` + strings.Join(ports, "|") + `)$`
}

// safeHostPattern guards writable-root/{host}: the Host header becomes a
// directory name, so it must be a plain host name (no "..", no '/').
const safeHostPattern = `^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]*)?$`

// restPlaceholder is the path below the mount, captured by the mount
// route's path_regexp named "mount".
const restPlaceholder = "{http.regexp.mount.1}"

// mountRoute serves one route: redirects, the disabled page, then files
// and the app. On the plain server an https route only redirects.
func (r *renderer) mountRoute(rt Route, tls bool) caddyRoute {
	l := rt.Location
	prefix := strings.TrimSuffix(l.Path, "/") // "" at the root
	ms := matcherSet{PathRegexp: &regexpMatcher{Name: "mount", Pattern: `(?s)^(/.*)$`}}
	if prefix != "" {
		ms.PathRegexp.Pattern = `(?s)^` + regexp.QuoteMeta(prefix) + `(/.*)?$`
	}
	if l.Port != 0 {
		ms.HeaderRegexp = map[string]regexpMatcher{"Host": {Pattern: `:` + strconv.Itoa(l.Port) + `$`}}
	}

	var inner []caddyRoute
	if l.HTTPS() && !tls {
		return caddyRoute{
			Match:    []matcherSet{ms},
			Handle:   []handler{redirect("https://" + r.redirectAuthority(l) + "{http.request.uri}")},
			Terminal: true,
		}
	}
	if rt.site != nil {
		// The app nodes see the request as it came: they redirect and
		// strip mounts themselves.
		return caddyRoute{
			Match:    []matcherSet{ms},
			Handle:   []handler{subrouteHandler{Handler: "subroute", Routes: balancedInner(rt.site)}},
			Terminal: true,
		}
	}
	if prefix != "" {
		exact := &regexpMatcher{Pattern: `^` + regexp.QuoteMeta(prefix) + `$`}
		inner = append(inner,
			caddyRoute{Match: []matcherSet{{PathRegexp: exact, Query: &struct{}{}}}, Handle: []handler{redirect(l.Path)}},
			caddyRoute{Match: []matcherSet{{PathRegexp: exact}}, Handle: []handler{redirect(l.Path + "?{http.request.uri.query}")}},
		)
	}
	switch b, err := r.backend(rt); {
	case r.t.IsDisabled(rt.App):
		inner = append(inner, caddyRoute{Handle: []handler{unavailable("app " + rt.App + " is disabled")}})
	case !rt.Active():
		// A prev. route without a previous instance: the name stays
		// ours (no wildcard or catch-all of another app answers it).
		inner = append(inner, caddyRoute{Handle: []handler{errorHandler{Handler: "error", Error: "no previous instance of " + rt.PrevOf(), StatusCode: 404}}})
	case err != nil:
		r.warn(rt, err)
		inner = append(inner, caddyRoute{Handle: []handler{unavailable("route " + rt.Location.String() + " has no usable backend")}})
	default:
		inner = append(inner, r.appRoutes(rt, b, prefix, tls)...)
	}
	return caddyRoute{
		Match:    []matcherSet{ms},
		Handle:   []handler{subrouteHandler{Handler: "subroute", Routes: inner}},
		Terminal: true,
	}
}

func (r *renderer) redirectAuthority(l location.Location) string {
	port := l.Port
	if port == 0 && r.httpsPort != 443 {
		port = r.httpsPort
	}
	if l.Wildcard() {
		l.Host = "{http.request.host}"
	}
	l.Port = port
	return l.HostPort()
}

var errNoBackend = errors.New("no backend for the live instance")

// backend finds and checks the live instance's backend. Paths go into the
// config verbatim, so they must be absolute and free of Caddy placeholders.
func (r *renderer) backend(rt Route) (Backend, error) {
	b, ok := r.backends[rt.Location.Key()]
	if !ok {
		return Backend{}, errNoBackend
	}
	for _, p := range []string{b.StaticDir, b.WritableRoot, b.PHPRoot, b.PHPScriptRoot, b.PHPFrontController} {
		if p != "" && (!filepath.IsAbs(p) || strings.ContainsAny(p, "{}")) {
			return Backend{}, fmt.Errorf("backend path %q: must be absolute, without braces", p)
		}
	}
	if strings.ContainsAny(b.Upstream, "{} ") {
		return Backend{}, fmt.Errorf("backend upstream %q: bad address", b.Upstream)
	}
	switch b.Kind {
	case KindPython, KindPaste, KindCommand:
	case KindPHP:
		if b.PHPRoot == "" {
			return Backend{}, errors.New("php backend without a PHPRoot")
		}
	case KindStatic:
		return b, nil
	default:
		return Backend{}, fmt.Errorf("unknown backend kind %q", b.Kind)
	}
	if b.Upstream == "" {
		return Backend{}, fmt.Errorf("%s backend without an upstream", b.Kind)
	}
	return b, nil
}

// fileRoute serves an existing file (or a directory with index.html)
// under dir, found by the path below the mount. Extra matchers (the Host
// guard) join both matcher sets.
func fileRoute(dir, prefix string, guard map[string]regexpMatcher) caddyRoute {
	file := matcherSet{
		File:         &fileMatcher{Root: dir, TryFiles: []string{restPlaceholder}},
		Not:          []matcherSet{{Path: []string{"*/"}}},
		HeaderRegexp: guard,
	}
	index := matcherSet{
		File:         &fileMatcher{Root: dir, TryFiles: []string{restPlaceholder + "/index.html"}},
		HeaderRegexp: guard,
	}
	var hs []handler
	if prefix != "" {
		hs = append(hs, rewriteHandler{Handler: "rewrite", StripPathPrefix: prefix})
	}
	hs = append(hs, fileServerHandler{Handler: "file_server", Root: dir, IndexNames: []string{"index.html"}})
	return caddyRoute{Match: []matcherSet{file, index}, Handle: hs}
}

func (r *renderer) appRoutes(rt Route, b Backend, prefix string, tls bool) []caddyRoute {
	var out []caddyRoute
	if b.StaticDir != "" {
		out = append(out, fileRoute(b.StaticDir, prefix, nil))
	}
	if b.WritableRoot != "" {
		l := rt.Location
		if l.Wildcard() || l.CatchAll() {
			out = append(out, fileRoute(filepath.Join(b.WritableRoot, "{http.request.host}"), prefix,
				map[string]regexpMatcher{"Host": {Pattern: safeHostPattern}}))
		} else {
			// The host is known: no placeholder, no guard, and the
			// directory name is the normalized host whatever case the
			// client used. A prev. route serves the same site, so its
			// host's files.
			host := l.Host
			if rt.IsPrev() {
				host = rt.PrevOf()
			}
			out = append(out, fileRoute(filepath.Join(b.WritableRoot, host), prefix, nil))
		}
		out = append(out, fileRoute(b.WritableRoot, prefix, nil))
	}

	matchPath := rt.Location.MatchPath()
	switch b.Kind {
	case KindStatic:
		out = append(out, caddyRoute{Handle: []handler{notFound()}})
	case KindPython, KindPaste:
		set := forwardedHeaders()
		set[MatchPathHeader] = []string{matchPath}
		out = append(out, proxyRoutes(nil, reverseProxyHandler{
			Handler:   "reverse_proxy",
			Transport: httpTransportFor(b.Upstream),
			Headers:   &proxyHeaders{Request: &headerOps{Set: set}},
			Upstreams: []upstream{{Dial: b.Upstream}},
		})...)
	case KindCommand:
		set := forwardedHeaders()
		set[MatchPathHeader] = []string{matchPath}
		var before []handler
		if prefix != "" {
			set[ForwardedPrefixHeader] = []string{prefix}
			before = append(before, rewriteHandler{Handler: "rewrite", StripPathPrefix: prefix})
		}
		out = append(out, proxyRoutes(before, reverseProxyHandler{
			Handler:   "reverse_proxy",
			Transport: httpTransportFor(b.Upstream),
			Headers:   &proxyHeaders{Request: &headerOps{Set: set}},
			Upstreams: []upstream{{Dial: b.Upstream}},
		})...)
	case KindPHP:
		out = append(out, phpRoutes(b, prefix, matchPath, tls)...)
	}
	return out
}

// smallBodyPattern matches the Content-Length of a request body Caddy
// reads in full before proxying it: under a megabyte.
const smallBodyPattern = `^[0-9]{1,6}$`

// withTrusted puts the routes of trusted proxies' requests after the
// body limit (the first of frontRoutes).
func withTrusted(routes, trusted []caddyRoute) []caddyRoute {
	if len(trusted) == 0 {
		return routes
	}
	return slices.Concat(routes[:1], trusted, routes[1:])
}

// frontRoutes are the front server's: every body bounded by MaxBody, a
// chunked one (no Content-Length) read whole, up to MaxBufferedBody,
// before it goes to the router, the rest as proxyRoutes passes them.
func frontRoutes(proxy reverseProxyHandler) []caddyRoute {
	buffered := proxy
	buffered.BufferRequests = true
	routes := []caddyRoute{
		{Handle: []handler{requestBodyHandler{Handler: "request_body", MaxSize: MaxBody}}},
		{
			Match:    []matcherSet{{Header: map[string][]string{"Content-Length": nil}}},
			Handle:   []handler{requestBodyHandler{Handler: "request_body", MaxSize: MaxBufferedBody}, buffered},
			Terminal: true,
		},
	}
	return append(routes, proxyRoutes(nil, proxy)...)
}

// proxyRoutes proxies to an HTTP upstream after the handlers before: a
// request with a small body (smallBodyPattern) is buffered first, any
// other streams.
//
// Why buffer: once the upstream's response begins, Go's HTTP server (in
// Caddy 2.6.2) reads and drops what is left of the request body on a
// keep-alive client connection, while the proxy may still be reading that
// body to forward it. When the application answers quickly (or Caddy is
// slow, on a busy node) the two race, the proxy closes the upstream
// connection, and the client gets a truncated, empty 200. Measured: about
// one POST in 8000 under CPU load, with or without upstream keep-alive;
// none with the body buffered. The bound keeps memory small: large
// uploads stream, and take long enough to send that applications read
// them before answering.
func proxyRoutes(before []handler, proxy reverseProxyHandler) []caddyRoute {
	buffered := proxy
	buffered.BufferRequests = true
	small := append(append([]handler{}, before...), buffered)
	other := append(append([]handler{}, before...), proxy)
	return []caddyRoute{
		{
			Match:    []matcherSet{{HeaderRegexp: map[string]regexpMatcher{"Content-Length": {Pattern: smallBodyPattern}}}},
			Handle:   small,
			Terminal: true,
		},
		{Handle: other},
	}
}

// httpTransportFor is the transport for an HTTP upstream: Caddy's default
// (nil) for TCP, single-use connections for a unix socket (see Render).
func httpTransportFor(upstream string) proxyTransport {
	if !strings.HasPrefix(upstream, "unix/") {
		return nil
	}
	return singleUseTransport()
}

// singleUseTransport opens a connection per request and closes it after
// the response, without saying "Connection: close".
//
// Why not keep_alive off, which also uses each connection once: Go's
// transport then sends "Connection: close", and a server that answers
// without reading the request body (Go's net/http, gunicorn, most others
// do not drain a body on a connection they close) closes the socket while
// Caddy, which flushes the head before the body, may still be writing the
// body: Caddy gets EPIPE or ECONNRESET and answers 502 although the app
// answered. Measured with Caddy 2.6.2: 2 to 8% of small POSTs to an app
// that ignores the body, with or without config reloads (buffer_requests
// does not help: its buffer is not a reader Go's transport recognizes as
// in memory, so the head is still flushed alone). With a keep-alive
// request the server reads the body to find the next request, and Caddy
// closes the connection because max_idle_conns_per_host < 0 pools none:
// 0 failures in the same runs.
func singleUseTransport() proxyTransport {
	return &httpTransport{Protocol: "http", KeepAlive: &keepAliveConf{MaxIdleConnsPerHost: -1}}
}

// forwardedHeaders set the client's address, scheme and host as the front
// server saw them: the router gets requests on a unix socket, so Caddy's
// own X-Forwarded-* would be empty there (it deletes them for a
// connection without an IP). The front server replaces whatever a client
// sent in them, so they can be trusted here.
func forwardedHeaders() map[string][]string {
	return map[string][]string{
		"X-Forwarded-For":   {"{http.request.header.X-Forwarded-For}"},
		"X-Forwarded-Proto": {"{http.request.header.X-Forwarded-Proto}"},
		"X-Forwarded-Host":  {"{http.request.header.X-Forwarded-Host}"},
	}
}

// phpRoutes is what Caddy's php_fastcgi directive expands to, below a
// mount: a directory holding index.php gets its trailing slash, an
// existing .php file runs, any other existing file is served as it is,
// everything else runs the front controller (the app's runner, else
// index.php). SCRIPT_NAME gets the mount path back, since the path was
// stripped of it; SILVER_MATCH_PATH is set as the original set it for
// PHP. SCRIPT_FILENAME is under PHPScriptRoot, the directory as php-fpm
// sees it. Caddy's fastcgi transport does not reuse connections.
func phpRoutes(b Backend, prefix, matchPath string, tls bool) []caddyRoute {
	scriptRoot := b.PHPScriptRoot
	if scriptRoot == "" {
		scriptRoot = b.PHPRoot
	}
	fastcgi := func(env map[string]string) handler {
		env["SILVER_MATCH_PATH"] = matchPath
		// What Caddy would set from the connection, which is the front
		// server's unix socket here.
		env["REMOTE_ADDR"] = "{http.request.header.X-Forwarded-For}"
		env["REMOTE_HOST"] = "{http.request.header.X-Forwarded-For}"
		env["REQUEST_SCHEME"] = "http"
		if tls {
			env["REQUEST_SCHEME"] = "https"
			env["HTTPS"] = "on"
		}
		return reverseProxyHandler{
			Handler: "reverse_proxy",
			Transport: &fastcgiTransport{
				Protocol:  "fastcgi",
				Root:      scriptRoot,
				SplitPath: []string{".php"},
				Env:       env,
			},
			Upstreams: []upstream{{Dial: b.Upstream}},
		}
	}
	var out []caddyRoute
	if prefix != "" {
		out = append(out, caddyRoute{Handle: []handler{rewriteHandler{Handler: "rewrite", StripPathPrefix: prefix}}})
	}
	out = append(out, caddyRoute{
		Match: []matcherSet{{
			File: &fileMatcher{Root: b.PHPRoot, TryFiles: []string{"{http.request.uri.path}/index.php"}},
			Not:  []matcherSet{{Path: []string{"*/"}}},
		}},
		Handle: []handler{redirect("{http.request.orig_uri.path}/")},
	})
	tryFiles := []string{"{http.request.uri.path}", "{http.request.uri.path}/index.php"}
	if b.PHPFrontController == "" {
		tryFiles = append(tryFiles, "index.php")
	}
	// An existing file (or a directory's index.php): PHP runs, anything
	// else is served as it is.
	out = append(out, caddyRoute{
		Match: []matcherSet{{File: &fileMatcher{
			Root:      b.PHPRoot,
			TryFiles:  tryFiles,
			SplitPath: []string{".php"},
		}}},
		Handle: []handler{subrouteHandler{Handler: "subroute", Routes: []caddyRoute{
			{Handle: []handler{rewriteHandler{Handler: "rewrite", URI: "{http.matchers.file.relative}"}}},
			{
				Match:    []matcherSet{{Path: []string{"*.php"}}},
				Handle:   []handler{fastcgi(map[string]string{"SCRIPT_NAME": prefix + "{http.request.uri.path}"})},
				Terminal: true,
			},
			{Handle: []handler{fileServerHandler{Handler: "file_server", Root: b.PHPRoot}}},
		}}},
		Terminal: true,
	})
	if b.PHPFrontController == "" {
		// No index.php either: the file server's 404.
		return append(out, caddyRoute{Handle: []handler{fileServerHandler{Handler: "file_server", Root: b.PHPRoot}}})
	}
	// Everything else runs the front controller, named explicitly since
	// it may live outside php_root, with the request path as PATH_INFO.
	return append(out, caddyRoute{Handle: []handler{fastcgi(map[string]string{
		"SCRIPT_FILENAME": b.PHPFrontController,
		"SCRIPT_NAME":     prefix + "/" + path.Base(b.PHPFrontController),
		"PATH_INFO":       "{http.request.uri.path}",
	})}})
}
