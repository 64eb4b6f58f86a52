package main

import (
	"io"
	"log/slog"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/walcast/walcast/cdc/pgtest"
)

// TestShopSim_Steps runs every step of the simulated shop against the demo
// schema: each must commit without error and do what it says.
func TestShopSim_Steps(t *testing.T) {
	pg := pgtest.New(t, pgtest.Options{})
	ctx := t.Context()
	if out, err := runCapture(t, map[string]string{"DATABASE_URL": pg.URL("postgres")}, "migrate", "-demo", "-no-slot"); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	db, err := pgxpool.New(ctx, pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sim := newShopSim(db, slog.New(slog.NewTextHandler(io.Discard, nil)))
	count := func(q string) int {
		var n int
		if err := db.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	orders := count(`SELECT count(*) FROM orders`)
	if err := sim.newOrder(ctx); err != nil {
		t.Fatalf("newOrder: %v", err)
	}
	if got := count(`SELECT count(*) FROM orders`); got != orders+1 {
		t.Errorf("orders after newOrder = %d, want %d", got, orders+1)
	}
	// Every open order moves to processing, so the next advance ships one
	// (with a tracking number and a walcast.notify in the same transaction).
	if _, err := db.Exec(ctx, `UPDATE orders SET status = 'processing' WHERE status IN ('pending', 'paid', 'shipped')`); err != nil {
		t.Fatal(err)
	}
	if err := sim.advanceOrder(ctx); err != nil {
		t.Fatalf("advanceOrder: %v", err)
	}
	if got := count(`SELECT count(*) FROM orders WHERE status = 'shipped' AND tracking_number IS NOT NULL`); got != 1 {
		t.Errorf("shipped orders with tracking = %d, want 1", got)
	}
	stock := `SELECT sum(quantity)::int FROM inventory`
	before := count(stock)
	if err := sim.sell(ctx); err != nil {
		t.Fatalf("sell: %v", err)
	}
	if got := count(stock); got >= before {
		t.Errorf("stock after sell = %d, want below %d", got, before)
	}
	before = count(stock)
	if err := sim.restock(ctx); err != nil {
		t.Fatalf("restock: %v", err)
	}
	if got := count(stock); got <= before {
		t.Errorf("stock after restock = %d, want above %d", got, before)
	}
}
