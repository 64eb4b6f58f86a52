package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/walcast/walcast/cdc/pgtest"
)

// TestRLS_Subscribe: on a Supabase-shaped database (roles anon and
// authenticated, auth.uid() reading request.jwt.claims, an RLS policy on
// orders; testdata/supabase), a rules file whose order room is allowed by
// "rls" lets real socket.io-client sockets subscribe to exactly the orders
// the app's policy shows them. Changing the policy changes the next
// subscribe's answer. When the row that granted a subscription changes (the
// order is given to another user), the subscriber is told and stops
// receiving within a second.
func TestRLS_Subscribe(t *testing.T) {
	pg := pgtest.New(t, pgtest.Options{})
	ctx := t.Context()
	schema, err := os.ReadFile("../../testdata/supabase/schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := pg.Psql(ctx, "postgres", string(schema)); err != nil {
		t.Fatalf("schema: %v\n%s", err, out)
	}
	const (
		alice = "00000000-0000-4000-8000-00000000a11c"
		bob   = "00000000-0000-4000-8000-000000000b0b"
		o1    = "10000000-0000-4000-8000-000000000001" // alice's
		o2    = "10000000-0000-4000-8000-000000000002" // bob's
		o3    = "10000000-0000-4000-8000-000000000003" // bob's
	)
	dbURL := pg.URL("postgres")
	env := map[string]string{"DATABASE_URL": dbURL, "WALCAST_RULES": "../../testdata/supabase/rules.json"}
	if out, err := runCapture(t, env, "migrate"); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	db, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	exec := func(q string, args ...any) time.Time {
		t.Helper()
		t0 := time.Now()
		if _, err := db.Exec(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return t0
	}
	exec(`INSERT INTO orders (id, order_number, user_id) VALUES ($1, 'A-1', $2), ($3, 'B-2', $4), ($5, 'B-3', $4)`, o1, alice, o2, bob, o3)

	addr := freeAddr(t)
	env["SUPABASE_JWT_SECRET"] = restartSecret
	env["WALCAST_LISTEN"] = addr
	env["WALCAST_SHUTDOWN_TIMEOUT"] = "2s"
	env["WALCAST_ROLE_CLAIM"] = "role" // no profiles table: the role is the token's (authenticated)
	startServeAt(t, env, addr)
	token := func(sub string) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": sub, "role": "authenticated", "aud": "authenticated", "exp": time.Now().Add(time.Hour).Unix(),
		}).SignedString([]byte(restartSecret))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	d := startSIODriver(t, "http://"+addr)
	for name, sub := range map[string]string{"alice": alice, "bob": bob} {
		if l := d.connect(name, "/", token(sub), true); l.Ev != "connect" {
			t.Fatalf("%s connect: %+v", name, l)
		}
	}
	subscribe := func(name, order string) string { return d.emitAck(name, "subscribe:order", order) }
	ok := func(a string) bool { return strings.Contains(a, `"ok":true`) }

	if a := subscribe("alice", o1); !ok(a) {
		t.Fatalf("alice subscribe:order to her order = %s, want ok", a)
	}
	if a := subscribe("alice", o2); ok(a) || !strings.Contains(a, "not allowed") {
		t.Fatalf("alice subscribe:order to bob's order = %s, want not allowed", a)
	}
	if a := subscribe("alice", "not-a-uuid"); !strings.Contains(a, "must be a UUID") {
		t.Fatalf("alice subscribe:order with a slug = %s, want the uuid error", a)
	}

	// The app's policy decides: let every authenticated user read every
	// order, then take it back.
	exec(`ALTER POLICY own_orders ON orders USING (true)`)
	if a := subscribe("alice", o3); !ok(a) {
		t.Fatalf("alice subscribe:order to bob's order after the policy allows all = %s, want ok", a)
	}
	// Restoring the policy takes back the subscription it allowed: the event
	// trigger's message makes walcast check the rls subscriptions again.
	t0 := exec(`ALTER POLICY own_orders ON orders USING (user_id = auth.uid())`)
	polMS := -1
	if l := d.wait(5*time.Second, after(t0, eventOf("alice", "access:changed", `"access_revoked"`))); l != nil {
		polMS = int(l.at.Sub(t0).Milliseconds())
		if !strings.Contains(string(l.Args[0]), `"left":["order:`+o3+`"]`) {
			t.Errorf("access:changed after ALTER POLICY = %s, want left [order:%s]", l.Args[0], o3)
		}
	}
	t.Logf("ALTER POLICY: alice left order:%s %d ms after it", o3, polMS)
	if polMS < 0 || polMS > 2500 {
		t.Errorf("access:changed %d ms after ALTER POLICY, want within 2,500 ms", polMS)
	}
	if a := subscribe("alice", o2); ok(a) {
		t.Fatalf("alice subscribe:order to bob's order after the policy is restored = %s, want refused", a)
	}
	if a := subscribe("bob", o2); !ok(a) {
		t.Fatalf("bob subscribe:order to his order = %s, want ok", a)
	}

	exec(`UPDATE orders SET status = 'paid' WHERE id = $1`, o1)
	d.must("alice order:status-changed of her order", eventOf("alice", "order:status-changed", `"paid"`))

	// The row that granted alice's subscription changes: o1 is now bob's.
	t0 = exec(`UPDATE orders SET user_id = $1 WHERE id = $2`, bob, o1)
	var ms int = -1
	if l := d.wait(3*time.Second, after(t0, eventOf("alice", "access:changed", `"access_revoked"`))); l != nil {
		ms = int(l.at.Sub(t0).Milliseconds())
		if !strings.Contains(string(l.Args[0]), `"left":["order:`+o1+`"]`) {
			t.Errorf("access:changed = %s, want left [order:%s]", l.Args[0], o1)
		}
	}
	if a := subscribe("bob", o1); !ok(a) {
		t.Fatalf("bob subscribe:order to the order he now owns = %s, want ok", a)
	}
	exec(`UPDATE orders SET status = 'shipped', tracking_number = 'TRK-RLS' WHERE id = $1`, o1)
	d.must("bob order:status-changed after the change", eventOf("bob", "order:status-changed", "TRK-RLS"))
	time.Sleep(300 * time.Millisecond)
	got := d.count(after(t0, eventOf("alice", "order:status-changed", "")))
	t.Logf("RLS-authorized subscription: access:changed %d ms after the granting row changed; %d order:status-changed to the former owner after it", ms, got)
	if ms < 0 || ms > 1000 {
		t.Errorf("access:changed after %d ms, want within 1000 ms", ms)
	}
	if got != 0 {
		t.Errorf("alice received %d order:status-changed after the order became bob's, want 0", got)
	}
	if a := subscribe("alice", o1); ok(a) {
		t.Errorf("alice subscribe:order after the order became bob's = %s, want refused", a)
	}
}
