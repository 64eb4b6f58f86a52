package cdc_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/cdc/pgtest"
)

// TestReader runs the Reader against one throwaway cluster; each subtest has
// its own database, publication and slot.
func TestReader(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{Settings: []string{"wal_sender_timeout = '20s'"}})

	t.Run("Stream", func(t *testing.T) {
		db := testDB(t, c, `CREATE TYPE mood AS ENUM ('ok','sad');
			CREATE TABLE item (id int PRIMARY KEY, name text, price numeric(10,2), m mood, at timestamptz);
			ALTER TABLE item REPLICA IDENTITY FULL`)
		sink := newMemSink()
		p, _ := runPipeline(t, cdc.PipelineConfig{Reader: cdc.ReaderConfig{DSN: c.DSN(db), Slot: db, HeartbeatInterval: -1}, Sink: sink})
		waitState(t, p, cdc.StateStreaming, 30*time.Second)
		execEach(t, c.DSN(db),
			`INSERT INTO item VALUES (1, 'a', 1.50, 'ok', '2026-01-02 03:04:05+00'), (2, NULL, NULL, NULL, NULL)`,
			`UPDATE item SET m = 'sad' WHERE id = 1`,
			`BEGIN; INSERT INTO item VALUES (3, 'rolled back'); ROLLBACK`,
			`DELETE FROM item WHERE id = 2`,
			`SELECT pg_logical_emit_message(true, 'test', 'hello')`,
			`TRUNCATE item`)
		got := sink.waitEvents(t, 6, nil, 30*time.Second)
		want := []struct{ room, name, payload string }{
			{"item:1", "insert", `{"at":"2026-01-02 03:04:05+00","id":"1","m":"ok","name":"a","price":"1.50"}`},
			{"item:2", "insert", `{"at":null,"id":"2","m":null,"name":null,"price":null}`},
			{"item:1", "update", `{"_old":{"at":"2026-01-02 03:04:05+00","id":"1","m":"ok","name":"a","price":"1.50"},"at":"2026-01-02 03:04:05+00","id":"1","m":"sad","name":"a","price":"1.50"}`},
			{"item:2", "delete", `{"_old":{"at":null,"id":"2","m":null,"name":null,"price":null},"at":null,"id":"2","m":null,"name":null,"price":null}`},
			{"message:test", "message", `"hello"`},
			{"truncate:item", "truncate", `null`},
		}
		if len(got) != len(want) {
			t.Fatalf("got %d events, want %d:%s", len(got), len(want), summarize(got))
		}
		for i, w := range want {
			if got[i].Room != w.room || got[i].Name != w.name || string(got[i].Payload) != w.payload {
				t.Errorf("event %d = %s %s %s, want %s %s %s", i, got[i].Room, got[i].Name, got[i].Payload, w.room, w.name, w.payload)
			}
		}
		// The two inserts share a transaction: same LSN, indexes 0 and 1.
		if got[0].ID.LSN != got[1].ID.LSN || got[0].ID.Index != 0 || got[1].ID.Index != 1 {
			t.Errorf("insert ids = %v, %v; want one LSN, indexes 0, 1", got[0].ID, got[1].ID)
		}
		for i := 1; i < len(got); i++ {
			if got[i].ID.LSN < got[i-1].ID.LSN {
				t.Errorf("event %d id %v before event %d id %v: not commit order", i, got[i].ID, i-1, got[i-1].ID)
			}
		}
		if got[0].CommitTime.IsZero() || time.Since(got[0].CommitTime) > time.Minute {
			t.Errorf("commit time = %v, want about now", got[0].CommitTime)
		}
		deadline := time.Now().Add(30 * time.Second)
		for p.Stats().Transactions < 5 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		st := p.Stats()
		if st.Transactions < 5 || st.Changes != 6 || st.Events != 6 {
			t.Errorf("stats = %+v, want >=5 transactions, 6 changes, 6 events", st)
		}
		waitAcked(t, p, st.ReceivedLSN, 30*time.Second)
		if got := slotConfirmed(t, c, db, db); got < st.ReceivedLSN {
			// Status updates go out every StatusInterval; not asserted here.
			t.Logf("slot confirmed_flush_lsn = %s (reader acked %s)", got, p.Stats().AckedLSN)
		}
	})

	t.Run("Ack", func(t *testing.T) { testAck(t, c) })
	t.Run("AckLimit", func(t *testing.T) { testAckLimit(t, c) })
	t.Run("Rewind", func(t *testing.T) { testRewind(t, c) })
	t.Run("IdleAck", func(t *testing.T) { testIdleAck(t, c) })
	t.Run("Heartbeat", func(t *testing.T) { testHeartbeat(t, c) })
	t.Run("SlotInUse", func(t *testing.T) { testSlotInUse(t, c) })
	t.Run("TOAST", func(t *testing.T) { testTOAST(t, c) })

	t.Run("Value", func(t *testing.T) {
		db := testDB(t, c, `CREATE TYPE mood AS ENUM ('ok','sad');
			CREATE DOMAIN posint AS int CHECK (VALUE > 0);
			CREATE TABLE v (id bigint PRIMARY KEY, n numeric, j jsonb, m mood, d posint, ts timestamptz, b bool, t text)`)
		var got []map[string]any
		tr := transformFunc(func(dst []cdc.Event, ch *cdc.Change) ([]cdc.Event, error) {
			if ch.Op != cdc.OpInsert {
				return dst, nil
			}
			row := map[string]any{}
			for _, col := range ch.Relation.Columns {
				if col.TypeName != "" {
					row["type:"+col.Name] = col.TypeName
				}
			}
			for i, col := range ch.Relation.Columns {
				v, err := ch.Value(ch.New, i)
				if err != nil {
					return dst, err
				}
				row[col.Name] = v
			}
			got = append(got, row)
			return append(dst, cdc.Event{ID: cdc.EventID{LSN: ch.CommitLSN, Index: ch.Index}, Room: "v", Payload: json.RawMessage(`{}`)}), nil
		})
		sink := newMemSink()
		p, _ := runPipeline(t, cdc.PipelineConfig{Reader: cdc.ReaderConfig{DSN: c.DSN(db), Slot: db, HeartbeatInterval: -1}, Sink: sink, Transformer: tr})
		waitState(t, p, cdc.StateStreaming, 30*time.Second)
		psql(t, c, db, `INSERT INTO v VALUES (7, 12.5, '{"a":[1,2]}', 'sad', 3, '2026-01-02 03:04:05Z', true, 'x')`)
		sink.waitEvents(t, 1, nil, 30*time.Second)
		row := got[0]
		if row["id"] != int64(7) {
			t.Errorf("id = %#v, want int64(7)", row["id"])
		}
		if row["type:m"] != "public.mood" || row["type:d"] != "pg_catalog.int4" || row["type:id"] != nil {
			t.Errorf("Column.TypeName: m %v, d %v, id %v; want public.mood, pg_catalog.int4 (a domain's base type), none", row["type:m"], row["type:d"], row["type:id"])
		}
		if row["m"] != "sad" {
			t.Errorf("enum m = %#v, want \"sad\" (text fallback)", row["m"])
		}
		if row["d"] != int32(3) {
			t.Errorf("domain d = %#v, want int32(3) (decoded as its base type)", row["d"])
		}
		if ts, ok := row["ts"].(time.Time); !ok || !ts.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
			t.Errorf("ts = %#v, want 2026-01-02T03:04:05Z", row["ts"])
		}
		if row["b"] != true || row["t"] != "x" {
			t.Errorf("b, t = %#v, %#v; want true, \"x\"", row["b"], row["t"])
		}
		if j, ok := row["j"].(map[string]any); !ok || len(j["a"].([]any)) != 2 {
			t.Errorf("j = %#v, want map with a:[1,2]", row["j"])
		}
	})
}

type transformFunc func(dst []cdc.Event, c *cdc.Change) ([]cdc.Event, error)

func (f transformFunc) Map(dst []cdc.Event, c *cdc.Change) ([]cdc.Event, error) { return f(dst, c) }

// waitCaughtUp waits until the reader has acknowledged everything the
// database has written so far.
func waitCaughtUp(t testing.TB, p *cdc.Pipeline, dsn string) {
	t.Helper()
	waitAcked(t, p, mustLSN(t, queryValue(t, dsn, "SELECT pg_current_wal_lsn()::text")), 30*time.Second)
}

// waitAcked waits until the reader has acknowledged at least lsn.
func waitAcked(t testing.TB, p *cdc.Pipeline, lsn cdc.LSN, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for p.Stats().AckedLSN < lsn {
		if time.Now().After(deadline) {
			t.Fatalf("acked %s after %v, want >= %s", p.Stats().AckedLSN, timeout, lsn)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
