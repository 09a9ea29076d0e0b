package router

import (
	"cmp"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Request is what routing looks at.
type Request struct {
	// Host is the Host header as received; it may carry a port.
	Host string
	// Target is the request target as sent: an escaped path with an
	// optional ?query.
	Target string
	// TLS is true for a request that came in over HTTPS.
	TLS bool
}

// Decision is where a request goes.
type Decision struct {
	// Status is 200 when an app answers (the app picks the real status),
	// 308 for Redirect, 404 for NotFound and 503 for Disabled.
	Status int
	// Route is the route that matched; the zero Route with NotFound.
	Route Route
	// MatchPath is the mount path the app sees ("/blog", or "/") and Rest
	// the path below it ("/post/1"; the whole path under "/").
	MatchPath, Rest string
	// Redirect is the Location to send: a mount requested without its
	// trailing slash, or an https route requested over plain HTTP.
	Redirect string
	// NotFound: no route; the built-in not-found page.
	NotFound bool
	// Disabled: the route's app is disabled; the built-in disabled page.
	Disabled bool
}

// Match decides where a request goes, exactly as the rendered Caddy config
// does (the integration test checks the two agree):
//
//  1. Host: the exact host, else the most specific `.example.com` wildcard
//     that covers it (the original let the least specific win), else `*`.
//     `.example.com` covers example.com itself and any name under it, as
//     in the original. Hosts compare case-insensitively. A route with a
//     port only applies when the Host header carries that port; a route
//     without one applies on every port. Once a host is chosen, its routes
//     alone decide: a path none of them mounts is not found, even if a
//     less specific host mounts it.
//  2. Path: the longest mount that contains the path on whole segments
//     (mount /blog/ serves /blog/ and /blog/x, not /blogger); on a tie, a
//     route with a port beats one without. Paths are unescaped and cleaned
//     first ("/a/../b" is "/b"), case-sensitively.
//  3. An https route asked over plain HTTP redirects to https (to port 443
//     or the route's port; Render also names a non-standard HTTPSAddr port);
//     the mount
//     path without its slash ("/blog") redirects to "/blog/" keeping the
//     query; a disabled app gets the disabled page.
//  4. prev.HOST/PATH (Table.Served) is served by the previous instance of
//     HOST/PATH, and is not found when there is none.
func Match(t *Table, req Request) Decision {
	notFound := Decision{Status: http.StatusNotFound, NotFound: true}
	reqHost, reqPort, hostOK := splitHostHeader(req.Host)

	var cands []Route
	for _, r := range t.Served() {
		if r.served() && (r.Location.Port == 0 || strconv.Itoa(r.Location.Port) == reqPort) {
			cands = append(cands, r)
		}
	}
	group := pickHost(cands, reqHost, hostOK)
	if len(group) == 0 {
		return notFound
	}

	// As Go's server parses it: "//a/b" is a path, not an authority.
	u, err := url.ParseRequestURI(req.Target)
	if err != nil {
		return notFound
	}
	clean := cleanPath(u.Path)
	sortMounts(group)
	for _, r := range group {
		mount := r.Location.Path
		addSlash := mount != "/" && clean == strings.TrimSuffix(mount, "/")
		if !addSlash && !strings.HasPrefix(clean, mount) {
			continue
		}
		d := Decision{Route: r, MatchPath: r.Location.MatchPath()}
		switch {
		case r.Location.HTTPS() && !req.TLS:
			d.Status = http.StatusPermanentRedirect
			d.Redirect = "https://" + redirectHost(r, reqHost) + req.Target
		case addSlash:
			d.Status = http.StatusPermanentRedirect
			d.Redirect = mount
			// As Caddy's query matcher sees it: "?" or "?&" is no query.
			if len(u.Query()) > 0 {
				d.Redirect += "?" + u.RawQuery
			}
		case t.IsDisabled(r.App):
			d.Status = http.StatusServiceUnavailable
			d.Disabled = true
		case !r.Active():
			// A prev. host without a previous instance.
			d.Status = http.StatusNotFound
			d.NotFound = true
		default:
			d.Status = http.StatusOK
			d.Rest = clean
			if mount != "/" {
				d.Rest = clean[len(d.MatchPath):]
			}
		}
		return d
	}
	return notFound
}

// splitHostHeader splits a Host header into a lower-case host (IPv6
// without brackets) and the port as written. ok is false for a header no
// route's host pattern can match (a non-numeric port, say): then only `*`
// applies.
func splitHostHeader(h string) (host, port string, ok bool) {
	h = strings.ToLower(h)
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return "", "", false
		}
		host, rest := h[1:end], h[end+1:]
		switch {
		case rest == "":
		case strings.HasPrefix(rest, ":") && allDigits(rest[1:]):
			port = rest[1:]
		default:
			return "", "", false
		}
		return host, port, true
	}
	host, port, _ = strings.Cut(h, ":")
	if strings.Contains(port, ":") || !allDigits(port) {
		return "", "", false
	}
	return host, port, true
}

func allDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// pickHost returns the routes of the most specific host that covers host.
func pickHost(cands []Route, host string, hostOK bool) []Route {
	var exact, catchAll []Route
	var wild []Route
	best := ""
	for _, r := range cands {
		h := r.Location.Host
		switch {
		case r.Location.CatchAll():
			catchAll = append(catchAll, r)
		case !hostOK:
		case r.Location.Wildcard():
			if host != h[1:] && !strings.HasSuffix(host, h) {
				continue
			}
			switch {
			case len(h) > len(best):
				best, wild = h, []Route{r}
			case h == best:
				wild = append(wild, r)
			}
		case h == host:
			exact = append(exact, r)
		}
	}
	switch {
	case len(exact) > 0:
		return exact
	case len(wild) > 0:
		return wild
	}
	return catchAll
}

// sortMounts orders one host's routes the way they are tried (and
// rendered): longest path first, then by path, then routes with a port
// before those without.
func sortMounts(rs []Route) {
	slices.SortFunc(rs, func(a, b Route) int {
		if c := cmp.Compare(len(b.Location.Path), len(a.Location.Path)); c != 0 {
			return c
		}
		if c := strings.Compare(a.Location.Path, b.Location.Path); c != 0 {
			return c
		}
		return cmp.Compare(b.Location.Port, a.Location.Port)
	})
}

// redirectHost is the authority an http->https redirect points at: the
// route's own host when it is exact (which gets IPv6 brackets right), the
// requested one under a wildcard.
func redirectHost(r Route, reqHost string) string {
	l := r.Location
	if l.Wildcard() {
		l.Host = reqHost
	}
	return l.HostPort()
}

// cleanPath is path.Clean keeping a trailing slash: how Caddy's
// path_regexp matcher sees a path before matching it.
func cleanPath(p string) string {
	c := path.Clean(p)
	if c != "/" && strings.HasSuffix(p, "/") {
		c += "/"
	}
	return c
}
