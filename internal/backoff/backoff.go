// Package backoff is the one retry delay of walcast: capped exponential
// backoff with jitter, and a sleep that ends with its context. Its functions
// are safe for concurrent use.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Delay returns the wait before retry attempt n (0-based): d = minD·2ⁿ
// capped at maxD, less a random part of up to half of it, so a wait lies in
// [d/2, d]. The jitter spreads the retries of many clients of one server
// that failed together. minD <= 0 gives 0.
func Delay(minD, maxD time.Duration, n int) time.Duration {
	if minD <= 0 {
		return 0
	}
	d := minD
	for i := 0; i < n && d < maxD; i++ {
		d *= 2
	}
	d = min(d, max(maxD, minD))
	return d - rand.N(d/2+1)
}

// Sleep waits d, or until ctx ends, when it returns ctx.Err().
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
