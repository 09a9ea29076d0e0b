package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/toppcloud/toppcloud/internal/agent/router"
	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/deploy"
	"github.com/toppcloud/toppcloud/internal/deploy/manifest"
	"github.com/toppcloud/toppcloud/internal/location"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/remote"
	"github.com/toppcloud/toppcloud/internal/site"
	"github.com/toppcloud/toppcloud/internal/state"
)

// inputErr is what deploy returned: its bad input is a usage.Error
// already. (Kept while other branches still call it.)
func inputErr(err error) error { return err }

// connectDeploy connects to a recorded node as the deploy user and brings
// its agent up to date. The node session closes the connection when the
// command ends; the returned func does nothing (kept while other branches
// still call it).
func (a *App) connectDeploy(ctx context.Context, name string) (*remote.Node, state.NodeRecord, func(), error) {
	n, rec, err := a.nodes().ConnectDeploy(ctx, name)
	return n, rec, func() {}, err
}

type updateOptions struct {
	deploy.Options
	site     string
	etcHosts bool
	compress string
}

func (a *App) updateCmd() *cobra.Command {
	var o updateOptions
	cmd := &cobra.Command{
		Use:   "update APP_DIR [LOCATION]",
		Short: "Deploy an application directory to a location, with zero downtime",
		Long: `Deploy the application in APP_DIR (its app.ini says how it runs) to LOCATION,
[http[s]://]HOST[:PORT][/PATH], default app.ini's default_location. The node is
--node, else the location's host, which must be a node's name.

Everything is checked here first (app.ini, names, the location, the files);
then only the contents the node lacks are sent, compressed. The node makes a
new instance directory, installs the app's packages, starts the instance
beside the live one, waits until it answers, runs update_fetch against it
(its output is shown), and only then switches the location to it, lets the
old instance finish its requests and stops it, keeping it for
'toppcloud activate LOCATION prev'. If anything fails before the switch, the
new instance is removed, the old one keeps serving, and the application's own
error output is shown.

An update that would change nothing (same files, same config, the instance
running) does nothing and says so; --force makes a new instance anyway.

A LOCATION of a site ([site:NAME] in the config file), or --site NAME, updates
every app node of the site: each gets the new instance ready, and only when
all are ready does each in turn leave the balancer, switch and come back. If
any node fails before that, no node switches.`,
		GroupID: "apps",
		Args:    rangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.AppDir = args[0]
			if len(args) > 1 {
				o.Location = args[1]
			}
			return a.update(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Node, "node", "", "deploy to `NODE` (default: the location's host)")
	f.StringVar(&o.site, "site", "", "deploy to every app node of site `NAME` (default: the site of LOCATION, if any)")
	f.StringVar(&o.Name, "name", "", "deploy under app name `NAME` instead of app.ini's app_name")
	f.StringVar(&o.ConfigDir, "config", "", "upload `DIR` as the app's configuration ($SILVER_APP_CONFIG); kept until the next --config")
	f.BoolVar(&o.Clear, "clear", false, "clear the app's service data (databases, files) before starting it")
	f.BoolVar(&o.Force, "force", false, "make and start a new instance even if nothing changed")
	f.BoolVar(&o.etcHosts, "etc-hosts", false, "add the location's host to /etc/hosts with the node's address")
	f.DurationVar(&o.LockTimeout, "lock-timeout", deploy.DefaultLockTimeout, "wait at most `D` for another operation on the same app")
	f.DurationVar(&o.HealthTimeout, "health-timeout", protocol.DefaultHealthTimeout, "wait at most `D` for the new instance to answer")
	f.StringVar(&o.compress, "compress", string(deploy.CompressAuto), "compression of the upload: s2 (fast), zstd (fewer bytes, for slower links), none, or auto (s2 for a node on this machine, else zstd)")
	return cmd
}

func (a *App) update(ctx context.Context, o updateOptions) error {
	locArg := o.Location
	if locArg == "" && o.site == "" && o.Node == "" {
		// app.ini's default_location may be a site's; Prepare reports
		// an app.ini that does not load.
		if cfg, err := appconfig.Load(o.AppDir); err == nil {
			locArg = cfg.DefaultLocation
		}
	}
	s, err := a.siteFor(ctx, o.site, locArg, o.Node)
	if err != nil {
		return err
	}
	if s != nil {
		return a.updateSite(ctx, o, *s, locArg)
	}
	c, err := deploy.ParseCompression(o.compress)
	if err != nil {
		return usagef("%v", err)
	}
	o.Compress = c
	cache, err := a.nodes().ManifestCache()
	if err != nil {
		return err
	}
	step := a.out.Step("check %s", o.AppDir)
	p, err := deploy.Prepare(ctx, o.Options, a.nodes(), cache)
	if err != nil {
		step.Fail()
		return inputErr(err)
	}
	for _, w := range p.Warnings {
		a.out.Warnf("%s", w)
	}
	files, bytes := p.Manifest.FileBytes()
	step.Done("%s (%s) to %s on %s, %d files, %s", p.App, p.Config.Runner.Kind, p.Location, p.Node, files, humanBytes(bytes))
	if o.Clear {
		if err := a.confirmDataLoss("update --clear", fmt.Sprintf("--clear: delete all data of %s (its databases, files) before the new instance starts?", p.App)); err != nil {
			return err
		}
	}

	// The agent is checked only if the update is refused: the request
	// names the client's agent, and a current one (nearly always) starts
	// at once.
	n, rec, err := a.nodes().ConnectDeployDeferred(ctx, p.Node)
	if err != nil {
		return err
	}

	// The link's round trip, for --compress auto, measured while the
	// node works out what it lacks.
	rtt := make(chan time.Duration, 1)
	go func() {
		d := time.Duration(-1)
		if c, ok := n.Conn().(interface {
			RTT(context.Context) (time.Duration, error)
		}); ok {
			if m, err := c.RTT(ctx); err == nil {
				d = m
			}
		}
		rtt <- d
	}()
	var last time.Time
	step = nil
	uploaded := false
	res, _, err := deploy.Update(ctx, n, p, deploy.UpdateOptions{
		Progress: func(pr manifest.Progress) {
			if step == nil {
				step = a.out.Step("upload")
			}
			if !pr.Done && !a.out.Live && time.Since(last) < 2*time.Second {
				return
			}
			last = time.Now()
			step.Update("%s / %s, %s/s", humanBytes(pr.Bytes), humanBytes(pr.TotalBytes), humanBytes(int64(pr.Rate())))
		},
		Uploaded: func(up deploy.UploadStats) {
			if step == nil {
				step = a.out.Step("upload")
			}
			uploaded = true
			if up.Blobs == 0 {
				step.Done("nothing new to send (%s sent)", humanBytes(up.Sent))
			} else {
				step.Done("%d new contents, %s (%s sent, %s)", up.Blobs, humanBytes(up.Content), humanBytes(up.Sent), up.Compression)
			}
		},
		Events: a.streamSteps(),
		RTT:    sync.OnceValue(func() time.Duration { return <-rtt }),
	})
	if err != nil {
		if step != nil && !uploaded {
			step.Fail()
		}
		if ctx.Err() != nil {
			return fmt.Errorf("update %s: interrupted; the node finishes the update or removes the new instance by itself (query %s shows which): %w", p.App, p.Node, ctx.Err())
		}
		return withTail(fmt.Errorf("update %s: %w", p.App, err))
	}
	url := deploy.URL(p.Location)
	if res.Unchanged {
		a.out.Printf("nothing changed: %s is live at %s with the same files and config (update --force makes a new instance)", res.Instance, url)
	} else {
		prev := ""
		if res.Prev != "" {
			prev = "; previous: " + res.Prev
			if l := p.Location; !l.Wildcard() && !l.CatchAll() && !l.IP() {
				l.Host = router.PrevPrefix + l.Host
				prev += ", answering at " + deploy.URL(l)
			}
			prev += fmt.Sprintf(" (toppcloud activate %s prev)", p.Location)
		}
		a.out.Printf("%s is live at %s (release %d%s)", res.Instance, url, res.Release, prev)
	}
	fmt.Fprintln(a.out.Stdout, url)
	return a.nodes().PointHost(ctx, rec, p.Location, o.etcHosts)
}

// locationNode parses a location argument and picks its node.
func (a *App) locationNode(arg, node string) (location.Location, string, error) {
	loc, err := location.Parse(arg)
	if err != nil {
		return loc, "", asUsage(err)
	}
	name, err := deploy.ResolveNode(loc, node, a.nodes())
	return loc, name, inputErr(err)
}

func (a *App) activateCmd() *cobra.Command {
	var node, siteName string
	var lockTimeout, healthTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "activate LOCATION INSTANCE|prev|RELEASE",
		Short: "Make another instance live at a location (rollback, roll forward)",
		Long: `Make an instance of the app at LOCATION live there: an instance name
(query lists them), prev (the one live before: activate prev again rolls
forward), or a release number (query lists the releases). The instance is
started beside the live one and checked like an update, then the location
switches to it with no request dropped, and the old one is drained and
stopped.`,
		GroupID: "apps",
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			target := args[1]
			if target == "" || strings.ContainsAny(target, "/ \t\n") {
				return usagef("activate: %q is not an instance name, prev or a release number", target)
			}
			if s, err := a.siteFor(ctx, siteName, args[0], node); err != nil || s != nil {
				if err != nil {
					return err
				}
				return a.activateSite(ctx, *s, args[0], protocol.ActivateArgs{Target: target, LockWait: protocol.Duration(lockTimeout), HealthTimeout: protocol.Duration(healthTimeout)})
			}
			loc, name, err := a.locationNode(args[0], node)
			if err != nil {
				return err
			}
			n, _, closeConn, err := a.connectDeploy(ctx, name)
			if err != nil {
				return err
			}
			defer closeConn()
			var res protocol.ActivateResult
			err = n.Call(ctx, protocol.OpActivate, protocol.ActivateArgs{Location: loc.String(), Target: target, LockWait: protocol.Duration(lockTimeout), HealthTimeout: protocol.Duration(healthTimeout)}, &res, a.streamSteps())
			if err != nil {
				return withTail(fmt.Errorf("activate %s %s: %w", loc, target, err))
			}
			switch {
			case res.Unchanged:
				a.out.Printf("%s is already live at %s", res.Instance, loc)
			case res.Prev != "":
				a.out.Printf("%s is live at %s (release %d); previous: %s", res.Instance, loc, res.Release, res.Prev)
			default:
				a.out.Printf("%s is live at %s (release %d)", res.Instance, loc, res.Release)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "the `NODE` (default: the location's host)")
	cmd.Flags().StringVar(&siteName, "site", "", "on every app node of site `NAME`, one after the other (default: the site of LOCATION, if any)")
	cmd.Flags().DurationVar(&lockTimeout, "lock-timeout", deploy.DefaultLockTimeout, "wait at most `D` for another operation on the same app")
	cmd.Flags().DurationVar(&healthTimeout, "health-timeout", protocol.DefaultHealthTimeout, "wait at most `D` for the instance to answer")
	return cmd
}

func (a *App) deactivateCmd() *cobra.Command {
	var node, siteName string
	var keepPrev bool
	cmd := &cobra.Command{
		Use:   "deactivate LOCATION...",
		Short: "Stop serving locations (globs allowed)",
		Long: `Remove the routes matching each LOCATION: HOST[:PORT][/PATH], where HOST and
PATH may be shell globs (* matches every route) and a location without a path
means every path of the host. Instances no route serves any more are drained
and stopped; their directories stay until clean-node. --keep-prev keeps each
route's previous instance for 'activate LOCATION prev'.

The node is --node, else the first location's host (which must then be a
plain host name).`,
		GroupID: "apps",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			for _, p := range args {
				if strings.TrimSpace(p) == "" {
					return usagef("deactivate: empty location")
				}
			}
			// A pattern names no site; a --site takes the patterns as
			// they are.
			first := args[0]
			if strings.ContainsAny(first, "*?[") || siteName != "" {
				first = ""
			}
			s, err := a.siteFor(ctx, siteName, first, node)
			if err != nil {
				return err
			}
			if s != nil {
				return a.deactivateSite(ctx, *s, protocol.DeactivateArgs{Patterns: args, KeepPrev: keepPrev})
			}
			name := node
			if name == "" {
				if strings.ContainsAny(args[0], "*?[") {
					return usagef("deactivate %s: a pattern names no node: give --node NODE", args[0])
				}
				var err error
				if _, name, err = a.locationNode(args[0], ""); err != nil {
					return err
				}
			} else if _, err := deploy.ResolveNode(location.Location{}, node, a.nodes()); err != nil {
				return inputErr(err)
			}
			n, _, closeConn, err := a.connectDeploy(ctx, name)
			if err != nil {
				return err
			}
			defer closeConn()
			var res protocol.DeactivateResult
			if err := n.Call(ctx, protocol.OpDeactivate, protocol.DeactivateArgs{Patterns: args, KeepPrev: keepPrev}, &res, a.streamSteps()); err != nil {
				return withTail(fmt.Errorf("deactivate: %w", err))
			}
			if len(res.Removed) == 0 {
				a.out.Printf("no route matches %s on %s", strings.Join(args, " "), name)
				return nil
			}
			for _, r := range res.Removed {
				fmt.Fprintf(a.out.Stdout, "removed %s: %s\n", r.Location, orDash(r.Live))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "the `NODE` (default: the first location's host)")
	cmd.Flags().StringVar(&siteName, "site", "", "on every app node of site `NAME` (default: the site of the first location, if any)")
	cmd.Flags().BoolVar(&keepPrev, "keep-prev", false, "keep each route's previous instance for activate LOCATION prev")
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (a *App) queryCmd() *cobra.Command {
	var asJSON bool
	var siteName string
	var releases int
	cmd := &cobra.Command{
		Use:   "query NODE [GLOB...] | --site NAME [GLOB...]",
		Short: "Show the apps on a node: locations, instances, releases",
		Long: `List the apps deployed on NODE: for each, its instances (live at which
locations, kept as prev, or unused, which clean-node removes), their state, its
latest releases, whether it is disabled, its cron entries (next and last run,
how the last ended) and workers (state, restarts). GLOBs select apps by name
or by location (HOST[/PATH] patterns, as deactivate takes them).`,
		GroupID: "apps",
		Args:    minArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if siteName != "" {
				for _, g := range args {
					if _, err := filepath.Match(g, ""); err != nil {
						return usagef("query: bad pattern %q: %v", g, err)
					}
				}
				s, err := a.siteNamed(ctx, siteName)
				if err != nil {
					return err
				}
				return a.querySite(ctx, s, protocol.QueryArgs{Patterns: args, Releases: releases}, asJSON)
			}
			if len(args) == 0 {
				return usagef("query: give NODE or --site NAME")
			}
			for _, g := range args[1:] {
				if _, err := filepath.Match(g, ""); err != nil {
					return usagef("query: bad pattern %q: %v", g, err)
				}
			}
			n, _, closeConn, err := a.connectDeploy(ctx, args[0])
			if err != nil {
				return err
			}
			defer closeConn()
			var res protocol.QueryResult
			if err := n.Call(ctx, protocol.OpQuery, protocol.QueryArgs{Patterns: args[1:], Releases: releases}, &res, a.streamSteps()); err != nil {
				return withTail(fmt.Errorf("query %s: %w", args[0], err))
			}
			if asJSON {
				return a.out.JSON(res)
			}
			a.printQuery(res)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print {apps, routes, disabled} as JSON")
	cmd.Flags().IntVar(&releases, "releases", 5, "show each app's last `N` releases")
	cmd.Flags().StringVar(&siteName, "site", "", "query every app node of site `NAME` (GLOBs are then all the arguments)")
	return cmd
}

func (a *App) printQuery(res protocol.QueryResult) {
	w := a.out.Stdout
	if len(res.Apps) == 0 {
		fmt.Fprintln(w, "no apps")
		return
	}
	for i, app := range res.Apps {
		if i > 0 {
			fmt.Fprintln(w)
		}
		head := "app " + app.Name
		if app.Disabled {
			head += " (disabled)"
		}
		fmt.Fprintln(w, head)
		for _, in := range app.Instances {
			var where []string
			for _, l := range in.Live {
				where = append(where, "live at "+l)
			}
			for _, l := range in.Prev {
				where = append(where, "prev at "+l)
			}
			if len(where) == 0 {
				where = []string{"unused"}
			}
			detail := strings.TrimSpace(in.Kind + ", " + in.State)
			fmt.Fprintf(w, "  %s  %s  [%s]\n", in.Name, strings.Join(where, ", "), strings.Trim(detail, ", "))
		}
		if len(app.Services) > 0 {
			var parts []string
			for _, s := range app.Services {
				if s.Error != "" {
					parts = append(parts, fmt.Sprintf("%s (size unknown: %s)", s.Name, s.Error))
					continue
				}
				parts = append(parts, fmt.Sprintf("%s %s (%d %s)", s.Name, humanBytes(s.Bytes), s.Items, s.Unit))
			}
			fmt.Fprintf(w, "  services: %s\n", strings.Join(parts, ", "))
		}
		for _, r := range app.Releases {
			fmt.Fprintf(w, "  release %d: %s %s at %s, %s by %s\n", r.Number, r.Action, orDash(r.Instance),
				strings.Join(r.Locations, " "), when(r.Time), orDash(r.LocalUser))
		}
		for _, c := range app.Crons {
			fmt.Fprintf(w, "  cron %s: %s %s  [%s]\n", c.Name, c.Schedule, c.Target, cronSummary(c))
		}
		for _, wk := range app.Workers {
			fmt.Fprintf(w, "  worker %s", wk.Name)
			if wk.Replica > 1 {
				fmt.Fprintf(w, "#%d", wk.Replica)
			}
			detail := []string{wk.State, plural(wk.Restarts, "restart")}
			if wk.PID > 0 {
				detail = append(detail, fmt.Sprintf("pid %d", wk.PID))
			}
			if !wk.Since.IsZero() {
				detail = append(detail, "since "+when(wk.Since))
			}
			if wk.LastExit != "" {
				detail = append(detail, "last exit: "+wk.LastExit)
			}
			fmt.Fprintf(w, ": %s  [%s]\n", wk.Instance, strings.Join(detail, ", "))
		}
		for _, r := range res.Routes {
			if r.App == app.Name && r.Certificate != nil {
				fmt.Fprintf(w, "  certificate for %s: %s\n", r.Certificate.Host, certificateState(r.Certificate))
			}
		}
	}
}

// certificateState says what the node has for a certificate.
func certificateState(c *protocol.CertificateInfo) string {
	var parts []string
	if !c.NotAfter.IsZero() {
		parts = append(parts, fmt.Sprintf("from %s, valid until %s", orDash(c.Issuer), when(c.NotAfter)))
	} else {
		parts = append(parts, "none yet")
	}
	if c.Error != "" {
		parts = append(parts, fmt.Sprintf("last try failed at %s: %s", when(c.ErrorAt), c.Error))
	}
	return strings.Join(parts, "; ")
}

// cronSummary says where a cron entry is: scheduled or not, its runs.
func cronSummary(c protocol.CronInfo) string {
	var parts []string
	switch {
	case c.Running:
		parts = append(parts, "running since "+when(c.Started))
	case !c.Scheduled:
		parts = append(parts, "not scheduled")
	}
	if !c.Last.IsZero() {
		last := "last " + when(c.Last)
		if c.LastResult != "" {
			last += " (" + c.LastResult + ")"
		}
		parts = append(parts, last)
	}
	if c.Scheduled && !c.Next.IsZero() {
		parts = append(parts, "next "+when(c.Next))
	}
	if c.Instance != "" {
		parts = append(parts, "as "+c.Instance)
	}
	if len(parts) == 0 {
		return "never ran"
	}
	return strings.Join(parts, ", ")
}

func when(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05") }

func (a *App) cleanNodeCmd() *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "clean-node NODE",
		Short: "Remove instances that are neither live nor prev, and unused contents",
		Long: `Delete the instance directories on NODE that no location serves or keeps as
prev, the stored contents no instance uses any more, and what interrupted
updates left. -n only lists what would go.`,
		GroupID: "apps",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			n, _, closeConn, err := a.connectDeploy(ctx, args[0])
			if err != nil {
				return err
			}
			defer closeConn()
			var res protocol.CleanResult
			if err := n.Call(ctx, protocol.OpClean, protocol.CleanArgs{DryRun: dryRun}, &res, a.streamSteps()); err != nil {
				return withTail(fmt.Errorf("clean-node %s: %w", args[0], err))
			}
			verb := "removed"
			if dryRun {
				verb = "would remove"
			}
			for _, in := range res.Removed {
				fmt.Fprintf(a.out.Stdout, "%s %s\n", verb, in)
			}
			for _, in := range res.Kept {
				fmt.Fprintf(a.out.Stdout, "keeping %s\n", in)
			}
			for _, app := range res.Skipped {
				a.out.Warnf("%s left alone: an operation on it is running", app)
			}
			if !dryRun {
				a.out.Printf("%s: %s, %s of unused contents, %d leftovers of interrupted updates removed",
					args[0], plural(len(res.Removed), "instance"), humanBytes(res.BlobBytes), res.Partial+res.Manifests)
			} else {
				a.out.Printf("%s: %s and %s of unused contents would be removed", args[0], plural(len(res.Removed), "instance"), humanBytes(res.BlobBytes))
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&dryRun, "dry-run", "n", false, "show what would be removed, remove nothing")
	return cmd
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func (a *App) disableCmd(enable bool) *cobra.Command {
	var byName, byLocation, node, siteName string
	use, short := "disable", "Serve the 'temporarily unavailable' page for an app, keeping it deployed"
	if enable {
		use, short = "enable", "Undo disable"
	}
	cmd := &cobra.Command{
		Use:   use + " --by-name APP | --by-location LOCATION",
		Short: short,
		Long: short + `. Every location of the app is affected (its data is
shared). --by-name needs --node; --by-location finds the node from the
location's host unless --node is given.`,
		GroupID: "apps",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			var name string
			da := protocol.DisableArgs{App: byName}
			switch {
			case (byName == "") == (byLocation == ""):
				return usagef("%s: give --by-name APP or --by-location LOCATION", use)
			case byName != "" && siteName != "":
				if err := appNameOK(byName); err != nil {
					return err
				}
				s, err := a.siteFor(ctx, siteName, "", node)
				if err != nil {
					return err
				}
				return a.disableSite(ctx, *s, enable, da)
			case byName != "":
				if err := appNameOK(byName); err != nil {
					return err
				}
				if node == "" {
					return usagef("%s --by-name %s: give --node NODE", use, byName)
				}
				var err error
				if name, err = deploy.ResolveNode(location.Location{}, node, a.nodes()); err != nil {
					return inputErr(err)
				}
			default:
				s, err := a.siteFor(ctx, siteName, byLocation, node)
				if err != nil {
					return err
				}
				if s != nil {
					loc, err := siteLocation(*s, byLocation)
					if err != nil {
						return err
					}
					da.Location = site.FromConfig(*s).AppLocation(loc).String()
					return a.disableSite(ctx, *s, enable, da)
				}
				loc, n, err := a.locationNode(byLocation, node)
				if err != nil {
					return err
				}
				name, da.Location = n, loc.String()
			}
			n, _, closeConn, err := a.connectDeploy(ctx, name)
			if err != nil {
				return err
			}
			defer closeConn()
			op := protocol.OpDisable
			if enable {
				op = protocol.OpEnable
			}
			var res protocol.DisableResult
			if err := n.Call(ctx, op, da, &res, a.streamSteps()); err != nil {
				return withTail(fmt.Errorf("%s: %w", use, err))
			}
			state := use + "d"
			if !res.Changed {
				a.out.Printf("%s was already %s", res.App, state)
				return nil
			}
			a.out.Printf("%s is %s at %s", res.App, state, strings.Join(res.Locations, ", "))
			return nil
		},
	}
	cmd.Flags().StringVar(&byName, "by-name", "", "the app `APP`")
	cmd.Flags().StringVar(&byLocation, "by-location", "", "the app served at `LOCATION`")
	cmd.Flags().StringVar(&node, "node", "", "the `NODE`")
	cmd.Flags().StringVar(&siteName, "site", "", "on every app node of site `NAME` (default: the site of --by-location, if any)")
	return cmd
}

func (a *App) logsCmd() *cobra.Command {
	var node, job, siteName string
	var follow bool
	var lines int
	cmd := &cobra.Command{
		Use:   "logs LOCATION",
		Short: "Show the logs of the app at a location",
		Long: `Print the last lines of the app's errors.log (what it wrote to stdout,
stderr and wsgi.errors, per request) and of its instances' journal (the
server's own messages, start-up errors, its workers' and cron runs'
output). --job NAME shows only the output of app.ini's cron.NAME or
worker.NAME. -f keeps following until interrupted.`,
		GroupID: "apps",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if lines < 0 {
				return usagef("logs: -n must not be negative")
			}
			if job != "" {
				if err := appconfig.CheckJobName(job); err != nil {
					return usagef("logs --job: %v", err)
				}
			}
			if s, err := a.siteFor(ctx, siteName, args[0], node); err != nil || s != nil {
				if err != nil {
					return err
				}
				return a.logsSite(ctx, *s, args[0], protocol.LogsArgs{Lines: lines, Follow: follow, Job: job})
			}
			loc, name, err := a.locationNode(args[0], node)
			if err != nil {
				return err
			}
			n, _, closeConn, err := a.connectDeploy(ctx, name)
			if err != nil {
				return err
			}
			defer closeConn()
			o := a.streamSteps()
			o.Log = func(l protocol.Log) {
				switch l.Stream {
				case protocol.StreamErrorsLog:
					fmt.Fprintln(a.out.Stdout, "errors.log: "+Printable(l.Text))
				case protocol.StreamJournal:
					fmt.Fprintln(a.out.Stdout, Printable(l.Text))
				case protocol.StreamFrontServer:
					fmt.Fprintln(a.out.Stdout, "front server: "+Printable(l.Text))
				case protocol.StreamWarning:
					a.out.Warnf("%s", Printable(l.Text))
				}
			}
			var res protocol.LogsResult
			err = n.Call(ctx, protocol.OpLogs, protocol.LogsArgs{Location: loc.String(), Lines: lines, Follow: follow, Job: job}, &res, o)
			if err != nil && follow && ctx.Err() != nil {
				return nil // Ctrl-C ends a follow
			}
			if err != nil {
				return withTail(fmt.Errorf("logs %s: %w", loc, err))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "the `NODE` (default: the location's host)")
	cmd.Flags().StringVar(&siteName, "site", "", "the logs of every app node of site `NAME`, each line labelled (default: the site of LOCATION, if any)")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines until interrupted")
	cmd.Flags().IntVarP(&lines, "lines", "n", 50, "show the last `N` lines of each log")
	cmd.Flags().StringVar(&job, "job", "", "show only the output of the cron entry or worker `NAME`")
	return cmd
}

// humanBytes formats a byte count for people.
func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// appNameOK checks an app name given on the command line.
func appNameOK(name string) error {
	if err := appconfig.CheckAppName(name); err != nil {
		return asUsage(err)
	}
	return nil
}
