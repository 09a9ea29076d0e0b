package agent

import (
	"context"

	"github.com/toppcloud/toppcloud/internal/agent/router"
	"github.com/toppcloud/toppcloud/internal/agent/setup"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

// setupNode runs setup-node under its lock.
func (a *Agent) setupNode(ctx context.Context, c *Call, args *protocol.SetupArgs) (*protocol.SetupResult, error) {
	if err := setup.Validate(*args); err != nil {
		return nil, err
	}
	release, err := a.Locks().Acquire(ctx, setup.LockName, "setup-node by "+orUnknown(c.Req.LocalUser), setup.LockWait,
		func(s string) { c.Logf("%s", s) })
	if err != nil {
		return nil, err
	}
	defer release()
	n := setup.Node{Host: a.Host, Layout: a.Layout, Fingerprint: a.Fingerprint, Admin: a.Admin, Hooks: a.Setup,
		Routing: func() (*router.Rendered, error) { return a.routing(c) }}
	return setup.Run(ctx, n, c.Out, c.Req, *args)
}
