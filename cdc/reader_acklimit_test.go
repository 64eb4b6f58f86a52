package cdc_test

import (
	"strings"
	"testing"
	"time"

	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/cdc/pgtest"
)

// testAckLimit: with ReaderConfig.AckLimit at the commit LSN of a transaction,
// the slot's confirmed position stays there, a reconnect of the same Reader
// does not deliver the held-back transactions again, and a new Reader (a
// process restart) gets exactly the transactions from the limit on, with the
// ids they had.
func testAckLimit(t *testing.T, c *pgtest.Cluster) {
	db := testDB(t, c, `CREATE TABLE l (id int PRIMARY KEY)`)
	dsn := c.DSN(db)
	rc := cdc.ReaderConfig{DSN: dsn, Slot: db, HeartbeatInterval: -1, StatusInterval: 200 * time.Millisecond,
		BackoffMin: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond}

	// Run 1: the limit is the commit LSN of the transaction that wrote row 2,
	// once the sink has it; before that there is no limit.
	sink1 := newMemSink()
	limited := rc
	limited.AckLimit = func() (cdc.LSN, bool) {
		for _, e := range sink1.snapshot() {
			if e.Room == "l:2" {
				return e.ID.LSN, true
			}
		}
		return 0, false
	}
	p1, stop1 := runPipeline(t, cdc.PipelineConfig{Reader: limited, Sink: sink1})
	waitState(t, p1, cdc.StateStreaming, 30*time.Second)
	execEach(t, dsn, `INSERT INTO l VALUES (1)`)
	sink1.waitEvents(t, 1, nil, 30*time.Second)
	waitCaughtUp(t, p1, dsn)
	execEach(t, dsn, `INSERT INTO l VALUES (2)`, `INSERT INTO l VALUES (3)`)
	got1 := sink1.waitEvents(t, 3, nil, 30*time.Second)
	limit := got1[1].ID.LSN
	if got1[1].Room != "l:2" {
		t.Fatalf("run 1 events %s, want l:1 l:2 l:3", summarize(got1))
	}
	// Idle keepalives and status updates must not pass the limit either.
	time.Sleep(3 * rc.StatusInterval)
	if st := p1.Stats(); st.AckedLSN != limit || st.ReceivedLSN <= limit {
		t.Errorf("stats %+v: want acked = the limit %s, received past it", st, limit)
	}
	deadline := time.Now().Add(30 * time.Second)
	for slotConfirmed(t, c, db, db) != limit {
		if time.Now().After(deadline) {
			t.Fatalf("confirmed_flush_lsn = %s, want the limit %s", slotConfirmed(t, c, db, db), limit)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A reconnect of the same Reader (its walsender killed) resumes after what
	// it handed on: rows 2 and 3 do not come again.
	execEach(t, dsn, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '`+db+`'`)
	deadline = time.Now().Add(30 * time.Second)
	for p1.Stats().Reconnects == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no reconnect after the walsender was terminated: %+v", p1.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitState(t, p1, cdc.StateStreaming, 30*time.Second)
	execEach(t, dsn, `INSERT INTO l VALUES (4)`)
	sink1.waitEvents(t, 4, nil, 30*time.Second)
	time.Sleep(3 * rc.StatusInterval)
	got1 = sink1.snapshot()
	if s := summarize(got1); len(got1) != 4 {
		t.Errorf("run 1 after a reconnect got %s, want each of l:1..l:4 once", s)
	}
	if got := p1.Stats().AckedLSN; got != limit {
		t.Errorf("acked %s after the reconnect, want the limit %s", got, limit)
	}
	stop1()

	// Run 2, a new Reader without a limit: rows 2, 3 and 4 come again, with
	// the same ids; row 1 does not.
	sink2 := newMemSink()
	p2, _ := runPipeline(t, cdc.PipelineConfig{Reader: rc, Sink: sink2})
	sink2.waitEvents(t, 3, nil, 30*time.Second)
	waitCaughtUp(t, p2, dsn)
	got2 := sink2.snapshot()
	var rooms []string
	for _, e := range got2 {
		rooms = append(rooms, e.Room)
	}
	if want := "l:2 l:3 l:4"; strings.Join(rooms, " ") != want {
		t.Fatalf("after a restart got %q, want %q", strings.Join(rooms, " "), want)
	}
	for i, e := range got2 {
		if e.ID != got1[i+1].ID {
			t.Errorf("%s came again as %v, was %v", e.Room, e.ID, got1[i+1].ID)
		}
	}
}
