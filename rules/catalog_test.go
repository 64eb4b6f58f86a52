package rules_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/walcast/walcast/cdc/pgtest"
	"github.com/walcast/walcast/rules"
	walsql "github.com/walcast/walcast/sql"
)

// TestCheckCatalog: the built-in rules match the demo schema; a file naming
// a missing table, a missing column, a text column used as an integer, a text
// total, a room query reading a missing column, a followed column that is
// missing and an rls rule without the authenticated role gets one line for
// each.
func TestCheckCatalog(t *testing.T) {
	ctx := t.Context()
	c := pgtest.New(t, pgtest.Options{})
	if err := c.CreateDatabase(ctx, "catalog"); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, c.DSN("catalog"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := walsql.Migrate(ctx, conn, walsql.Options{Demo: true}); err != nil {
		t.Fatal(err)
	}
	b, err := rules.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CheckCatalog(ctx, conn); err != nil {
		t.Errorf("built-in rules on the demo schema: %v", err)
	}
	r, err := rules.Parse([]byte(`{
	  "lookups": {"p": {"table": "products", "key": "id", "columns": ["colour"]}},
	  "tables": {"inventory": {"let": {"n": "sku - 1"}}},
	  "events": [
	    {"event": "a", "table": "inventory", "on": ["update"], "when": "changed(n) && quantity > 0", "room": "x", "payload": "row()"},
	    {"event": "b", "table": "nowhere", "on": ["insert"], "room": "x", "payload": "row()"},
	    {"event": "c", "table": "orders", "on": ["insert"], "when": "notes + 1 > 2", "room": "x", "payload": "row()"}
	  ],
	  "aggregates": {"m": {"builtin": "order_totals", "table": "orders", "status": "status", "total": "notes", "room": "admin:metrics"}},
	  "rooms": {
	    "o": {"room": "o:{id}", "subscribe": "s:o", "allow": {"owner": "select owner from orders where id = $id"}, "follow": {"orders": "nope"}},
	    "r": {"room": "r:{id}", "subscribe": "s:r", "allow": {"rls": "select 1 from orders where id = $id"}}
	  }
	}`))
	if err != nil {
		t.Fatal(err)
	}
	err = r.CheckCatalog(ctx, conn)
	if !errors.Is(err, rules.ErrMismatch) {
		t.Fatalf("err = %v, want ErrMismatch", err)
	}
	lines := strings.Split(err.Error(), "\n")[1:]
	for _, want := range []string{
		"table public.nowhere not found",
		`lookups.p.columns: column "colour" not found in table public.products`,
		`tables.public.inventory: column "sku" not found`,
		"aggregates.m.total: column public.orders.notes has type text",
		"tables.public.orders: column public.orders.notes has type text; want one of smallint, integer, bigint",
		`rooms.o.allow.owner: column "owner" does not exist (SQLSTATE 42703)`,
		`rooms.o.follow: column "nope" not found in table public.orders`,
		"rooms: rls rules run as role authenticated, which does not exist",
	} {
		found := false
		for _, l := range lines {
			found = found || strings.Contains(l, want)
		}
		if !found {
			t.Errorf("no line contains %q in:\n%s", want, err)
		}
	}
	if len(lines) != 8 {
		t.Errorf("%d lines, want 8:\n%s", len(lines), err)
	}
}
