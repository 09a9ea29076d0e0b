package setup

import (
	"context"
	"fmt"
	"strings"

	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/service"
	"github.com/toppcloud/toppcloud/internal/service/all"
)

// StepSiteServices configures a site's services node's database servers.
const StepSiteServices = "site services"

// siteServers are the database servers a services node may run, with the
// package that shows one is installed. Installing them is left to the
// first app that asks (OpSiteServices): a services node runs only what
// its apps use.
var siteServers = []struct{ service, pkg string }{
	{"postgresql", "postgresql"},
	{"mysql", "mariadb-server"},
	{"redis", "redis-server"},
}

// ensureSiteServices points a services node's installed database servers
// at its private address and its app nodes (listen addresses, pg_hba,
// MariaDB user hosts come with each app's OpSiteServices, Redis bind),
// so that a change of the site's nodes takes effect at setup-node
// without waiting for the next update. Other nodes are left alone.
func (s *setupRun) ensureSiteServices(ctx context.Context, st *protocol.Step) (bool, string, error) {
	role := s.siteRole()
	if !role.Services {
		return false, "not a services node", nil
	}
	if role.ServiceListen == "" {
		return false, "", fmt.Errorf("a services node needs a private address to listen on (SiteRole.ServiceListen)")
	}
	pkgs := make([]string, len(siteServers))
	for i, sv := range siteServers {
		pkgs[i] = sv.pkg
	}
	settings, err := all.SiteSettings(role.ServiceListen, role.ServiceClients)
	if err != nil {
		return false, "", err
	}
	installed, _, err := s.apt().Query(ctx, pkgs)
	if err != nil {
		return false, "", err
	}
	node := service.Node{Host: s.h, Settings: settings,
		Warn: func(m string) { s.warnf("%s", m) }, LockDir: s.l.Locks, StateDir: s.l.Services}
	var done []string
	for _, sv := range siteServers {
		if _, ok := installed[sv.pkg]; !ok {
			continue
		}
		info, ok := service.Lookup(sv.service)
		if !ok || info.New == nil {
			continue
		}
		st.Progress(sv.service)
		if err := info.New(node).Install(ctx); err != nil {
			return len(done) > 0, "", fmt.Errorf("%s: %w", sv.service, err)
		}
		done = append(done, sv.service)
	}
	if len(done) == 0 {
		return false, "no database server installed yet (the first app's update installs its own)", nil
	}
	// Install changes nothing when the configuration is in place; it
	// does not say whether it did, so this step reports what it checked.
	return false, strings.Join(done, ", ") + " on " + role.ServiceListen + " for " + strings.Join(role.ServiceClients, ", "), nil
}
