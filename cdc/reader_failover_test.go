package cdc_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/cdc/pgtest"
)

// TestReader_FailoverSlot: on Postgres 17+ the Reader creates its slot with
// failover on, and switches an existing slot without it over, so standbys
// with sync_replication_slots carry the slot through a promotion. Before 17
// the slot is created as before (there is no failover flag).
func TestReader_FailoverSlot(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{})
	db := testDB(t, c, `CREATE TABLE f (id int PRIMARY KEY)`)
	num, err := strconv.Atoi(queryValue(t, c.DSN(db), `SELECT current_setting('server_version_num')`))
	if err != nil {
		t.Fatalf("server_version_num: %v", err)
	}
	slotFailover := func(slot string) string {
		if num < 170000 {
			return queryValue(t, c.DSN(db), fmt.Sprintf(`SELECT 'exists' FROM pg_replication_slots WHERE slot_name = '%s'`, slot))
		}
		return queryValue(t, c.DSN(db), fmt.Sprintf(`SELECT failover FROM pg_replication_slots WHERE slot_name = '%s'`, slot))
	}
	want := "t"
	if num < 170000 {
		want = "exists"
	}

	t.Run("Created", func(t *testing.T) {
		slot := db + "_new"
		p, stop := runPipeline(t, cdc.PipelineConfig{Reader: cdc.ReaderConfig{DSN: c.DSN(db), Slot: slot, HeartbeatInterval: -1}, Sink: newMemSink()})
		waitState(t, p, cdc.StateStreaming, 30*time.Second)
		stop()
		if got := slotFailover(slot); got != want {
			t.Errorf("new slot on server %d: failover = %q, want %q", num, got, want)
		}
	})

	t.Run("Altered", func(t *testing.T) {
		slot := db + "_old"
		execEach(t, c.DSN(db), fmt.Sprintf(`SELECT pg_create_logical_replication_slot('%s', 'pgoutput')`, slot))
		if num >= 170000 {
			if got := slotFailover(slot); got != "f" {
				t.Fatalf("setup: failover = %q, want f", got)
			}
		}
		p, stop := runPipeline(t, cdc.PipelineConfig{Reader: cdc.ReaderConfig{DSN: c.DSN(db), Slot: slot, HeartbeatInterval: -1}, Sink: newMemSink()})
		waitState(t, p, cdc.StateStreaming, 30*time.Second)
		stop()
		if got := slotFailover(slot); got != want {
			t.Errorf("existing slot on server %d: failover = %q, want %q", num, got, want)
		}
	})
}

// TestReader_Failover: a Reader on a multi-host DSN
// (target_session_attrs=read-write) streams from a primary with a streaming
// standby; the primary dies hard and the standby is promoted.
//   - Postgres 17+: the standby synchronised the Reader's failover slot, and
//     the Reader continues from it: every row's event arrives once, in order.
//     It logs the time from the primary's death to the first event from the
//     new primary.
//   - Before 17 there are no failover slots: the promoted standby has no
//     logical slot. The Reader must say so (SlotLoss "missing"), make a new
//     one and stream what is committed from then on, once and in order.
func TestReader_Failover(t *testing.T) {
	ctx := t.Context()
	primary := pgtest.New(t, pgtest.Options{TCPPort: -1})
	db := testDB(t, primary, `CREATE TABLE f (id int PRIMARY KEY)`)
	num, _ := strconv.Atoi(queryValue(t, primary.DSN(db), `SELECT current_setting('server_version_num')`))
	failoverSlots := num >= 170000
	settings := []string{"hot_standby_feedback = on"}
	if failoverSlots {
		execEach(t, primary.DSN(db), fmt.Sprintf(`SELECT pg_create_logical_replication_slot('%s', 'pgoutput', false, false, true)`, db))
		settings = append(settings, "sync_replication_slots = on")
	}
	standby, err := primary.StartStandby(ctx, pgtest.StandbyOptions{Slot: "standby1", DB: db, Settings: settings})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { standby.Stop() })
	if failoverSlots {
		execEach(t, primary.DSN(db), `ALTER SYSTEM SET synchronized_standby_slots = 'standby1'`, `SELECT pg_reload_conf()`)
	}

	dsn := fmt.Sprintf("host=127.0.0.1,127.0.0.1 port=%d,%d user=postgres dbname=%s sslmode=disable target_session_attrs=read-write connect_timeout=2",
		primary.Port, standby.Port, db)
	sink := newMemSink()
	losses := make(chan cdc.SlotLoss, 4)
	p, _ := runPipeline(t, cdc.PipelineConfig{Reader: cdc.ReaderConfig{
		DSN: dsn, Slot: db, HeartbeatInterval: -1, BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond,
		OnSlotLost: func(l cdc.SlotLoss) { losses <- l },
	}, Sink: sink})
	// Before 17 the Reader makes its slot: rows committed earlier are not in it.
	waitState(t, p, cdc.StateStreaming, 30*time.Second)
	if !failoverSlots {
		failoverBefore17(t, primary, standby, db, p, sink, losses)
		return
	}

	const half = 50
	for i := 1; i <= half; i++ {
		execEach(t, primary.DSN(db), fmt.Sprintf(`INSERT INTO f VALUES (%d)`, i))
	}
	sink.waitEvents(t, half, noHeartbeat, 60*time.Second)

	// Before the crash: the standby has replayed everything and its synced
	// slot has caught up with what the Reader confirmed.
	deadline := time.Now().Add(60 * time.Second)
	for {
		want := queryValue(t, primary.DSN(db), fmt.Sprintf(`SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '%s'`, db))
		got := queryValue(t, standby.DSN(db), fmt.Sprintf(`SELECT coalesce(confirmed_flush_lsn >= '%s' AND synced AND NOT temporary, false) FROM pg_replication_slots WHERE slot_name = '%s'`, want, db))
		if got == "t" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("standby slot never caught up with the primary's (%s)", want)
		}
		time.Sleep(50 * time.Millisecond)
	}

	if err := primary.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	died := time.Now()
	if err := standby.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	for i := half + 1; i <= 2*half; i++ {
		execEach(t, standby.DSN(db), fmt.Sprintf(`INSERT INTO f VALUES (%d)`, i))
	}
	var takeover time.Duration
	deadline = time.Now().Add(60 * time.Second)
	for takeover == 0 {
		for _, e := range sink.snapshot() {
			if e.Room == fmt.Sprintf("f:%d", half+1) {
				takeover = time.Since(died)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no event from the new primary 60s after the old one died; got:\n%s", summarize(sink.snapshot()))
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("takeover: primary killed -> first event from the promoted standby in %v", takeover.Round(time.Millisecond))
	wantRowsOnce(t, sink, 2*half)
}

// failoverBefore17 is TestReader_Failover on Postgres 15/16: the promotion
// loses the logical slot, and the Reader reports it and heals.
func failoverBefore17(t *testing.T, primary, standby *pgtest.Cluster, db string, p *cdc.Pipeline, sink *memSink, losses chan cdc.SlotLoss) {
	ctx := t.Context()
	const half = 20
	for i := 1; i <= half; i++ {
		execEach(t, primary.DSN(db), fmt.Sprintf(`INSERT INTO f VALUES (%d)`, i))
	}
	sink.waitEvents(t, half, noHeartbeat, 60*time.Second)
	if err := primary.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if err := standby.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	var loss cdc.SlotLoss
	select {
	case loss = <-losses:
	case <-time.After(60 * time.Second):
		t.Fatalf("no SlotLoss 60s after the promotion; events:\n%s", summarize(sink.snapshot()))
	}
	if loss.Cause != "missing" || loss.To == 0 {
		t.Errorf("SlotLoss = %+v, want cause missing and the new slot's position", loss)
	}
	waitState(t, p, cdc.StateStreaming, 30*time.Second)
	if got := queryValue(t, standby.DSN(db), fmt.Sprintf(`SELECT 'exists' FROM pg_replication_slots WHERE slot_name = '%s'`, db)); got != "exists" {
		t.Fatalf("no slot %q on the promoted standby after the loss", db)
	}
	for i := half + 1; i <= 2*half; i++ {
		execEach(t, standby.DSN(db), fmt.Sprintf(`INSERT INTO f VALUES (%d)`, i))
	}
	wantRowsOnce(t, sink, 2*half)
	if n := p.Stats().SlotsLost; n != 1 {
		t.Errorf("SlotsLost = %d, want 1", n)
	}
}

// wantRowsOnce waits for n events and checks that they are rooms f:1..f:n,
// each once and in order.
func wantRowsOnce(t *testing.T, sink *memSink, n int) {
	t.Helper()
	evs := sink.waitEvents(t, n, noHeartbeat, 60*time.Second)
	var rooms []string
	for _, e := range evs {
		if noHeartbeat(e) {
			rooms = append(rooms, e.Room)
		}
	}
	if len(rooms) != n {
		t.Fatalf("%d events, want %d (each row once):\n%s", len(rooms), n, summarize(evs))
	}
	for i, r := range rooms {
		if want := fmt.Sprintf("f:%d", i+1); r != want {
			t.Fatalf("event %d is %s, want %s (in order, once):\n%s", i, r, want, summarize(evs))
		}
	}
}
