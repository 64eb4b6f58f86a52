package main

import (
	"testing"
	"time"

	"github.com/walcast/walcast/cdc"
)

// TestLagTracker: the lag is the age of the oldest transaction above the
// acknowledged position, 0 when none; buckets bound the memory.
func TestLagTracker(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ev := func(lsn cdc.LSN, at time.Duration) cdc.Event {
		return cdc.Event{ID: cdc.EventID{LSN: lsn}, CommitTime: t0.Add(at)}
	}
	var lt lagTracker
	if got := lt.seconds(0, t0); got != 0 {
		t.Errorf("empty: seconds = %v, want 0", got)
	}
	lt.received([]cdc.Event{ev(100, 0), ev(100, 0), ev(200, 50*time.Millisecond)}) // one bucket
	lt.received([]cdc.Event{ev(300, time.Second), ev(400, 2*time.Second)})
	lt.received([]cdc.Event{ev(300, time.Second)}) // re-read: already counted
	if n := len(lt.buckets); n != 3 {
		t.Errorf("buckets = %d, want 3 (100-200, 300, 400)", n)
	}
	now := t0.Add(5 * time.Second)
	for _, tc := range []struct {
		acked cdc.LSN
		want  float64
	}{{50, 5}, {150, 5}, {250, 4}, {350, 3}, {400, 0}, {500, 0}} {
		if got := lt.seconds(tc.acked, now); got != tc.want {
			t.Errorf("seconds(acked %d) = %v, want %v", tc.acked, got, tc.want)
		}
	}
	if n := len(lt.buckets); n != 0 {
		t.Errorf("buckets after everything was acknowledged = %d, want 0", n)
	}
	// Many commits in one 100 ms span take one bucket.
	for i := range 10_000 {
		lt.received([]cdc.Event{ev(cdc.LSN(1000+i), time.Duration(i)*time.Microsecond)})
	}
	if n := len(lt.buckets); n != 1 {
		t.Errorf("10,000 commits within 10 ms: %d buckets, want 1", n)
	}
}

// TestServe_SlotLagSeconds: on a node with Redis, walcast_cdc_slot_lag_seconds
// is 0 while events are acknowledged, grows while Redis is stopped (the
// leader cannot publish, so it does not acknowledge), and is 0 again once
// Redis is back and the event went out. Every series of the dashboard files
// exists in /metrics.
func TestServe_SlotLagSeconds(t *testing.T) {
	if testing.Short() {
		t.Skip("starts walcast, Postgres and Redis")
	}
	c := startCluster(t, 1, true)
	n := c.nodes[0]
	checkDashboardSeries(t, 0, n.rawMetrics(t))
	c.emit("before", 1, nil)
	waitMetric := func(what string, ok func(float64) bool) float64 {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			v := metricValue(n.rawMetrics(t), "walcast_cdc_slot_lag_seconds")
			if ok(v) {
				return v
			}
			if time.Now().After(deadline) {
				t.Fatalf("walcast_cdc_slot_lag_seconds = %v, want %s; metrics:\n%s", v, what, n.metrics())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitMetric("0 after the event was acknowledged", func(v float64) bool { return v == 0 })
	c.redis.Stop()
	c.emit("stopped", 1, nil)
	v := waitMetric("over 2 s while Redis is stopped", func(v float64) bool { return v > 2 })
	t.Logf("slot lag with Redis stopped: %.1f s", v)
	c.redis.Restart()
	waitMetric("0 after Redis came back", func(v float64) bool { return v == 0 })
}

// TestLagTracker_Reset: a node that stopped streaming the slot reports 0
// and forgets what it had pending (the next leader sends it).
func TestLagTracker_Reset(t *testing.T) {
	var lt lagTracker
	t0 := time.Now().Add(-time.Minute)
	lt.received([]cdc.Event{{ID: cdc.EventID{LSN: 10}, CommitTime: t0}})
	lt.reset()
	if got := lt.seconds(0, time.Now()); got != 0 {
		t.Errorf("seconds after reset = %v, want 0", got)
	}
}
