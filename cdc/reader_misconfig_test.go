package cdc_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/cdc/pgtest"
)

// syncBuffer is a log destination tests can read while the reader writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitLog(t *testing.T, buf *syncBuffer, want string) {
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
		var buf syncBuffer
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
		var buf syncBuffer
		runPipeline(t, cdc.PipelineConfig{Reader: cdc.ReaderConfig{
			DSN: c.DSN(db), Slot: db, HeartbeatInterval: -1,
			Logger: slog.New(slog.NewTextHandler(&buf, nil)),
		}, Sink: newMemSink()})
		waitLog(t, &buf, `level=ERROR msg="replication stream ended; reconnecting" component=cdc.reader slot=`+db+` err="slot \"`+db+`\": cdc: replication slot invalidated (WAL removed); drop and recreate it"`)
	})
}
