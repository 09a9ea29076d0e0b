package agent

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/agent/agenttest"
	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

func (n *testNode) balance(t *testing.T, args protocol.BalanceArgs) agenttest.Result {
	t.Helper()
	return agenttest.Run(t, n.agent, protocol.OpBalance, agenttest.Request(protocol.OpBalance), args, nil)
}

func (n *testNode) balancedSites(t *testing.T) []protocol.BalanceArgs {
	t.Helper()
	fi, err := os.Stat(n.Host.Path(n.Layout.Balance))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("balance.json mode %o, want 600", fi.Mode().Perm())
	}
	var f balanceFile
	if err := json.Unmarshal([]byte(n.ReadFile(n.Layout.Balance)), &f); err != nil {
		t.Fatal(err)
	}
	return f.Sites
}

func siteNames(sites []protocol.BalanceArgs) string {
	var names []string
	for _, s := range sites {
		names = append(names, s.Site)
	}
	return strings.Join(names, ",")
}

func TestBalance_State(t *testing.T) {
	n := setUpNode(t)
	blog := protocol.BalanceArgs{Site: "blog", Locations: []string{"blog.example.com"}, Upstreams: []string{"10.0.0.2:80", "10.0.0.3:80"}}
	shop := protocol.BalanceArgs{Site: "shop", Locations: []string{"https://shop.example.org"}, Upstreams: []string{"10.0.0.4:80"}}

	steps := []struct {
		name    string
		args    protocol.BalanceArgs
		changed bool
		sites   string
		// in and notIn are strings the router's config must (not) hold.
		in, notIn []string
	}{
		{"add blog", blog, true, "blog", []string{`"dial": "10.0.0.2:80"`, `"dial": "10.0.0.3:80"`, `blog\\.example\\.com`}, nil},
		{"same again", blog, false, "blog", nil, nil},
		{"add shop", shop, true, "blog,shop", []string{`"dial": "10.0.0.4:80"`, `shop\\.example\\.org`}, nil},
		{"blog node out", withOut(blog, "10.0.0.3:80"), true, "blog,shop", []string{`"dial": "10.0.0.2:80"`}, []string{`"dial": "10.0.0.3:80"`}},
		{"remove blog", protocol.BalanceArgs{Site: "blog"}, true, "shop", []string{`shop\\.example\\.org`}, []string{`blog\\.example\\.com`, "10.0.0.2:80"}},
	}
	for _, s := range steps {
		var res protocol.BalanceResult
		r := n.balance(t, s.args)
		ok(t, r, &res)
		// A new https location's certificate is asked for (and, here,
		// not had), as at a deploy.
		asked := slices.ContainsFunc(r.Events, func(e protocol.Event) bool { return e.Step == "certificate shop.example.org" })
		if asked != (s.name == "add shop") {
			t.Errorf("%s: certificate asked for: %v", s.name, asked)
		}
		if res.Changed != s.changed {
			t.Errorf("%s: changed = %v, want %v", s.name, res.Changed, s.changed)
		}
		if got := siteNames(n.balancedSites(t)); got != s.sites {
			t.Errorf("%s: sites %q, want %q", s.name, got, s.sites)
		}
		cfg := n.State().RouterConfig
		for _, want := range s.in {
			if !strings.Contains(cfg, want) {
				t.Errorf("%s: router config lacks %s", s.name, want)
			}
		}
		for _, not := range s.notIn {
			if strings.Contains(cfg, not) {
				t.Errorf("%s: router config has %s", s.name, not)
			}
		}
	}
}

func withOut(a protocol.BalanceArgs, out ...string) protocol.BalanceArgs {
	a.Out = out
	return a
}

func TestBalance_Refused(t *testing.T) {
	n := setUpNode(t)
	shop := protocol.BalanceArgs{Site: "shop", Locations: []string{"https://shop.example.org"}, Upstreams: []string{"10.0.0.4:80"}}
	ok(t, n.balance(t, shop), nil)
	loads := n.State().RouterLoads
	for _, bad := range []protocol.BalanceArgs{
		{Site: "other", Locations: []string{"shop.example.org"}, Upstreams: []string{"10.0.0.5:80"}}, // taken by shop
		{Site: "other", Locations: []string{"other.example.org"}, Upstreams: []string{"10.0.0.5"}},   // no port
		{Site: "other", Locations: []string{"other.example.org"}},                                    // no upstreams
		{Site: "other", Locations: []string{"other.example.org"}, Upstreams: []string{"10.0.0.5:80"}, Out: []string{"10.0.0.6:80"}},
		{Site: "other", Locations: []string{"https://*"}, Upstreams: []string{"10.0.0.5:80"}},
		{Site: "", Locations: []string{"other.example.org"}, Upstreams: []string{"10.0.0.5:80"}},
		{Site: "x", Locations: []string{"bad host"}, Upstreams: []string{"10.0.0.5:80"}},
	} {
		if e := failed(t, n.balance(t, bad)); e.Code != protocol.CodeBadRequest {
			t.Errorf("%+v: error %+v, want a bad request", bad, e)
		}
	}
	if got := siteNames(n.balancedSites(t)); got != "shop" {
		t.Errorf("sites after refusals: %q", got)
	}
	if n.State().RouterLoads != loads {
		t.Error("a refused balance loaded a config")
	}
}

func TestBalanceStatus(t *testing.T) {
	n := setUpNode(t)
	ok(t, n.balance(t, protocol.BalanceArgs{Site: "blog", Locations: []string{"blog.example.com"},
		Upstreams: []string{"10.0.0.2:80", "10.0.0.3:80"}, Out: []string{"10.0.0.3:80"}}), nil)
	old := probeHealth
	probeHealth = func(_ context.Context, addr string) bool { return addr == "10.0.0.2:80" }
	t.Cleanup(func() { probeHealth = old })

	var res protocol.BalanceStatusResult
	ok(t, agenttest.Run(t, n.agent, protocol.OpBalanceStatus, agenttest.Request(protocol.OpBalanceStatus), nil, nil), &res)
	if len(res.Sites) != 1 || res.Sites[0].Site != "blog" || len(res.Sites[0].States) != 2 {
		t.Fatalf("status = %+v", res)
	}
	want := []protocol.UpstreamState{{Address: "10.0.0.2:80", Healthy: true}, {Address: "10.0.0.3:80", Out: true}}
	for i, st := range res.Sites[0].States {
		if st != want[i] {
			t.Errorf("state %d = %+v, want %+v", i, st, want[i])
		}
	}
}

// TestRouting_TrustProxies: an app node's front server gets its site
// role's trusted proxies whenever the agent renders.
func TestRouting_TrustProxies(t *testing.T) {
	n := setUpNode(t)
	role := protocol.SiteRole{Site: "blog", App: true, TrustProxies: []string{"10.0.0.1"}}
	data, _ := json.Marshal(role)
	if _, err := n.Host.WriteFile(n.Layout.SiteRole, data, host.Attr{Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	opt, err := n.agent.routerOptions()
	if err != nil {
		t.Fatal(err)
	}
	if len(opt.TrustProxies) != 1 || opt.TrustProxies[0] != "10.0.0.1" {
		t.Fatalf("TrustProxies = %v", opt.TrustProxies)
	}
	// Any routing change renders it: a balance of nothing changes no
	// site but loads the front config with the trusted route.
	ok(t, n.balance(t, protocol.BalanceArgs{Site: "none"}), nil)
	if cfg := n.State().CaddyConfig; !strings.Contains(cfg, `"remote_ip"`) || !strings.Contains(cfg, "10.0.0.1") {
		t.Errorf("front config without the trusted proxy:\n%s", cfg)
	}
}
