package cdc_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/cdc/pgtest"
)

// rewindSink fails one Publish with cdc.ErrRewind once armed, as a sink does
// when what it had been given since the last acknowledgement was lost
// downstream.
type rewindSink struct {
	*memSink
	armed atomic.Bool
}

func (s *rewindSink) Publish(ctx context.Context, evs []cdc.Event) error {
	if s.armed.CompareAndSwap(true, false) {
		return fmt.Errorf("downstream lost its copy: %w", cdc.ErrRewind)
	}
	return s.memSink.Publish(ctx, evs)
}

// testRewind: a Handler error wrapping cdc.ErrRewind makes the same Reader
// stream again from its acknowledged position (held back by AckLimit), at
// once: every transaction after it comes again, with the same ids, and the
// slot's confirmed position does not move.
func testRewind(t *testing.T, c *pgtest.Cluster) {
	db := testDB(t, c, `CREATE TABLE w (id int PRIMARY KEY)`)
	dsn := c.DSN(db)
	sink := &rewindSink{memSink: newMemSink()}
	// Status updates every 2 s: a rewind that waited for the next one would
	// show in the times measured below.
	rc := cdc.ReaderConfig{DSN: dsn, Slot: db, HeartbeatInterval: -1, StatusInterval: 2 * time.Second,
		BackoffMin: time.Second, BackoffMax: 2 * time.Second}
	rc.AckLimit = func() (cdc.LSN, bool) {
		for _, e := range sink.snapshot() {
			if e.Room == "w:2" {
				return e.ID.LSN, true
			}
		}
		return 0, false
	}
	p, _ := runPipeline(t, cdc.PipelineConfig{Reader: rc, Sink: sink})
	waitState(t, p, cdc.StateStreaming, 30*time.Second)
	execEach(t, dsn, `INSERT INTO w VALUES (1)`)
	sink.waitEvents(t, 1, nil, 30*time.Second)
	waitCaughtUp(t, p, dsn)
	execEach(t, dsn, `INSERT INTO w VALUES (2)`, `INSERT INTO w VALUES (3)`)
	first := sink.waitEvents(t, 3, nil, 30*time.Second)
	limit := first[1].ID.LSN

	sink.armed.Store(true)
	t0 := time.Now()
	execEach(t, dsn, `INSERT INTO w VALUES (4)`)
	got := sink.waitEvents(t, 6, nil, 30*time.Second)
	took := time.Since(t0)
	var rooms []string
	for _, e := range got {
		rooms = append(rooms, e.Room)
	}
	// w:1..w:3, then the rewind from the limit: w:2, w:3 and the new w:4.
	if want := "w:1 w:2 w:3 w:2 w:3 w:4"; strings.Join(rooms, " ") != want {
		t.Fatalf("events %q, want %q", strings.Join(rooms, " "), want)
	}
	for i := 3; i < 5; i++ {
		if got[i].ID != first[i-2].ID {
			t.Errorf("%s came again as %v, was %v", got[i].Room, got[i].ID, first[i-2].ID)
		}
	}
	// At once, not after the reconnect backoff (1-2 s here).
	if took > 900*time.Millisecond {
		t.Errorf("rewind took %v; it must not wait for the reconnect backoff", took)
	}
	st := p.Stats()
	if st.Rewinds != 1 || st.AckedLSN != limit {
		t.Errorf("stats %+v: want 1 rewind and acked = the limit %s", st, limit)
	}
	t.Logf("rewind: re-read 2 held transactions and 1 new one in %v", took.Round(time.Millisecond))

	// Reader.Rewind on a quiet stream: the blocked read is woken, and the
	// held transactions come again without any new change.
	t0 = time.Now()
	p.Reader().Rewind()
	got = sink.waitEvents(t, 9, nil, 30*time.Second)
	took = time.Since(t0)
	rooms = rooms[:0]
	for _, e := range got[6:] {
		rooms = append(rooms, e.Room)
	}
	if want := "w:2 w:3 w:4"; strings.Join(rooms, " ") != want {
		t.Fatalf("after Reader.Rewind %q, want %q", strings.Join(rooms, " "), want)
	}
	if took > 900*time.Millisecond {
		t.Errorf("Reader.Rewind took %v; it must wake the read, not wait for the next status update", took)
	}
	if st := p.Stats(); st.Rewinds != 2 {
		t.Errorf("stats %+v: want 2 rewinds", st)
	}
	t.Logf("Reader.Rewind on a quiet stream: 3 transactions again in %v", took.Round(time.Millisecond))
}
