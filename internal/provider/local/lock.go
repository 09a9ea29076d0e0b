package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/toppcloud/toppcloud/internal/backoff"
	"github.com/toppcloud/toppcloud/internal/provider"
)

// netLockPath serializes changes to host-wide network state (addresses,
// netns, veth, routes, the nftables table) across every process and every
// root on the machine. It lives in /run so it is never stale after a
// reboot.
const netLockPath = "/run/lock/toppcloud-local.lock"

// lockNet takes the host-wide network lock.
func lockNet(ctx context.Context) (*fileLock, error) {
	if err := os.MkdirAll(filepath.Dir(netLockPath), 0o755); err != nil {
		return nil, err
	}
	return lockFile(ctx, netLockPath)
}

// fileLock is an flock(2) lock. The kernel drops it when the process dies,
// so a crash never leaves a lock behind.
type fileLock struct{ f *os.File }

// lockFile takes an exclusive lock on path (creating the file), waiting
// until ctx is done.
func lockFile(ctx context.Context, path string) (*fileLock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	delay := 5 * time.Millisecond
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return &fileLock{f: f}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if err := backoff.Sleep(ctx, delay); err != nil {
			f.Close()
			return nil, fmt.Errorf("wait for lock %s: %w", path, err)
		}
		delay = min(delay*2, 100*time.Millisecond)
	}
}

func (l *fileLock) unlock() {
	if l != nil {
		l.f.Close()
	}
}

// lockNode locks a node's lock file. Destroy removes the node directory
// while holding the lock, so after the lock is taken we check that the
// file we locked is still the one at that path; if not, the node is gone.
func lockNode(ctx context.Context, p nodePaths, name string) (*fileLock, error) {
	if _, err := os.Stat(p.dir); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("node %s: %w", name, provider.ErrNotFound)
	}
	for {
		l, err := lockFile(ctx, p.lock)
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("node %s: %w", name, provider.ErrNotFound)
		}
		if err != nil {
			return nil, err
		}
		var held, now unix.Stat_t
		if err := unix.Fstat(int(l.f.Fd()), &held); err != nil {
			l.unlock()
			return nil, err
		}
		err = unix.Stat(p.lock, &now)
		if err == nil && held.Ino == now.Ino && held.Dev == now.Dev {
			return l, nil
		}
		l.unlock()
		if _, err := os.Stat(p.dir); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("node %s: %w", name, provider.ErrNotFound)
		}
		// The node was destroyed and made again between our open and
		// our lock: lock the new file.
	}
}
