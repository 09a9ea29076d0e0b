package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

// Locks are the agent's named locks: flock(2) on files under
// Layout.Locks, a tmpfs, so a crashed agent never leaves one held (the
// kernel drops a dead process's locks) and a reboot starts clean. Two
// operations that must not interleave take the same name: "setup" for
// setup-node, "app-APP" for anything changing one app.
type Locks struct {
	Host *host.Host
	Dir  string
}

// lockPoll is how often a waiting Acquire retries.
const lockPoll = 250 * time.Millisecond

// Acquire takes the lock name, waiting up to wait while another process
// holds it (progress, if set, hears who holds it every few seconds), and
// returns the function that releases it. A lock still held after wait is
// a *protocol.Error with CodeLocked naming the holder.
func (l Locks) Acquire(ctx context.Context, name, holder string, wait time.Duration, progress func(string)) (release func(), err error) {
	if name == "" || strings.ContainsAny(name, "/\x00") || strings.HasPrefix(name, ".") {
		return nil, fmt.Errorf("lock: bad name %q", name)
	}
	dir := l.Host.Path(l.Dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	path := filepath.Join(dir, name+".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	start := time.Now()
	lastNote := time.Time{}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", name, err)
		}
		who := readHolder(path)
		if time.Since(start) >= wait {
			f.Close()
			return nil, &protocol.Error{Code: protocol.CodeLocked, Message: fmt.Sprintf("%s is locked by %s; wait for it to finish and try again", name, who)}
		}
		if progress != nil && time.Since(lastNote) >= 5*time.Second {
			progress(fmt.Sprintf("waiting for %s to finish (%s)", who, time.Since(start).Round(time.Second)))
			lastNote = time.Now()
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(lockPoll):
		}
	}
	// Who holds it, for the message a waiter shows. Best effort: the lock
	// itself is the flock, not this text.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(fmt.Sprintf("%d %s\n", os.Getpid(), holder)), 0)
	}
	return func() { f.Close() }, nil
}

// AcquireShared takes the lock name shared: any number of shared holders
// at once, none while someone holds it with Acquire (which waits for
// them all). It waits up to wait.
func (l Locks) AcquireShared(ctx context.Context, name string, wait time.Duration) (release func(), err error) {
	if name == "" || strings.ContainsAny(name, "/\x00") || strings.HasPrefix(name, ".") {
		return nil, fmt.Errorf("lock: bad name %q", name)
	}
	dir := l.Host.Path(l.Dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, name+".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	start := time.Now()
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", name, err)
		}
		if time.Since(start) >= wait {
			f.Close()
			return nil, &protocol.Error{Code: protocol.CodeLocked, Message: fmt.Sprintf("%s is locked by %s; try again later", name, readHolder(filepath.Join(dir, name+".lock")))}
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(lockPoll):
		}
	}
}

func readHolder(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "another agent"
	}
	pid, what, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
	if _, err := strconv.Atoi(pid); err != nil || what == "" {
		return "another agent"
	}
	return fmt.Sprintf("%s (pid %s)", what, pid)
}
