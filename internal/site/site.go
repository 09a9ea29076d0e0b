// Package site drives a site: one app served by several nodes
// ([site:NAME] in the client's config). The nodes know only their role
// (protocol.SiteRole); everything that spans nodes — a rolling update
// behind the balancer, an operation on every app node, the balancer's
// routing — is done here, against small interfaces (Nodes, deploy.Caller)
// so that it can be tested with fakes.
package site

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/toppcloud/toppcloud/internal/config"
	"github.com/toppcloud/toppcloud/internal/deploy"
	"github.com/toppcloud/toppcloud/internal/location"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/remote"
)

// UpstreamPort is the port of an app node's plain-HTTP front server, which
// the balancer proxies to.
const UpstreamPort = "80"

// Site is a site's nodes and locations.
type Site struct {
	Name      string
	Locations []location.Location
	// Balancer and Services are node names, "" when the site has none.
	Balancer string
	// Nodes are the app nodes, at least one.
	Nodes    []string
	Services string
}

// FromConfig is the site of a checked [site:NAME] section.
func FromConfig(s config.SiteSection) Site {
	return Site{Name: s.Name, Locations: s.Locations, Balancer: s.Balancer, Nodes: s.Nodes, Services: s.Services}
}

// Members are the site's nodes in setup order: balancer, services node
// (the app nodes' databases are there before the apps), app nodes.
func (s Site) Members() []string {
	var out []string
	if s.Balancer != "" {
		out = append(out, s.Balancer)
	}
	if s.Services != "" {
		out = append(out, s.Services)
	}
	return append(out, s.Nodes...)
}

// Nodes reaches a site's nodes.
type Nodes interface {
	// Connect connects to a node's agent as the deploy user.
	Connect(ctx context.Context, name string) (deploy.Caller, error)
	// Address is the node's address within the site: its private
	// address where the provider gives it one.
	Address(name string) (string, error)
}

// Roles derives every node's protocol.SiteRole: the balancer's, the app
// nodes' (trusting the balancer's X-Forwarded-* headers) and the services
// node's (listening on its address for the app nodes').
func (s Site) Roles(addr func(string) (string, error)) (map[string]protocol.SiteRole, error) {
	roles := map[string]protocol.SiteRole{}
	var trust []string
	if s.Balancer != "" {
		a, err := addr(s.Balancer)
		if err != nil {
			return nil, err
		}
		roles[s.Balancer] = protocol.SiteRole{Site: s.Name, Balancer: true}
		trust = []string{a}
	}
	var clients []string
	for _, n := range s.Nodes {
		a, err := addr(n)
		if err != nil {
			return nil, err
		}
		clients = append(clients, a)
		roles[n] = protocol.SiteRole{Site: s.Name, App: true, TrustProxies: trust}
	}
	if s.Services != "" {
		a, err := addr(s.Services)
		if err != nil {
			return nil, err
		}
		roles[s.Services] = protocol.SiteRole{Site: s.Name, Services: true, ServiceListen: a, ServiceClients: clients}
	}
	return roles, nil
}

// AppLocation is the location the app nodes serve for a site location:
// behind a balancer, which ends TLS, the same host and path over plain
// HTTP on the default port (the balancer proxies to UpstreamPort);
// without one, the location itself.
func (s Site) AppLocation(l location.Location) location.Location {
	if s.Balancer == "" {
		return l
	}
	l.Scheme, l.Port = location.HTTP, 0
	return l
}

// Runner runs operations on a site.
type Runner struct {
	Site  Site
	Nodes Nodes
	// Deploy is deploy.Update; tests replace it.
	Deploy func(ctx context.Context, n deploy.Caller, p *deploy.Plan, o deploy.UpdateOptions) (*protocol.UpdateResult, deploy.UploadStats, error)
	// Events, if set, gives the events of an operation on a node.
	Events func(node string) remote.CallOptions
	// Report, if set, hears what is happening, one line at a time.
	Report func(format string, args ...any)
	// Sleep waits d unless ctx ends first (nil: a timer); tests replace it.
	Sleep func(ctx context.Context, d time.Duration) error
	// Drain is how long a node taken out of the balancer is left to finish
	// the requests in flight before it switches (0: DefaultDrain).
	Drain time.Duration
	// HealthTimeout bounds the wait for a node to answer the balancer's
	// health checks before it is put back (0: DefaultHealthTimeout).
	HealthTimeout time.Duration
	// Health, if set, asks an app node's router itself whether it serves
	// (protocol.HealthHost, HealthPath); nil asks the balancer's status
	// (OpBalanceStatus).
	Health func(ctx context.Context, node string) error

	conns map[string]deploy.Caller
}

// Defaults of Runner.
const (
	DefaultDrain         = time.Second
	DefaultStopDrain     = 2 * time.Second
	DefaultHealthTimeout = time.Minute
	healthPoll           = 500 * time.Millisecond
)

func (r *Runner) report(format string, args ...any) {
	if r.Report != nil {
		r.Report(format, args...)
	}
}

func (r *Runner) events(node string) remote.CallOptions {
	if r.Events != nil {
		return r.Events(node)
	}
	return remote.CallOptions{}
}

func (r *Runner) sleep(ctx context.Context, d time.Duration) error {
	if r.Sleep != nil {
		return r.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// conn connects to a node once per Runner.
func (r *Runner) conn(ctx context.Context, name string) (deploy.Caller, error) {
	if c, ok := r.conns[name]; ok {
		return c, nil
	}
	c, err := r.Nodes.Connect(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", name, err)
	}
	if r.conns == nil {
		r.conns = map[string]deploy.Caller{}
	}
	r.conns[name] = c
	return c, nil
}

// Upstream is an app node's address as the balancer proxies to it.
func (r *Runner) Upstream(node string) (string, error) {
	a, err := r.Nodes.Address(node)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(a, UpstreamPort), nil
}

// BalanceArgs are the site's OpBalance arguments with the app nodes out
// taken out.
func (r *Runner) BalanceArgs(out ...string) (protocol.BalanceArgs, error) {
	b := protocol.BalanceArgs{Site: r.Site.Name, Locations: []string{}, Upstreams: []string{}}
	for _, l := range r.Site.Locations {
		b.Locations = append(b.Locations, l.String())
	}
	for _, n := range r.Site.Nodes {
		u, err := r.Upstream(n)
		if err != nil {
			return b, err
		}
		b.Upstreams = append(b.Upstreams, u)
	}
	for _, n := range out {
		u, err := r.Upstream(n)
		if err != nil {
			return b, err
		}
		b.Out = append(b.Out, u)
	}
	return b, nil
}

// Balance sends the balancer the site with the app nodes out taken out
// (none: every app node serves). A site without a balancer has nothing to
// send.
func (r *Runner) Balance(ctx context.Context, out ...string) error {
	if r.Site.Balancer == "" {
		return nil
	}
	args, err := r.BalanceArgs(out...)
	if err != nil {
		return err
	}
	c, err := r.conn(ctx, r.Site.Balancer)
	if err != nil {
		return err
	}
	var res protocol.BalanceResult
	if err := c.Call(ctx, protocol.OpBalance, args, &res, r.events(r.Site.Balancer)); err != nil {
		what := "put every app node in"
		if len(out) > 0 {
			what = "take " + strings.Join(out, ", ") + " out"
		}
		return fmt.Errorf("balancer %s: %s: %w", r.Site.Balancer, what, err)
	}
	return nil
}

// WaitHealthy waits until the balancer's health checks find node healthy,
// at most HealthTimeout; a site without a balancer has none to wait for.
// A node still unhealthy then is an error.
func (r *Runner) WaitHealthy(ctx context.Context, node string) error {
	if r.Site.Balancer == "" {
		return nil
	}
	up, err := r.Upstream(node)
	if err != nil {
		return err
	}
	c, err := r.conn(ctx, r.Site.Balancer)
	if err != nil {
		return err
	}
	limit := r.HealthTimeout
	if limit == 0 {
		limit = DefaultHealthTimeout
	}
	var last string
	for waited := time.Duration(0); ; waited += healthPoll {
		if r.Health != nil {
			err := r.Health(ctx, node)
			if err == nil {
				return nil
			}
			last = err.Error()
			if waited >= limit {
				return fmt.Errorf("node %s (%s) is not healthy after %s: %s", node, up, limit, last)
			}
			if err := r.sleep(ctx, healthPoll); err != nil {
				return err
			}
			continue
		}
		var st protocol.BalanceStatusResult
		if err := c.Call(ctx, protocol.OpBalanceStatus, nil, &st, remote.CallOptions{}); err != nil {
			return fmt.Errorf("balancer %s: status: %w", r.Site.Balancer, err)
		}
		last = "the balancer does not list it"
		for _, s := range st.Sites {
			if s.Site != r.Site.Name {
				continue
			}
			for _, u := range s.States {
				if u.Address == up {
					if u.Healthy {
						return nil
					}
					last = "its health check fails"
				}
			}
		}
		if waited >= limit {
			return fmt.Errorf("node %s (%s) is not healthy after %s: %s", node, up, limit, last)
		}
		if err := r.sleep(ctx, healthPoll); err != nil {
			return err
		}
	}
}

// TakeOut takes an app node out of the balancer and waits DefaultStopDrain
// for its requests in flight (before stop-node).
func (r *Runner) TakeOut(ctx context.Context, node string) error {
	if r.Site.Balancer == "" {
		return nil
	}
	if err := r.Balance(ctx, node); err != nil {
		return err
	}
	r.report("%s taken out of balancer %s", node, r.Site.Balancer)
	return r.sleep(ctx, DefaultStopDrain)
}

// PutBack waits until an app node answers the balancer's health checks
// (after start-node), then has the balancer send it requests again. A
// node that stays unhealthy is put back anyway, since the balancer's own
// health checks keep requests from it, and the wait's error returned.
func (r *Runner) PutBack(ctx context.Context, node string) error {
	if r.Site.Balancer == "" {
		return nil
	}
	herr := r.WaitHealthy(ctx, node)
	if err := r.Balance(ctx); err != nil {
		return err
	}
	if herr != nil {
		return herr
	}
	r.report("%s is back in balancer %s", node, r.Site.Balancer)
	return nil
}
