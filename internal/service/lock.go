package service

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"time"

	"golang.org/x/sys/unix"

	"github.com/toppcloud/toppcloud/internal/agent/host"
)

// NodeLock takes the node-wide lock of service name in lockDir (Node's
// LockDir), for changes two apps' deploys must not interleave (one file
// that lists every app's user), waiting as long as ctx allows. It returns
// the release function.
func NodeLock(ctx context.Context, h *host.Host, lockDir, name string) (func(), error) {
	if lockDir == "" {
		return nil, fmt.Errorf("lock service %s: the node has no lock directory (Node.LockDir)", name)
	}
	dir := h.Path(lockDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("lock service %s: %w", name, err)
	}
	f, err := os.OpenFile(path.Join(dir, "service-"+name+".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock service %s: %w", name, err)
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock service %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock service %s: %w", name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
