package router

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/toppcloud/toppcloud/internal/location"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

// Balanced is one site a balancer node proxies: its locations are served
// by the site's app nodes (Upstreams), not by an app of this node.
type Balanced struct {
	Site      string
	Locations []location.Location
	// Upstreams are HOST:PORT of the app nodes' plain-HTTP front servers.
	Upstreams []string
	// Out are upstreams that get no new requests (a node switching or
	// stopping); requests in flight to them finish.
	Out []string
}

// ParseBalanced checks a site's OpBalance arguments and turns them into a
// Balanced.
func ParseBalanced(a protocol.BalanceArgs) (Balanced, error) {
	b := Balanced{Site: a.Site}
	if a.Site == "" || strings.ContainsAny(a.Site, "{} \t\n/") {
		return b, fmt.Errorf("site name %q: must be a plain name", a.Site)
	}
	seen := map[string]bool{}
	for _, s := range a.Locations {
		l, err := location.Parse(s)
		if err != nil {
			return b, err
		}
		if l.HTTPS() && l.CatchAll() {
			return b, fmt.Errorf("location %s: https://* cannot be balanced (no certificate covers it)", l)
		}
		if seen[l.Key()] {
			return b, fmt.Errorf("location %s given twice", l)
		}
		seen[l.Key()] = true
		b.Locations = append(b.Locations, l)
	}
	if len(b.Locations) > 0 && len(a.Upstreams) == 0 {
		return b, fmt.Errorf("site %s: no upstreams", a.Site)
	}
	for _, u := range a.Upstreams {
		if err := checkUpstream(u); err != nil {
			return b, err
		}
		if !slices.Contains(b.Upstreams, u) {
			b.Upstreams = append(b.Upstreams, u)
		}
	}
	for _, u := range a.Out {
		if !slices.Contains(b.Upstreams, u) {
			return b, fmt.Errorf("out upstream %q is not one of the site's upstreams", u)
		}
		if !slices.Contains(b.Out, u) {
			b.Out = append(b.Out, u)
		}
	}
	return b, nil
}

// checkUpstream accepts HOST:PORT with a DNS name or an IP address: it
// goes into the config verbatim, so no placeholders or spaces.
func checkUpstream(u string) error {
	host, port, err := net.SplitHostPort(u)
	if err != nil {
		return fmt.Errorf("upstream %q: want HOST:PORT: %w", u, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("upstream %q: bad port", u)
	}
	if host == "" || strings.ContainsAny(host, "{}/ \t\n") {
		return fmt.Errorf("upstream %q: bad host", u)
	}
	return nil
}

// InUpstreams are the upstreams that get new requests: all but Out. When
// every upstream is out, all of them stay: requests to a switching node
// beat no answer at all (as on a node of its own, whose switch is
// graceful).
func (b Balanced) InUpstreams() []string {
	var in []string
	for _, u := range b.Upstreams {
		if !slices.Contains(b.Out, u) {
			in = append(in, u)
		}
	}
	if len(in) == 0 {
		return slices.Clone(b.Upstreams)
	}
	return in
}

// balancedRoutes are the routes the renderer adds for the balanced sites:
// one per location, which the router serves like an app's route (host and
// mount matching, https redirects, certificates on the front server) but
// proxies to the site's upstreams. A location of a balanced site wins
// over a route of the table at the same place (the table's is left out
// with a warning); two sites at one location are refused.
func balancedRoutes(sites []Balanced) ([]Route, error) {
	var out []Route
	owner := map[string]string{}
	for i := range sites {
		s := &sites[i]
		for _, l := range s.Locations {
			if o, ok := owner[l.Key()]; ok {
				return nil, fmt.Errorf("render: location %s is balanced for sites %s and %s", l, o, s.Site)
			}
			owner[l.Key()] = s.Site
			out = append(out, Route{Location: l, App: "site:" + s.Site, site: s})
		}
	}
	return out, nil
}
