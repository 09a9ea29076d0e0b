package service

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/host/hosttest"
)

// TestNodeLock: the lock is a file in the lock directory the node was
// given, a second taker waits until the first releases it or its context
// ends, and a node without a lock directory is refused rather than locked
// somewhere else.
func TestNodeLock(t *testing.T) {
	h := hosttest.New(t, nil)
	ctx := context.Background()
	unlock, err := NodeLock(ctx, h, "/run/lock/test", "redis")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := h.Exists("/run/lock/test/service-redis.lock"); !ok || err != nil {
		t.Errorf("no lock file in the lock directory: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := NodeLock(short, h, "/run/lock/test", "redis"); err == nil || !strings.Contains(err.Error(), "deadline") {
		t.Errorf("a held lock was taken again: %v", err)
	}
	unlock()
	again, err := NodeLock(ctx, h, "/run/lock/test", "redis")
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	again()
	if _, err := NodeLock(ctx, h, "", "redis"); err == nil || !strings.Contains(err.Error(), "LockDir") {
		t.Errorf("no lock directory: %v", err)
	}
}
