package cdc_test

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/cdc/pgtest"
	"github.com/walcast/walcast/internal/testutil"
)

func waitLog(t *testing.T, buf *testutil.Buffer, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(buf.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("log never contained %q; log:\n%s", want, buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReader_Misconfigured: a missing publication and a slot Postgres has
// invalidated are reported at Error with a clear message, and retried.
func TestReader_Misconfigured(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{Settings: []string{"max_slot_wal_keep_size = '1MB'"}})

	t.Run("NoPublication", func(t *testing.T) {
		db := testDB(t, c, `CREATE TABLE x (id int PRIMARY KEY)`)
		var buf testutil.Buffer
		p, _ := runPipeline(t, cdc.PipelineConfig{Reader: cdc.ReaderConfig{
			DSN: c.DSN(db), Slot: db, Publication: "nope", HeartbeatInterval: -1,
			Logger: slog.New(slog.NewTextHandler(&buf, nil)),
		}, Sink: newMemSink()})
		waitLog(t, &buf, `level=ERROR msg="replication stream ended; reconnecting" component=cdc.reader slot=`+db+` err="cdc: publication does not exist: \"nope\""`)
		if st := p.Stats().State; st != cdc.StateReconnecting {
			t.Errorf("state %v, want reconnecting", st)
		}
	})

	t.Run("SlotLost", func(t *testing.T) {
		db := testDB(t, c, `CREATE TABLE y (id int PRIMARY KEY, pad text)`)
		execEach(t, c.DSN(db), fmt.Sprintf(`SELECT pg_create_logical_replication_slot('%s', 'pgoutput')`, db))
		// Write well past max_slot_wal_keep_size and checkpoint: the idle
		// slot's WAL is removed and the slot invalidated.
		for i := range 3 {
			execEach(t, c.DSN(db), fmt.Sprintf(`INSERT INTO y SELECT g + %d, repeat('x', 200) FROM generate_series(1, 100000) g`, i*100000),
				`SELECT pg_switch_wal()`, `CHECKPOINT`)
		}
		if st := queryValue(t, c.DSN(db), fmt.Sprintf(`SELECT wal_status FROM pg_replication_slots WHERE slot_name = '%s'`, db)); st != "lost" {
			t.Fatalf("slot wal_status = %q, want lost (test setup)", st)
		}
		var buf testutil.Buffer
		losses := make(chan cdc.SlotLoss, 4)
		sink := newMemSink()
		p, _ := runPipeline(t, cdc.PipelineConfig{Reader: cdc.ReaderConfig{
			DSN: c.DSN(db), Slot: db, HeartbeatInterval: -1,
			Logger:     slog.New(slog.NewTextHandler(&buf, nil)),
			OnSlotLost: func(l cdc.SlotLoss) { losses <- l },
		}, Sink: sink})
		checkHealed(t, c, db, p, sink, &buf, losses, "invalidated")
	})

	t.Run("SlotMissing", func(t *testing.T) {
		db := testDB(t, c, `CREATE TABLE z (id int PRIMARY KEY);
CREATE FUNCTION try_drop(s text) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = s AND active_pid IS NOT NULL;
  PERFORM pg_sleep(0.02);
  PERFORM pg_drop_replication_slot(s);
  RETURN true;
EXCEPTION WHEN object_in_use THEN RETURN false;
END $$`)
		var buf testutil.Buffer
		losses := make(chan cdc.SlotLoss, 4)
		sink := newMemSink()
		p, _ := runPipeline(t, cdc.PipelineConfig{Reader: cdc.ReaderConfig{
			DSN: c.DSN(db), Slot: db, HeartbeatInterval: -1, BackoffMin: 300 * time.Millisecond,
			Logger:     slog.New(slog.NewTextHandler(&buf, nil)),
			OnSlotLost: func(l cdc.SlotLoss) { losses <- l },
		}, Sink: sink})
		waitState(t, p, cdc.StateStreaming, 30*time.Second)
		execEach(t, c.DSN(db), `INSERT INTO z VALUES (1)`)
		sink.waitEvents(t, 1, noHeartbeat, 30*time.Second)
		// The slot disappears under the running Reader (as after a promotion
		// on a server without failover slots).
		deadline := time.Now().Add(30 * time.Second)
		for queryValue(t, c.DSN(db), fmt.Sprintf(`SELECT try_drop('%s')`, db)) != "t" {
			if time.Now().After(deadline) {
				t.Fatal("could not drop the slot under the reader")
			}
		}
		checkHealed(t, c, db, p, sink, &buf, losses, "missing")
	})
}

// checkHealed waits until the Reader recreated the lost slot: exactly one
// Error line with the undelivered window, one SlotLoss, the counter at 1, and
// new changes flowing from the new slot.
func checkHealed(t *testing.T, c *pgtest.Cluster, db string, p *cdc.Pipeline, sink *memSink, buf *testutil.Buffer, losses chan cdc.SlotLoss, cause string) {
	t.Helper()
	var loss cdc.SlotLoss
	select {
	case loss = <-losses:
	case <-time.After(30 * time.Second):
		t.Fatalf("no SlotLoss 30s in; log:\n%s", buf.String())
	}
	if loss.Cause != cause || loss.To == 0 || loss.To < loss.From {
		t.Errorf("SlotLoss = %+v, want cause %q and a window", loss, cause)
	}
	waitState(t, p, cdc.StateStreaming, 30*time.Second)
	before := len(sink.snapshot())
	table := queryValue(t, c.DSN(db), `SELECT relname FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace ORDER BY relname LIMIT 1`)
	execEach(t, c.DSN(db), fmt.Sprintf(`INSERT INTO %s (id) VALUES (424242)`, table))
	evs := sink.waitEvents(t, before+1, noHeartbeat, 30*time.Second)
	if last := evs[len(evs)-1]; last.Room != table+":424242" {
		t.Errorf("after healing got %s, want %s:424242", last.Room, table)
	}
	if n := p.Stats().SlotsLost; n != 1 {
		t.Errorf("SlotsLost = %d, want 1", n)
	}
	if n := strings.Count(buf.String(), "level=ERROR"); n != 1 {
		t.Errorf("%d Error lines, want exactly 1:\n%s", n, buf.String())
	}
	want := `level=ERROR msg="replication slot lost and recreated: changes in this window are not delivered; clients must resynchronise" component=cdc.reader slot=` + db + ` cause=` + cause + ` undelivered_from=`
	if !strings.Contains(buf.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, buf.String())
	}
	select {
	case l := <-losses:
		t.Errorf("a second SlotLoss: %+v", l)
	default:
	}
}
