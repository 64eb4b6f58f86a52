package cdc_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/cdc/pgtest"
	walsql "github.com/walcast/walcast/sql"
)

// BenchmarkDecode measures decoding one pgoutput row message (an update with
// a full old image), the Reader's per-row parsing cost.
func BenchmarkDecode(b *testing.B) {
	cols := [][]byte{[]byte("40000000-0000-4000-8000-000000000001"), []byte("99999"), []byte("0"), []byte("5"), []byte("2026-02-01 00:00:00.123456+00")}
	msg := tuple(append(be32([]byte{'U'}, 16384), 'O'), cols...)
	msg = tuple(append(msg, 'N'), cols...)
	var m cdc.WireMessage
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if err := cdc.Decode(&m, msg); err != nil {
			b.Fatal(err)
		}
	}
}

// discardSink accepts and drops events.
type discardSink struct{ n int64 }

func (s *discardSink) Publish(_ context.Context, evs []cdc.Event) error {
	s.n += int64(len(evs))
	return nil
}

// BenchmarkReader_Backlog drains a real backlog committed while no reader
// ran: WALCAST_BENCH_ROWS row changes (default 1,000,000: half order inserts,
// half inventory updates under REPLICA IDENTITY FULL, in transactions of
// 1,000 rows) through Reader -> real Mapper -> a discarding Sink. Each
// iteration copies a slot made before the backlog (pg_copy_logical_replication_slot),
// so every iteration drains the same WAL. The timer covers the drain only:
// connect, decode, map, publish, and the acknowledgement of the last commit.
// Reports rows/s and drain-s.
func BenchmarkReader_Backlog(b *testing.B) {
	rows := 1_000_000
	if s := os.Getenv("WALCAST_BENCH_ROWS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 2000 {
			b.Fatalf("WALCAST_BENCH_ROWS=%q: want an integer >= 2000", s)
		}
		rows = n
	}
	const db = "backlog"
	c, conn := backlogDB(b, db, "BL-")
	ctx := b.Context()
	start := time.Now()
	txs := rows / 1000
	for t := range txs {
		var q string
		if t%2 == 0 {
			q = fmt.Sprintf(`INSERT INTO orders (order_number, user_id, seller_id, status, total, notes)
				SELECT 'BL-%d-' || g, '00000000-0000-4000-8000-000000000101', '00000000-0000-4000-8000-000000000011', 'paid', 10 + g %% 90, 'backlog order'
				FROM generate_series(1, 1000) g`, t)
		} else {
			q = `UPDATE inventory SET quantity = quantity - 1, updated_at = now() WHERE variant_id >= '50000000-0000-4000-8000-000000000000'`
		}
		if _, err := conn.Exec(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	wantChanges := uint64(txs*1000 + 2000)
	wantTx := uint64(txs + 2)
	b.Logf("backlog: %d row changes in %d transactions committed in %v", wantChanges, wantTx, time.Since(start).Round(time.Millisecond))

	r := drainCopies(b, conn, c.DSN(db), "backlog", func(st cdc.ReaderStats) bool {
		return st.Changes >= wantChanges && st.Transactions >= wantTx
	})[0]
	b.ReportMetric(float64(r.changes)/r.wall.Seconds(), "rows/s")
	b.ReportMetric(r.wall.Seconds()/float64(r.n), "drain-s")
}

// BenchmarkReader_OneRowTx drains WALCAST_BENCH_TXS (default 200,000) one-row
// inventory UPDATE transactions committed while no reader ran (a flash sale:
// every stock change its own transaction) through Reader -> real Mapper -> a
// discarding Sink, as BenchmarkReader_Backlog does. Reports tx/s and the
// process's CPU per transaction (user+system: the Reader's side only,
// Postgres runs in its own processes); run it with -cpuprofile to see the
// per-transaction costs.
func BenchmarkReader_OneRowTx(b *testing.B) {
	txs := 200_000
	if s := os.Getenv("WALCAST_BENCH_TXS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1000 {
			b.Fatalf("WALCAST_BENCH_TXS=%q: want an integer >= 1000", s)
		}
		txs = n
	}
	const db = "onerow"
	c, conn := backlogDB(b, db, "TX-")
	ctx := b.Context()
	setup := []string{
		// One transaction per UPDATE: COMMIT inside a DO block (PG 11+).
		fmt.Sprintf(`DO $$ BEGIN FOR i IN 1..%d LOOP
			UPDATE inventory SET quantity = quantity - 1
			 WHERE variant_id = ('50000000-0000-4000-8000-' || lpad((1 + i %% 1000)::text, 12, '0'))::uuid;
			COMMIT;
		END LOOP; END $$`, txs),
	}
	start := time.Now()
	for _, s := range setup {
		if _, err := conn.Exec(ctx, s); err != nil {
			b.Fatal(err)
		}
	}
	wantTx := uint64(txs + 2)
	b.Logf("%d one-row transactions committed in %v", txs, time.Since(start).Round(time.Millisecond))

	r := drainCopies(b, conn, c.DSN(db), "onerow", func(st cdc.ReaderStats) bool { return st.Transactions >= wantTx })[0]
	b.ReportMetric(float64(txs)*float64(r.n)/r.wall.Seconds(), "tx/s")
	b.ReportMetric(r.wall.Seconds()/float64(r.n), "drain-s")
	b.ReportMetric(float64(r.cpu.Microseconds())/float64(txs*r.n), "cpu-us/tx")

	// The baselines, on copies of the same slot, after the Reader's drains:
	// Postgres decoding in a backend (pg_logical_slot_get_binary_changes),
	// and its own streaming client (pg_recvlogical, to /dev/null) over the
	// replication protocol the Reader uses.
	bin, err := pgtest.FindBin()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(bin, "pg_recvlogical")); err != nil {
		b.Logf("no baselines: %v", err)
		return
	}
	var end string
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&end); err != nil {
		b.Fatal(err)
	}
	var sqlDecode, recv time.Duration
	for k := range r.n {
		for _, viaSQL := range []bool{true, false} {
			slot := fmt.Sprintf("onerow_base_%d_%v", k, viaSQL)
			if _, err := conn.Exec(ctx, `SELECT pg_copy_logical_replication_slot('onerow_template', $1)`, slot); err != nil {
				b.Fatal(err)
			}
			t0 := time.Now()
			if viaSQL {
				var n int64
				if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_logical_slot_get_binary_changes($1, NULL, NULL, 'proto_version', '2', 'publication_names', 'walcast', 'messages', 'true')`, slot).Scan(&n); err != nil {
					b.Fatal(err)
				}
				sqlDecode += time.Since(t0)
			} else {
				out, err := exec.CommandContext(ctx, filepath.Join(bin, "pg_recvlogical"), "-d", c.DSN(db), "-S", slot, "--start", "--no-loop",
					"--endpos="+end, "-o", "proto_version=2", "-o", "publication_names=walcast", "-o", "messages=true", "-f", "/dev/null").CombinedOutput()
				if err != nil {
					b.Fatalf("pg_recvlogical: %v\n%s", err, out)
				}
				recv += time.Since(t0)
			}
			if _, err := conn.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, slot); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(txs)*float64(r.n)/sqlDecode.Seconds(), "pg-sql-decode-tx/s")
	b.ReportMetric(float64(txs)*float64(r.n)/recv.Seconds(), "pg_recvlogical-tx/s")
}

// drainRuns are the totals of one configuration in drainCopies.
type drainRuns struct {
	wall, cpu time.Duration // time draining; the process's CPU meanwhile
	changes   uint64
	n         int // iterations
}

// drainCopies runs the benchmark loop of the backlog benchmarks: each
// iteration copies the slot <prefix>_template (made before the backlog), drains
// it through Reader -> real Mapper -> a discarding Sink until done reports
// true and everything received is acknowledged, and drops the copy.
// Iteration i configures its Reader with configs[i % len(configs)] (none:
// the defaults). It returns the totals per configuration.
func drainCopies(b *testing.B, conn *pgx.Conn, dsn, prefix string, done func(cdc.ReaderStats) bool, configs ...func(*cdc.ReaderConfig)) []drainRuns {
	ctx := b.Context()
	if len(configs) == 0 {
		configs = []func(*cdc.ReaderConfig){func(*cdc.ReaderConfig) {}}
	}
	runs := make([]drainRuns, len(configs))
	i := 0
	for b.Loop() {
		b.StopTimer()
		i++
		slot := fmt.Sprintf("%s_%d", prefix, i)
		if _, err := conn.Exec(ctx, `SELECT pg_copy_logical_replication_slot($1, $2)`, prefix+"_template", slot); err != nil {
			b.Fatal(err)
		}
		m, err := cdc.NewMapper(cdc.MapperConfig{Logger: discardLogger()})
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Load(ctx, conn); err != nil {
			b.Fatal(err)
		}
		rcfg := cdc.ReaderConfig{DSN: dsn, Slot: slot, HeartbeatInterval: -1, Logger: discardLogger()}
		run := &runs[(i-1)%len(configs)]
		configs[(i-1)%len(configs)](&rcfg)
		p, err := cdc.NewPipeline(cdc.PipelineConfig{
			Reader:      rcfg,
			Transformer: m,
			Sink:        &discardSink{},
		})
		if err != nil {
			b.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		b.StartTimer()
		cpu0 := processCPU(b)
		t0 := time.Now()
		go func() { errc <- p.Run(rctx) }()
		deadline := t0.Add(5 * time.Minute)
		for st := p.Stats(); !done(st) || st.AckedLSN < st.ReceivedLSN; st = p.Stats() {
			if time.Now().After(deadline) {
				b.Fatalf("drained %d changes in %d transactions in 5 minutes, not done", st.Changes, st.Transactions)
			}
			// Not every millisecond: each wake-up of this process is CPU
			// counted as the Reader's.
			time.Sleep(10 * time.Millisecond)
		}
		d := time.Since(t0)
		cpu := processCPU(b) - cpu0
		b.StopTimer()
		cancel()
		<-errc
		run.wall += d
		run.cpu += cpu
		run.n++
		run.changes += p.Stats().Changes
		if _, err := conn.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, slot); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	return runs
}

// processCPU is this process's user+system CPU time so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// backlogDB starts a cluster for a backlog benchmark with database db: the
// demo schema, a slot db_template made before any backlog (drainCopies copies
// it), and 1,000 extra variants (sku prefix sku) with plenty of stock.
func backlogDB(b *testing.B, db, sku string) (*pgtest.Cluster, *pgx.Conn) {
	b.Helper()
	c := pgtest.New(b, pgtest.Options{Settings: []string{"max_wal_size = 8GB", "checkpoint_timeout = '30min'"}})
	ctx := b.Context()
	if err := c.CreateDatabase(ctx, db); err != nil {
		b.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, c.DSN(db))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close(context.Background()) })
	if err := walsql.Migrate(ctx, conn, walsql.Options{Demo: true, Slot: db + "_template"}); err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO variants (id, product_id, name, sku, price)
		 SELECT ('50000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, '10000000-0000-4000-8000-000000000002', 'Size ' || g, $1 || g, 25
		 FROM generate_series(1, 1000) g`, sku); err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO inventory (variant_id, quantity, reserved, low_stock_threshold)
		 SELECT ('50000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, 1000000, 0, 5 FROM generate_series(1, 1000) g`); err != nil {
		b.Fatal(err)
	}
	return c, conn
}
