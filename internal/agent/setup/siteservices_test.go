package setup_test

import (
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/agent/agenttest"
	"github.com/toppcloud/toppcloud/internal/agent/setup"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

// TestSetup_ServicesNode: a services node's firewall opens the database
// ports to the app nodes only; with no database server installed yet the
// site services step has nothing to configure; an address that is not
// one fails the run.
func TestSetup_ServicesNode(t *testing.T) {
	n := newFakeNode(t)
	args := agenttest.SetupArgs(t)
	args.Site = &protocol.SiteRole{Site: "s", Services: true, ServiceListen: "10.0.0.5", ServiceClients: []string{"10.0.0.2", "10.0.0.3"}}
	r := runSetup(t, n, args)
	if !r.Res.OK {
		t.Fatal(r.Res.Error)
	}
	fw := n.ReadFile(n.agent.Layout.Firewall)
	if !strings.Contains(fw, "ip saddr { 10.0.0.2/32, 10.0.0.3/32 } tcp dport { 5432, 3306, 6379 } accept") || !strings.Contains(fw, "policy drop") {
		t.Errorf("firewall:\n%s", fw)
	}
	if e := finalStatus(r.Events)[setup.StepSiteServices]; e.Status != protocol.StepSkipped || !strings.Contains(e.Detail, "no database server") {
		t.Errorf("site services step: %+v", e)
	}

	args.Site.ServiceClients = []string{"10.0.0.2 } accept"}
	if r := runSetup(t, n, args); r.Res.OK {
		t.Error("a bad client address was accepted")
	}
}
