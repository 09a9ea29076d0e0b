package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/system"
	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/service"
	"github.com/toppcloud/toppcloud/internal/service/all"
)

// prepareServices runs the app's services: packages, install, setup (or
// clear); it returns their CONFIG_* variables. An unknown service is a
// warning; a refused one (couchdb) fails before anything changes.
//
// On a site's app node (the app's last update brought ServiceEnv, kept in
// siteEnvFile) the database servers are the services node's: only their
// client libraries are installed here and the kept variables are given;
// clear is the services node's business (OpSiteServices). Services that
// keep data on this node (files) are prepared as usual.
func (a *Agent) prepareServices(ctx context.Context, c *Call, app string, cfg *appconfig.Config, clear bool) (map[string]string, error) {
	bound, err := a.bindServices(c, app, cfg)
	if err != nil {
		return nil, err
	}
	siteEnv, onSite, err := a.readSiteEnv(app)
	if err != nil {
		return nil, err
	}
	hooks := service.Hooks{
		InstallPackages: func(ctx context.Context, pkgs []string) error {
			_, _, err := a.apt(c).Install(ctx, pkgs, nil)
			return err
		},
	}
	if !onSite {
		return service.Prepare(ctx, bound, clear, hooks)
	}
	var local []service.Bound
	var clients []string
	for _, b := range bound {
		cp, ok := b.Service.(service.ClientPackager)
		if !ok || !slices.Contains(all.SiteServers, b.Service.Name()) {
			local = append(local, b)
			continue
		}
		clients = append(clients, cp.ClientPackages(b.App)...)
	}
	if len(clients) > 0 {
		slices.Sort(clients)
		if err := hooks.InstallPackages(ctx, slices.Compact(clients)); err != nil {
			return nil, fmt.Errorf("services' client packages: %w", err)
		}
	}
	env, err := service.Prepare(ctx, local, clear, hooks)
	if err != nil {
		return nil, err
	}
	maps.Copy(env, siteEnv)
	return env, nil
}

// siteEnvFile keeps, on a site's app node, the CONFIG_* variables of the
// app's services on the services node (DeployArgs.ServiceEnv), root 0600
// in the app's credentials directory.
const siteEnvFile = "site.json"

func (a *Agent) siteEnvPath(app string) string {
	return path.Join(a.Layout.AppDir(app), "services", siteEnvFile)
}

// readSiteEnv reads the kept ServiceEnv of app; ok is false on a node
// that runs the app's services itself.
func (a *Agent) readSiteEnv(app string) (env map[string]string, ok bool, err error) {
	data, err := a.Host.ReadFile(a.siteEnvPath(app))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, false, fmt.Errorf("%s: %w", a.siteEnvPath(app), err)
	}
	if env == nil {
		env = map[string]string{}
	}
	return env, true, nil
}

// writeSiteEnv keeps env as app's ServiceEnv (nil removes it: the app's
// services are this node's again) and returns what undoes that.
func (a *Agent) writeSiteEnv(app string, env map[string]string) (undo func(), err error) {
	p := a.siteEnvPath(app)
	old, oldErr := a.Host.ReadFile(p)
	undo = func() {
		if oldErr == nil {
			_, _ = a.Host.WriteFile(p, old, host.Attr{Mode: 0o600})
		} else {
			_, _ = a.Host.Remove(p)
		}
	}
	if env == nil {
		_, err := a.Host.Remove(p)
		return undo, err
	}
	for k := range env {
		if !strings.HasPrefix(k, "CONFIG_") {
			return func() {}, badRequest("service variable %q is not named CONFIG_*", k)
		}
	}
	for _, d := range []struct {
		p    string
		mode fs.FileMode
	}{{a.Layout.AppDir(app), 0o711}, {path.Dir(p), 0o700}} {
		if _, err := a.Host.EnsureDir(d.p, host.Attr{Mode: d.mode}); err != nil {
			return func() {}, err
		}
	}
	data, err := json.MarshalIndent(env, "", "  ")
	if err != nil {
		return func() {}, err
	}
	if _, err := a.Host.WriteFile(p, append(data, '\n'), host.Attr{Mode: 0o600}); err != nil {
		return func() {}, err
	}
	return undo, nil
}

// siteEnvDiffers says whether env is not what app's node keeps (the
// update must not be skipped as unchanged).
func (a *Agent) siteEnvDiffers(app string, env map[string]string) bool {
	kept, ok, err := a.readSiteEnv(app)
	if err != nil || ok != (env != nil) {
		return true
	}
	return !maps.Equal(kept, env)
}

// apt installs an app's Debian packages; apt's output goes to the
// client's verbose log.
func (a *Agent) apt(c *Call) system.Apt {
	return system.Apt{Host: a.Host, Line: c.commandLine, Again: "run update again"}
}
