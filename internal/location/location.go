// Package location parses and normalizes the locations apps are mounted at:
// `[http[s]://]HOST[:PORT][/PATH]`, as `toppcloud update`, `activate`,
// `deactivate` and the node's route table use them.
//
// HOST is a DNS name, an IPv4 address, an IPv6 address in brackets, a
// wildcard suffix `.example.com` (the apex example.com and every name under
// it, as in the original) or `*` (every host). PATH is normalized to start
// and end with `/`, so `example.com/blog` and `example.com/blog/` are the
// same mount.
package location

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Schemes a location may carry.
const (
	HTTP  = "http"
	HTTPS = "https"
)

// CatchAll is the host that matches every request no other host matches.
const CatchAll = "*"

// ErrInvalid is wrapped by every parse error, for errors.Is.
var ErrInvalid = errors.New("invalid location")

// Error is a location that could not be parsed. Its message names the input
// and what is wrong with it: `location "x/../y": path must not contain '..'`.
type Error struct {
	Input  string
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("location %q: %s", e.Input, e.Reason) }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// Location is a parsed, normalized location. The zero value is not valid;
// use Parse. Two locations that route the same requests compare equal.
type Location struct {
	// Scheme is HTTP or HTTPS. An https location is served over TLS.
	Scheme string
	// Host is lower-case: a DNS name, an IP address (IPv6 without
	// brackets, in its canonical form), a wildcard suffix starting with
	// "." or CatchAll.
	Host string
	// Port is 0 when the location names none or names the scheme's
	// default port (80 for http, 443 for https).
	Port int
	// Path starts and ends with "/".
	Path string
}

// Parse parses and normalizes s. It accepts what the original accepted
// (`example.com`, `http://example.com/blog`) and refuses anything that is
// not a clean host and path: user info, queries, fragments, empty path
// segments, "." and "..", percent escapes.
func Parse(s string) (Location, error) {
	fail := func(format string, a ...any) (Location, error) {
		return Location{}, &Error{Input: s, Reason: fmt.Sprintf(format, a...)}
	}
	if s == "" {
		return fail("empty")
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return fail("must not contain spaces or control characters")
		}
		if r > 0x7e {
			return fail("must be ASCII (write international names in their xn-- form)")
		}
	}
	if strings.ContainsAny(s, "?#") {
		return fail("must not contain a query or fragment ('?' or '#')")
	}

	l := Location{Scheme: HTTP}
	rest := s
	if i := strings.Index(rest, "://"); i >= 0 {
		switch scheme := strings.ToLower(rest[:i]); scheme {
		case HTTP, HTTPS:
			l.Scheme = scheme
		default:
			return fail("unsupported scheme %q: use http:// or https://", rest[:i])
		}
		rest = rest[i+3:]
	}

	hostport, path := rest, "/"
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		hostport, path = rest[:i], rest[i:]
	}
	if strings.Contains(hostport, "@") {
		return fail("must not contain user information ('@')")
	}
	host, port, err := splitHostPort(hostport)
	if err != nil {
		return fail("%s", err)
	}
	if l.Host, err = normalizeHost(host); err != nil {
		return fail("%s", err)
	}
	if port != "" {
		if l.Port, err = parsePort(port); err != nil {
			return fail("%s", err)
		}
	}
	if l.Port == defaultPort(l.Scheme) {
		l.Port = 0
	}
	if l.Scheme == HTTPS && l.Host == CatchAll {
		return fail("https needs a host name: no certificate can cover %q", CatchAll)
	}
	if l.Path, err = normalizePath(path); err != nil {
		return fail("%s", err)
	}
	return l, nil
}

// String gives the normalized form; Parse(l.String()) == l. The scheme is
// written only for https, the way users write locations.
func (l Location) String() string {
	var b strings.Builder
	if l.Scheme == HTTPS {
		b.WriteString("https://")
	}
	b.WriteString(l.HostPort())
	if l.Path != "/" {
		b.WriteString(l.Path)
	}
	return b.String()
}

// HostPort is the host, with brackets around an IPv6 address, followed by
// ":PORT" when the location has a port.
func (l Location) HostPort() string {
	h := l.Host
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	if l.Port != 0 {
		h += ":" + strconv.Itoa(l.Port)
	}
	return h
}

// Key identifies the mount a location names: host, port and path, without
// the scheme. A route table has at most one route per key.
func (l Location) Key() string { return l.HostPort() + l.Path }

// Wildcard reports whether the host is a suffix wildcard (".example.com").
func (l Location) Wildcard() bool { return strings.HasPrefix(l.Host, ".") }

// CatchAll reports whether the host is "*".
func (l Location) CatchAll() bool { return l.Host == CatchAll }

// HTTPS reports whether the location is served over TLS.
func (l Location) HTTPS() bool { return l.Scheme == HTTPS }

// IP reports whether the host is an IP address.
func (l Location) IP() bool {
	_, err := netip.ParseAddr(l.Host)
	return err == nil
}

// NodeHost is the host to reach when no --node is given, as the original
// defaulted --node to the location's host: the host itself, or the suffix
// of a wildcard without its leading dot. It is "" for CatchAll, which names
// no node.
func (l Location) NodeHost() string {
	if l.CatchAll() {
		return ""
	}
	return strings.TrimPrefix(l.Host, ".")
}

// MatchPath is the mount path as applications see it: the path without its
// trailing slash, or "/" for the root ("/blog/" -> "/blog").
func (l Location) MatchPath() string {
	if l.Path == "/" {
		return "/"
	}
	return strings.TrimSuffix(l.Path, "/")
}

// MarshalText writes the String form, so locations read well in JSON.
func (l Location) MarshalText() ([]byte, error) {
	if l.Host == "" {
		return nil, errors.New("marshal location: zero value")
	}
	return []byte(l.String()), nil
}

// UnmarshalText parses with Parse.
func (l *Location) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

func defaultPort(scheme string) int {
	if scheme == HTTPS {
		return 443
	}
	return 80
}

func splitHostPort(hp string) (host, port string, err error) {
	if hp == "" {
		return "", "", errors.New("missing host")
	}
	if strings.HasPrefix(hp, "[") {
		end := strings.IndexByte(hp, ']')
		if end < 0 {
			return "", "", errors.New("missing ']' after IPv6 address")
		}
		host, rest := hp[:end+1], hp[end+1:]
		if rest == "" {
			return host, "", nil
		}
		if !strings.HasPrefix(rest, ":") {
			return "", "", fmt.Errorf("unexpected %q after IPv6 address", rest)
		}
		if rest == ":" {
			return "", "", errors.New("empty port after ':'")
		}
		return host, rest[1:], nil
	}
	switch strings.Count(hp, ":") {
	case 0:
		return hp, "", nil
	case 1:
		i := strings.IndexByte(hp, ':')
		if i == len(hp)-1 {
			return "", "", errors.New("empty port after ':'")
		}
		return hp[:i], hp[i+1:], nil
	default:
		return "", "", errors.New("an IPv6 address must be written in brackets: [2001:db8::1]")
	}
}

func parsePort(p string) (int, error) {
	if p == "" {
		return 0, errors.New("empty port after ':'")
	}
	for _, c := range p {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("port %q is not a number", p)
		}
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %s is out of range 1-65535", p)
	}
	return n, nil
}

func normalizeHost(h string) (string, error) {
	if h == "" {
		return "", errors.New("missing host")
	}
	if h == CatchAll {
		return h, nil
	}
	if strings.HasPrefix(h, "[") {
		inner := strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
		a, err := netip.ParseAddr(inner)
		if err != nil || !a.Is6() || a.Zone() != "" || a.Is4In6() {
			return "", fmt.Errorf("%q is not a valid IPv6 address", h)
		}
		return a.String(), nil
	}
	h = strings.ToLower(h)
	if strings.Contains(h, "*") {
		return "", fmt.Errorf("host %q: write a wildcard as .example.com (the name and everything under it) or * (every host)", h)
	}
	wildcard := strings.HasPrefix(h, ".")
	name := strings.TrimPrefix(h, ".")
	if looksNumeric(name) {
		a, err := netip.ParseAddr(name)
		if err != nil || !a.Is4() {
			return "", fmt.Errorf("%q is not a valid IPv4 address or host name", name)
		}
		if wildcard {
			return "", fmt.Errorf("host %q: a wildcard needs a domain name, not an IP address", h)
		}
		return a.String(), nil
	}
	if err := checkDNSName(name); err != nil {
		return "", fmt.Errorf("host %q: %s", h, err)
	}
	return h, nil
}

// looksNumeric reports whether the last label is all digits: no top-level
// domain is, so such a name is meant as an IPv4 address.
func looksNumeric(name string) bool {
	last := name[strings.LastIndexByte(name, '.')+1:]
	if last == "" {
		return false
	}
	for _, c := range last {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func checkDNSName(name string) error {
	if name == "" {
		return errors.New("empty name")
	}
	if len(name) > 253 {
		return errors.New("longer than 253 characters")
	}
	for _, label := range strings.Split(name, ".") {
		switch {
		case label == "":
			return errors.New("empty label (two dots in a row, or a trailing dot)")
		case len(label) > 63:
			return fmt.Errorf("label %q is longer than 63 characters", label)
		case label[0] == '-' || label[len(label)-1] == '-':
			return fmt.Errorf("label %q starts or ends with a hyphen", label)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("character %q is not allowed in a host name (letters, digits, hyphens and dots only)", c)
			}
		}
	}
	return nil
}

// pathChar reports whether c may appear in a path segment: RFC 3986
// unreserved and sub-delims plus ':' and '@', but not '%': escapes would
// give one mount several spellings. Braces are excluded too, which keeps
// paths free of Caddy placeholders when they are rendered into its config.
func pathChar(c rune) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.ContainsRune("-._~!$&'()*+,;=:@", c)
}

func normalizePath(p string) (string, error) {
	if p == "" || p == "/" {
		return "/", nil
	}
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	if segs[len(segs)-1] == "" {
		segs = segs[:len(segs)-1]
	}
	for _, s := range segs {
		switch s {
		case "":
			return "", errors.New("path must not contain empty segments ('//')")
		case ".":
			return "", errors.New("path must not contain '.' segments")
		case "..":
			return "", errors.New("path must not contain '..'")
		}
		for _, c := range s {
			if c == '%' {
				return "", errors.New("path must not contain percent escapes")
			}
			if !pathChar(c) {
				return "", fmt.Errorf("character %q is not allowed in a path", c)
			}
		}
	}
	return "/" + strings.Join(segs, "/") + "/", nil
}
