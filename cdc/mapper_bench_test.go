package cdc_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/cdc/pgtest"
	walsql "github.com/walcast/walcast/sql"
)

// BenchmarkMapper_Map measures mapping one row change (no I/O): allocations
// per row are the event payload copies and room strings.
func BenchmarkMapper_Map(b *testing.B) {
	m, err := cdc.NewMapper(cdc.MapperConfig{Logger: mapperDiscardLogger()})
	if err != nil {
		b.Fatal(err)
	}
	seed := []*cdc.Change{
		{Op: cdc.OpInsert, Relation: mRelProducts, New: mTup("10000000-0000-4000-8000-000000000001", "Classic T-Shirt", "00000000-0000-4000-8000-000000000011")},
		{Op: cdc.OpInsert, Relation: mRelVariants, New: mTup("20000000-0000-4000-8000-000000000001", "10000000-0000-4000-8000-000000000001", "Small", "TS-S", "19.99")},
	}
	for _, c := range seed {
		if _, err := m.Map(nil, c); err != nil {
			b.Fatal(err)
		}
	}
	const vid = "20000000-0000-4000-8000-000000000001"
	order := func(status, tracking string) cdc.Tuple {
		return mTup("30000000-0000-4000-8000-000000000101", "ORD-2001", "00000000-0000-4000-8000-000000000101",
			"00000000-0000-4000-8000-000000000011", status, "59.97", tracking, "leave at the door", "2026-02-10 08:30:00.123+00")
	}
	cases := []struct {
		name string
		c    *cdc.Change
	}{
		{"inventory=stock", &cdc.Change{Op: cdc.OpUpdate, Relation: mRelInventory, Old: mTup(vid, "40", "2", "5"), New: mTup(vid, "39", "2", "5")}},
		{"inventory=crossing", &cdc.Change{Op: cdc.OpUpdate, Relation: mRelInventory, Old: mTup(vid, "10", "2", "5"), New: mTup(vid, "6", "2", "5")}},
		{"inventory=unchanged", &cdc.Change{Op: cdc.OpUpdate, Relation: mRelInventory, Old: mTup(vid, "10", "2", "5"), New: mTup(vid, "11", "3", "5")}},
		{"orders=insert", &cdc.Change{Op: cdc.OpInsert, Relation: mRelOrders, New: order("pending", "<null>")}},
		{"orders=status", &cdc.Change{Op: cdc.OpUpdate, Relation: mRelOrders, Old: order("pending", "<null>"), New: order("shipped", "1Z999AA10123456785")}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			dst := make([]cdc.Event, 0, 8)
			var lsn cdc.LSN = 1 << 32
			for b.Loop() {
				lsn++
				tc.c.CommitLSN = lsn
				var err error
				dst, err = m.Map(dst[:0], tc.c)
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// countSink counts published events.
type countSink struct{ n atomic.Uint64 }

func (s *countSink) Publish(_ context.Context, evs []cdc.Event) error {
	s.n.Add(uint64(len(evs)))
	return nil
}

// BenchmarkMapper_Backlog drains a real backlog through the Reader (pgoutput
// decode) and the Mapper to a counting sink: per iteration, a fresh database
// gets `rows` order inserts and `rows` inventory updates (in transactions of
// 1,000 rows) before the pipeline starts; the timer covers only the drain.
// Reports rows/s (decode+map) and events/s.
func BenchmarkMapper_Backlog(b *testing.B) {
	c := pgtest.New(b, pgtest.Options{})
	for _, rows := range []int{50_000} {
		b.Run(fmt.Sprintf("rows=%d", rows), func(b *testing.B) {
			var total, events uint64
			i := 0
			for b.Loop() {
				b.StopTimer()
				i++
				db := fmt.Sprintf("backlog_%d_%d", rows, i)
				if err := c.CreateDatabase(b.Context(), db); err != nil {
					b.Fatal(err)
				}
				conn, err := pgx.Connect(b.Context(), c.DSN(db))
				if err != nil {
					b.Fatal(err)
				}
				if err := walsql.Migrate(b.Context(), conn, walsql.Options{Demo: true, Slot: db}); err != nil {
					b.Fatal(err)
				}
				// 1,000 variants with stock; then rows/1,000 transactions of
				// 1,000 order inserts and of 1,000 inventory updates.
				script := `INSERT INTO variants (id, product_id, name, sku, price)
					SELECT ('40000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, '10000000-0000-4000-8000-000000000001', 'V' || g, 'SKU-' || g, 10
					FROM generate_series(1, 1000) g;
					INSERT INTO inventory (variant_id, quantity, reserved, low_stock_threshold)
					SELECT ('40000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, 100000, 0, 5 FROM generate_series(1, 1000) g;`
				for t := 0; t < rows/1000; t++ {
					script += fmt.Sprintf(`INSERT INTO orders (order_number, user_id, seller_id, status, total, notes, created_at)
						SELECT 'B-%d-' || g, '00000000-0000-4000-8000-000000000101', '00000000-0000-4000-8000-000000000011', 'paid', 12.34, 'note ' || g, '2026-02-01 00:00:00+00'
						FROM generate_series(1, 1000) g;
						UPDATE inventory SET quantity = quantity - 1 WHERE variant_id::text LIKE '40000000-%%';`, t)
				}
				if _, err := conn.Exec(b.Context(), script); err != nil {
					b.Fatal(err)
				}
				m, err := cdc.NewMapper(cdc.MapperConfig{Logger: mapperDiscardLogger()})
				if err != nil {
					b.Fatal(err)
				}
				if err := m.Load(b.Context(), conn); err != nil {
					b.Fatal(err)
				}
				conn.Close(b.Context())
				sink := &countSink{}
				p, err := cdc.NewPipeline(cdc.PipelineConfig{
					Reader:      cdc.ReaderConfig{DSN: c.DSN(db), Slot: db, HeartbeatInterval: -1, Logger: mapperDiscardLogger()},
					Transformer: m, Sink: sink,
				})
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(b.Context())
				done := make(chan error, 1)
				want := uint64(2*rows + 2000)
				b.StartTimer()
				go func() { done <- p.Run(ctx) }()
				deadline := time.Now().Add(5 * time.Minute)
				for p.Stats().Changes < want {
					if time.Now().After(deadline) {
						b.Fatalf("drained %d of %d changes in 5 minutes", p.Stats().Changes, want)
					}
					time.Sleep(2 * time.Millisecond)
				}
				b.StopTimer()
				cancel()
				<-done
				total += want
				events += sink.n.Load()
				b.StartTimer()
			}
			b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// TestMapper_Allocs pins the allocations per mapped row: none when nothing
// is emitted, and one payload plus at most one room string per event.
func TestMapper_Allocs(t *testing.T) {
	f := newMFeeder(t, nil)
	const vid = "v1"
	order := mOrderRow("pending", "10.50", "<null>", "n")
	for _, tc := range []struct {
		name string
		c    *cdc.Change
		max  float64
	}{
		{"InventoryUnchanged", &cdc.Change{Op: cdc.OpUpdate, Relation: mRelInventory, Old: mTup(vid, "10", "2", "5"), New: mTup(vid, "11", "3", "5")}, 0},
		{"InventoryStock", &cdc.Change{Op: cdc.OpUpdate, Relation: mRelInventory, Old: mTup(vid, "40", "2", "5"), New: mTup(vid, "39", "2", "5")}, 2},
		{"OrderInsert", &cdc.Change{Op: cdc.OpInsert, Relation: mRelOrders, New: order}, 2},
		{"Heartbeat", &cdc.Change{Op: cdc.OpMessage, Prefix: cdc.MessagePrefixHeartbeat, Content: []byte("x")}, 0},
	} {
		dst := make([]cdc.Event, 0, 8)
		var lsn cdc.LSN = 1 << 40
		got := testing.AllocsPerRun(200, func() {
			lsn++
			tc.c.CommitLSN = lsn
			dst, _ = f.m.Map(dst[:0], tc.c)
		})
		if got > tc.max {
			t.Errorf("%s: %.1f allocs per Map, want <= %.0f", tc.name, got, tc.max)
		}
	}
}
