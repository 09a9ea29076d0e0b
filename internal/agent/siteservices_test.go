package agent

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/agent/agenttest"
	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/service/all"
)

// writeRole gives the test agent's node a site role file.
func writeRole(t *testing.T, a *Agent, role protocol.SiteRole) {
	t.Helper()
	data, err := json.Marshal(role)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Host.EnsureDir("/etc/toppcloud", host.Attr{Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Host.WriteFile(a.Layout.SiteRole, data, host.Attr{Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
}

var servicesRole = protocol.SiteRole{Site: "s", Services: true, ServiceListen: "10.0.0.5", ServiceClients: []string{"10.0.0.2", "10.0.0.3"}}

// TestSiteServices_Refused: OpSiteServices and the data operations by
// app name run only on a services node, and only for database servers.
func TestSiteServices_Refused(t *testing.T) {
	for _, tc := range []struct {
		name string
		role *protocol.SiteRole
		op   string
		args any
		want string
	}{
		{"own node", nil, protocol.OpSiteServices, protocol.SiteServicesArgs{App: "blog", Services: []protocol.ServiceRequest{{Name: "postgresql"}}}, "not a site's services node"},
		{"app node", &protocol.SiteRole{Site: "s", App: true}, protocol.OpSiteServices, protocol.SiteServicesArgs{App: "blog"}, "not a site's services node"},
		{"files", &servicesRole, protocol.OpSiteServices, protocol.SiteServicesArgs{App: "blog", Services: []protocol.ServiceRequest{{Name: "postgresql"}, {Name: "files"}}}, "service.files keep data on an app node"},
		{"bad name", &servicesRole, protocol.OpSiteServices, protocol.SiteServicesArgs{App: "../x"}, "app name"},
		{"backup by name on an app node", &protocol.SiteRole{Site: "s", App: true}, protocol.OpBackup, protocol.BackupArgs{App: "blog"}, "not a site's services node"},
		{"clear of an unknown app", &servicesRole, protocol.OpClear, protocol.ClearArgs{App: "blog"}, "keeps no services of app blog"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newTestAgent(t)
			if tc.role != nil {
				writeRole(t, a, *tc.role)
			}
			e := failed(t, agenttest.Run(t, a, tc.op, agenttest.Request(tc.op), tc.args, nil))
			if !strings.Contains(e.Message, tc.want) {
				t.Errorf("error %q, want %q", e.Message, tc.want)
			}
		})
	}
}

// TestSiteServices_Record: the app's services are recorded (root 0600)
// under its directory, and the data operations find them by name.
func TestSiteServices_Record(t *testing.T) {
	a := newTestAgent(t)
	writeRole(t, a, servicesRole)
	var res protocol.SiteServicesResult
	ok(t, agenttest.Run(t, a, protocol.OpSiteServices, agenttest.Request(protocol.OpSiteServices), protocol.SiteServicesArgs{App: "blog", Platform: "python"}, nil), &res)
	if len(res.Env) != 0 {
		t.Errorf("env of no services: %d variables", len(res.Env))
	}
	fi, err := os.Stat(a.Host.Path(a.siteServicesPath("blog")))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("record: %v %v", fi, err)
	}
	var cr protocol.ClearResult
	ok(t, agenttest.Run(t, a, protocol.OpClear, agenttest.Request(protocol.OpClear), protocol.ClearArgs{App: "blog"}, nil), &cr)
	if cr.App != "blog" || cr.Instance != "" {
		t.Errorf("clear %+v", cr)
	}
	// update_fetch runs on an app node: a services node has no instance.
	e := failed(t, agenttest.Run(t, a, protocol.OpClear, agenttest.Request(protocol.OpClear), protocol.ClearArgs{App: "blog", FetchOnly: true}, nil))
	if e.Code != protocol.CodeNotFound || !strings.Contains(e.Message, "no live instance of blog") {
		t.Errorf("fetch-only clear on a services node: %+v", e)
	}
}

// TestServiceNode_Site: on a services node the servers listen on its
// private address and let the app nodes in; elsewhere they keep their
// defaults.
func TestServiceNode_Site(t *testing.T) {
	a := newTestAgent(t)
	if n := a.serviceNode(&Call{Agent: a}); n.Settings != nil {
		t.Errorf("own node: %+v", n.Settings)
	}
	writeRole(t, a, servicesRole)
	n := a.serviceNode(&Call{Agent: a})
	for _, name := range all.SiteServers {
		s := n.Settings[name]
		if s.Host != "10.0.0.5" || strings.Join(s.ExtraListen, " ") != "10.0.0.5" || strings.Join(s.Clients, " ") != "10.0.0.2 10.0.0.3" {
			t.Errorf("%s: %+v", name, s)
		}
	}
}

// TestPrepareServices_SiteEnv: on a site's app node the app's databases
// are the services node's: only client libraries are installed, no
// server is touched, and the kept variables are given; a differing
// ServiceEnv is never "unchanged"; removing it makes the node run its own
// services again.
func TestPrepareServices_SiteEnv(t *testing.T) {
	n := newFakeNode(t)
	a := n.agent
	env := map[string]string{"CONFIG_PG_HOST": "10.0.0.5", "CONFIG_PG_PASSWORD": "secret"}
	if !a.siteEnvDiffers("blog", env) || a.siteEnvDiffers("blog", nil) {
		t.Error("siteEnvDiffers before anything was kept")
	}
	undo, err := a.writeSiteEnv("blog", env)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(a.Host.Path(a.siteEnvPath("blog")))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("kept env: %v %v", fi, err)
	}
	if a.siteEnvDiffers("blog", env) || !a.siteEnvDiffers("blog", nil) || !a.siteEnvDiffers("blog", map[string]string{"CONFIG_PG_HOST": "10.0.0.6", "CONFIG_PG_PASSWORD": "secret"}) {
		t.Error("siteEnvDiffers after the env was kept")
	}
	cfg := &appconfig.Config{Platform: "python", Services: []appconfig.Service{{Name: "postgresql"}}}
	got, err := a.prepareServices(context.Background(), &Call{Agent: a}, "blog", cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, env) {
		t.Errorf("variables %v", slices.Sorted(maps.Keys(got)))
	}
	inst := n.State().Installed
	if _, ok := inst["python3-psycopg2"]; !ok {
		t.Errorf("client library not installed: %v", inst)
	}
	if _, ok := inst["postgresql"]; ok {
		t.Error("the server was installed on an app node")
	}
	for _, c := range n.Runner.Calls() {
		if strings.Contains(strings.Join(c, " "), "pg_") || strings.Contains(strings.Join(c, " "), "psql") {
			t.Errorf("ran %q on an app node", c)
		}
	}
	if _, err := a.writeSiteEnv("blog", map[string]string{"PATH": "/x"}); err == nil {
		t.Error("a variable not named CONFIG_* was kept")
	}
	undo()
	if _, ok, _ := a.readSiteEnv("blog"); ok {
		t.Error("undo left the env")
	}
}
