package router

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/location"
)

func loc(t testing.TB, s string) location.Location {
	t.Helper()
	l, err := location.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func pats(t testing.TB, ss ...string) []Pattern {
	t.Helper()
	var out []Pattern
	for _, s := range ss {
		p, err := ParsePattern(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// brief is a route as "location app live prev" for compact assertions.
type brief struct{ Loc, App, Live, Prev string }

func briefs(rs []Route) []brief {
	out := []brief{}
	for _, r := range rs {
		out = append(out, brief{r.Location.String(), r.App, r.Live, r.Prev})
	}
	return out
}

func TestTable_SetRotatesPrev(t *testing.T) {
	tests := []struct {
		name string
		ops  func(t *testing.T, tb *Table)
		want []brief
	}{
		{"first set", func(t *testing.T, tb *Table) {
			mustSet(t, tb, "example.com", "blog", "blog.1")
		}, []brief{{"example.com", "blog", "blog.1", ""}}},
		{"second set rotates", func(t *testing.T, tb *Table) {
			mustSet(t, tb, "example.com", "blog", "blog.1")
			mustSet(t, tb, "example.com", "blog", "blog.2")
		}, []brief{{"example.com", "blog", "blog.2", "blog.1"}}},
		{"third set drops the oldest", func(t *testing.T, tb *Table) {
			mustSet(t, tb, "example.com", "blog", "blog.1")
			mustSet(t, tb, "example.com", "blog", "blog.2")
			mustSet(t, tb, "example.com", "blog", "blog.3")
		}, []brief{{"example.com", "blog", "blog.3", "blog.2"}}},
		{"same instance again keeps prev", func(t *testing.T, tb *Table) {
			mustSet(t, tb, "example.com", "blog", "blog.1")
			mustSet(t, tb, "example.com", "blog", "blog.2")
			mustSet(t, tb, "example.com", "blog", "blog.2")
		}, []brief{{"example.com", "blog", "blog.2", "blog.1"}}},
		{"other app takes over, no cross-app prev", func(t *testing.T, tb *Table) {
			mustSet(t, tb, "example.com", "blog", "blog.1")
			mustSet(t, tb, "example.com", "wiki", "wiki.1")
		}, []brief{{"example.com", "wiki", "wiki.1", ""}}},
		{"scheme follows the last set, same route", func(t *testing.T, tb *Table) {
			mustSet(t, tb, "example.com/x", "blog", "blog.1")
			mustSet(t, tb, "https://example.com/x/", "blog", "blog.2")
		}, []brief{{"https://example.com/x/", "blog", "blog.2", "blog.1"}}},
		{"sorted by location, paths and ports separate", func(t *testing.T, tb *Table) {
			mustSet(t, tb, "example.com/blog", "blog", "blog.1")
			mustSet(t, tb, "example.com", "site", "site.1")
			mustSet(t, tb, "example.com:8080", "site", "site.2")
			mustSet(t, tb, ".example.com", "any", "any.1")
		}, []brief{
			{".example.com", "any", "any.1", ""},
			{"example.com", "site", "site.1", ""},
			{"example.com/blog/", "blog", "blog.1", ""},
			{"example.com:8080", "site", "site.2", ""},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := &Table{}
			tt.ops(t, tb)
			if got := briefs(tb.Routes); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("routes = %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func mustSet(t *testing.T, tb *Table, l, app, inst string) {
	t.Helper()
	if _, err := tb.Set(loc(t, l), app, inst); err != nil {
		t.Fatal(err)
	}
}

func TestTable_SetRejectsBadNames(t *testing.T) {
	tb := &Table{}
	for _, tc := range []struct{ app, inst string }{
		{"", "a.1"}, {"a.b", "a.1"}, {"../x", "a.1"}, {"a b", "a.1"},
		{"a", ""}, {"a", ".."}, {"a", "../a.1"}, {"a", "a/1"}, {"a", "prev"}, {"a", "{x}"},
	} {
		if _, err := tb.Set(loc(t, "example.com"), tc.app, tc.inst); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Set(app %q, instance %q): err = %v, want ErrInvalidName", tc.app, tc.inst, err)
		}
	}
	if len(tb.Routes) != 0 {
		t.Fatalf("a refused Set changed the table: %+v", tb.Routes)
	}
}

func TestTable_Activate(t *testing.T) {
	base := func(t *testing.T) *Table {
		tb := &Table{}
		mustSet(t, tb, "example.com", "blog", "blog.1")
		mustSet(t, tb, "example.com", "blog", "blog.2")
		return tb
	}
	tests := []struct {
		name, loc, inst string
		want            brief
		err             error
	}{
		{"prev swaps", "example.com", Prev, brief{"example.com", "blog", "blog.1", "blog.2"}, nil},
		{"explicit prev swaps", "example.com", "blog.1", brief{"example.com", "blog", "blog.1", "blog.2"}, nil},
		{"live is a no-op", "example.com", "blog.2", brief{"example.com", "blog", "blog.2", "blog.1"}, nil},
		{"other instance rotates", "example.com", "blog.0", brief{"example.com", "blog", "blog.0", "blog.2"}, nil},
		{"no route", "example.org", Prev, brief{}, ErrNoRoute},
		{"bad name", "example.com", "../x", brief{}, ErrInvalidName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := base(t)
			r, err := tb.Activate(loc(t, tt.loc), tt.inst)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if got := briefs([]Route{r})[0]; got != tt.want {
				t.Fatalf("route = %+v, want %+v", got, tt.want)
			}
			if got := briefs(tb.Routes)[0]; got != tt.want {
				t.Fatalf("table = %+v, want %+v", got, tt.want)
			}
		})
	}

	t.Run("prev twice rolls forward", func(t *testing.T) {
		tb := base(t)
		for range 2 {
			if _, err := tb.Activate(loc(t, "example.com"), Prev); err != nil {
				t.Fatal(err)
			}
		}
		if got := briefs(tb.Routes)[0]; got != (brief{"example.com", "blog", "blog.2", "blog.1"}) {
			t.Fatalf("after two rollbacks: %+v", got)
		}
	})
	t.Run("prev without prev", func(t *testing.T) {
		tb := &Table{}
		mustSet(t, tb, "example.com", "blog", "blog.1")
		if _, err := tb.Activate(loc(t, "example.com"), Prev); !errors.Is(err, ErrNoPrev) {
			t.Fatalf("err = %v, want ErrNoPrev", err)
		}
	})
}

func TestTable_Remove(t *testing.T) {
	base := func(t *testing.T) *Table {
		tb := &Table{}
		mustSet(t, tb, "example.com", "site", "site.1")
		mustSet(t, tb, "example.com", "site", "site.2")
		mustSet(t, tb, "example.com/blog", "blog", "blog.1")
		mustSet(t, tb, "example.com/blogger", "blogger", "blogger.1")
		mustSet(t, tb, "example.com:8080/api", "api", "api.1")
		mustSet(t, tb, "www.example.com", "site", "site.2")
		mustSet(t, tb, "other.org", "other", "other.1")
		mustSet(t, tb, "*", "catch", "catch.1")
		return tb
	}
	locsOf := func(rs []Route) []string {
		out := []string{}
		for _, r := range rs {
			out = append(out, r.Location.String())
		}
		return out
	}
	tests := []struct {
		name     string
		patterns []string
		removed  []string
	}{
		{"host without path: all its paths and ports", []string{"example.com"},
			[]string{"example.com", "example.com/blog/", "example.com/blogger/", "example.com:8080/api/"}},
		{"exact path", []string{"example.com/blog"}, []string{"example.com/blog/"}},
		{"exact path with slash", []string{"http://example.com/blog/"}, []string{"example.com/blog/"}},
		{"port narrows", []string{"example.com:8080"}, []string{"example.com:8080/api/"}},
		{"path glob", []string{"example.com/blog*"}, []string{"example.com/blog/", "example.com/blogger/"}},
		{"host glob", []string{"*.example.com"}, []string{"www.example.com"}},
		{"host glob case-insensitive", []string{"WWW.*"}, []string{"www.example.com"}},
		{"star is everything", []string{"*"},
			[]string{"*", "example.com", "example.com/blog/", "example.com/blogger/", "example.com:8080/api/", "other.org", "www.example.com"}},
		{"several patterns", []string{"other.org", "www.example.com"}, []string{"other.org", "www.example.com"}},
		{"nothing matches", []string{"nothing.example"}, []string{}},
		{"class", []string{"[ow]*"}, []string{"other.org", "www.example.com"}},
		{"negated class", []string{"[!ow*]*.*"}, []string{"example.com", "example.com/blog/", "example.com/blogger/", "example.com:8080/api/"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := base(t)
			before := len(tb.Routes)
			removed := tb.Remove(pats(t, tt.patterns...), false)
			if got := locsOf(removed); !reflect.DeepEqual(got, tt.removed) {
				t.Fatalf("removed %q, want %q", got, tt.removed)
			}
			if len(tb.Routes) != before-len(tt.removed) {
				t.Fatalf("%d routes left, want %d", len(tb.Routes), before-len(tt.removed))
			}
			for _, r := range tb.Routes {
				if matchesAny(pats(t, tt.patterns...), r.Location) {
					t.Fatalf("route %s still there", r.Location)
				}
			}
		})
	}

	t.Run("keep-prev keeps the prev and drops the live", func(t *testing.T) {
		tb := base(t)
		removed := tb.Remove(pats(t, "example.com/"), true)
		if got := briefs(removed); !reflect.DeepEqual(got, []brief{{"example.com", "site", "site.2", "site.1"}}) {
			t.Fatalf("removed %+v", got)
		}
		r, ok := tb.Lookup(loc(t, "example.com"))
		if !ok || r.Active() || r.Prev != "site.1" {
			t.Fatalf("after keep-prev: %+v, %v", r, ok)
		}
		if d := Match(tb, Request{Host: "example.com", Target: "/"}); !d.NotFound {
			t.Fatalf("a deactivated route still serves: %+v", d)
		}
		// activate prev brings it back, a new set makes it live again.
		if _, err := tb.Activate(loc(t, "example.com"), Prev); err != nil {
			t.Fatal(err)
		}
		if r, _ := tb.Lookup(loc(t, "example.com")); r.Live != "site.1" || r.Prev != "" {
			t.Fatalf("after activate prev: %+v", r)
		}
		// Keep-prev of a route without prev removes it entirely.
		tb.Remove(pats(t, "other.org"), true)
		if _, ok := tb.Lookup(loc(t, "other.org")); ok {
			t.Fatal("route without prev kept after keep-prev")
		}
	})
	t.Run("remove after keep-prev drops the rest", func(t *testing.T) {
		tb := base(t)
		tb.Remove(pats(t, "example.com/"), true)
		if got := briefs(tb.Remove(pats(t, "example.com/"), true)); len(got) != 0 {
			t.Fatalf("second keep-prev removed %+v", got)
		}
		if got := briefs(tb.Remove(pats(t, "example.com/"), false)); !reflect.DeepEqual(got, []brief{{"example.com", "site", "", "site.1"}}) {
			t.Fatalf("removed %+v", got)
		}
		if _, ok := tb.Lookup(loc(t, "example.com")); ok {
			t.Fatal("route still there")
		}
	})
}

func TestTable_DisableEnable(t *testing.T) {
	tb := &Table{}
	mustSet(t, tb, "example.com", "site", "site.1")
	mustSet(t, tb, "example.com/blog", "blog", "blog.1")

	if _, err := tb.Disable("nope"); !errors.Is(err, ErrUnknownApp) {
		t.Fatalf("Disable(unknown) err = %v", err)
	}
	if changed, err := tb.Disable("site"); err != nil || !changed {
		t.Fatalf("Disable(site) = %v, %v", changed, err)
	}
	if changed, err := tb.Disable("site"); err != nil || changed {
		t.Fatalf("second Disable(site) = %v, %v; want false, nil", changed, err)
	}
	if changed, _ := tb.Disable("blog"); !changed {
		t.Fatal("Disable(blog) unchanged")
	}
	if !reflect.DeepEqual(tb.Disabled, []string{"blog", "site"}) {
		t.Fatalf("Disabled = %q", tb.Disabled)
	}
	if !tb.Enable("blog") || tb.Enable("blog") {
		t.Fatal("Enable(blog) should change once")
	}
	if !reflect.DeepEqual(tb.Disabled, []string{"site"}) || !tb.IsDisabled("site") || tb.IsDisabled("blog") {
		t.Fatalf("Disabled = %q", tb.Disabled)
	}
}

func TestTable_QueriesAndClone(t *testing.T) {
	tb := &Table{}
	mustSet(t, tb, "example.com", "site", "site.1")
	mustSet(t, tb, "example.com", "site", "site.2")
	mustSet(t, tb, "www.example.com", "site", "site.2")
	mustSet(t, tb, "example.com/blog", "blog", "blog.1")

	if got := tb.Instances(); !reflect.DeepEqual(got, []string{"blog.1", "site.1", "site.2"}) {
		t.Fatalf("Instances = %q", got)
	}
	if got := briefs(tb.RoutesFor("site")); len(got) != 2 {
		t.Fatalf("RoutesFor(site) = %+v", got)
	}
	if got := briefs(tb.Find(pats(t, "*/blog"))); !reflect.DeepEqual(got, []brief{{"example.com/blog/", "blog", "blog.1", ""}}) {
		t.Fatalf("Find = %+v", got)
	}
	if got := tb.Find(nil); len(got) != 3 {
		t.Fatalf("Find(nil) = %d routes", len(got))
	}
	r, ok := tb.Lookup(loc(t, "https://example.com/blog/"))
	if !ok || r.App != "blog" {
		t.Fatalf("Lookup ignores scheme: %+v %v", r, ok)
	}

	c := tb.Clone()
	mustSet(t, c, "example.com", "site", "site.3")
	c.Disable("site")
	if r, _ := tb.Lookup(loc(t, "example.com")); r.Live != "site.2" || tb.IsDisabled("site") {
		t.Fatal("changing a clone changed the original")
	}
}

func TestParsePattern_Errors(t *testing.T) {
	for _, s := range []string{"", "/blog", "x/../y", "[a", "example.com:99999", "*:x", "a*/[", "exa mple.com"} {
		if _, err := ParsePattern(s); err == nil {
			t.Errorf("ParsePattern(%q) succeeded", s)
		}
	}
}

func TestTable_ServedPrev(t *testing.T) {
	tb := &Table{}
	for _, s := range []struct{ loc, app, inst string }{
		{"a.test/blog", "a", "a.1"}, {"a.test/blog", "a", "a.2"}, // prev a.1
		{"https://s.test:8443", "s", "s.1"}, {"https://s.test:8443", "s", "s.2"},
		{".w.test", "w", "w.1"}, {".w.test", "w", "w.2"}, // wildcard: none
		{"*", "c", "c.1"}, {"*", "c", "c.2"}, // catch-all: none
		{"10.0.0.1", "ip", "ip.1"}, {"10.0.0.1", "ip", "ip.2"}, // an IP: none
		{"n.w.test", "n", "n.1"}, // no prev: a prev. route that finds nothing
		{"t.test", "t", "t.1"}, {"t.test", "t", "t.2"},
		{"prev.t.test", "mine", "mine.1"},              // a real route wins
		{"k.test", "k", "k.1"}, {"k.test", "k", "k.2"}, // deactivated, prev kept
	} {
		mustSet(t, tb, s.loc, s.app, s.inst)
	}
	tb.Remove([]Pattern{mustPattern(t, "k.test")}, true)
	var got []string
	for _, r := range tb.Served() {
		if r.IsPrev() {
			got = append(got, r.Location.String()+" "+r.App+" "+r.Live+" of "+r.PrevOf())
		}
	}
	slices.Sort(got)
	want := []string{
		"https://prev.s.test:8443 s s.1 of s.test",
		"prev.a.test/blog/ a a.1 of a.test",
		"prev.k.test k k.1 of k.test",
		"prev.n.w.test n  of n.w.test",
		"prev.prev.t.test mine  of prev.t.test", // t.test's own is taken
	}
	if !slices.Equal(got, want) {
		t.Fatalf("prev routes =\n%q, want\n%q", got, want)
	}
	if n := len(tb.Routes); n != 9 {
		t.Errorf("Served changed the table: %d routes", n)
	}

	for _, tc := range []struct {
		host, target string
		tls          bool
		status       int
		live         string
	}{
		{"prev.a.test", "/blog/x", false, 200, "a.1"},
		{"PREV.A.TEST", "/blog/", false, 200, "a.1"},
		{"prev.a.test", "/other", false, 404, ""}, // not under .w.test, not the catch-all
		{"prev.s.test:8443", "/", true, 200, "s.1"},
		{"prev.s.test:8443", "/", false, 308, "s.1"},
		{"prev.t.test", "/", false, 200, "mine.1"},
		{"prev.k.test", "/", false, 200, "k.1"}, // keep-prev: still checkable
		{"k.test", "/", false, 200, "c.2"},      // deactivated: the catch-all
		// No previous instance: not found, although .w.test covers the
		// name.
		{"prev.n.w.test", "/", false, 404, ""},
		{"prev.x.w.test", "/", false, 200, "w.2"}, // no route of its own: the wildcard's
		{"prev.nothing.test", "/", false, 200, "c.2"},
	} {
		d := Match(tb, Request{Host: tc.host, Target: tc.target, TLS: tc.tls})
		if d.Status != tc.status || (tc.live != "" && d.Route.Live != tc.live) {
			t.Errorf("%s%s tls=%v: %d %q, want %d %q", tc.host, tc.target, tc.tls, d.Status, d.Route.Live, tc.status, tc.live)
		}
	}
}

func TestRender_PrevHosts(t *testing.T) {
	tb := &Table{}
	mustSet(t, tb, "https://a.test", "a", "a.1")
	mustSet(t, tb, "https://a.test", "a", "a.2")
	mustSet(t, tb, "https://b.test", "b", "b.1")
	backends := map[string]Backend{}
	for _, r := range tb.Served() {
		if r.Live != "" {
			backends[r.Location.Key()] = Backend{Kind: KindPython, Upstream: "unix//run/" + r.Live + ".sock"}
		}
	}
	r, err := Render(tb, backends, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Warnings) > 0 {
		t.Errorf("warnings: %v", r.Warnings)
	}
	cfg := string(r.Router)
	for _, want := range []string{
		`unix//run/a.1.sock`, // prev.a.test reaches the previous instance
		`no previous instance of b.test`,
		// Both prev. names may get certificates.
		`prev\\.a\\.test`, `prev\\.b\\.test`,
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("router config lacks %s", want)
		}
	}
}

func mustPattern(t *testing.T, s string) Pattern {
	t.Helper()
	p, err := ParsePattern(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
