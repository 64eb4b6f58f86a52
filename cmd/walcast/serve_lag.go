package main

// Slot lag in seconds: how old the oldest transaction is that walcast has
// received from the slot but not yet handed on (published to the bus and,
// with Redis, accepted by it): how far delivery is behind, in time. The
// recovery window the slot retains on purpose (it is acknowledged only once
// it leaves the window) is not lag; walcast_cdc_slot_lag_bytes shows it.

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/walcast/walcast/cdc"
)

// lagBucket is one span of the transactions received within lagBucketSpan
// of its first.
type lagBucket struct {
	first, last cdc.LSN
	at          time.Time // commit time of the first
}

// lagBucketSpan bounds the tracker's precision and memory: one bucket per
// 100 ms of commits not handed on yet, whatever the rate.
const lagBucketSpan = 100 * time.Millisecond

// lagTracker remembers the commit times of the transactions that reached the
// bus and are not handed on yet. Safe for concurrent use.
type lagTracker struct {
	mu      sync.Mutex
	buckets []lagBucket
}

// received records the events' transactions (by commit LSN), called before
// they are published: a publish that waits (Redis down) counts as lag.
func (t *lagTracker) received(events []cdc.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range events {
		e := &events[i]
		if e.ID.IsZero() || e.CommitTime.IsZero() {
			continue
		}
		n := len(t.buckets)
		switch {
		case n > 0 && e.ID.LSN <= t.buckets[n-1].last:
			// Already counted (a transaction's later events, or a re-read).
		case n > 0 && e.CommitTime.Sub(t.buckets[n-1].at) < lagBucketSpan:
			t.buckets[n-1].last = e.ID.LSN
		default:
			t.buckets = append(t.buckets, lagBucket{first: e.ID.LSN, last: e.ID.LSN, at: e.CommitTime})
		}
	}
}

// seconds returns now minus the commit time of the oldest transaction above
// done (handed on), dropping the buckets done covers; 0 when nothing is
// pending.
func (t *lagTracker) seconds(done cdc.LSN, now time.Time) float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	i := 0
	for i < len(t.buckets) && t.buckets[i].last <= done {
		i++
	}
	if i > 0 {
		t.buckets = append(t.buckets[:0], t.buckets[i:]...)
	}
	if len(t.buckets) == 0 {
		return 0
	}
	return max(0, now.Sub(t.buckets[0].at).Seconds())
}

// reset forgets every pending transaction: the node no longer streams the
// slot, so what it had not acknowledged is the next reader's to send.
func (t *lagTracker) reset() {
	t.mu.Lock()
	t.buckets = nil
	t.mu.Unlock()
}

// registerLag exports walcast_cdc_slot_lag_seconds. stats returns the
// reader's handled position (what it has handed on) and whether it streams
// the slot.
func registerLag(reg prometheus.Registerer, t *lagTracker, stats func() (handled cdc.LSN, streaming bool)) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "walcast_cdc_slot_lag_seconds",
		Help: "Age (now - commit time) of the oldest transaction with events that this node received from the slot and has not handed on yet (published, and with Redis accepted by it); 0 when none, and while the node does not stream the slot (a standby)."},
		func() float64 {
			handled, streaming := stats()
			if !streaming {
				t.reset()
				return 0
			}
			return t.seconds(handled, time.Now())
		}))
}
