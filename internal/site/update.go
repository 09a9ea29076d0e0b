package site

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/deploy"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/usage"
)

// SiteServices are the services a site's services node runs for the app
// nodes; an app's other services run on each app node.
var SiteServices = map[string]bool{"postgresql": true, "postgis": true, "mysql": true, "redis": true}

// localOnly are services that keep files on the node itself: with several
// app nodes, each would have its own, and requests would see one or the
// other.
var localOnly = map[string]bool{"files": true, "writable_root": true}

// Check refuses an app the site cannot run: one keeping files on the node
// (service.files, service.writable_root) on a site of several app nodes,
// which share no file system, and one with databases on such a site
// without a services node. The errors are *usage.Error.
func (s Site) Check(cfg *appconfig.Config) error {
	if len(s.Nodes) < 2 {
		return nil
	}
	ini := cfg.File
	if ini == "" {
		ini = appconfig.FileName
	}
	for _, sv := range cfg.Services {
		if localOnly[sv.Name] {
			return usage.Errorf("%s line %d: service.%s keeps files on the node, and the %d app nodes of site %s share no file system; keep the files in a database (or another store all nodes reach), or deploy to one node",
				ini, sv.Line, sv.Name, len(s.Nodes), s.Name)
		}
		if SiteServices[sv.Name] && s.Services == "" {
			return usage.Errorf("%s line %d: service.%s: site %s has %d app nodes and no services node to share a database; add services = NODE to [site:%s]",
				ini, sv.Line, sv.Name, s.Name, len(s.Nodes), s.Name)
		}
	}
	return nil
}

// siteServices are the app's services the services node runs.
func (s Site) siteServices(cfg *appconfig.Config) []protocol.ServiceRequest {
	if s.Services == "" {
		return nil
	}
	var out []protocol.ServiceRequest
	for _, sv := range cfg.Services {
		if SiteServices[sv.Name] {
			out = append(out, protocol.ServiceRequest{Name: sv.Name, Value: sv.Value})
		}
	}
	return out
}

// Placement shares an app's jobs among n app nodes: the first runs the
// crons, and each worker's replicas (worker.NAME.replicas, at least one)
// are spread, the first nodes taking one more when they do not divide.
func Placement(cfg *appconfig.Config, n int) []*protocol.JobPlacement {
	out := make([]*protocol.JobPlacement, n)
	for i := range out {
		out[i] = &protocol.JobPlacement{Crons: i == 0, Workers: map[string]int{}}
	}
	for _, w := range cfg.Workers {
		r := max(w.Replicas, 1)
		for i := range out {
			k := r / n
			if i < r%n {
				k++
			}
			if k > 0 {
				out[i].Workers[w.Name] = k
			}
		}
	}
	return out
}

// NodeResult is how an update went on one app node.
type NodeResult struct {
	Node   string
	Result *protocol.UpdateResult
	Err    error
	// Switched: the node runs the new instance (or the unchanged one).
	Switched bool
}

// UpdateError is a site update that failed; Nodes say how each node
// fared.
type UpdateError struct {
	Site  string
	Nodes []NodeResult
	// Switched: some nodes had switched when it failed (the site runs two
	// versions).
	Switched bool
	Err      error
}

func (e *UpdateError) Error() string {
	var failed, switched, kept []string
	for _, n := range e.Nodes {
		switch {
		case n.Err != nil:
			failed = append(failed, fmt.Sprintf("%s: %v", n.Node, n.Err))
		case n.Switched:
			switched = append(switched, n.Node)
		default:
			kept = append(kept, n.Node)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "site %s: ", e.Site)
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	}
	if len(failed) > 0 {
		if e.Err != nil {
			b.WriteString("; ")
		}
		b.WriteString(strings.Join(failed, "; "))
	}
	if !e.Switched {
		b.WriteString("; no node switched: every node keeps the live version")
	} else {
		fmt.Fprintf(&b, "; the new version is live on %s, the old one still on %s", orNone(switched), orNone(append(kept, nodesOf(failed)...)))
	}
	return b.String()
}

func (e *UpdateError) Unwrap() error { return e.Err }

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func nodesOf(failed []string) []string {
	var out []string
	for _, f := range failed {
		n, _, _ := strings.Cut(f, ":")
		out = append(out, n)
	}
	return out
}

// UpdateOptions are the per-node callbacks of a site update.
type UpdateOptions struct {
	// Node gives the deploy.UpdateOptions of the update on one node
	// (progress, events); Hold, Held, SkipFetch, Jobs and ServiceEnv are
	// set by Update.
	Node func(node string) deploy.UpdateOptions
}

// errNoHold: an agent finished an update it was asked to hold without
// asking; it does not know held updates.
var errNoHold = errors.New("the update ended without holding before the switch (is the node's toppcloud older than the client's? run setup-node)")

// Update is a rolling update of the site: p (deploy.Prepare's, for the
// first app node) goes to every app node at once, each stopping short of
// the switch; once all are ready, each in turn is taken out of the
// balancer, left DefaultDrain to finish its requests, switched, and put
// back (its new instance answered its health check before the switch). If any node fails before the switch, none switches.
func (r *Runner) Update(ctx context.Context, p *deploy.Plan, o UpdateOptions) ([]NodeResult, error) {
	s := r.Site
	if err := s.Check(p.Config); err != nil {
		return nil, err
	}
	update := r.Deploy
	if update == nil {
		update = deploy.Update
	}
	var env map[string]string
	if req := s.siteServices(p.Config); len(req) > 0 {
		var err error
		if env, err = r.services(ctx, p, req); err != nil {
			return nil, err
		}
	}
	jobs := Placement(p.Config, len(s.Nodes))
	loc := s.AppLocation(p.Location)

	// Connect first: a node that cannot be reached fails the update
	// before any node has started anything.
	conns := make([]deploy.Caller, len(s.Nodes))
	for i, n := range s.Nodes {
		c, err := r.conn(ctx, n)
		if err != nil {
			return nil, err
		}
		conns[i] = c
	}
	if s.Balancer != "" {
		if _, err := r.conn(ctx, s.Balancer); err != nil {
			return nil, err
		}
	}

	type event struct {
		i    int
		held bool
		res  *protocol.UpdateResult
		err  error
	}
	events := make(chan event, 2*len(s.Nodes))
	decide := make([]chan bool, len(s.Nodes))
	for i, n := range s.Nodes {
		decide[i] = make(chan bool, 1)
		np := *p
		np.Node, np.Location = n, loc
		uo := deploy.UpdateOptions{}
		if o.Node != nil {
			uo = o.Node(n)
		}
		uo.Hold, uo.SkipFetch, uo.Jobs, uo.ServiceEnv = true, i > 0, jobs[i], env
		dec := decide[i]
		i := i
		uo.Held = func(string) bool {
			events <- event{i: i, held: true}
			select {
			case c := <-dec:
				return c
			case <-ctx.Done():
				return false
			}
		}
		go func() {
			res, _, err := update(ctx, conns[i], &np, uo)
			events <- event{i: i, res: res, err: err}
		}()
	}

	results := make([]NodeResult, len(s.Nodes))
	for i, n := range s.Nodes {
		results[i].Node = n
	}
	done := make([]bool, len(s.Nodes))
	// wasHeld: the node held; if told not to switch, its update's end
	// (an "aborted" error) is what was asked, not a failure.
	wasHeld := make([]bool, len(s.Nodes))
	committed := make([]bool, len(s.Nodes))
	// abort answers false to every hold, now or when it comes, and waits
	// for every node's update to end.
	abort := func(cause error) error {
		for i := range decide {
			select {
			case decide[i] <- false:
			default:
			}
		}
		for i := range done {
			for !done[i] {
				e := <-events
				if e.held {
					wasHeld[e.i] = true
					continue
				}
				done[e.i] = true
				results[e.i].Result = e.res
				expected := wasHeld[e.i] && !committed[e.i]
				if e.err != nil && !expected && results[e.i].Err == nil && !errors.Is(e.err, context.Canceled) {
					results[e.i].Err = e.err
				}
			}
		}
		switched := false
		for _, res := range results {
			switched = switched || res.Switched
		}
		return &UpdateError{Site: s.Name, Nodes: results, Switched: switched, Err: cause}
	}

	// Phase 1: every node held, or none switches.
	held := 0
	for held < len(s.Nodes) {
		e := <-events
		if e.held {
			held++
			wasHeld[e.i] = true
			r.report("%s: new instance ready", s.Nodes[e.i])
			continue
		}
		done[e.i] = true
		results[e.i].Result, results[e.i].Err = e.res, e.err
		if e.err == nil {
			// Switched without holding: the site now runs two versions.
			results[e.i].Err, results[e.i].Switched = errNoHold, true
		}
		return results, abort(nil)
	}

	// Phase 2: node by node, out of the balancer, switch, back in.
	for i, n := range s.Nodes {
		if err := r.Balance(ctx, n); err != nil {
			return results, abort(err)
		}
		if s.Balancer != "" {
			if err := r.sleep(ctx, r.drain()); err != nil {
				return results, abort(err)
			}
		}
		r.report("%s: switching", n)
		committed[i] = true
		decide[i] <- true
		for !done[i] {
			e := <-events
			if e.held {
				continue
			}
			done[e.i] = true
			results[e.i].Result, results[e.i].Err = e.res, e.err
			results[e.i].Switched = e.err == nil
			if e.i != i && e.err == nil {
				// Switched without our commit.
				results[e.i].Err = errNoHold
			}
		}
		if results[i].Err != nil {
			// The node failed at its switch: it keeps what it had. Put it
			// back and stop; the others keep the old version.
			_ = r.Balance(ctx)
			return results, abort(fmt.Errorf("%s failed at its switch", n))
		}
		// The node's update returned once the new instance, which had
		// answered its health check, was live: it can take requests.
		if err := r.Balance(ctx); err != nil {
			return results, abort(err)
		}
		r.report("%s: switched and back in", n)
		for j := i + 1; j < len(s.Nodes); j++ {
			if done[j] {
				return results, abort(fmt.Errorf("%s lost its held update before its switch", s.Nodes[j]))
			}
		}
	}
	return results, nil
}

func (r *Runner) drain() time.Duration {
	if r.Drain > 0 {
		return r.Drain
	}
	return DefaultDrain
}

// services has the services node prepare the app's databases and returns
// their CONFIG_* variables for the app nodes. Never print them.
func (r *Runner) services(ctx context.Context, p *deploy.Plan, req []protocol.ServiceRequest) (map[string]string, error) {
	c, err := r.conn(ctx, r.Site.Services)
	if err != nil {
		return nil, err
	}
	lock := p.Opts.LockTimeout
	if lock == 0 {
		lock = deploy.DefaultLockTimeout
	}
	args := protocol.SiteServicesArgs{App: p.App, Platform: p.Config.Platform, Services: req, Clear: p.Opts.Clear, LockWait: protocol.Duration(lock)}
	var res protocol.SiteServicesResult
	if err := c.Call(ctx, protocol.OpSiteServices, args, &res, r.events(r.Site.Services)); err != nil {
		return nil, fmt.Errorf("services node %s: %w", r.Site.Services, err)
	}
	if len(res.Env) == 0 {
		return nil, fmt.Errorf("services node %s returned no service settings for %s", r.Site.Services, p.App)
	}
	r.report("%s: services of %s ready", r.Site.Services, p.App)
	return res.Env, nil
}
