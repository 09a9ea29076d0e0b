package site

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/toppcloud/toppcloud/internal/deploy"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

// NodeFunc is an operation on one node.
type NodeFunc func(ctx context.Context, node string, c deploy.Caller) error

// Each runs fn on every app node in turn, stopping at the first error,
// which names the node (activate, disable: one node at a time, so the
// site never has every node changing at once).
func (r *Runner) Each(ctx context.Context, fn NodeFunc) error {
	for _, n := range r.Site.Nodes {
		c, err := r.conn(ctx, n)
		if err != nil {
			return err
		}
		if err := fn(ctx, n, c); err != nil {
			return fmt.Errorf("node %s: %w", n, err)
		}
	}
	return nil
}

// All runs fn on every app node at once (logs --follow, which never ends
// on one node) and returns every node's error.
func (r *Runner) All(ctx context.Context, fn NodeFunc) error {
	conns := make([]deploy.Caller, len(r.Site.Nodes))
	for i, n := range r.Site.Nodes {
		c, err := r.conn(ctx, n)
		if err != nil {
			return err
		}
		conns[i] = c
	}
	errs := make([]error, len(conns))
	var wg sync.WaitGroup
	for i, n := range r.Site.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx, n, conns[i]); err != nil {
				errs[i] = fmt.Errorf("node %s: %w", n, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// ServicesNode runs fn on the node holding the site's data: the services
// node, or the only app node of a site without one. A site of several
// app nodes and no services node has no shared data (nil, false).
func (r *Runner) ServicesNode(ctx context.Context, fn NodeFunc) (bool, error) {
	n := r.Site.Services
	if n == "" {
		if len(r.Site.Nodes) != 1 {
			return false, nil
		}
		n = r.Site.Nodes[0]
	}
	c, err := r.conn(ctx, n)
	if err != nil {
		return true, err
	}
	if err := fn(ctx, n, c); err != nil {
		return true, fmt.Errorf("node %s: %w", n, err)
	}
	return true, nil
}

// SetupFunc sets up one node with its role.
type SetupFunc func(ctx context.Context, node string, role protocol.SiteRole) error

// Setup sets up every node of the site with its role (Roles), one after
// the other in Members' order, then sends the balancer the site with
// every app node in.
func (r *Runner) Setup(ctx context.Context, setup SetupFunc) error {
	roles, err := r.Site.Roles(r.Nodes.Address)
	if err != nil {
		return err
	}
	for _, n := range r.Site.Members() {
		if err := setup(ctx, n, roles[n]); err != nil {
			return err
		}
	}
	if err := r.Balance(ctx); err != nil {
		return err
	}
	if r.Site.Balancer != "" {
		r.report("balancer %s proxies %d locations to %d app nodes", r.Site.Balancer, len(r.Site.Locations), len(r.Site.Nodes))
	}
	return nil
}
