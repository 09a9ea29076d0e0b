package router

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/toppcloud/toppcloud/internal/location"
)

// Pattern selects routes for deactivate and query, as the original's
// deactivate did: `HOST[:PORT][/PATH]`, where
//   - a pattern without a path selects every path of the host;
//   - a pattern without a port selects every port;
//   - HOST and PATH may be shell globs (`*`, `?`, `[...]`, as fnmatch:
//     `*` also crosses '/' and '.'); the host is matched case-insensitively,
//     the path against the route's normalized path ("/blog/");
//   - a scheme prefix is accepted and ignored.
//
// So `*` selects every route, `*.example.com` every route under
// example.com, `example.com/blog*` /blog/ and /blogger/ at example.com.
type Pattern struct {
	raw       string
	host      *regexp.Regexp // nil: hostExact
	hostExact string
	port      int            // 0: any
	path      *regexp.Regexp // nil: pathExact, or any path when that is ""
	pathExact string
}

// ParsePattern parses a deactivate/query pattern.
func ParsePattern(s string) (Pattern, error) {
	p := Pattern{raw: s}
	fail := func(format string, a ...any) (Pattern, error) {
		return Pattern{}, fmt.Errorf("pattern %q: %s", s, fmt.Sprintf(format, a...))
	}
	rest := s
	scheme := location.HTTP
	if i := strings.Index(rest, "://"); i >= 0 {
		scheme = strings.ToLower(rest[:i])
		rest = rest[i+3:]
	}
	hostport, path, hasPath := strings.Cut(rest, "/")
	if hostport == "" {
		return fail("missing host")
	}

	if exact, err := location.Parse(scheme + "://" + hostport); err == nil && strings.HasPrefix(hostport, "[") {
		// An IPv6 literal, not a glob class.
		p.hostExact, p.port = exact.Host, exact.Port
	} else if isGlob(hostport) {
		host := hostport
		if i := strings.LastIndexByte(hostport, ':'); i >= 0 {
			port, err := strconv.Atoi(hostport[i+1:])
			if err != nil || port < 1 || port > 65535 {
				return fail("bad port %q", hostport[i+1:])
			}
			host, p.port = hostport[:i], port
		}
		re, err := globRegexp(strings.ToLower(host))
		if err != nil {
			return fail("%s", err)
		}
		p.host = re
	} else {
		l, err := location.Parse(scheme + "://" + hostport)
		if err != nil {
			return fail("%s", err)
		}
		p.hostExact, p.port = l.Host, l.Port
	}

	if !hasPath {
		return p, nil
	}
	path = "/" + path
	if isGlob(path) {
		re, err := globRegexp(path)
		if err != nil {
			return fail("%s", err)
		}
		p.path = re
		return p, nil
	}
	l, err := location.Parse("x" + path)
	if err != nil {
		return fail("%s", err)
	}
	p.pathExact = l.Path
	return p, nil
}

// String returns the pattern as written.
func (p Pattern) String() string { return p.raw }

// Match reports whether the pattern selects l.
func (p Pattern) Match(l location.Location) bool {
	if p.host != nil {
		if !p.host.MatchString(l.Host) {
			return false
		}
	} else if p.hostExact != l.Host {
		return false
	}
	if p.port != 0 && p.port != l.Port {
		return false
	}
	switch {
	case p.path != nil:
		return p.path.MatchString(l.Path) || p.path.MatchString(strings.TrimSuffix(l.Path, "/"))
	case p.pathExact != "":
		return p.pathExact == l.Path
	}
	return true
}

func matchesAny(ps []Pattern, l location.Location) bool {
	for _, p := range ps {
		if p.Match(l) {
			return true
		}
	}
	return false
}

func isGlob(s string) bool { return strings.ContainsAny(s, "*?[") }

// globRegexp translates an fnmatch pattern into an anchored regexp.
// Written by hand: path.Match stops '*' at '/', which fnmatch does not.
func globRegexp(g string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(g); i++ {
		switch c := g[i]; c {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		case '[':
			end := strings.IndexByte(g[i+1:], ']')
			if end < 0 {
				return nil, fmt.Errorf("unclosed '[' in %q", g)
			}
			class := g[i+1 : i+1+end]
			if class == "" {
				return nil, fmt.Errorf("empty '[]' in %q", g)
			}
			b.WriteString("[")
			if class[0] == '!' {
				b.WriteString("^")
				class = class[1:]
			}
			b.WriteString(strings.NewReplacer(`\`, `\\`, `[`, `\[`, `^`, `\^`).Replace(class))
			b.WriteString("]")
			i += end + 1
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}
