package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/toppcloud/toppcloud/internal/config"
	"github.com/toppcloud/toppcloud/internal/deploy"
	"github.com/toppcloud/toppcloud/internal/location"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/remote"
	"github.com/toppcloud/toppcloud/internal/site"
)

// siteNodes reaches a site's nodes through the run's node session
// (site.Nodes), keeping the connections for RTT.
type siteNodes struct {
	a     *App
	mu    sync.Mutex
	conns map[string]*remote.Node
}

func (n *siteNodes) Connect(ctx context.Context, name string) (deploy.Caller, error) {
	c, _, err := n.a.nodes().ConnectDeploy(ctx, name)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conns == nil {
		n.conns = map[string]*remote.Node{}
	}
	n.conns[name] = c
	return c, nil
}

func (n *siteNodes) Address(name string) (string, error) { return n.a.nodes().PrivateAddress(name) }

// RTT is the round trip to a connected node, for --compress auto; -1
// when unknown.
func (n *siteNodes) RTT(ctx context.Context, name string) time.Duration {
	n.mu.Lock()
	c := n.conns[name]
	n.mu.Unlock()
	if c == nil {
		return -1
	}
	if m, ok := c.Conn().(interface {
		RTT(context.Context) (time.Duration, error)
	}); ok {
		if d, err := m.RTT(ctx); err == nil {
			return d
		}
	}
	return -1
}

// siteRunner runs operations on s, showing each node's steps labelled
// with its name.
func (a *App) siteRunner(s config.SiteSection) *site.Runner {
	return &site.Runner{
		Site:   site.FromConfig(s),
		Nodes:  &siteNodes{a: a},
		Events: a.nodeSteps,
		Report: a.out.Printf,
		Health: func(ctx context.Context, node string) error { return a.nodeServes(ctx, node, s.Locations) },
	}
}

// nodeSteps is streamSteps with the node's name before each step and
// line, for operations on several nodes.
func (a *App) nodeSteps(node string) remote.CallOptions {
	o := a.streamSteps()
	ev, lg := o.Event, o.Log
	o.Event = func(e protocol.Event) {
		e.Step = node + ": " + e.Step
		ev(e)
	}
	o.Log = func(l protocol.Log) {
		l.Text = node + ": " + l.Text
		lg(l)
	}
	return o
}

// siteNamed is [site:NAME], checked.
func (a *App) siteNamed(ctx context.Context, name string) (config.SiteSection, error) {
	sites, err := a.nodes().Sites(ctx)
	if err != nil {
		return config.SiteSection{}, err
	}
	for _, s := range sites {
		if s.Name == name {
			return s, nil
		}
	}
	return config.SiteSection{}, usagef("--site %s: no [site:%s] section in %s", name, name, a.nodes().ConfigPath())
}

// siteFor picks the site a command acts on: --site NAME, else the site
// one of whose locations locArg is (unless --node picks a node). nil: a
// command on one node, as without sites.
func (a *App) siteFor(ctx context.Context, name, locArg, node string) (*config.SiteSection, error) {
	if name != "" {
		if node != "" {
			return nil, usagef("give --site or --node, not both")
		}
		s, err := a.siteNamed(ctx, name)
		if err != nil {
			return nil, err
		}
		if locArg != "" {
			loc, err := location.Parse(locArg)
			if err != nil {
				return nil, asUsage(err)
			}
			if _, ok := config.SiteOf([]config.SiteSection{s}, loc); !ok {
				return nil, usagef("%s is not a location of site %s (its locations: %s)", loc, s.Name, siteLocations(s))
			}
		}
		return &s, nil
	}
	if node != "" || locArg == "" {
		return nil, nil
	}
	loc, err := location.Parse(locArg)
	if err != nil {
		return nil, nil // the command's own parsing says what is wrong
	}
	sites, err := a.nodes().Sites(ctx)
	if err != nil {
		return nil, err
	}
	if s, ok := config.SiteOf(sites, loc); ok {
		return &s, nil
	}
	return nil, nil
}

func siteLocations(s config.SiteSection) string {
	out := ""
	for i, l := range s.Locations {
		if i > 0 {
			out += " "
		}
		out += l.String()
	}
	return out
}

// siteLocation is the location a site command acts on: locArg, else the
// site's first.
func siteLocation(s config.SiteSection, locArg string) (location.Location, error) {
	if locArg == "" {
		return s.Locations[0], nil
	}
	loc, err := location.Parse(locArg)
	if err != nil {
		return loc, asUsage(err)
	}
	if _, ok := config.SiteOf([]config.SiteSection{s}, loc); !ok {
		return loc, usagef("%s is not a location of site %s (its locations: %s)", loc, s.Name, siteLocations(s))
	}
	return loc, nil
}

// updateSite is update to a site: a rolling update of its app nodes.
func (a *App) updateSite(ctx context.Context, o updateOptions, s config.SiteSection, locArg string) error {
	c, err := deploy.ParseCompression(o.compress)
	if err != nil {
		return usagef("%v", err)
	}
	o.Compress = c
	loc, err := siteLocation(s, locArg)
	if err != nil {
		return err
	}
	o.Location, o.Node = loc.String(), s.Nodes[0]
	cache, err := a.nodes().ManifestCache()
	if err != nil {
		return err
	}
	step := a.out.Step("check %s", o.AppDir)
	p, err := deploy.Prepare(ctx, o.Options, a.nodes(), cache)
	if err == nil {
		err = site.FromConfig(s).Check(p.Config)
	}
	if err != nil {
		step.Fail()
		return err
	}
	for _, w := range p.Warnings {
		a.out.Warnf("%s", w)
	}
	files, bytes := p.Manifest.FileBytes()
	step.Done("%s (%s) to %s on site %s (%d app nodes), %d files, %s", p.App, p.Config.Runner.Kind, p.Location, s.Name, len(s.Nodes), files, humanBytes(bytes))
	if o.Clear {
		if err := a.confirmDataLoss("update --clear", fmt.Sprintf("--clear: delete all data of %s (its databases, files) before the new instance starts?", p.App)); err != nil {
			return err
		}
	}
	r := a.siteRunner(s)
	sn := r.Nodes.(*siteNodes)
	res, err := r.Update(ctx, p, site.UpdateOptions{Node: func(node string) deploy.UpdateOptions {
		return deploy.UpdateOptions{
			Events: a.nodeSteps(node),
			RTT:    func() time.Duration { return sn.RTT(ctx, node) },
			Uploaded: func(up deploy.UploadStats) {
				if up.Blobs == 0 {
					a.out.Printf("%s: nothing new to send (%s sent)", node, humanBytes(up.Sent))
				} else {
					a.out.Printf("%s: sent %d new contents, %s (%s sent, %s)", node, up.Blobs, humanBytes(up.Content), humanBytes(up.Sent), up.Compression)
				}
			},
		}
	}})
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("update %s on site %s: interrupted; each node finishes its update or removes the new instance by itself: %w", p.App, s.Name, ctx.Err())
		}
		return withTail(fmt.Errorf("update %s: %w", p.App, err))
	}
	for _, nr := range res {
		if nr.Result == nil {
			continue
		}
		if nr.Result.Unchanged {
			a.out.Printf("%s: nothing changed, %s stays live", nr.Node, nr.Result.Instance)
		} else {
			a.out.Printf("%s: %s is live (release %d)", nr.Node, nr.Result.Instance, nr.Result.Release)
		}
	}
	url := deploy.URL(p.Location)
	a.out.Printf("site %s: %s is live at %s on %d app nodes", s.Name, p.App, url, len(s.Nodes))
	fmt.Fprintln(a.out.Stdout, url)
	front := s.Balancer
	if front == "" {
		front = s.Nodes[0]
	}
	rec, err := a.nodes().Record(front)
	if err != nil {
		return err
	}
	return a.nodes().PointHost(ctx, rec, p.Location, o.etcHosts)
}

// siteAppNode is a runner for the site whose app node name is, if the
// site has a balancer; nil otherwise. A config that cannot be read is
// warned about: stopping and starting nodes works without it.
func (a *App) siteAppNode(ctx context.Context, name string) *site.Runner {
	sites, err := a.nodes().Sites(ctx)
	if err != nil {
		a.out.Warnf("sites not read: %v", err)
		return nil
	}
	s, ok := config.SiteOfNode(sites, name)
	if !ok || s.Balancer == "" {
		return nil
	}
	for _, n := range s.Nodes {
		if n == name {
			return a.siteRunner(s)
		}
	}
	return nil
}

// activateSite activates on every app node in turn.
func (a *App) activateSite(ctx context.Context, s config.SiteSection, locArg string, args protocol.ActivateArgs) error {
	loc, err := siteLocation(s, locArg)
	if err != nil {
		return err
	}
	r := a.siteRunner(s)
	args.Location = r.Site.AppLocation(loc).String()
	err = r.Each(ctx, func(ctx context.Context, node string, c deploy.Caller) error {
		var res protocol.ActivateResult
		if err := c.Call(ctx, protocol.OpActivate, args, &res, a.nodeSteps(node)); err != nil {
			return err
		}
		switch {
		case res.Unchanged:
			a.out.Printf("%s: %s is already live at %s", node, res.Instance, loc)
		default:
			a.out.Printf("%s: %s is live at %s (release %d)", node, res.Instance, loc, res.Release)
		}
		return nil
	})
	if err != nil {
		return withTail(fmt.Errorf("activate %s %s on site %s: %w", loc, args.Target, s.Name, err))
	}
	return nil
}

// deactivateSite deactivates on every app node in turn.
func (a *App) deactivateSite(ctx context.Context, s config.SiteSection, args protocol.DeactivateArgs) error {
	r := a.siteRunner(s)
	// A site location stands for the location the app nodes serve.
	pats := make([]string, len(args.Patterns))
	for i, p := range args.Patterns {
		pats[i] = p
		if loc, err := location.Parse(p); err == nil {
			if _, ok := config.SiteOf([]config.SiteSection{s}, loc); ok {
				pats[i] = r.Site.AppLocation(loc).String()
			}
		}
	}
	args.Patterns = pats
	err := r.Each(ctx, func(ctx context.Context, node string, c deploy.Caller) error {
		var res protocol.DeactivateResult
		if err := c.Call(ctx, protocol.OpDeactivate, args, &res, a.nodeSteps(node)); err != nil {
			return err
		}
		if len(res.Removed) == 0 {
			a.out.Printf("%s: no route matches %s", node, strings.Join(args.Patterns, " "))
		}
		for _, rm := range res.Removed {
			fmt.Fprintf(a.out.Stdout, "%s: removed %s: %s\n", node, rm.Location, orDash(rm.Live))
		}
		return nil
	})
	if err != nil {
		return withTail(fmt.Errorf("deactivate on site %s: %w", s.Name, err))
	}
	return nil
}

// disableSite disables (or enables) on every app node in turn.
func (a *App) disableSite(ctx context.Context, s config.SiteSection, enable bool, da protocol.DisableArgs) error {
	op, verb := protocol.OpDisable, "disable"
	if enable {
		op, verb = protocol.OpEnable, "enable"
	}
	err := a.siteRunner(s).Each(ctx, func(ctx context.Context, node string, c deploy.Caller) error {
		var res protocol.DisableResult
		if err := c.Call(ctx, op, da, &res, a.nodeSteps(node)); err != nil {
			return err
		}
		if !res.Changed {
			a.out.Printf("%s: %s was already %sd", node, res.App, verb)
		} else {
			a.out.Printf("%s: %s is %sd at %s", node, res.App, verb, strings.Join(res.Locations, ", "))
		}
		return nil
	})
	if err != nil {
		return withTail(fmt.Errorf("%s on site %s: %w", verb, s.Name, err))
	}
	return nil
}

// querySite queries every app node, one section per node; --json prints
// {NODE: result}.
func (a *App) querySite(ctx context.Context, s config.SiteSection, args protocol.QueryArgs, asJSON bool) error {
	all := map[string]protocol.QueryResult{}
	err := a.siteRunner(s).Each(ctx, func(ctx context.Context, node string, c deploy.Caller) error {
		var res protocol.QueryResult
		if err := c.Call(ctx, protocol.OpQuery, args, &res, a.nodeSteps(node)); err != nil {
			return err
		}
		if asJSON {
			all[node] = res
			return nil
		}
		fmt.Fprintf(a.out.Stdout, "== node %s (site %s)\n", node, s.Name)
		a.printQuery(res)
		fmt.Fprintln(a.out.Stdout)
		return nil
	})
	if err != nil {
		return withTail(fmt.Errorf("query site %s: %w", s.Name, err))
	}
	if asJSON {
		return a.out.JSON(all)
	}
	return nil
}

// logsSite shows every app node's logs at once, each line labelled with
// its node.
func (a *App) logsSite(ctx context.Context, s config.SiteSection, locArg string, args protocol.LogsArgs) error {
	loc, err := siteLocation(s, locArg)
	if err != nil {
		return err
	}
	r := a.siteRunner(s)
	args.Location = r.Site.AppLocation(loc).String()
	var mu sync.Mutex
	err = r.All(ctx, func(ctx context.Context, node string, c deploy.Caller) error {
		o := a.nodeSteps(node)
		o.Log = func(l protocol.Log) {
			mu.Lock()
			defer mu.Unlock()
			text := Printable(l.Text)
			switch l.Stream {
			case protocol.StreamErrorsLog:
				fmt.Fprintf(a.out.Stdout, "%s: errors.log: %s\n", node, text)
			case protocol.StreamJournal:
				fmt.Fprintf(a.out.Stdout, "%s: %s\n", node, text)
			case protocol.StreamFrontServer:
				fmt.Fprintf(a.out.Stdout, "%s: front server: %s\n", node, text)
			case protocol.StreamWarning:
				a.out.Warnf("%s: %s", node, text)
			}
		}
		var res protocol.LogsResult
		return c.Call(ctx, protocol.OpLogs, args, &res, o)
	})
	if err != nil && args.Follow && ctx.Err() != nil {
		return nil // Ctrl-C ends a follow
	}
	if err != nil {
		return withTail(fmt.Errorf("logs %s on site %s: %w", loc, s.Name, err))
	}
	return nil
}

// dataNode picks the node holding the data of the app at locArg (backup,
// restore, clear): on a site, its services node, told the app's name
// (asked of the first app node, which serves the location); else the
// location's node, as without sites (app "").
func (a *App) dataNode(ctx context.Context, siteName, locArg, node string) (loc location.Location, name, app string, err error) {
	s, err := a.siteFor(ctx, siteName, locArg, node)
	if err != nil || s == nil {
		if err == nil {
			loc, name, err = a.locationNode(locArg, node)
		}
		return loc, name, "", err
	}
	if loc, err = siteLocation(*s, locArg); err != nil {
		return loc, "", "", err
	}
	if s.Services == "" {
		if len(s.Nodes) > 1 {
			return loc, "", "", usagef("site %s has no services node: its %d app nodes keep no shared data", s.Name, len(s.Nodes))
		}
		// One app node keeps the data itself.
		return site.FromConfig(*s).AppLocation(loc), s.Nodes[0], "", nil
	}
	r := a.siteRunner(*s)
	want := r.Site.AppLocation(loc)
	c, err := (&siteNodes{a: a}).Connect(ctx, s.Nodes[0])
	if err != nil {
		return loc, "", "", err
	}
	var res protocol.QueryResult
	if err := c.Call(ctx, protocol.OpQuery, protocol.QueryArgs{}, &res, remote.CallOptions{}); err != nil {
		return loc, "", "", fmt.Errorf("query %s for the app at %s: %w", s.Nodes[0], loc, err)
	}
	for _, rt := range res.Routes {
		if l, err := location.Parse(rt.Location); err == nil && l.Key() == want.Key() {
			return loc, s.Services, rt.App, nil
		}
	}
	return loc, "", "", usagef("no app is deployed at %s on site %s (node %s serves nothing there)", loc, s.Name, s.Nodes[0])
}

// siteFetchNode is the app node that runs update_fetch for a site's app
// after clear (the first, as in a site's update), and the app's location
// there.
func (a *App) siteFetchNode(ctx context.Context, siteName, locArg, node string) (string, location.Location, error) {
	s, err := a.siteFor(ctx, siteName, locArg, node)
	if err != nil {
		return "", location.Location{}, err
	}
	if s == nil {
		return "", location.Location{}, fmt.Errorf("%s is not a site's location", locArg)
	}
	loc, err := siteLocation(*s, locArg)
	if err != nil {
		return "", location.Location{}, err
	}
	return s.Nodes[0], site.FromConfig(*s).AppLocation(loc), nil
}

// nodeServes reports whether an app node is ready for the balancer's
// requests: its router answers its health route, and each of the site's
// locations answers without a gateway error. The health route alone is
// not enough after a node starts: the router answers it before the apps'
// instances have started, and the few requests a balancer sends it then
// would fail with 502 (the site test saw ten in 40 ms).
func (a *App) nodeServes(ctx context.Context, node string, locs []location.Location) error {
	if err := a.routerHealth(ctx, node); err != nil {
		return err
	}
	rec, err := a.nodes().Record(node)
	if err != nil {
		return err
	}
	for _, l := range locs {
		host := l.Host
		if host == "" || strings.HasPrefix(host, ".") {
			continue // a catch-all or wildcard location has no name to ask for
		}
		p := l.Path
		if p == "" {
			p = "/"
		}
		code, err := httpStatus(ctx, "http://"+net.JoinHostPort(rec.Address(), site.UpstreamPort)+p, host)
		if err != nil {
			return fmt.Errorf("%s: %w", l, err)
		}
		if code == http.StatusBadGateway || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout {
			return fmt.Errorf("%s answers %d %s", l, code, http.StatusText(code))
		}
	}
	return nil
}

// httpStatus asks u, with Host host, for its status.
func httpStatus(ctx context.Context, u, host string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	req.Host = host
	// Redirects are answers: the node serves.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, nil
}

// routerHealth asks an app node's router whether it serves: the health
// route every router answers (protocol.HealthHost, HealthPath) on the
// node's address, port 80, which the firewall opens to everyone.
func (a *App) routerHealth(ctx context.Context, node string) error {
	rec, err := a.nodes().Record(node)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	u := "http://" + net.JoinHostPort(rec.Address(), site.UpstreamPort) + protocol.HealthPath
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Host = protocol.HealthHost
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health check: %s", resp.Status)
	}
	return nil
}
