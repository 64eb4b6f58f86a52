package cdc_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/cdc/pgtest"
	"github.com/walcast/walcast/internal/testutil"
)

// testDB creates a database named after the test (also a good slot name:
// slots are cluster-wide), runs ddl in it and creates a publication "walcast"
// for all its tables.
func testDB(t testing.TB, c *pgtest.Cluster, ddl string) string {
	t.Helper()
	return testDBNamed(t, c, t.Name(), ddl)
}

// testDBNamed is testDB with an explicit name.
func testDBNamed(t testing.TB, c *pgtest.Cluster, name, ddl string) string {
	t.Helper()
	name = strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(name, "_"))
	if len(name) > 50 {
		name = name[len(name)-50:]
	}
	name = "t_" + name
	if err := c.CreateDatabase(t.Context(), name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	if _, err := c.Psql(t.Context(), name, ddl+"; CREATE PUBLICATION walcast FOR ALL TABLES;"); err != nil {
		t.Fatalf("setup %s: %v", name, err)
	}
	return name
}

func psql(t testing.TB, c *pgtest.Cluster, db, sql string) string {
	t.Helper()
	out, err := c.Psql(context.Background(), db, sql)
	if err != nil {
		t.Fatalf("psql %q: %v", sql, err)
	}
	return out
}

// rowMapper is a trivial Transformer: one event per change, room
// "<table>:<first column>", name = op, payload = the new (or old) row as a
// JSON object of text values ("<unchanged>" / "<absent>" for missing ones).
type rowMapper struct{}

func (rowMapper) Map(dst []cdc.Event, c *cdc.Change) ([]cdc.Event, error) {
	ev := cdc.Event{ID: cdc.EventID{LSN: c.CommitLSN, Index: c.Index}, Name: c.Op.String(), CommitTime: c.CommitTime}
	switch c.Op {
	case cdc.OpMessage:
		ev.Room = "message:" + c.Prefix
		ev.Payload, _ = json.Marshal(string(c.Content))
	case cdc.OpTruncate:
		ev.Room = "truncate:" + c.Relation.Name
		ev.Payload = json.RawMessage(`null`)
	default:
		row := c.New
		if row == nil {
			row = c.Old
		}
		obj := map[string]any{}
		for i, col := range c.Relation.Columns {
			v, err := c.Value(row, i)
			switch {
			case errors.Is(err, cdc.ErrValueUnchanged):
				v = "<unchanged>"
			case errors.Is(err, cdc.ErrValueAbsent):
				v = "<absent>"
			case err != nil:
				return dst, err
			}
			if row[i].Kind == cdc.ValueText {
				v = string(row[i].Data)
			}
			obj[col.Name] = v
		}
		if c.Old != nil {
			old := map[string]any{}
			for i, col := range c.Relation.Columns {
				switch c.Old[i].Kind {
				case cdc.ValueText:
					old[col.Name] = string(c.Old[i].Data)
				case cdc.ValueNull:
					old[col.Name] = nil
				case cdc.ValueAbsent:
					old[col.Name] = "<absent>"
				case cdc.ValueUnchanged:
					old[col.Name] = "<unchanged>"
				}
			}
			obj["_old"] = old
		}
		key := ""
		if len(row) > 0 && row[0].Kind == cdc.ValueText {
			key = string(row[0].Data)
		}
		ev.Room = c.Relation.Name + ":" + key
		var err error
		if ev.Payload, err = json.Marshal(obj); err != nil {
			return dst, err
		}
	}
	return append(dst, ev), nil
}

// memSink records published events; Fail makes Publish fail.
type memSink struct {
	mu     sync.Mutex
	events []cdc.Event
	fail   error
	calls  int
	signal chan struct{}
}

func newMemSink() *memSink { return &memSink{signal: make(chan struct{}, 1)} }

func (s *memSink) Publish(ctx context.Context, evs []cdc.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.fail != nil {
		return s.fail
	}
	s.events = append(s.events, evs...)
	select {
	case s.signal <- struct{}{}:
	default:
	}
	return nil
}

func (s *memSink) setFail(err error) {
	s.mu.Lock()
	s.fail = err
	s.mu.Unlock()
}

func (s *memSink) snapshot() []cdc.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]cdc.Event(nil), s.events...)
}

// waitEvents waits until the sink holds at least n events matching keep.
func (s *memSink) waitEvents(t testing.TB, n int, keep func(cdc.Event) bool, timeout time.Duration) []cdc.Event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var got []cdc.Event
		for _, e := range s.snapshot() {
			if keep == nil || keep(e) {
				got = append(got, e)
			}
		}
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %d events, got %d: %v", timeout, n, len(got), summarize(got))
		}
		select {
		case <-s.signal:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func noHeartbeat(e cdc.Event) bool { return e.Room != "message:"+cdc.DefaultHeartbeatPrefix }

func summarize(evs []cdc.Event) string {
	var b strings.Builder
	for i, e := range evs {
		if i == 20 {
			fmt.Fprintf(&b, " … (%d more)", len(evs)-20)
			break
		}
		fmt.Fprintf(&b, " %s %s %s %s;", e.ID, e.Room, e.Name, e.Payload)
	}
	return b.String()
}

// runPipeline starts a Pipeline in the background and stops it at cleanup
// (or when the returned stop is called).
func runPipeline(t testing.TB, cfg cdc.PipelineConfig) (*cdc.Pipeline, func()) {
	t.Helper()
	if cfg.Reader.Logger == nil {
		cfg.Reader.Logger = testutil.Logger(t, slog.LevelDebug)
	}
	if cfg.Transformer == nil {
		cfg.Transformer = rowMapper{}
	}
	p, err := cdc.NewPipeline(cfg)
	if err != nil {
		t.Fatalf("NewPipeline: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("Pipeline.Run = %v, want context.Canceled", err)
				}
			case <-time.After(20 * time.Second):
				t.Errorf("Pipeline.Run did not return 20s after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return p, stop
}

// waitState waits until the reader reports state.
func waitState(t testing.TB, p *cdc.Pipeline, want cdc.ReaderState, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for p.Stats().State != want {
		if time.Now().After(deadline) {
			t.Fatalf("reader state %v after %v, want %v", p.Stats().State, timeout, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// queryValue runs sql over a fresh connection and returns the first column of
// the first row as text ("" when there is no row).
func queryValue(t testing.TB, dsn, sql string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	res, err := conn.Exec(ctx, sql).ReadAll()
	if err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	if len(res) == 0 || len(res[len(res)-1].Rows) == 0 {
		return ""
	}
	return string(res[len(res)-1].Rows[0][0])
}

// execEach runs each statement string as its own simple query (its own
// transaction unless it says otherwise) on one connection.
func execEach(t testing.TB, dsn string, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s).ReadAll(); err != nil {
			t.Fatalf("exec %q: %v", s, err)
		}
	}
}

// slotConfirmed returns the slot's confirmed_flush_lsn.
func slotConfirmed(t testing.TB, c *pgtest.Cluster, db, slot string) cdc.LSN {
	t.Helper()
	out := queryValue(t, c.DSN(db), "select coalesce(confirmed_flush_lsn::text, '') from pg_replication_slots where slot_name = '"+slot+"'")
	var hi, lo uint32
	if _, err := fmt.Sscanf(out, "%X/%X", &hi, &lo); err != nil {
		t.Fatalf("parse confirmed_flush_lsn %q: %v", out, err)
	}
	return cdc.LSN(uint64(hi)<<32 | uint64(lo))
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
