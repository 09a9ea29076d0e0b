// Package backoff waits between the tries of a retry loop: a sleep that
// ends early when the context does, and a delay that starts small (so a
// peer that is nearly ready is seen quickly) and grows to a cap (so a slow
// one is not hammered).
package backoff

import (
	"context"
	"time"
)

// Sleep waits for d, or until ctx ends; then it returns ctx.Err().
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Delay is a growing wait between tries.
type Delay struct {
	// Next is the wait before the next try.
	Next time.Duration
	// Max caps Next.
	Max time.Duration
}

// Wait sleeps Next (see Sleep), then grows Next by half, up to Max.
func (d *Delay) Wait(ctx context.Context) error {
	if err := Sleep(ctx, d.Next); err != nil {
		return err
	}
	d.Next = min(d.Next*3/2, d.Max)
	return nil
}
