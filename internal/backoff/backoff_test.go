package backoff

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestSleep_EndsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep(cancelled) = %v, want context.Canceled", err)
	}
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Errorf("Sleep = %v", err)
	}
}

func TestDelay_GrowsToItsCap(t *testing.T) {
	d := Delay{Next: time.Millisecond, Max: 3 * time.Millisecond}
	var seen []time.Duration
	for range 4 {
		if err := d.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		seen = append(seen, d.Next)
	}
	want := []time.Duration{1500 * time.Microsecond, 2250 * time.Microsecond, 3 * time.Millisecond, 3 * time.Millisecond}
	for i := range want {
		if seen[i] != want[i] {
			t.Fatalf("delays %v, want %v", seen, want)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	before := d.Next
	if err := d.Wait(ctx); err == nil || d.Next != before {
		t.Errorf("Wait(cancelled) = %v, Next %v: want an error and no growth", err, d.Next)
	}
}
