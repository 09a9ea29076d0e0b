package agent

import (
	"context"

	"github.com/toppcloud/toppcloud/internal/agent/system"
	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/service"
)

// prepareServices runs the app's services: packages, install, setup (or
// clear); it returns their CONFIG_* variables. An unknown service is a
// warning; a refused one (couchdb) fails before anything changes.
func (a *Agent) prepareServices(ctx context.Context, c *Call, app string, cfg *appconfig.Config, clear bool) (map[string]string, error) {
	bound, err := a.bindServices(c, app, cfg)
	if err != nil {
		return nil, err
	}
	return service.Prepare(ctx, bound, clear, service.Hooks{
		InstallPackages: func(ctx context.Context, pkgs []string) error {
			_, _, err := a.apt(c).Install(ctx, pkgs, nil)
			return err
		},
	})
}

// apt installs an app's Debian packages; apt's output goes to the
// client's verbose log.
func (a *Agent) apt(c *Call) system.Apt {
	return system.Apt{Host: a.Host, Line: c.commandLine, Again: "run update again"}
}
