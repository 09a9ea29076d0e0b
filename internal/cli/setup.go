package cli

import (
	"context"
	"errors"
)

// setupOptions are setup-node's flags.
type setupOptions struct {
	user string
}

func (a *App) setupNode(ctx context.Context, name string, o setupOptions) error {
	return errors.New("setup-node: not built yet")
}
