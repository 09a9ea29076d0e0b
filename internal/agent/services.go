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
	node := service.Node{Host: a.Host, Warn: func(m string) { c.Warnf("%s", m) }}
	bound, err := service.Resolve(node, service.App{Name: app, DataDir: a.Layout.AppDir(app), User: instance.UserName(app), Platform: cfg.Platform}, reqs)
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
