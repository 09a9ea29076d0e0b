package service

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/host"
)

// Helpers for the services that are servers (PostgreSQL, MariaDB, Redis).

// WaitReady calls probe until it succeeds, for at most wait: a server
// just (re)started takes a moment to accept connections. The error names
// the server and says how long it waited.
func WaitReady(ctx context.Context, server string, wait time.Duration, probe func(context.Context) error) error {
	deadline := time.Now().Add(wait)
	for {
		err := probe(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not answer after %s: %w", server, wait, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// DumpTo runs a dump command with its standard output going straight to
// the new file p (a node path, root 0600), synced before it returns. A
// failed dump leaves the partial file for the caller (Backup) to remove
// with the rest of the backup.
func DumpTo(ctx context.Context, h *host.Host, p string, c host.Command) error {
	f, err := os.OpenFile(h.Path(p), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	c.Stdout = f
	_, err = h.Runner.Run(ctx, c)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
