package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/instance"
	"github.com/toppcloud/toppcloud/internal/agent/setup"
	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/service"
	"github.com/toppcloud/toppcloud/internal/service/all"
)

// A site's services node keeps each app's databases as a node of its own
// does (credentials under apps/APP/services), with a record of what the
// app asked for (siteServicesFile), so that the data operations, given
// the app's name, find its services without a route or an instance.

// StepSiteServices is OpSiteServices' step.
const StepSiteServices = "site services"

// siteServicesFile is the record of an app's services on a services node,
// in the app's credentials directory (no service is named so: names have
// no '-').
const siteServicesFile = "site-services.json"

// siteServicesRecord is what siteServicesFile holds.
type siteServicesRecord struct {
	Platform string                    `json:"platform"`
	Services []protocol.ServiceRequest `json:"services"`
}

func (a *Agent) siteServicesPath(app string) string {
	return path.Join(a.Layout.AppDir(app), "services", siteServicesFile)
}

// requireServicesNode refuses an operation meant for a site's services
// node on any other node.
func (a *Agent) requireServicesNode() (protocol.SiteRole, error) {
	role, err := setup.ReadSiteRole(a.Host, a.Layout)
	if err != nil {
		return role, err
	}
	if !role.Services {
		return role, &protocol.Error{Code: protocol.CodeBadRequest, Message: "this node is not a site's services node (setup-node --site makes one); an app's own services come with its update"}
	}
	if role.ServiceListen == "" {
		return role, &protocol.Error{Code: protocol.CodeBadRequest, Message: "this services node has no private address to listen on (site.json has no service_listen): run setup-node --site again"}
	}
	if _, err := all.SiteSettings(role.ServiceListen, role.ServiceClients); err != nil {
		return role, &protocol.Error{Code: protocol.CodeBadRequest, Message: err.Error() + " (site.json): run setup-node --site again"}
	}
	return role, nil
}

// siteServices is OpSiteServices.
func (a *Agent) siteServices(ctx context.Context, c *Call, args *protocol.SiteServicesArgs) (*protocol.SiteServicesResult, error) {
	if _, err := a.requireServicesNode(); err != nil {
		return nil, err
	}
	if err := appconfig.CheckAppName(args.App); err != nil {
		return nil, badRequest("%v", err)
	}
	var refused []string
	for _, s := range args.Services {
		if !slices.Contains(all.SiteServers, s.Name) {
			refused = append(refused, "service."+s.Name)
		}
	}
	if len(refused) > 0 {
		return nil, badRequest("a site's services node runs only %s; %s keep data on an app node and cannot be shared by a site",
			strings.Join(all.SiteServers, ", "), strings.Join(refused, ", "))
	}
	release, err := a.lockApp(ctx, c, args.App, "site services", time.Duration(args.LockWait))
	if err != nil {
		return nil, err
	}
	defer release()
	st := c.Out.Start(StepSiteServices)
	env, names, err := a.prepareSiteServices(ctx, c, args, st)
	if err != nil {
		st.Failed(err)
		return nil, err
	}
	verb := "ready"
	if args.Clear {
		verb = "cleared"
	}
	st.Done(true, fmt.Sprintf("%s for %s: %s", verb, args.App, strings.Join(names, ", ")))
	return &protocol.SiteServicesResult{Env: env}, nil
}

func (a *Agent) prepareSiteServices(ctx context.Context, c *Call, args *protocol.SiteServicesArgs, st *protocol.Step) (map[string]string, []string, error) {
	for _, d := range []struct {
		p    string
		mode uint32
	}{{a.Layout.AppDir(args.App), 0o711}, {path.Dir(a.siteServicesPath(args.App)), 0o700}} {
		if _, err := a.Host.EnsureDir(d.p, host.Attr{Mode: fs.FileMode(d.mode)}); err != nil {
			return nil, nil, err
		}
	}
	rec := siteServicesRecord{Platform: args.Platform, Services: slices.Clone(args.Services)}
	sort.Slice(rec.Services, func(i, j int) bool { return rec.Services[i].Name < rec.Services[j].Name })
	if rec.Services == nil {
		rec.Services = []protocol.ServiceRequest{}
	}
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	if _, err := a.Host.WriteFile(a.siteServicesPath(args.App), append(data, '\n'), host.Attr{Mode: 0o600}); err != nil {
		return nil, nil, err
	}
	bound, err := a.siteBound(c, args.App, rec)
	if err != nil {
		return nil, nil, err
	}
	env, err := service.Prepare(ctx, bound, args.Clear, service.Hooks{
		InstallPackages: func(ctx context.Context, pkgs []string) error {
			_, _, err := a.apt(c).Install(ctx, pkgs, st.Progress)
			return err
		},
		Step: func(s string) { st.Progress(s) },
	})
	if err != nil {
		return nil, nil, err
	}
	return env, serviceNames(bound), nil
}

// siteBound resolves the services of rec for app on this services node.
func (a *Agent) siteBound(c *Call, app string, rec siteServicesRecord) ([]service.Bound, error) {
	reqs := make([]service.Request, 0, len(rec.Services))
	for _, s := range rec.Services {
		reqs = append(reqs, service.Request{Name: s.Name, Value: s.Value})
	}
	sa := service.App{Name: app, DataDir: a.Layout.AppDir(app), User: instance.UserName(app), Platform: rec.Platform}
	bound, err := service.Resolve(a.serviceNode(c), sa, reqs)
	if err != nil {
		return nil, &protocol.Error{Code: protocol.CodeBadRequest, Message: err.Error()}
	}
	return bound, nil
}

// siteApp is an app's services on a services node as the data operations
// (backup, restore, clear) use them: a liveApp with no route instance,
// found by name.
func (a *Agent) siteApp(c *Call, app string) (*liveApp, error) {
	if _, err := a.requireServicesNode(); err != nil {
		return nil, err
	}
	if err := appconfig.CheckAppName(app); err != nil {
		return nil, badRequest("%v", err)
	}
	data, err := a.Host.ReadFile(a.siteServicesPath(app))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, notFound("this services node keeps no services of app %s (an update to its site makes them)", app)
	}
	if err != nil {
		return nil, err
	}
	var rec siteServicesRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("%s: %w", a.siteServicesPath(app), err)
	}
	bound, err := a.siteBound(c, app, rec)
	if err != nil {
		return nil, err
	}
	l := &liveApp{cfg: &appconfig.Config{Platform: rec.Platform}, bound: bound}
	l.rt.App = app
	return l, nil
}

// dataApp is the app a data operation works on: by name on a services
// node (app set), else the one live at location.
func (a *Agent) dataApp(c *Call, location, app string) (*liveApp, error) {
	if app != "" {
		return a.siteApp(c, app)
	}
	return a.liveApp(c, location)
}
