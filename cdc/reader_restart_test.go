package cdc_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/cdc/pgtest"
)

// TestReader_PostgresRestart: Postgres is stopped with "immediate" (a crash)
// while rows are being written and streamed; the reader reconnects and every
// row the database ends up with is delivered.
func TestReader_PostgresRestart(t *testing.T) {
	// Commits must reach the WAL before a crash can lose them.
	c := pgtest.New(t, pgtest.Options{Settings: []string{"synchronous_commit = on"}})
	db := testDB(t, c, `CREATE TABLE r (id int PRIMARY KEY)`)
	dsn := c.DSN(db)
	sink := newMemSink()
	p, _ := runPipeline(t, cdc.PipelineConfig{Reader: cdc.ReaderConfig{
		DSN: dsn, Slot: db, HeartbeatInterval: 200 * time.Millisecond, StatusInterval: 300 * time.Millisecond,
		ReadTimeout: 2 * time.Second, BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond,
	}, Sink: sink})
	waitState(t, p, cdc.StateStreaming, 30*time.Second)

	// The writer inserts ids 1..n one per transaction, retrying across the
	// outage; an insert whose outcome is unknown is retried with ON CONFLICT.
	const n = 3000
	var written atomic.Int64
	writerDone := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var conn *pgconn.PgConn
		defer func() {
			if conn != nil {
				conn.Close(context.Background())
			}
		}()
		for id := 1; id <= n; {
			if ctx.Err() != nil {
				writerDone <- ctx.Err()
				return
			}
			if conn == nil || conn.IsClosed() {
				var err error
				if conn, err = pgconn.Connect(ctx, dsn); err != nil {
					time.Sleep(50 * time.Millisecond)
					continue
				}
			}
			if _, err := conn.Exec(ctx, fmt.Sprintf("INSERT INTO r VALUES (%d) ON CONFLICT DO NOTHING", id)).ReadAll(); err != nil {
				conn.Close(context.Background())
				conn = nil
				continue
			}
			written.Store(int64(id))
			id++
		}
		writerDone <- nil
	}()

	for written.Load() < n/3 {
		time.Sleep(10 * time.Millisecond)
	}
	before := len(sink.snapshot())
	if err := c.Restart(t.Context(), "immediate"); err != nil {
		t.Fatalf("restart: %v", err)
	}
	t.Logf("restarted Postgres (immediate) after %d rows written, %d delivered", written.Load(), before)
	if err := <-writerDone; err != nil {
		t.Fatalf("writer: %v", err)
	}
	waitState(t, p, cdc.StateStreaming, 30*time.Second)
	got := sink.waitEvents(t, n, func(e cdc.Event) bool { return strings.HasPrefix(e.Room, "r:") }, 60*time.Second)
	seen := map[int]cdc.EventID{}
	dups := 0
	for _, e := range got {
		id, _ := strconv.Atoi(strings.TrimPrefix(e.Room, "r:"))
		if prev, ok := seen[id]; ok {
			dups++
			if prev != e.ID {
				t.Errorf("row %d delivered as %v and %v: duplicates must keep their identity", id, prev, e.ID)
			}
		}
		seen[id] = e.ID
	}
	for id := 1; id <= n; id++ {
		if _, ok := seen[id]; !ok {
			t.Errorf("row %d committed but never delivered", id)
		}
	}
	if st := p.Stats(); st.Reconnects == 0 {
		t.Errorf("stats %+v: want at least one reconnect", st)
	}
	t.Logf("%d rows delivered, %d duplicates, stats %+v", len(seen), dups, p.Stats())
}
