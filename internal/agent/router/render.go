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
	// DefaultGracePeriod bounds how long Caddy lets requests that were in
	// flight when a new config loaded finish on the old one. Caddy 2.6's
	// own default is forever.
	DefaultGracePeriod = 30 * time.Second
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

// Options are the node-wide settings of the rendered config.
type Options struct {
	// HTTPAddr is the plain HTTP listener (DefaultHTTPAddr).
	HTTPAddr string
	// HTTPSAddr is the TLS listener for https locations without a port
	// (DefaultHTTPSAddr). It is only opened when such a location exists.
	HTTPSAddr string
	// AdminSocket is the unix socket of Caddy's admin API
	// (the node's, layout.Default). The admin API never listens on TCP.
	AdminSocket string
	// GracePeriod: see DefaultGracePeriod.
	GracePeriod time.Duration
	// Issuer is IssuerACME (the default) or IssuerInternal.
	Issuer string
	// ACMEEmail is given to the ACME CA, if set.
	ACMEEmail string
	// StorageDir is where Caddy keeps certificates and its CA; "" leaves
	// Caddy's default ($XDG_DATA_HOME/caddy).
	StorageDir string
}

func (o Options) withDefaults() Options {
	if o.HTTPAddr == "" {
		o.HTTPAddr = DefaultHTTPAddr
	}
	if o.HTTPSAddr == "" {
		o.HTTPSAddr = DefaultHTTPSAddr
	}
	if o.AdminSocket == "" {
		o.AdminSocket = layout.Default().AdminSocket
	}
	if o.GracePeriod == 0 {
		o.GracePeriod = DefaultGracePeriod
	}
	if o.Issuer == "" {
		o.Issuer = IssuerACME
	}
	return o
}

// Rendered is a Caddy config and what had to be left out of it.
type Rendered struct {
	// JSON is the whole config, for POST /load and for Caddy's --config file.
	JSON []byte
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
	return fmt.Sprintf("route %s (app %s, instance %s): %v", e.Route.Location, e.Route.App, e.Route.Live, e.Err)
}

func (e *RouteError) Unwrap() error { return e.Err }

// Render turns the table into a complete Caddy config. backends maps each
// active route, by its location's Key, to how its live instance is
// reached; the live instance's name itself does not appear in the config,
// so a caller that reaches instances through stable paths (the agent's
// slots) switches instances without a new config. The output depends only
// on the inputs and is byte-for-byte stable: hosts most specific first,
// mounts longest first, so an unchanged table gives identical bytes and
// the agent can skip the reload.
//
// Connections to unix-socket upstreams are not reused (keep-alive off):
// a pooled connection would outlive a switch of the socket path to
// another instance and keep sending requests to the old one. A unix
// socket connect costs microseconds.
//
// Per request the config does what Match describes, then, inside a mount:
// the instance's static/ file, then writable-root/HOST/, then
// writable-root/ (a directory serves its index.html), then the app. Every
// server first deletes client-sent MatchPathHeader, ForwardedPrefixHeader
// and InternalHeader.
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
	if !strings.HasPrefix(opt.AdminSocket, "/") {
		return nil, fmt.Errorf("render: admin socket %q: must be an absolute unix socket path", opt.AdminSocket)
	}
	if opt.Issuer != IssuerACME && opt.Issuer != IssuerInternal {
		return nil, fmt.Errorf("render: unknown TLS issuer %q (use %q or %q)", opt.Issuer, IssuerACME, IssuerInternal)
	}
	r := &renderer{t: t, backends: backends, opt: opt, httpsPort: httpsPort}

	// Which port each route is served on decides plain or TLS for that
	// port; the main two are fixed, others follow their routes' scheme.
	tlsPort := map[int]bool{httpPort: false, httpsPort: true}
	var routes []Route
	for _, rt := range t.Routes {
		if rt.Active() && rt.Location.Port != 0 && rt.Location.Port != httpPort && rt.Location.Port != httpsPort && rt.Location.HTTPS() {
			tlsPort[rt.Location.Port] = true
		}
	}
	for _, rt := range t.Routes {
		if !rt.Active() {
			continue
		}
		if p := rt.Location.Port; p != 0 {
			if isTLS, ok := tlsPort[p]; ok && isTLS != rt.Location.HTTPS() {
				r.warn(rt, fmt.Errorf("port %d is used for %s, not %s: route left out", p, schemeOf(isTLS), rt.Location.Scheme))
				continue
			}
			if _, ok := tlsPort[p]; !ok {
				tlsPort[p] = false
			}
		}
		routes = append(routes, rt)
	}

	needHTTPS := false
	var tlsNames []string
	for _, rt := range routes {
		if !rt.Location.HTTPS() {
			continue
		}
		if rt.Location.Port == 0 || rt.Location.Port == httpsPort {
			needHTTPS = true
		}
		if rt.Location.Wildcard() {
			tlsNames = append(tlsNames, rt.Location.Host[1:], "*"+rt.Location.Host)
		} else {
			tlsNames = append(tlsNames, rt.Location.Host)
		}
	}
	slices.Sort(tlsNames)
	tlsNames = slices.Compact(tlsNames)

	tree := r.serverRoutes(routes)
	app := httpApp{
		GracePeriod: opt.GracePeriod.String(),
		Servers:     map[string]*caddyServer{},
	}
	if httpPort != 80 {
		app.HTTPPort = httpPort
	}
	if httpsPort != 443 {
		app.HTTPSPort = httpsPort
	}
	// Two servers at most, plain and TLS, each listening on all of its
	// ports and carrying the same route tree: routes with a port check the
	// Host header's port themselves.
	var plainListen, tlsListen []string
	for port, isTLS := range tlsPort {
		switch {
		case port == httpsPort && !needHTTPS:
		case isTLS:
			tlsListen = append(tlsListen, net.JoinHostPort(httpsHost, strconv.Itoa(port)))
		default:
			plainListen = append(plainListen, net.JoinHostPort(httpHost, strconv.Itoa(port)))
		}
	}
	for _, l := range []struct {
		name   string
		listen []string
		tls    bool
	}{{"http", plainListen, false}, {"https", tlsListen, true}} {
		if len(l.listen) == 0 {
			continue
		}
		slices.Sort(l.listen)
		srv := &caddyServer{
			Listen: l.listen,
			// No HTTP/3: Caddy 2.6 closes HTTP/3 connections abruptly
			// on a config load instead of letting them finish.
			Protocols: []string{"h1", "h2"},
			// Every name is routed by our own matchers and every
			// certificate is listed explicitly: no automatic HTTPS, so no
			// surprise redirects or certificate requests for plain-http
			// routes.
			AutomaticHTTPS: autoHTTPS{Disable: true},
			Routes:         tree,
			Errors:         serverErrors{Routes: errorRoutes()},
		}
		if l.tls {
			srv.TLSConnectionPolicies = []tlsConnPolicy{{}}
		}
		app.Servers[l.name] = srv
	}

	cfg := caddyConfig{
		Admin: caddyAdmin{Listen: "unix/" + opt.AdminSocket},
		Apps:  caddyApps{HTTP: app},
	}
	if opt.StorageDir != "" {
		cfg.Storage = &caddyStorage{Module: "file_system", Root: opt.StorageDir}
	}
	if len(tlsNames) > 0 {
		cfg.Apps.TLS = &tlsApp{Certificates: tlsCertificates{Automate: tlsNames}}
		switch {
		case opt.Issuer == IssuerInternal:
			cfg.Apps.TLS.Automation = &tlsAutomation{Policies: []automationPolicy{{
				Subjects: tlsNames, Issuers: []issuer{{Module: "internal"}},
			}}}
			cfg.Apps.PKI = &pkiApp{CertificateAuthorities: map[string]pkiCA{"local": {InstallTrust: false}}}
		case opt.ACMEEmail != "":
			cfg.Apps.TLS.Automation = &tlsAutomation{Policies: []automationPolicy{{
				Subjects: tlsNames, Issuers: []issuer{{Module: "acme", Email: opt.ACMEEmail}},
			}}}
		}
	}
	out, err := json.MarshalIndent(cfg, "", "\t")
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	return &Rendered{JSON: append(out, '\n'), Warnings: r.warnings}, nil
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

func (r *renderer) warn(rt Route, err error) {
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

// serverRoutes is the route list every server gets: strip the headers we
// own, then one terminal route per host (most specific first), then the
// not-found page.
func (r *renderer) serverRoutes(routes []Route) []caddyRoute {
	out := []caddyRoute{{Handle: []handler{headersHandler{
		Handler: "headers",
		Request: &headerOps{Delete: []string{ForwardedPrefixHeader, MatchPathHeader, InternalHeader}},
	}}}}

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
			mounts = append(mounts, r.mountRoute(rt))
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
// and the app.
func (r *renderer) mountRoute(rt Route) caddyRoute {
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
	if l.HTTPS() {
		inner = append(inner, caddyRoute{
			Match:  []matcherSet{{Protocol: "http"}},
			Handle: []handler{redirect("https://" + r.redirectAuthority(l) + "{http.request.uri}")},
		})
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
	case err != nil:
		r.warn(rt, err)
		inner = append(inner, caddyRoute{Handle: []handler{unavailable("route " + rt.Location.String() + " has no usable backend")}})
	default:
		inner = append(inner, r.appRoutes(rt, b, prefix)...)
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

func (r *renderer) appRoutes(rt Route, b Backend, prefix string) []caddyRoute {
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
			// client used.
			out = append(out, fileRoute(filepath.Join(b.WritableRoot, l.Host), prefix, nil))
		}
		out = append(out, fileRoute(b.WritableRoot, prefix, nil))
	}

	matchPath := rt.Location.MatchPath()
	switch b.Kind {
	case KindStatic:
		out = append(out, caddyRoute{Handle: []handler{notFound()}})
	case KindPython, KindPaste:
		out = append(out, proxyRoutes(nil, reverseProxyHandler{
			Handler:   "reverse_proxy",
			Transport: httpTransportFor(b.Upstream),
			Headers:   &proxyHeaders{Request: &headerOps{Set: map[string][]string{MatchPathHeader: {matchPath}}}},
			Upstreams: []upstream{{Dial: b.Upstream}},
		})...)
	case KindCommand:
		set := map[string][]string{MatchPathHeader: {matchPath}}
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
		out = append(out, phpRoutes(b, prefix, matchPath)...)
	}
	return out
}

// smallBodyPattern matches the Content-Length of a request body Caddy
// reads in full before proxying it: under a megabyte.
const smallBodyPattern = `^[0-9]{1,6}$`

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
// (nil) for TCP, no connection reuse for a unix socket (see Render).
func httpTransportFor(upstream string) proxyTransport {
	if !strings.HasPrefix(upstream, "unix/") {
		return nil
	}
	off := false
	return &httpTransport{Protocol: "http", KeepAlive: &keepAliveConf{Enabled: &off}}
}

// phpRoutes is what Caddy's php_fastcgi directive expands to, below a
// mount: a directory holding index.php gets its trailing slash, an
// existing .php file runs, any other existing file is served as it is,
// everything else runs the front controller (the app's runner, else
// index.php). SCRIPT_NAME gets the mount path back, since the path was
// stripped of it; SILVER_MATCH_PATH is set as the original set it for
// PHP. SCRIPT_FILENAME is under PHPScriptRoot, the directory as php-fpm
// sees it. Caddy's fastcgi transport does not reuse connections.
func phpRoutes(b Backend, prefix, matchPath string) []caddyRoute {
	scriptRoot := b.PHPScriptRoot
	if scriptRoot == "" {
		scriptRoot = b.PHPRoot
	}
	fastcgi := func(env map[string]string) handler {
		env["SILVER_MATCH_PATH"] = matchPath
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
