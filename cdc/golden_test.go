package cdc_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/cdc/pgtest"
	"github.com/walcast/walcast/internal/jsonw"
	"github.com/walcast/walcast/internal/testutil"
	walsql "github.com/walcast/walcast/sql"
)

var updateGolden = flag.Bool("update", false, "rewrite cdc/testdata/mapper/*.golden.json")

// goldenEvent is one event as written to a golden file. LSNs and commit
// times differ between runs: the transaction is numbered (1, 2, … in commit
// order), and a payload "timestamp" equal to the commit time becomes
// "<commit>".
type goldenEvent struct {
	Tx      int             `json:"tx"`
	Index   uint32          `json:"index"`
	Room    string          `json:"room"`
	Event   string          `json:"event"`
	Payload json.RawMessage `json:"payload"`
}

type goldenFile struct {
	Events  []goldenEvent   `json:"events"`
	Metrics json.RawMessage `json:"metrics"` // CurrentMetrics().metrics at the end
	Stats   cdc.MapperStats `json:"stats"`
}

// goldenSink collects published events.
type goldenSink struct {
	mu     sync.Mutex
	events []cdc.Event
	done   chan struct{}
	once   sync.Once
}

func (s *goldenSink) Publish(_ context.Context, events []cdc.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range events {
		e.Payload = append(json.RawMessage(nil), e.Payload...)
		s.events = append(s.events, e)
		if e.Room == "golden:end" {
			s.once.Do(func() { close(s.done) })
		}
	}
	return nil
}

// rowRecorder wraps the Mapper and keeps the last row JSON of every orders
// change, to compare with Postgres' to_jsonb at the end.
type rowRecorder struct {
	m         *cdc.Mapper
	table, id string // the orders table ("schema.name") and its id column
	mu        sync.Mutex
	rows      map[string][]byte // order id -> row JSON (nil after a delete)
	partial   map[string]bool   // order id -> last change had no full old image
}

func (r *rowRecorder) Map(dst []cdc.Event, c *cdc.Change) ([]cdc.Event, error) {
	if c.Relation != nil && c.Relation.Namespace+"."+c.Relation.Name == r.table && (c.Op == cdc.OpInsert || c.Op == cdc.OpUpdate || c.Op == cdc.OpDelete) {
		t := c.New
		if c.Op == cdc.OpDelete {
			t = c.Old
		}
		id := string(t[c.Column(r.id)].Data)
		r.mu.Lock()
		if c.Op == cdc.OpDelete {
			r.rows[id] = nil
		} else {
			r.rows[id] = r.m.AppendRowJSON(nil, c.Relation, c.New)
			r.partial[id] = c.Relation.ReplicaIdentity != 'f'
		}
		r.mu.Unlock()
	}
	return r.m.Map(dst, c)
}

// TestMapper_Golden runs every cdc/testdata/mapper/<case>.sql against a real
// Postgres with the demo schema, streams it through the real Reader and the
// Mapper, and compares the events with <case>.golden.json (-update rewrites).
// A case file may start with a setup part ending in a line "-- test": it runs
// before the slot exists and produces no events.
func TestMapper_Golden(t *testing.T) {
	cases, err := filepath.Glob("testdata/mapper/*.sql")
	if err != nil || len(cases) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	c := pgtest.New(t, pgtest.Options{})
	for _, path := range cases {
		name := strings.TrimSuffix(filepath.Base(path), ".sql")
		t.Run(name, func(t *testing.T) { runGoldenCase(t, c, path) })
	}
}

func runGoldenCase(t *testing.T, c *pgtest.Cluster, path string) {
	ctx := t.Context()
	script, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	setup, test := "", string(script)
	if i := strings.Index(test, "\n-- test\n"); i >= 0 {
		setup, test = test[:i], test[i+len("\n-- test\n"):]
	}
	db := "g_" + regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(filepath.Base(path)), "_")
	if err := c.CreateDatabase(ctx, db); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, c.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// A case with a <case>.mapping.json runs on the schema its setup part
	// creates, with that mapping; the others on the demo schema.
	mp := cdc.DefaultMapping()
	mappingPath := strings.TrimSuffix(path, ".sql") + ".mapping.json"
	if _, err := os.Stat(mappingPath); err == nil {
		if mp, err = cdc.LoadMapping(mappingPath); err != nil {
			t.Fatal(err)
		}
		if setup != "" {
			psqlFile(t, c, db, setup)
		}
		if err := walsql.Migrate(ctx, conn, walsql.Options{Tables: mp.Tables(), FullIdentity: mp.FullIdentityTables()}); err != nil {
			t.Fatalf("migrate: %v", err)
		}
	} else {
		if err := walsql.Migrate(ctx, conn, walsql.Options{Demo: true}); err != nil {
			t.Fatalf("migrate: %v", err)
		}
		if setup != "" {
			psqlFile(t, c, db, setup)
		}
	}
	if err := walsql.EnsureSlot(ctx, conn, db); err != nil {
		t.Fatal(err)
	}

	m, err := cdc.NewMapper(cdc.MapperConfig{Mapping: mp, Logger: testutil.Logger(t, slog.LevelDebug)})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Load(ctx, conn); err != nil {
		t.Fatalf("Load: %v", err)
	}
	rec := &rowRecorder{m: m, rows: map[string][]byte{}, partial: map[string]bool{}, table: mp.Orders.Table, id: mp.Orders.ID}
	sink := &goldenSink{done: make(chan struct{})}
	p, err := cdc.NewPipeline(cdc.PipelineConfig{
		Reader:      cdc.ReaderConfig{DSN: c.DSN(db), Slot: db, HeartbeatInterval: -1, Logger: testutil.Logger(t, slog.LevelDebug)},
		Transformer: rec,
		Sink:        sink,
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- p.Run(runCtx) }()
	defer func() {
		cancel()
		select {
		case <-runErr:
		case <-time.After(30 * time.Second):
			t.Error("pipeline did not stop")
		}
	}()

	// psql -f runs the script as written: each statement in autocommit
	// unless the script opens a transaction. The end marker is its own
	// transaction after everything else.
	psqlFile(t, c, db, test+"\n;SELECT walcast.emit('golden:end', 'end', null);\n")
	select {
	case <-sink.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("no end marker after 60s; got %d events", len(sink.events))
	}

	sink.mu.Lock()
	evs := sink.events
	sink.mu.Unlock()
	got := goldenFile{Events: []goldenEvent{}}
	tx, lastLSN := 0, cdc.LSN(0)
	for _, e := range evs {
		if e.Room == "golden:end" {
			break
		}
		if e.ID.LSN != lastLSN {
			if e.ID.LSN < lastLSN {
				t.Errorf("event %s %s at %v comes after %v: not commit order", e.Room, e.Name, e.ID, lastLSN)
			}
			tx, lastLSN = tx+1, e.ID.LSN
		}
		// Canonical (a fixed point of jsonw.AppendCanonical): the bytes a
		// client on another node gets after Redis (TestRedis_SameBytesOnEveryNode).
		if c, err := jsonw.AppendCanonical(nil, e.Payload); err != nil || !bytes.Equal(c, e.Payload) {
			t.Errorf("event %s %s payload is not canonical JSON:\n got %s\nwant %s (%v)", e.Room, e.Name, e.Payload, c, err)
		}
		got.Events = append(got.Events, goldenEvent{Tx: tx, Index: e.ID.Index, Room: e.Room, Event: e.Name, Payload: normalizeTimestamp(t, e)})
	}
	var cur struct{ Metrics json.RawMessage }
	if err := json.Unmarshal(m.CurrentMetrics(), &cur); err != nil {
		t.Fatalf("CurrentMetrics: %v", err)
	}
	got.Metrics = cur.Metrics
	got.Stats = m.Stats()

	compareRows(t, ctx, conn, rec)

	gotJSON := marshalGolden(t, got)
	goldenPath := strings.TrimSuffix(path, ".sql") + ".golden.json"
	if *updateGolden {
		if err := os.WriteFile(goldenPath, gotJSON, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(gotJSON, want) {
		t.Errorf("events differ from %s (run with -update to accept):\ngot:\n%s\nwant:\n%s", goldenPath, gotJSON, want)
	}
}

// psqlFile runs script with psql -f, so that every statement outside an
// explicit transaction commits on its own (psql -c would run the whole
// string as one transaction).
func psqlFile(t *testing.T, c *pgtest.Cluster, db, script string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "case.sql")
	if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := "psql"
	if dir, err := pgtest.FindBin(); err == nil {
		if _, err := os.Stat(filepath.Join(dir, "psql")); err == nil {
			bin = filepath.Join(dir, "psql")
		}
	}
	out, err := exec.CommandContext(t.Context(), bin, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", c.DSN(db), "-f", f).CombinedOutput()
	if err != nil {
		t.Fatalf("psql -f: %v\n%s", err, out)
	}
}

// normalizeTimestamp replaces a payload's top-level "timestamp" (which must
// be the commit time in ms) by "<commit>".
func normalizeTimestamp(t *testing.T, e cdc.Event) json.RawMessage {
	t.Helper()
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(e.Payload, &obj); err != nil || obj == nil {
		return e.Payload
	}
	ts, ok := obj["timestamp"]
	if !ok {
		return e.Payload
	}
	if want := fmt.Sprint(e.CommitTime.UnixMilli()); string(ts) != want {
		t.Errorf("%s payload timestamp = %s, want commit time %s", e.Name, ts, want)
		return e.Payload
	}
	i := bytes.LastIndex(e.Payload, []byte(`"timestamp":`+string(ts)))
	if i < 0 {
		return e.Payload
	}
	out := append([]byte(nil), e.Payload[:i]...)
	out = append(out, `"timestamp":"<commit>"`...)
	return append(out, e.Payload[i+len(`"timestamp":`)+len(ts):]...)
}

// compareRows checks that the last row JSON the Mapper built for each order
// equals Postgres' to_jsonb of the row now, in canonical form (semantically,
// numbers by their canonical digits).
func compareRows(t *testing.T, ctx context.Context, conn *pgx.Conn, rec *rowRecorder) {
	t.Helper()
	if _, err := conn.Exec(ctx, "SET TimeZone = 'UTC'"); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for id, row := range rec.rows {
		var want []byte
		err := conn.QueryRow(ctx, fmt.Sprintf("SELECT to_jsonb(o)::text FROM %s o WHERE %s::text = $1",
			pgx.Identifier(strings.SplitN(rec.table, ".", 2)).Sanitize(), pgx.Identifier{rec.id}.Sanitize()), id).Scan(&want)
		if row == nil {
			if err != pgx.ErrNoRows {
				t.Errorf("order %s: deleted in the stream but still in the table (err %v)", id, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("order %s: to_jsonb: %v", id, err)
			continue
		}
		// The Mapper writes numbers and json in canonical form (to_jsonb's
		// 19.90 is 19.9): compared by those digits.
		if want, err = jsonw.AppendCanonical(nil, want); err != nil {
			t.Errorf("order %s: to_jsonb is not JSON: %v", id, err)
			continue
		}
		if rec.partial[id] {
			// Without REPLICA IDENTITY FULL an unchanged TOAST value is not
			// known: the row leaves it out (never null); what it has must
			// match.
			if !jsonSubset(row, want) {
				t.Errorf("order %s row JSON is not a subset of to_jsonb:\n got %s\nwant %s", id, clip(row), clip(want))
			}
			continue
		}
		if !jsonEqual(row, want) {
			t.Errorf("order %s row JSON differs from to_jsonb:\n got %s\nwant %s", id, clip(row), clip(want))
		}
	}
}

func clip(b []byte) string {
	if len(b) > 600 {
		return string(b[:300]) + "…" + string(b[len(b)-300:])
	}
	return string(b)
}

// jsonSubset reports whether every key of object a is in object b with an
// equal value.
func jsonSubset(a, b []byte) bool {
	var va, vb map[string]any
	da, db := json.NewDecoder(bytes.NewReader(a)), json.NewDecoder(bytes.NewReader(b))
	da.UseNumber()
	db.UseNumber()
	if da.Decode(&va) != nil || db.Decode(&vb) != nil {
		return false
	}
	for k, v := range va {
		if w, ok := vb[k]; !ok || !reflect.DeepEqual(v, w) {
			return false
		}
	}
	return true
}

func jsonEqual(a, b []byte) bool {
	var va, vb any
	da, db := json.NewDecoder(bytes.NewReader(a)), json.NewDecoder(bytes.NewReader(b))
	da.UseNumber()
	db.UseNumber()
	if da.Decode(&va) != nil || db.Decode(&vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

// marshalGolden writes one event per line so diffs stay readable.
func marshalGolden(t *testing.T, g goldenFile) []byte {
	t.Helper()
	var b bytes.Buffer
	b.WriteString("{\"events\": [")
	for i, e := range g.Events {
		if i > 0 {
			b.WriteString(",")
		}
		var line bytes.Buffer
		enc := json.NewEncoder(&line)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(e); err != nil {
			t.Fatal(err)
		}
		b.WriteString("\n  ")
		b.Write(bytes.TrimSuffix(line.Bytes(), []byte("\n")))
	}
	if len(g.Events) > 0 {
		b.WriteString("\n")
	}
	b.WriteString("],\n\"metrics\": ")
	b.Write(g.Metrics)
	st, err := json.Marshal(g.Stats)
	if err != nil {
		t.Fatal(err)
	}
	b.WriteString(",\n\"stats\": ")
	b.Write(st)
	b.WriteString("}\n")
	return b.Bytes()
}
