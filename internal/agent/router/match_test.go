package router

import (
	"testing"
)

// matchTable is the table of the original's rewrite-map test
// (silverlining's tests of its host/path lookup, minus seeother) plus what the Go version adds: ports, https, disabled
// apps, nested wildcards and a segment-boundary neighbour.
func matchTable(t testing.TB) *Table {
	tb := &Table{}
	for _, r := range []struct{ loc, app string }{
		{"test1.example.com/", "test1root"},
		{"test1.example.com/testy", "test1testy"},
		{"test1.example.com/testy/another", "test1another"},
		{".example.com/", "examplegeneric"},
		{".deep.example.com/", "deepgeneric"},
		{".com/", "dotcom"},
		{"*/blog", "allblog"},
		{"*/", "allroot"},
		{"site.test/", "site"},
		{"site.test/blog", "blog"},
		{"site.test/blogger", "blogger"},
		{"site.test:8080/", "site8080"},
		{"site.test:8080/blog", "blog8080"},
		{"ported.test:9000/", "ported"},
		{"https://secure.test/", "secure"},
		{"https://secure.test:8443/alt", "securealt"},
		{"https://.tls.test/", "tlswild"},
		{"off.test/", "off"},
		{"10.1.2.3/", "ip"},
		{"[::1]:8080/", "ip6"},
	} {
		if _, err := tb.Set(loc(t, r.loc), r.app, r.app+".1"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tb.Disable("off"); err != nil {
		t.Fatal(err)
	}
	return tb
}

func TestMatch(t *testing.T) {
	tb := matchTable(t)
	tests := []struct {
		host, target string
		tls          bool
		// want: app and match path for a served request; or a status with
		// a redirect for 308; 404 and 503 otherwise.
		app, matchPath, rest string
		status               int
		redirect             string
	}{
		// The original's expectations.
		{host: "test1.example.com", target: "/", app: "test1root", matchPath: "/", rest: "/"},
		{host: "test1.example.com", target: "/something", app: "test1root", matchPath: "/", rest: "/something"},
		{host: "test1.example.com", target: "/testy/something", app: "test1testy", matchPath: "/testy", rest: "/something"},
		{host: "test1.example.com", target: "/testy/another/something", app: "test1another", matchPath: "/testy/another", rest: "/something"},
		{host: "foobar.example.com", target: "/", app: "examplegeneric", matchPath: "/", rest: "/"},
		{host: "nothing.notfound", target: "/foo", app: "allroot", matchPath: "/", rest: "/foo"},
		{host: "nothing.notfound", target: "/blog/foo", app: "allblog", matchPath: "/blog", rest: "/foo"},

		// Exact host, case-insensitive, port stripped.
		{host: "TEST1.Example.COM:80", target: "/testy/", app: "test1testy", matchPath: "/testy", rest: "/"},
		// Wildcard covers the apex and deep names; most specific wins (the original let the least specific win).
		{host: "example.com", target: "/", app: "examplegeneric", matchPath: "/", rest: "/"},
		{host: "a.b.example.com", target: "/", app: "examplegeneric", matchPath: "/", rest: "/"},
		{host: "deep.example.com", target: "/", app: "deepgeneric", matchPath: "/", rest: "/"},
		{host: "x.y.deep.example.com", target: "/", app: "deepgeneric", matchPath: "/", rest: "/"},
		{host: "other.com", target: "/", app: "dotcom", matchPath: "/", rest: "/"},
		{host: "xexample.com", target: "/", app: "dotcom", matchPath: "/", rest: "/"},
		{host: "example.org", target: "/", app: "allroot", matchPath: "/", rest: "/"},
		{host: "", target: "/", app: "allroot", matchPath: "/", rest: "/"},
		{host: "weird:port", target: "/", app: "allroot", matchPath: "/", rest: "/"},
		// The chosen host alone decides: test1 mounts "/", so /blog there
		// is test1root, not the catch-all's /blog.
		{host: "test1.example.com", target: "/blog/x", app: "test1root", matchPath: "/", rest: "/blog/x"},

		// Longest prefix on whole segments (the original let /blog match /blogger).
		{host: "site.test", target: "/blog/", app: "blog", matchPath: "/blog", rest: "/"},
		{host: "site.test", target: "/blog/post/1", app: "blog", matchPath: "/blog", rest: "/post/1"},
		{host: "site.test", target: "/blogger/", app: "blogger", matchPath: "/blogger", rest: "/"},
		{host: "site.test", target: "/blogs", app: "site", matchPath: "/", rest: "/blogs"},
		{host: "site.test", target: "/Blog/", app: "site", matchPath: "/", rest: "/Blog/"},
		// Cleaned and unescaped first, as Caddy's path_regexp sees it.
		{host: "site.test", target: "/x/../blog/a", app: "blog", matchPath: "/blog", rest: "/a"},
		{host: "site.test", target: "/bl%6Fg/a", app: "blog", matchPath: "/blog", rest: "/a"},
		{host: "site.test", target: "//blog//a", app: "blog", matchPath: "/blog", rest: "/a"},

		// Add the slash, keeping the query.
		{host: "site.test", target: "/blog", status: 308, redirect: "/blog/"},
		{host: "site.test", target: "/blog?page=2&x=y", status: 308, redirect: "/blog/?page=2&x=y"},
		{host: "site.test", target: "/blog?", status: 308, redirect: "/blog/"},
		{host: "test1.example.com", target: "/testy/another", status: 308, redirect: "/testy/another/"},
		{host: "nothing.notfound", target: "/blog", status: 308, redirect: "/blog/"},

		// Ports: a route with a port needs it in the Host header; it wins
		// over the portless route on a tie, and brings its own paths.
		{host: "site.test:8080", target: "/", app: "site8080", matchPath: "/", rest: "/"},
		{host: "site.test:8080", target: "/blog/x", app: "blog8080", matchPath: "/blog", rest: "/x"},
		{host: "site.test:8080", target: "/blogger/", app: "blogger", matchPath: "/blogger", rest: "/"},
		{host: "site.test:8081", target: "/", app: "site", matchPath: "/", rest: "/"},
		{host: "ported.test:9000", target: "/a", app: "ported", matchPath: "/", rest: "/a"},
		{host: "ported.test", target: "/a", app: "allroot", matchPath: "/", rest: "/a"},
		{host: "ported.test:9001", target: "/a", app: "allroot", matchPath: "/", rest: "/a"},
		{host: "10.1.2.3:80", target: "/", app: "ip", matchPath: "/", rest: "/"},
		{host: "[::1]:8080", target: "/", app: "ip6", matchPath: "/", rest: "/"},
		{host: "[::1]", target: "/", app: "allroot", matchPath: "/", rest: "/"},

		// https routes redirect plain requests, serve TLS ones.
		{host: "secure.test", target: "/a?b=c", status: 308, redirect: "https://secure.test/a?b=c"},
		{host: "secure.test", target: "/a", tls: true, app: "secure", matchPath: "/", rest: "/a"},
		{host: "secure.test:8443", target: "/alt", status: 308, redirect: "https://secure.test:8443/alt"},
		{host: "secure.test:8443", target: "/alt", tls: true, status: 308, redirect: "/alt/"},
		{host: "x.tls.test", target: "/", status: 308, redirect: "https://x.tls.test/"},

		// Disabled app: the disabled page, after redirects.
		{host: "off.test", target: "/anything", status: 503},

		// Not found: a host without a route for the path.
		{host: "ported.test:9000", target: "", status: 404},
	}
	for _, tt := range tests {
		t.Run(tt.host+tt.target, func(t *testing.T) {
			d := Match(tb, Request{Host: tt.host, Target: tt.target, TLS: tt.tls})
			status := tt.status
			if status == 0 {
				status = 200
			}
			if d.Status != status {
				t.Fatalf("status = %d, want %d (%+v)", d.Status, status, d)
			}
			switch status {
			case 200:
				if d.Route.App != tt.app || d.MatchPath != tt.matchPath || d.Rest != tt.rest {
					t.Fatalf("app, match path, rest = %q, %q, %q; want %q, %q, %q", d.Route.App, d.MatchPath, d.Rest, tt.app, tt.matchPath, tt.rest)
				}
			case 308:
				if d.Redirect != tt.redirect {
					t.Fatalf("redirect = %q, want %q", d.Redirect, tt.redirect)
				}
			case 404:
				if !d.NotFound || d.Route.App != "" {
					t.Fatalf("not found decision = %+v", d)
				}
			case 503:
				if !d.Disabled || d.Route.App != "off" {
					t.Fatalf("disabled decision = %+v", d)
				}
			}
		})
	}
}

func TestMatch_NotFoundWithoutCatchAll(t *testing.T) {
	tb := &Table{}
	mustSet(t, tb, "example.com/blog", "blog", "blog.1")
	mustSet(t, tb, ".example.com/", "any", "any.1")
	for _, req := range []Request{
		{Host: "other.org", Target: "/"},
		{Host: "example.com", Target: "/"}, // the exact host wins and mounts only /blog/
		{Host: "example.com", Target: "/blogger"},
	} {
		if d := Match(tb, req); !d.NotFound || d.Status != 404 {
			t.Errorf("Match(%+v) = %+v, want not found", req, d)
		}
	}
	if d := Match(tb, Request{Host: "www.example.com", Target: "/"}); d.Route.App != "any" {
		t.Errorf("www.example.com = %+v, want the wildcard", d)
	}
	if d := Match(&Table{}, Request{Host: "example.com", Target: "/"}); !d.NotFound {
		t.Errorf("empty table = %+v", d)
	}
}
