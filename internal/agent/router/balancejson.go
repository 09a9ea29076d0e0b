package router

import (
	"net"
	"regexp"
	"time"

	"github.com/toppcloud/toppcloud/internal/protocol"
)

// How a balancer treats its upstreams (Caddy 2.6.2's reverse_proxy).
const (
	// BalanceHealthInterval and BalanceHealthTimeout: every handler checks
	// each upstream's health route this often (Caddy keeps active health
	// per handler, and checks once at once when a config loads).
	BalanceHealthInterval = time.Second
	BalanceHealthTimeout  = time.Second
	// BalanceFailDuration: an upstream that could not be reached is left
	// alone this long (max_fails 1). Only errors count, not statuses: an
	// app's own 502 or 503 on one path must not take its node out.
	BalanceFailDuration = 10 * time.Second
	// BalanceTryDuration, BalanceTryInterval: a request without a body
	// whose upstream cannot be reached (or, for GET, fails before the
	// response) is tried on another one for this long.
	BalanceTryDuration = 5 * time.Second
	BalanceTryInterval = 250 * time.Millisecond
	// BalanceBuffer: bodies are read into memory up to this size before
	// they are proxied; the rest of a longer one streams.
	BalanceBuffer = 1 << 20
	// BalanceIdleTimeout: a kept-alive connection to an app node is
	// closed after this long unused. It must be shorter than the app
	// node front server's IdleTimeout: with both at Caddy's default of 2
	// minutes, a request sent on a connection just as the node closes it
	// fails, and one with a body is not retried.
	BalanceIdleTimeout = IdleTimeout / 2
)

// balancerTransport is Caddy's default HTTP transport (probes every 30 s,
// 32 idle connections per app node) with BalanceIdleTimeout.
func balancerTransport() proxyTransport {
	return &httpTransport{Protocol: "http", KeepAlive: &keepAliveConf{
		MaxIdleConnsPerHost: 32, ProbeInterval: "30s", IdleTimeout: BalanceIdleTimeout.String(),
	}}
}

// nonEmptyBodyPattern matches the Content-Length of a request that has a
// body.
const nonEmptyBodyPattern = `^0*[1-9][0-9]*$`

// bodilessMethods never carry a body. A request of another method without
// a Content-Length may have a chunked one: Go's server (so Caddy's
// matchers) does not show Transfer-Encoding, and the front server
// forwards a body it read whole as chunked.
var bodilessMethods = []string{"GET", "HEAD", "OPTIONS", "TRACE"}

// withBodyMatch matches the requests that may have a body: they must not be
// retried (see balancedInner).
func withBodyMatch() []matcherSet {
	return []matcherSet{
		{HeaderRegexp: map[string]regexpMatcher{"Content-Length": {Pattern: nonEmptyBodyPattern}}},
		{Header: map[string][]string{"Content-Length": nil}, Not: []matcherSet{{Method: bodilessMethods}}},
	}
}

// healthRoute answers the balancers' active health checks: Host
// protocol.HealthHost, path protocol.HealthPath, 200 whatever the node's
// apps answer, as long as its front server and router run.
func healthRoute() caddyRoute {
	return caddyRoute{
		Match: []matcherSet{{
			Path:         []string{protocol.HealthPath},
			HeaderRegexp: map[string]regexpMatcher{"Host": {Pattern: `(?i)^` + regexp.QuoteMeta(protocol.HealthHost) + `(?::[0-9]*)?$`}},
		}},
		Handle:   []handler{staticResponse{Handler: "static_response", StatusCode: "200", Body: "ok\n"}},
		Terminal: true,
	}
}

// balancedInner proxies a balanced location's requests, unchanged (path,
// Host), to the site's upstreams: least connections first, unhealthy ones
// (active checks of the health route; passive: one failure to reach it)
// skipped. X-Forwarded-* are the front server's, as for apps.
//
// Requests that may have a body (withBodyMatch: a Content-Length above
// zero, or none and a method that can carry one, as a chunked body has)
// are read into memory (up to BalanceBuffer) and never retried: Caddy 2.6.2 cannot send a body twice (caddy issue 5454:
// the transport closes it when a dial fails, and a retry reads a closed,
// possibly recycled, buffer). Others are retried on another upstream for
// BalanceTryDuration, so a node that stops or switches without being
// taken out first costs a delay, not an error. Each kind needs its own
// handler, and each handler checks health itself.
func balancedInner(s *Balanced) []caddyRoute {
	var ups []upstream
	for _, u := range s.InUpstreams() {
		ups = append(ups, upstream{Dial: u})
	}
	health := &healthChecks{
		Active: &activeHealth{
			URI:          protocol.HealthPath,
			Headers:      map[string][]string{"Host": {protocol.HealthHost}},
			Interval:     BalanceHealthInterval.String(),
			Timeout:      BalanceHealthTimeout.String(),
			ExpectStatus: 200,
		},
		Passive: &passiveHealth{FailDuration: BalanceFailDuration.String(), MaxFails: 1},
	}
	proxy := reverseProxyHandler{
		Handler:       "reverse_proxy",
		Transport:     balancerTransport(),
		Headers:       &proxyHeaders{Request: &headerOps{Set: forwardedHeaders()}},
		LoadBalancing: &loadBalancing{SelectionPolicy: selectionPolicy{Policy: "least_conn"}},
		HealthChecks:  health,
		Upstreams:     ups,
	}
	withBody := proxy
	withBody.BufferRequests = true
	withBody.MaxBufferSize = BalanceBuffer
	retried := proxy
	retried.LoadBalancing = &loadBalancing{
		SelectionPolicy: selectionPolicy{Policy: "least_conn"},
		TryDuration:     BalanceTryDuration.String(),
		TryInterval:     BalanceTryInterval.String(),
	}
	return []caddyRoute{
		{
			Match:    withBodyMatch(),
			Handle:   []handler{withBody},
			Terminal: true,
		},
		{Handle: []handler{retried}},
	}
}

// trustedRoutes are a front server's routes for requests from
// Options.TrustProxies (a site's balancer) that carry X-Forwarded-For:
// their X-Forwarded-* are kept (X-Forwarded-For exactly as the balancer
// sent it, so the app sees its client as on a node of its own), and
// X-Forwarded-Proto picks the router server, so an https location
// reached through the balancer's TLS is served, not redirected. Caddy
// 2.6.2 has no server-wide trusted proxies, hence a route of its own.
func trustedRoutes(opt Options) []caddyRoute {
	if len(opt.TrustProxies) == 0 {
		return nil
	}
	via := func(server string) []caddyRoute {
		set := map[string][]string{"X-Forwarded-For": {"{http.request.header.X-Forwarded-For}"}}
		return frontRoutes(reverseProxyHandler{
			Handler:        "reverse_proxy",
			Transport:      singleUseTransport(),
			TrustedProxies: opt.TrustProxies,
			Headers:        &proxyHeaders{Request: &headerOps{Set: set}},
			Upstreams:      []upstream{{Dial: "unix/" + opt.RouterSocket(server)}},
		})[1:] // the body limit is the server's first route already
	}
	return []caddyRoute{{
		Match: []matcherSet{{
			RemoteIP: &remoteIP{Ranges: opt.TrustProxies},
			Header:   map[string][]string{"X-Forwarded-For": {}},
		}},
		Handle: []handler{subrouteHandler{Handler: "subroute", Routes: []caddyRoute{
			{
				Match:    []matcherSet{{Header: map[string][]string{"X-Forwarded-Proto": {"https"}}}},
				Handle:   []handler{subrouteHandler{Handler: "subroute", Routes: via(serverHTTPS)}},
				Terminal: true,
			},
			{Handle: []handler{subrouteHandler{Handler: "subroute", Routes: via(serverHTTP)}}},
		}}},
		Terminal: true,
	}}
}

// checkTrustProxies accepts IP addresses and CIDR ranges.
func checkTrustProxies(list []string) bool {
	for _, p := range list {
		if net.ParseIP(p) == nil {
			if _, _, err := net.ParseCIDR(p); err != nil {
				return false
			}
		}
	}
	return true
}
