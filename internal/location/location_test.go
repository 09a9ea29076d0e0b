package location

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParse_Normalizes(t *testing.T) {
	tests := []struct {
		in     string
		want   Location
		str    string
		node   string
		match  string
		wildc  bool
		catch  bool
		isHTTP bool
	}{
		{in: "example.com", want: Location{HTTP, "example.com", 0, "/"}, str: "example.com", node: "example.com", match: "/"},
		{in: "Example.COM/", want: Location{HTTP, "example.com", 0, "/"}, str: "example.com", node: "example.com", match: "/"},
		{in: "http://foo.com/bar", want: Location{HTTP, "foo.com", 0, "/bar/"}, str: "foo.com/bar/", node: "foo.com", match: "/bar"},
		{in: "example.com/blog", want: Location{HTTP, "example.com", 0, "/blog/"}, str: "example.com/blog/", node: "example.com", match: "/blog"},
		{in: "example.com/blog/", want: Location{HTTP, "example.com", 0, "/blog/"}, str: "example.com/blog/", node: "example.com", match: "/blog"},
		{in: "example.com/Blog/2010", want: Location{HTTP, "example.com", 0, "/Blog/2010/"}, str: "example.com/Blog/2010/", node: "example.com", match: "/Blog/2010"},
		{in: "HTTPS://Secure.example.com/app", want: Location{HTTPS, "secure.example.com", 0, "/app/"}, str: "https://secure.example.com/app/", node: "secure.example.com", match: "/app"},
		{in: "example.com:8080/x", want: Location{HTTP, "example.com", 8080, "/x/"}, str: "example.com:8080/x/", node: "example.com", match: "/x"},
		{in: "http://example.com:80", want: Location{HTTP, "example.com", 0, "/"}, str: "example.com", node: "example.com", match: "/"},
		{in: "https://example.com:443/", want: Location{HTTPS, "example.com", 0, "/"}, str: "https://example.com", node: "example.com", match: "/"},
		{in: "https://example.com:80/", want: Location{HTTPS, "example.com", 80, "/"}, str: "https://example.com:80", node: "example.com", match: "/"},
		{in: ".example.com", want: Location{HTTP, ".example.com", 0, "/"}, str: ".example.com", node: "example.com", match: "/", wildc: true},
		{in: ".Example.com:8000/api", want: Location{HTTP, ".example.com", 8000, "/api/"}, str: ".example.com:8000/api/", node: "example.com", match: "/api", wildc: true},
		{in: "*", want: Location{HTTP, "*", 0, "/"}, str: "*", node: "", match: "/", catch: true},
		{in: "*/blog", want: Location{HTTP, "*", 0, "/blog/"}, str: "*/blog/", node: "", match: "/blog", catch: true},
		{in: "10.0.0.1:8080", want: Location{HTTP, "10.0.0.1", 8080, "/"}, str: "10.0.0.1:8080", node: "10.0.0.1", match: "/"},
		{in: "[2001:DB8::1]:81/a", want: Location{HTTP, "2001:db8::1", 81, "/a/"}, str: "[2001:db8::1]:81/a/", node: "2001:db8::1", match: "/a"},
		{in: "[::1]", want: Location{HTTP, "::1", 0, "/"}, str: "[::1]", node: "::1", match: "/"},
		{in: "localhost/a-b_c.d~e/f@g:h", want: Location{HTTP, "localhost", 0, "/a-b_c.d~e/f@g:h/"}, str: "localhost/a-b_c.d~e/f@g:h/", node: "localhost", match: "/a-b_c.d~e/f@g:h"},
		{in: "xn--bcher-kva.example/", want: Location{HTTP, "xn--bcher-kva.example", 0, "/"}, str: "xn--bcher-kva.example", node: "xn--bcher-kva.example", match: "/"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got != tt.want {
				t.Fatalf("Parse = %#v, want %#v", got, tt.want)
			}
			if s := got.String(); s != tt.str {
				t.Errorf("String = %q, want %q", s, tt.str)
			}
			again, err := Parse(got.String())
			if err != nil || again != got {
				t.Errorf("Parse(String()) = %#v, %v; want %#v", again, err, got)
			}
			if n := got.NodeHost(); n != tt.node {
				t.Errorf("NodeHost = %q, want %q", n, tt.node)
			}
			if m := got.MatchPath(); m != tt.match {
				t.Errorf("MatchPath = %q, want %q", m, tt.match)
			}
			if got.Wildcard() != tt.wildc || got.CatchAll() != tt.catch {
				t.Errorf("Wildcard, CatchAll = %v, %v; want %v, %v", got.Wildcard(), got.CatchAll(), tt.wildc, tt.catch)
			}
		})
	}
}

func TestParse_Rejects(t *testing.T) {
	tests := []struct {
		in, reason string
	}{
		{"", "empty"},
		{"x/../y", `location "x/../y": path must not contain '..'`},
		{"x/./y", "'.' segments"},
		{"x//y", "empty segments"},
		{"x/a%2fb", "percent escapes"},
		{"x/a{b}", "not allowed in a path"},
		{"x/a\\b", "not allowed in a path"},
		{"example.com/?q=1", "query or fragment"},
		{"example.com/#top", "query or fragment"},
		{"ftp://example.com", `unsupported scheme "ftp"`},
		{"http://", "missing host"},
		{"/blog", "missing host"},
		{"user@example.com", "user information"},
		{"exa mple.com", "spaces"},
		{"exämple.com", "ASCII"},
		{"example..com", "empty label"},
		{"example.com.", "empty label"},
		{"-example.com", "hyphen"},
		{"example-.com", "hyphen"},
		{"ex_ample.com", "not allowed in a host name"},
		{strings.Repeat("a", 64) + ".com", "longer than 63"},
		{strings.Repeat("a.", 127) + "com", "longer than 253"},
		{"*.example.com", "write a wildcard as .example.com"},
		{"foo*", "write a wildcard"},
		{".", "empty name"},
		{"..example.com", "empty label"},
		{"1.2.3.256", "not a valid IPv4"},
		{"1.2.3", "not a valid IPv4"},
		{".1.2.3.4", "wildcard needs a domain name"},
		{"::1", "in brackets"},
		{"[::1", "missing ']'"},
		{"[::1]x", "unexpected"},
		{"[1.2.3.4]", "not a valid IPv6"},
		{"[fe80::1%eth0]", "not a valid IPv6"},
		{"example.com:", "empty port"},
		{"example.com:0", "out of range"},
		{"example.com:65536", "out of range"},
		{"example.com:-1", "not a number"},
		{"example.com:http", "not a number"},
		{"https://*", "https needs a host name"},
		{"https://*/blog", "https needs a host name"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			l, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %#v, want error", tt.in, l)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("error %q does not mention %q", err, tt.reason)
			}
			if !strings.HasPrefix(err.Error(), "location ") {
				t.Errorf("error %q does not name the location", err)
			}
		})
	}
}

func TestLocation_JSON(t *testing.T) {
	type doc struct {
		L Location `json:"l"`
	}
	in := doc{L: Location{HTTPS, "example.com", 8443, "/blog/"}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"l":"https://example.com:8443/blog/"}` {
		t.Fatalf("marshal = %s", b)
	}
	var out doc
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out != in {
		t.Fatalf("round trip = %#v, want %#v", out, in)
	}
	if err := json.Unmarshal([]byte(`{"l":"x/../y"}`), &out); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unmarshal of a bad location: err = %v, want ErrInvalid", err)
	}
	if _, err := json.Marshal(doc{}); err == nil {
		t.Fatal("marshal of the zero Location succeeded")
	}
}

func TestLocation_KeyIgnoresScheme(t *testing.T) {
	a, _ := Parse("http://example.com/x")
	b, _ := Parse("https://example.com/x/")
	if a.Key() != b.Key() || a.Key() != "example.com/x/" {
		t.Fatalf("keys %q and %q, want both example.com/x/", a.Key(), b.Key())
	}
	if !b.HTTPS() || a.HTTPS() {
		t.Fatal("HTTPS() wrong")
	}
	ip, _ := Parse("[::1]:8080/")
	if ip.Key() != "[::1]:8080/" || !ip.IP() {
		t.Fatalf("IPv6 key = %q, IP = %v", ip.Key(), ip.IP())
	}
}
