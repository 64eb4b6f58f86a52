package cdc_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/cdc/pgtest"
	"github.com/walcast/walcast/internal/testutil"
	walsql "github.com/walcast/walcast/sql"
)

func TestMapper_Load(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{})
	ctx := t.Context()
	if err := c.CreateDatabase(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, c.DSN("shop"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := walsql.Migrate(ctx, conn, walsql.Options{Demo: true}); err != nil {
		t.Fatal(err)
	}

	t.Run("UnknownNames", func(t *testing.T) {
		mp, err := cdc.ParseMapping([]byte(`{
			"orders": {"status": "state", "trackingNumber": "tracking", "total": "notes"},
			"products": {"table": "public.product"}}`))
		if err != nil {
			t.Fatal(err)
		}
		m, err := cdc.NewMapper(cdc.MapperConfig{Mapping: mp, Logger: testutil.Logger(t, slog.LevelDebug)})
		if err != nil {
			t.Fatal(err)
		}
		err = m.Load(ctx, conn)
		if !errors.Is(err, cdc.ErrMappingMismatch) {
			t.Errorf("Load: err = %v, want errors.Is ErrMappingMismatch", err)
		}
		for _, want := range []string{
			`orders.status: column "state" not found in table public.orders`,
			`orders.trackingNumber: column "tracking" not found in table public.orders`,
			`products.table: table public.product not found`,
			`orders.total: column public.orders.notes has type text; want one of smallint, integer, bigint, numeric`,
		} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Load: err = %v, want it to contain %q", err, want)
			}
		}
	})

	t.Run("LookupsAndMetrics", func(t *testing.T) {
		m, err := cdc.NewMapper(cdc.MapperConfig{Logger: testutil.Logger(t, slog.LevelDebug)})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Load(ctx, conn); err != nil {
			t.Fatal(err)
		}
		ev, ok := m.MetricsEvent(time.UnixMilli(5))
		if !ok || !strings.HasPrefix(string(ev.Payload), `{"metrics":{"totalRevenue":58.98,"totalOrders":2,"averageOrderValue":29.49},"timestamp":`) ||
			time.Since(ev.CommitTime) > time.Minute {
			t.Errorf("MetricsEvent after Load = %s %v", ev.Payload, ok)
		}
		// The loaded lookups give the seed's product for variant 3.
		r := &cdc.Relation{ID: 1, Namespace: "public", Name: "inventory", ReplicaIdentity: 'f', Columns: []cdc.Column{
			{Name: "variant_id", TypeOID: 2950}, {Name: "quantity", TypeOID: 23}, {Name: "reserved", TypeOID: 23}, {Name: "low_stock_threshold", TypeOID: 23}}}
		evs, err := m.Map(nil, &cdc.Change{Op: cdc.OpUpdate, Relation: r, CommitLSN: 1 << 40,
			Old: mTup("20000000-0000-4000-8000-000000000003", "8", "1", "5"),
			New: mTup("20000000-0000-4000-8000-000000000003", "2", "1", "5")})
		if err != nil {
			t.Fatal(err)
		}
		got := mSummary(evs)
		for _, want := range []string{"product:10000000-0000-4000-8000-000000000001 product:stock-updated",
			`"product_name":"Classic T-Shirt","name":"Large"`, "seller:00000000-0000-4000-8000-000000000011 inventory:low-stock"} {
			if !strings.Contains(got, want) {
				t.Errorf("got\n%s\nwant a line containing %s", got, want)
			}
		}
	})

	t.Run("BacklogNotCountedTwice", func(t *testing.T) {
		// An order committed before Load is in the aggregate; when the
		// stream delivers it afterwards (the slot is behind), it must not
		// count again. An order committed after Load counts once.
		m, err := cdc.NewMapper(cdc.MapperConfig{Logger: testutil.Logger(t, slog.LevelDebug)})
		if err != nil {
			t.Fatal(err)
		}
		var before cdc.LSN
		var lsnText string
		if err := conn.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&lsnText); err != nil {
			t.Fatal(err)
		}
		before = mapperLSN(t, lsnText)
		if err := m.Load(ctx, conn); err != nil {
			t.Fatal(err)
		}
		m.MetricsEvent(time.Now())
		r := &cdc.Relation{ID: 2, Namespace: "public", Name: "orders", ReplicaIdentity: 'f', Columns: []cdc.Column{
			{Name: "id", TypeOID: 2950}, {Name: "status", TypeOID: 25}, {Name: "total", TypeOID: 1700}}}
		m.Map(nil, &cdc.Change{Op: cdc.OpInsert, Relation: r, CommitLSN: before - 1, New: mTup("x", "paid", "1000")})
		if ev, ok := m.MetricsEvent(time.Now()); ok {
			t.Errorf("a change from before Load moved the metrics: %s", ev.Payload)
		}
		m.Map(nil, &cdc.Change{Op: cdc.OpInsert, Relation: r, CommitLSN: before + 1<<30, New: mTup("y", "paid", "1")})
		if ev, ok := m.MetricsEvent(time.UnixMilli(0)); !ok || !strings.Contains(string(ev.Payload), `"totalRevenue":59.98,"totalOrders":3`) {
			t.Errorf("a change after Load: %s %v, want 59.98 over 3 orders", ev.Payload, ok)
		}
	})
}

func mapperLSN(t *testing.T, s string) cdc.LSN {
	t.Helper()
	var hi, lo uint32
	if _, err := mapperSscanf(s, &hi, &lo); err != nil {
		t.Fatalf("parse lsn %q: %v", s, err)
	}
	return cdc.LSN(uint64(hi)<<32 | uint64(lo))
}
