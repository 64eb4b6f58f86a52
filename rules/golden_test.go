package rules_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/cdc/pgtest"
	"github.com/walcast/walcast/internal/jsonw"
	"github.com/walcast/walcast/rules"
	walsql "github.com/walcast/walcast/sql"
)

type goldenEvent struct {
	Tx      int             `json:"tx"`
	Index   uint32          `json:"index"`
	Room    string          `json:"room"`
	Event   string          `json:"event"`
	Payload json.RawMessage `json:"payload"`
}

type sink struct {
	mu     sync.Mutex
	events []cdc.Event
	done   chan struct{}
	once   sync.Once
}

func (s *sink) Publish(_ context.Context, events []cdc.Event) error {
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

// TestEngine_Golden runs the mapper's golden cases (cdc/testdata/mapper) on
// the demo schema through the real Reader and the Engine with the built-in
// rules: the events, the aggregate (metrics) and the counters (stats) must
// equal the golden files byte for byte. A case with its own mapping file
// runs with rules/testdata/<case>.rules.json, or is skipped without one.
func TestEngine_Golden(t *testing.T) {
	cases, err := filepath.Glob("../cdc/testdata/mapper/*.sql")
	if err != nil || len(cases) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	c := pgtest.New(t, pgtest.Options{})
	for _, path := range cases {
		name := strings.TrimSuffix(filepath.Base(path), ".sql")
		if _, err := os.Stat(strings.TrimSuffix(path, ".sql") + ".mapping.json"); err == nil {
			if _, err := os.Stat(filepath.Join("testdata", name+".rules.json")); err != nil {
				continue
			}
		}
		t.Run(name, func(t *testing.T) { runGolden(t, c, path) })
	}
}

var update = flag.Bool("update", false, "rewrite the golden files of TestEngine_GoldenSchemas")

// TestEngine_GoldenSchemas runs the golden cases of the other schemas
// (testdata/<schema>/<case>.sql) with their rules file and schema
// (../testdata/<schema>/rules.json and schema.sql; a schema.sql whose first
// line is "-- walcast: demo" goes on top of the demo schema). -update
// rewrites the golden files.
func TestEngine_GoldenSchemas(t *testing.T) {
	cases, err := filepath.Glob("testdata/*/*.sql")
	if err != nil || len(cases) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	c := pgtest.New(t, pgtest.Options{})
	for _, path := range cases {
		schema := filepath.Base(filepath.Dir(path))
		name := schema + "/" + strings.TrimSuffix(filepath.Base(path), ".sql")
		t.Run(name, func(t *testing.T) {
			runGoldenWith(t, c, path, filepath.Join("..", "testdata", schema, "rules.json"), filepath.Join("..", "testdata", schema, "schema.sql"))
		})
	}
}

func runGolden(t *testing.T, c *pgtest.Cluster, path string) {
	rulesPath := filepath.Join("testdata", strings.TrimSuffix(filepath.Base(path), ".sql")+".rules.json")
	if _, err := os.Stat(rulesPath); err != nil {
		rulesPath = ""
	}
	runGoldenWith(t, c, path, rulesPath, "")
}

// runGoldenWith runs the case at path with the rules file rulesPath ("" =
// the built-in file on the demo schema) on a database made by schemaPath
// (optional) and the case's setup part.
func runGoldenWith(t *testing.T, c *pgtest.Cluster, path, rulesPath, schemaPath string) {
	ctx := t.Context()
	script, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	setup, test := "", string(script)
	if i := strings.Index(test, "\n-- test\n"); i >= 0 {
		setup, test = test[:i], test[i+len("\n-- test\n"):]
	}
	db := "r_" + regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(filepath.Base(filepath.Dir(path))+"_"+filepath.Base(path)), "_")
	if err := c.CreateDatabase(ctx, db); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, c.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// A case with testdata/<case>.rules.json runs on the schema its setup
	// part creates, with those rules; the others on the demo schema with the
	// built-in rules.
	var r *rules.Rules
	if rulesPath != "" {
		if r, err = rules.Load(rulesPath); err != nil {
			t.Fatal(err)
		}
		if schemaPath != "" {
			sch, err := os.ReadFile(schemaPath)
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(string(sch), "-- walcast: demo\n") {
				if err := walsql.Migrate(ctx, conn, walsql.Options{Demo: true}); err != nil {
					t.Fatalf("migrate -demo: %v", err)
				}
			}
			psql(t, c, db, string(sch))
		}
		if setup != "" {
			psql(t, c, db, setup)
		}
		if err := walsql.Migrate(ctx, conn, walsql.Options{Tables: r.PublishedTables(), FullIdentity: r.FullIdentityTables()}); err != nil {
			t.Fatalf("migrate: %v", err)
		}
	} else {
		if r, err = rules.Builtin(); err != nil {
			t.Fatal(err)
		}
		if err := walsql.Migrate(ctx, conn, walsql.Options{Demo: true}); err != nil {
			t.Fatalf("migrate: %v", err)
		}
		if setup != "" {
			psql(t, c, db, setup)
		}
	}
	if err := walsql.EnsureSlot(ctx, conn, db); err != nil {
		t.Fatal(err)
	}
	en := rules.New(r, discard())
	if err := en.Load(ctx, conn); err != nil {
		t.Fatalf("Load: %v", err)
	}
	s := &sink{done: make(chan struct{})}
	p, err := cdc.NewPipeline(cdc.PipelineConfig{
		Reader:      cdc.ReaderConfig{DSN: c.DSN(db), Slot: db, HeartbeatInterval: -1, Logger: discard()},
		Transformer: en, Sink: s,
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
	psql(t, c, db, test+"\n;SELECT walcast.emit('golden:end', 'end', null);\n")
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		t.Fatal("no end marker after 60s")
	}
	s.mu.Lock()
	evs := s.events
	s.mu.Unlock()
	var got bytes.Buffer
	tx, last := 0, cdc.LSN(0)
	for _, e := range evs {
		if e.Room == "golden:end" {
			break
		}
		if e.ID.LSN != last {
			tx, last = tx+1, e.ID.LSN
		}
		// Canonical: the bytes a client on another node gets after Redis.
		if c, err := jsonw.AppendCanonical(nil, e.Payload); err != nil || !bytes.Equal(c, e.Payload) {
			t.Errorf("event %s %s payload is not canonical JSON:\n got %s\nwant %s (%v)", e.Room, e.Name, e.Payload, c, err)
		}
		line, err := marshal(goldenEvent{Tx: tx, Index: e.ID.Index, Room: e.Room, Event: e.Name, Payload: normalize(e)})
		if err != nil {
			t.Fatal(err)
		}
		got.WriteString(line + "\n")
	}
	var want struct {
		Events  []goldenEvent
		Metrics json.RawMessage
		Stats   struct{ BadMessages, LookupMisses, MissingOldImage uint64 }
	}
	goldenPath := strings.TrimSuffix(path, ".sql") + ".golden.json"
	// -update rewrites this package's golden files only: the mapper's
	// (cdc/testdata/mapper) belong to cdc's test, which writes them in its
	// own format.
	if *update && !strings.HasPrefix(goldenPath, "../") {
		writeGolden(t, goldenPath, got.String(), en)
	}
	b, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	var wantB bytes.Buffer
	for _, e := range want.Events {
		line, err := marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		wantB.WriteString(line + "\n")
	}
	var cur struct{ Metrics json.RawMessage }
	if m := en.CurrentMetrics(); len(m) == 0 {
		cur.Metrics = json.RawMessage("null") // no aggregate
	} else if err := json.Unmarshal(m, &cur); err != nil {
		t.Fatalf("CurrentMetrics: %v", err)
	}
	if string(cur.Metrics) != string(want.Metrics) {
		t.Errorf("metrics = %s, golden %s", cur.Metrics, want.Metrics)
	}
	if st := en.Stats(); st.BadMessages != want.Stats.BadMessages || st.LookupMisses != want.Stats.LookupMisses || st.MissingOldImage != want.Stats.MissingOldImage {
		t.Errorf("stats = %+v, golden %+v", st, want.Stats)
	}
	if got.String() != wantB.String() {
		t.Errorf("events differ from the golden file\ngot:\n%s\nwant:\n%s", got.String(), wantB.String())
	}
}

// writeGolden writes a golden file: the events one a line, the metrics and
// the counters.
func writeGolden(t *testing.T, path, events string, en *rules.Engine) {
	t.Helper()
	var cur struct{ Metrics json.RawMessage }
	if m := en.CurrentMetrics(); len(m) == 0 {
		cur.Metrics = json.RawMessage("null") // no aggregate
	} else if err := json.Unmarshal(m, &cur); err != nil {
		t.Fatalf("CurrentMetrics: %v", err)
	}
	st := en.Stats()
	var b strings.Builder
	b.WriteString("{\n  \"Events\": [")
	lines := strings.Split(strings.TrimSuffix(events, "\n"), "\n")
	for i, l := range lines {
		if l == "" {
			continue
		}
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString("\n    " + l)
	}
	fmt.Fprintf(&b, "\n  ],\n  \"Metrics\": %s,\n  \"Stats\": {\"BadMessages\": %d, \"LookupMisses\": %d, \"MissingOldImage\": %d}\n}\n",
		cur.Metrics, st.BadMessages, st.LookupMisses, st.MissingOldImage)
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func marshal(e goldenEvent) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	err := enc.Encode(e)
	return strings.TrimSuffix(b.String(), "\n"), err
}

// normalize replaces a payload's "timestamp" equal to the commit time by
// "<commit>", as the golden files do.
func normalize(e cdc.Event) json.RawMessage {
	ts := []byte(fmt.Sprintf(`"timestamp":%d`, e.CommitTime.UnixMilli()))
	i := bytes.LastIndex(e.Payload, ts)
	if i < 0 {
		return e.Payload
	}
	out := append([]byte(nil), e.Payload[:i]...)
	out = append(out, `"timestamp":"<commit>"`...)
	return append(out, e.Payload[i+len(ts):]...)
}

func psql(t *testing.T, c *pgtest.Cluster, db, script string) {
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
	if out, err := exec.CommandContext(t.Context(), bin, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", c.DSN(db), "-f", f).CombinedOutput(); err != nil {
		t.Fatalf("psql -f: %v\n%s", err, out)
	}
}
