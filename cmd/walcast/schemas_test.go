package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/walcast/walcast/cdc/pgtest"
)

// schemaServe makes a database from testdata/<schema>/schema.sql (on top of
// the demo schema when its first line says so), migrates and serves it with
// testdata/<schema>/rules.json, and returns a socket.io-client driver on it,
// a connection to the database, and a token maker (role in
// app_metadata.role).
func schemaServe(t *testing.T, schema string, setup string) (*sioDriver, *pgx.Conn, func(sub, role string) string) {
	t.Helper()
	pg := pgtest.New(t, pgtest.Options{})
	ctx := t.Context()
	dbURL := pg.URL("postgres")
	sch, err := os.ReadFile("../../testdata/" + schema + "/schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(string(sch), "-- walcast: demo\n") {
		if out, err := runCapture(t, map[string]string{"DATABASE_URL": dbURL}, "migrate", "-demo"); err != nil {
			t.Fatalf("migrate -demo: %v\n%s", err, out)
		}
	}
	if out, err := pg.Psql(ctx, "postgres", string(sch)+"\n"+setup); err != nil {
		t.Fatalf("schema: %v\n%s", err, out)
	}
	env := map[string]string{"DATABASE_URL": dbURL, "WALCAST_RULES": "../../testdata/" + schema + "/rules.json"}
	if out, err := runCapture(t, env, "migrate"); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	addr := freeAddr(t)
	env["SUPABASE_JWT_SECRET"] = restartSecret
	env["WALCAST_LISTEN"] = addr
	env["WALCAST_SHUTDOWN_TIMEOUT"] = "2s"
	env["WALCAST_ROLE_CLAIM"] = "app_metadata.role"
	startServeAt(t, env, addr)
	db, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	token := func(sub, role string) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": sub, "exp": time.Now().Add(time.Hour).Unix(), "app_metadata": map[string]any{"role": role},
		}).SignedString([]byte(restartSecret))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	return startSIODriver(t, "http://"+addr), db, token
}

// TestSchemas_Marketplace: the marketplace schema (testdata/marketplace:
// stock on products, no variants; orders whose items belong to several
// sellers) served by its rules file alone, with real socket.io-client
// sockets. Each seller gets one order:new per order with its own items only and
// inventory:low-stock for its own products only; the buyer and the sellers
// of an order's items may subscribe to it (owner and sql rules), others may
// not, and a seller whose item is removed from the order leaves its room.
// Product and order subscribers get the room's state first, from the kinds'
// snapshot queries.
func TestSchemas_Marketplace(t *testing.T) {
	const (
		sellerA = "00000000-0000-4000-8000-0000000000a1"
		sellerB = "00000000-0000-4000-8000-0000000000b2"
		sellerC = "00000000-0000-4000-8000-0000000000c4"
		sellerD = "00000000-0000-4000-8000-0000000000d5"
		buyer   = "00000000-0000-4000-8000-0000000000c3"
	)
	d, db, token := schemaServe(t, "marketplace", fmt.Sprintf(`INSERT INTO products (id, name, stock, seller_id) VALUES
		(1, 'Kettle', 8, '%s'), (2, 'Teapot', 30, '%s'), (3, 'Mug', 6, '%s'), (4, 'Tray', 20, '%s');`, sellerA, sellerA, sellerB, sellerD))
	ctx := t.Context()
	exec := func(q string) time.Time {
		t.Helper()
		t0 := time.Now()
		if _, err := db.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return t0
	}
	for name, u := range map[string][2]string{"a": {sellerA, "seller"}, "b": {sellerB, "seller"}, "c": {sellerC, "seller"}, "d": {sellerD, "seller"}, "buyer": {buyer, "customer"}} {
		if l := d.connect(name, "/", token(u[0], u[1]), true); l.Ev != "connect" {
			t.Fatalf("%s connect: %+v", name, l)
		}
	}
	ok := func(a string) bool { return strings.Contains(a, `"ok":true`) }
	if a := d.emitAck("buyer", "subscribe:product", 1); !ok(a) {
		t.Fatalf("subscribe:product 1 = %s", a)
	}
	// State on subscribe from the kind's snapshot query, ordered with the stream.
	d.must("buyer product:stock-updated state on subscribe", eventOf("buyer", "product:stock-updated", `"available":8`))
	if a := d.emitAck("buyer", "subscribe:product", "kettle"); !strings.Contains(a, "must be an integer") {
		t.Fatalf("subscribe:product kettle = %s, want the integer error", a)
	}

	exec(`BEGIN; INSERT INTO orders (id, buyer_id) VALUES (100, '` + buyer + `');
		INSERT INTO order_items (order_id, product_id, quantity, price) VALUES (100, 1, 1, 39.90), (100, 3, 4, 7.50), (100, 4, 1, 12.00), (100, 2, 2, 24.00); COMMIT`)
	// Items of three sellers: each seller gets one order:new with its own items.
	// (The driver prints payloads through JSON.stringify: 39.90 becomes 39.9.)
	d.must("seller a order:new with the kettle and the teapot", eventOf("a", "order:new",
		`{"orderId":100,"items":[{"productId":1,"name":"Kettle","quantity":1,"price":39.9},{"productId":2,"name":"Teapot","quantity":2,"price":24}],`))
	d.must("seller b order:new with the mug", eventOf("b", "order:new", `{"orderId":100,"items":[{"productId":3,"name":"Mug","quantity":4,"price":7.5}],`))
	d.must("seller d order:new with the tray", eventOf("d", "order:new", `{"orderId":100,"items":[{"productId":4,"name":"Tray","quantity":1,"price":12}],`))

	t0 := exec(`UPDATE products SET stock = 5 WHERE id = 1`)
	d.must("seller a inventory:low-stock for the kettle", after(t0, eventOf("a", "inventory:low-stock", `"id":1,`)))
	d.must("buyer product:stock-updated for the kettle", after(t0, eventOf("buyer", "product:stock-updated", `"available":5`)))
	exec(`UPDATE products SET stock = 2 WHERE id = 3`)
	d.must("seller b inventory:low-stock for the mug", eventOf("b", "inventory:low-stock", `"id":3,`))
	time.Sleep(300 * time.Millisecond)
	if n := d.count(eventOf("a", "order:new", `"productId":3,`)) + d.count(eventOf("a", "inventory:low-stock", `"id":3,`)); n != 0 {
		t.Errorf("seller a got %d events of seller b's mug, want 0", n)
	}
	if n := d.count(eventOf("b", "order:new", `"productId":1,`)) + d.count(eventOf("b", "order:new", `"productId":2,`)) + d.count(eventOf("b", "inventory:low-stock", `"id":1,`)); n != 0 {
		t.Errorf("seller b got %d events of seller a's products, want 0", n)
	}
	if n := d.count(eventOf("c", "order:new", "")) + d.count(eventOf("c", "inventory:low-stock", "")); n != 0 {
		t.Errorf("seller c (nothing sold) got %d events, want 0", n)
	}
	for _, s := range []string{"a", "b", "d"} {
		if n := d.count(eventOf(s, "order:new", "")); n != 1 {
			t.Errorf("seller %s got %d order:new for one order, want 1", s, n)
		}
	}

	if a := d.emitAck("buyer", "subscribe:order", 100); !ok(a) {
		t.Fatalf("buyer subscribe:order 100 = %s, want ok (owner)", a)
	}
	d.must("buyer order:status-changed state on subscribe", eventOf("buyer", "order:status-changed", `"status":"pending"`))
	if a := d.emitAck("b", "subscribe:order", 100); !ok(a) {
		t.Fatalf("seller b subscribe:order 100 = %s, want ok (sells an item of it)", a)
	}
	if a := d.emitAck("c", "subscribe:order", 100); ok(a) || !strings.Contains(a, "only the buyer, a seller") {
		t.Fatalf("seller c subscribe:order 100 = %s, want refused", a)
	}
	exec(`UPDATE orders SET status = 'paid' WHERE id = 100`)
	d.must("buyer order:status-changed", eventOf("buyer", "order:status-changed", `"paid"`))
	d.must("seller b order:status-changed", eventOf("b", "order:status-changed", `"paid"`))

	// The mug leaves the order: seller b no longer sells an item of it.
	t0 = exec(`DELETE FROM order_items WHERE order_id = 100 AND product_id = 3`)
	ms := -1
	if l := d.wait(3*time.Second, after(t0, eventOf("b", "access:changed", `"access_revoked"`))); l != nil {
		ms = int(l.at.Sub(t0).Milliseconds())
	}
	exec(`UPDATE orders SET status = 'shipped' WHERE id = 100`)
	d.must("buyer order:status-changed after the item left", eventOf("buyer", "order:status-changed", `"shipped"`))
	time.Sleep(300 * time.Millisecond)
	got := d.count(eventOf("b", "order:status-changed", `"shipped"`))
	t.Logf("marketplace: seller b left order:100 %d ms after its item was removed; %d status changes after it", ms, got)
	if ms < 0 || ms > 1000 {
		t.Errorf("access:changed after %d ms, want within 1000 ms", ms)
	}
	if got != 0 {
		t.Errorf("seller b got %d order:status-changed after its item left the order, want 0", got)
	}
}

// TestSchemas_Shipments: a team's own shipments table beside the demo shop
// (testdata/shipments) reaches order:{order_id} through a rules file that
// extends the built-in one, with real socket.io-client sockets: the order's
// owner gets order:shipment for its creation and each status or tracking
// change, beside the built-in order:status-changed; another customer may
// not subscribe.
func TestSchemas_Shipments(t *testing.T) {
	const order = "30000000-0000-4000-8000-000000000001" // ORD-1001, Alice's
	d, db, token := schemaServe(t, "shipments", "")
	ctx := t.Context()
	exec := func(q string) {
		t.Helper()
		if _, err := db.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if l := d.connect("alice", "/", token(demoUsers["customer"].ID, "customer"), true); l.Ev != "connect" {
		t.Fatalf("alice connect: %+v", l)
	}
	if l := d.connect("other", "/", token("00000000-0000-4000-8000-000000000102", "customer"), true); l.Ev != "connect" {
		t.Fatalf("other connect: %+v", l)
	}
	if a := d.emitAck("alice", "subscribe:order", order); !strings.Contains(a, `"ok":true`) {
		t.Fatalf("alice subscribe:order = %s", a)
	}
	if a := d.emitAck("other", "subscribe:order", order); strings.Contains(a, `"ok":true`) {
		t.Fatalf("another customer subscribe:order = %s, want refused", a)
	}
	exec(`INSERT INTO shipments (order_id, carrier) VALUES ('` + order + `', 'DHL')`)
	d.must("order:shipment on insert", eventOf("alice", "order:shipment", `"status":"label_created"`))
	exec(`UPDATE shipments SET status = 'in_transit', tracking_number = 'JD0146000002' WHERE order_id = '` + order + `'`)
	d.must("order:shipment on update", eventOf("alice", "order:shipment", `"trackingNumber":"JD0146000002"`))
	exec(`UPDATE orders SET status = 'shipped' WHERE id = '` + order + `'`)
	d.must("built-in order:status-changed", eventOf("alice", "order:status-changed", `"shipped"`))
	if n := d.count(eventOf("other", "order:shipment", "")); n != 0 {
		t.Errorf("another customer got %d order:shipment, want 0", n)
	}
}
