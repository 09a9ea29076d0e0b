package setup_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/agent/agenttest"
	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/instance"
	"github.com/toppcloud/toppcloud/internal/agent/setup"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

// TestSetup_SiteRole: setup-node writes the role it is sent to
// /etc/toppcloud/site.json, where ReadSiteRole finds it; a node that runs
// no apps goes without their runtimes and units; a setup without a role
// makes the node one of its own again.
func TestSetup_SiteRole(t *testing.T) {
	for _, tc := range []struct {
		name string
		role protocol.SiteRole
		apps bool
	}{
		{"app", protocol.SiteRole{Site: "shop", App: true, TrustProxies: []string{"10.0.0.2"}}, true},
		{"balancer", protocol.SiteRole{Site: "shop", Balancer: true}, false},
		{"services", protocol.SiteRole{Site: "shop", Services: true, ServiceListen: "10.0.0.3", ServiceClients: []string{"10.0.0.4", "fd00::5"}}, false},
		{"balancer and app", protocol.SiteRole{Site: "shop", Balancer: true, App: true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newFakeNode(t)
			args := agenttest.SetupArgs(t)
			args.Site = &tc.role
			r := runSetup(t, n, args)
			if r.Err != nil || !r.Res.OK {
				t.Fatalf("setup: %v %+v", r.Err, r.Res)
			}
			l := n.agent.Layout
			wantAttr(t, n.Host, l.SiteRole, host.Attr{Mode: 0o644})
			got, err := setup.ReadSiteRole(n.Host, l)
			if err != nil {
				t.Fatal(err)
			}
			if a, b := mustJSON(t, got), mustJSON(t, tc.role); a != b {
				t.Errorf("role read back %s, want %s", a, b)
			}
			st := finalStatus(r.Events)
			if e := st[setup.StepSiteRole]; e.Status != protocol.StepDone || !strings.Contains(e.Detail, "shop") {
				t.Errorf("site role step: %+v", e)
			}
			installed := n.State().Installed
			for _, p := range []string{"python3", "gunicorn", "php-fpm"} {
				if _, ok := installed[p]; ok != tc.apps {
					t.Errorf("package %s installed %v, want %v", p, ok, tc.apps)
				}
			}
			if _, ok := installed["caddy"]; !ok {
				t.Error("caddy not installed")
			}
			units, _ := n.Host.Exists(l.Units + "/" + instance.TemplateUnitName)
			if e := st[setup.StepAppUnits]; units != tc.apps || tc.apps != (e.Status == protocol.StepDone) {
				t.Errorf("app units: step %+v, %s exists %v; want apps %v", e, instance.TemplateUnitName, units, tc.apps)
			}
			if !tc.apps && !strings.Contains(st[setup.StepAppUnits].Detail, "not an app node") {
				t.Errorf("app units skipped with %q", st[setup.StepAppUnits].Detail)
			}

			// Again: nothing changes.
			if r := runSetup(t, n, args); r.Err != nil || !r.Res.OK || finalStatus(r.Events)[setup.StepSiteRole].Status != protocol.StepSkipped {
				t.Errorf("second run: %v %+v", r.Err, finalStatus(r.Events)[setup.StepSiteRole])
			}
			// Without a role: a node of its own, no role file.
			args.Site = nil
			r = runSetup(t, n, args)
			if r.Err != nil || !r.Res.OK || finalStatus(r.Events)[setup.StepSiteRole].Status != protocol.StepDone {
				t.Fatalf("setup without a role: %v %+v", r.Err, finalStatus(r.Events)[setup.StepSiteRole])
			}
			if ok, _ := n.Host.Exists(l.SiteRole); ok {
				t.Error("the role file stayed")
			}
			if got, err := setup.ReadSiteRole(n.Host, l); err != nil || got.Site != "" {
				t.Errorf("role of a node of its own: %+v, %v", got, err)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestValidate_SiteRole: a role with a bad name, no part or addresses
// that are not IP addresses is refused before anything is done.
func TestValidate_SiteRole(t *testing.T) {
	for _, tc := range []struct {
		name string
		role protocol.SiteRole
		bad  string
	}{
		{"ok", protocol.SiteRole{Site: "shop-2", App: true, TrustProxies: []string{"10.0.0.2", "fd00::2"}}, ""},
		{"empty name", protocol.SiteRole{App: true}, "site name"},
		{"upper case", protocol.SiteRole{Site: "Shop", App: true}, "site name"},
		{"slash", protocol.SiteRole{Site: "a/b", App: true}, "site name"},
		{"too long", protocol.SiteRole{Site: strings.Repeat("a", 64), App: true}, "site name"},
		{"no part", protocol.SiteRole{Site: "shop"}, "no role"},
		{"proxy not an IP", protocol.SiteRole{Site: "shop", App: true, TrustProxies: []string{"lb1"}}, "trusted proxy"},
		{"proxy with a port", protocol.SiteRole{Site: "shop", App: true, TrustProxies: []string{"10.0.0.2:80"}}, "trusted proxy"},
		{"listen not an IP", protocol.SiteRole{Site: "shop", Services: true, ServiceListen: "db1"}, "listen"},
		{"services without listen", protocol.SiteRole{Site: "shop", Services: true}, "needs the private address"},
		{"client not an IP", protocol.SiteRole{Site: "shop", Services: true, ServiceListen: "10.0.0.3", ServiceClients: []string{"10.0.0.0/24"}}, "service client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := agenttest.SetupArgs(t)
			args.Site = &tc.role
			err := setup.Validate(args)
			if tc.bad == "" && err != nil || tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)) {
				t.Fatalf("Validate: %v, want an error with %q", err, tc.bad)
			}
		})
	}
}
