package agent

import (
	"context"

	"github.com/toppcloud/toppcloud/internal/agent/instance"
	"github.com/toppcloud/toppcloud/internal/agent/system"
	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/service"
)

// prepareServices runs the app's services hook: packages, install,
// setup; it returns their CONFIG_* variables.
func (a *Agent) prepareServices(ctx context.Context, c *Call, app string, cfg *appconfig.Config, clear bool) (map[string]string, error) {
	var reqs []service.Request
	for _, s := range cfg.Services {
		reqs = append(reqs, service.Request{Name: s.Name, Value: s.Value})
	}
	return service.Prepare(ctx, service.App{Name: app, DataDir: a.Layout.AppDir(app), User: instance.UserName(app)}, reqs, clear, service.Hooks{
		Warn: func(m string) { c.Warnf("%s", m) },
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
