package backoff_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/walcast/walcast/internal/backoff"
)

func TestDelay(t *testing.T) {
	const minD, maxD = 100 * time.Millisecond, 2 * time.Second
	for n := range 70 {
		d := minD << min(n, 5)
		if d > maxD || n > 5 {
			d = maxD
		}
		lo, hi := time.Duration(1<<62), time.Duration(0)
		for range 500 {
			got := backoff.Delay(minD, maxD, n)
			if got < d/2 || got > d {
				t.Fatalf("Delay(%v, %v, %d) = %v, want within [%v, %v]", minD, maxD, n, got, d/2, d)
			}
			lo, hi = min(lo, got), max(hi, got)
		}
		if hi-lo < d/4 {
			t.Fatalf("Delay(%v, %v, %d): 500 waits span only %v..%v, want jitter over half of %v", minD, maxD, n, lo, hi, d)
		}
	}
	for _, c := range []struct{ minD, maxD time.Duration }{{0, 0}, {0, time.Second}, {-1, 5}} {
		if got := backoff.Delay(c.minD, c.maxD, 3); got != 0 {
			t.Errorf("Delay(%v, %v, 3) = %v, want 0", c.minD, c.maxD, got)
		}
	}
	if got := backoff.Delay(time.Second, 0, 3); got < time.Second/2 || got > time.Second {
		t.Errorf("Delay(1s, 0, 3) = %v, want within [0.5s, 1s] (max below min: min)", got)
	}
}

func TestSleep(t *testing.T) {
	if err := backoff.Sleep(t.Context(), time.Millisecond); err != nil {
		t.Fatalf("Sleep(1ms) = %v, want nil", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := backoff.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep(1h) with a canceled context = %v, want context.Canceled", err)
	}
}
