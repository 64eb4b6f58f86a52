package cdc_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/cdc/pgtest"
)

// flakySink accepts the first n events, then fails every Publish.
type flakySink struct {
	mu       sync.Mutex
	accept   int
	events   []cdc.Event
	failures int
}

func (s *flakySink) Publish(ctx context.Context, evs []cdc.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.events)+len(evs) > s.accept {
		s.failures++
		return errors.New("bus unavailable")
	}
	s.events = append(s.events, evs...)
	return nil
}

func (s *flakySink) state() ([]cdc.Event, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]cdc.Event(nil), s.events...), s.failures
}

// testAck: a restart after a partial delivery redelivers exactly the
// transactions that were not fully published, with the same event ids.
func testAck(t *testing.T, c *pgtest.Cluster) {
	db := testDB(t, c, `CREATE TABLE a (id int PRIMARY KEY, tx int)`)
	dsn := c.DSN(db)
	rc := cdc.ReaderConfig{DSN: dsn, Slot: db, HeartbeatInterval: -1, StatusInterval: 500 * time.Millisecond, BackoffMin: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond}

	// Run 1: everything is delivered and acknowledged.
	sink1 := newMemSink()
	p1, stop1 := runPipeline(t, cdc.PipelineConfig{Reader: rc, Sink: sink1})
	waitState(t, p1, cdc.StateStreaming, 30*time.Second)
	execEach(t, dsn, `INSERT INTO a VALUES (1, 1), (2, 1)`, `INSERT INTO a VALUES (3, 2)`)
	got1 := sink1.waitEvents(t, 3, nil, 30*time.Second)
	waitCaughtUp(t, p1, dsn)
	acked1 := p1.Stats().AckedLSN
	stop1()
	if got := slotConfirmed(t, c, db, db); got != acked1 {
		t.Errorf("after a clean stop confirmed_flush_lsn = %s, want the reader's ack %s", got, acked1)
	}

	// Run 2: the sink takes one event of transaction 3, then fails: the
	// reader must keep reconnecting and never acknowledge transaction 3 or 4.
	sink2 := &flakySink{accept: 1}
	p2, stop2 := runPipeline(t, cdc.PipelineConfig{Reader: rc, Sink: sink2, MaxBatch: 1})
	waitState(t, p2, cdc.StateStreaming, 30*time.Second)
	execEach(t, dsn, `INSERT INTO a VALUES (4, 3), (5, 3), (6, 3)`, `INSERT INTO a VALUES (7, 4)`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, failures := sink2.state()
		if failures >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sink saw %d failed publishes, want >= 3 (reconnect and retry)", failures)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := p2.Stats(); st.AckedLSN != acked1 || st.Reconnects == 0 {
		t.Errorf("with a failing sink stats = %+v, want acked %s and reconnects > 0", st, acked1)
	}
	stop2()
	partial, _ := sink2.state()
	if len(partial) != 1 {
		t.Fatalf("failing sink accepted %d events, want 1", len(partial))
	}
	if got := slotConfirmed(t, c, db, db); got != acked1 {
		t.Errorf("after failed publishes confirmed_flush_lsn = %s, want %s (unchanged)", got, acked1)
	}

	// Run 3: exactly transactions 3 and 4 come again, with the ids they had.
	sink3 := newMemSink()
	p3, _ := runPipeline(t, cdc.PipelineConfig{Reader: rc, Sink: sink3})
	got3 := sink3.waitEvents(t, 4, nil, 30*time.Second)
	time.Sleep(300 * time.Millisecond)
	got3 = sink3.snapshot()
	var rooms []string
	for _, e := range got3 {
		rooms = append(rooms, e.Room)
	}
	if want := "a:4 a:5 a:6 a:7"; strings.Join(rooms, " ") != want {
		t.Errorf("redelivered rooms = %q, want %q", strings.Join(rooms, " "), want)
	}
	if got3[0].ID != partial[0].ID || string(got3[0].Payload) != string(partial[0].Payload) {
		t.Errorf("redelivered first event = %v %s, want the partially delivered %v %s", got3[0].ID, got3[0].Payload, partial[0].ID, partial[0].Payload)
	}
	for _, e := range got3 {
		for _, old := range got1 {
			if e.ID == old.ID {
				t.Errorf("event %v delivered in run 1 came again", e.ID)
			}
		}
	}
	waitAcked(t, p3, p3.Stats().ReceivedLSN, 30*time.Second)
}

// testIdleAck: a database without changes of its own still lets its slot
// advance, from keepalives, while another database writes WAL.
func testIdleAck(t *testing.T, c *pgtest.Cluster) {
	db := testDB(t, c, `CREATE TABLE idle (id int PRIMARY KEY)`)
	other := testDBNamed(t, c, t.Name()+"_other", `CREATE TABLE busy (id int PRIMARY KEY, v text)`)
	rc := cdc.ReaderConfig{DSN: c.DSN(db), Slot: db, HeartbeatInterval: -1, StatusInterval: 300 * time.Millisecond}
	sink := newMemSink()
	p, _ := runPipeline(t, cdc.PipelineConfig{Reader: rc, Sink: sink})
	waitState(t, p, cdc.StateStreaming, 30*time.Second)
	execEach(t, c.DSN(db), `SELECT 1`) // let the slot settle
	start := slotConfirmed(t, c, db, db)
	execEach(t, c.DSN(other), `INSERT INTO busy SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g`)
	target := mustLSN(t, queryValue(t, c.DSN(other), `SELECT pg_current_wal_lsn()::text`))
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := slotConfirmed(t, c, db, db)
		if got >= target {
			t.Logf("idle slot moved %s -> %s (other database wrote to %s)", start, got, target)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("idle slot confirmed_flush_lsn = %s after 30s, want >= %s; stats %+v", got, target, p.Stats())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := len(sink.snapshot()); n != 0 {
		t.Errorf("idle database produced %d events, want 0", n)
	}
}

// testHeartbeat: the Reader commits heartbeats; they flow through the slot.
func testHeartbeat(t *testing.T, c *pgtest.Cluster) {
	t.Run("Fallback", func(t *testing.T) {
		db := testDB(t, c, `CREATE TABLE hb (id int PRIMARY KEY)`)
		sink := newMemSink()
		p, _ := runPipeline(t, cdc.PipelineConfig{Reader: cdc.ReaderConfig{DSN: c.DSN(db), Slot: db, HeartbeatInterval: 100 * time.Millisecond}, Sink: sink})
		got := sink.waitEvents(t, 3, func(e cdc.Event) bool { return e.Room == "message:"+cdc.DefaultHeartbeatPrefix }, 30*time.Second)
		waitAcked(t, p, got[2].ID.LSN, 30*time.Second)
	})
	t.Run("Function", func(t *testing.T) {
		db := testDB(t, c, `CREATE SCHEMA walcast;
			CREATE FUNCTION walcast.heartbeat() RETURNS pg_lsn LANGUAGE sql AS $$ SELECT pg_logical_emit_message(true, 'custom.hb', 'x') $$`)
		sink := newMemSink()
		runPipeline(t, cdc.PipelineConfig{Reader: cdc.ReaderConfig{DSN: c.DSN(db), Slot: db, HeartbeatInterval: 100 * time.Millisecond}, Sink: sink})
		sink.waitEvents(t, 2, func(e cdc.Event) bool { return e.Room == "message:custom.hb" }, 30*time.Second)
		for _, e := range sink.snapshot() {
			if e.Room == "message:"+cdc.DefaultHeartbeatPrefix {
				t.Fatalf("fallback heartbeat used although walcast.heartbeat() exists")
			}
		}
	})
}

// testSlotInUse: a second reader stands by while the first streams, then
// takes over when it stops.
func testSlotInUse(t *testing.T, c *pgtest.Cluster) {
	db := testDB(t, c, `CREATE TABLE s (id int PRIMARY KEY)`)
	rc := cdc.ReaderConfig{DSN: c.DSN(db), Slot: db, HeartbeatInterval: -1, StatusInterval: 500 * time.Millisecond, BackoffMin: 50 * time.Millisecond, BackoffMax: 300 * time.Millisecond}
	sinkA, sinkB := newMemSink(), newMemSink()
	pa, stopA := runPipeline(t, cdc.PipelineConfig{Reader: rc, Sink: sinkA})
	waitState(t, pa, cdc.StateStreaming, 30*time.Second)
	pb, _ := runPipeline(t, cdc.PipelineConfig{Reader: rc, Sink: sinkB})
	waitState(t, pb, cdc.StateStandingBy, 30*time.Second)
	execEach(t, c.DSN(db), `INSERT INTO s VALUES (1)`)
	sinkA.waitEvents(t, 1, nil, 30*time.Second)
	waitAcked(t, pa, pa.Stats().ReceivedLSN, 30*time.Second)
	time.Sleep(time.Second)
	if st := pb.Stats(); st.State != cdc.StateStandingBy || len(sinkB.snapshot()) != 0 || st.Reconnects != 0 {
		t.Fatalf("standby stats = %+v with %d events; want standing by, no events, no reconnect errors", st, len(sinkB.snapshot()))
	}
	stopA()
	start := time.Now()
	waitState(t, pb, cdc.StateStreaming, 30*time.Second)
	t.Logf("standby took over %v after the leader stopped", time.Since(start).Round(time.Millisecond))
	execEach(t, c.DSN(db), `INSERT INTO s VALUES (2)`)
	got := sinkB.waitEvents(t, 1, nil, 30*time.Second)
	if got[0].Room != "s:2" {
		t.Errorf("after takeover first event %s, want s:2 (s:1 was acknowledged by the leader)", got[0].Room)
	}
}

// testTOAST: an unchanged TOASTed value comes from the old row under REPLICA
// IDENTITY FULL and stays "unchanged" (never NULL) without it.
func testTOAST(t *testing.T, c *pgtest.Cluster) {
	for _, full := range []bool{true, false} {
		t.Run(fmt.Sprintf("full=%v", full), func(t *testing.T) {
			ddl := `CREATE TABLE doc (id int PRIMARY KEY, status text, note text);
				ALTER TABLE doc ALTER COLUMN note SET STORAGE EXTERNAL`
			if full {
				ddl += `; ALTER TABLE doc REPLICA IDENTITY FULL`
			}
			db := testDB(t, c, ddl)
			sink := newMemSink()
			p, _ := runPipeline(t, cdc.PipelineConfig{Reader: cdc.ReaderConfig{DSN: c.DSN(db), Slot: db, HeartbeatInterval: -1}, Sink: sink})
			waitState(t, p, cdc.StateStreaming, 30*time.Second)
			execEach(t, c.DSN(db),
				`INSERT INTO doc SELECT 1, 'new', string_agg(md5(g::text), '') FROM generate_series(1, 1000) g`,
				`UPDATE doc SET status = 'paid' WHERE id = 1`)
			got := sink.waitEvents(t, 2, nil, 30*time.Second)
			upd := string(got[1].Payload)
			if got[1].Name != "update" || !strings.Contains(upd, `"status":"paid"`) {
				t.Fatalf("second event %s %s, want the update", got[1].Name, upd)
			}
			hasFull := strings.Contains(upd, `"note":"c4ca4238a0b923820dcc509a6f75849b`)
			hasUnchanged := strings.Contains(upd, `"note":"\u003cunchanged\u003e"`)
			if strings.Contains(upd, `"note":null`) {
				t.Errorf("unchanged TOAST value became null: %.200s", upd)
			}
			if full && !hasFull {
				t.Errorf("REPLICA IDENTITY FULL: note not filled from the old row: %.300s", upd)
			}
			if !full && (!hasUnchanged || strings.Contains(upd, `"_old"`)) {
				t.Errorf("REPLICA IDENTITY DEFAULT: note should stay unchanged with no old row: %.300s", upd)
			}
		})
	}
}

func mustLSN(t testing.TB, s string) cdc.LSN {
	t.Helper()
	var hi, lo uint32
	if _, err := fmt.Sscanf(strings.TrimSpace(s), "%X/%X", &hi, &lo); err != nil {
		t.Fatalf("parse LSN %q: %v", s, err)
	}
	return cdc.LSN(uint64(hi)<<32 | uint64(lo))
}
