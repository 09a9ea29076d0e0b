package location

import (
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"example.com", "https://example.com:8443/blog", ".example.com/api/", "*", "*/x",
		"[::1]:80/a", "10.0.0.1", "x/../y", "a//b", "HTTP://A.B/C", "ex%41mple.com",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := Parse(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "location ") {
				t.Fatalf("error %q does not name the location", err)
			}
			return
		}
		if !strings.HasPrefix(l.Path, "/") || !strings.HasSuffix(l.Path, "/") {
			t.Fatalf("Parse(%q).Path = %q", s, l.Path)
		}
		if strings.Contains(l.Path, "//") || strings.Contains(l.Path, "/../") || strings.Contains(l.Path, "/./") {
			t.Fatalf("Parse(%q).Path = %q is not clean", s, l.Path)
		}
		if l.Host == "" || l.Host != strings.ToLower(l.Host) {
			t.Fatalf("Parse(%q).Host = %q", s, l.Host)
		}
		if l.Scheme != HTTP && l.Scheme != HTTPS {
			t.Fatalf("Parse(%q).Scheme = %q", s, l.Scheme)
		}
		if l.Port < 0 || l.Port > 65535 {
			t.Fatalf("Parse(%q).Port = %d", s, l.Port)
		}
		again, err := Parse(l.String())
		if err != nil {
			t.Fatalf("Parse(%q) = %#v, but Parse(String() = %q) fails: %v", s, l, l.String(), err)
		}
		if again != l {
			t.Fatalf("round trip of %q: %#v != %#v", s, again, l)
		}
	})
}
