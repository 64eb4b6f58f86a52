package cdc_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/walcast/walcast/cdc"
)

// Type OIDs used by the hand-built relations.
const (
	tUUID        = 2950
	tText        = 25
	tInt4        = 23
	tNumeric     = 1700
	tTimestamptz = 1184
	tBool        = 16
	tJSONB       = 3802
	tEnum        = 16400 // a user-defined enum: no special encoding
)

func rel(id uint32, name string, ident byte, cols ...cdc.Column) *cdc.Relation {
	return &cdc.Relation{ID: id, Namespace: "public", Name: name, ReplicaIdentity: ident, Columns: cols}
}

func col(name string, oid uint32) cdc.Column { return cdc.Column{Name: name, TypeOID: oid} }

var (
	relProducts  = rel(1, "products", 'd', col("id", tUUID), col("name", tText), col("seller_id", tUUID))
	relVariants  = rel(2, "variants", 'd', col("id", tUUID), col("product_id", tUUID), col("name", tText), col("sku", tText), col("price", tNumeric))
	relInventory = rel(3, "inventory", 'f', col("variant_id", tUUID), col("quantity", tInt4), col("reserved", tInt4), col("low_stock_threshold", tInt4))
	relOrders    = rel(4, "orders", 'f', col("id", tUUID), col("order_number", tText), col("user_id", tUUID), col("seller_id", tUUID),
		col("status", tEnum), col("total", tNumeric), col("tracking_number", tText), col("notes", tText), col("created_at", tTimestamptz))
)

// tup builds a tuple: "<null>" is NULL, "<u>" an unchanged TOAST value.
func tup(vals ...string) cdc.Tuple {
	t := make(cdc.Tuple, len(vals))
	for i, v := range vals {
		switch v {
		case "<null>":
			t[i] = cdc.Value{Kind: cdc.ValueNull}
		case "<u>":
			t[i] = cdc.Value{Kind: cdc.ValueUnchanged}
		default:
			t[i] = cdc.Value{Kind: cdc.ValueText, Data: []byte(v)}
		}
	}
	return t
}

var commit = time.Date(2026, 3, 1, 12, 0, 0, 123e6, time.UTC)

// feeder hands changes to a Mapper with increasing LSNs.
type feeder struct {
	t   *testing.T
	m   *cdc.Mapper
	lsn cdc.LSN
}

func newFeeder(t *testing.T, mp *cdc.Mapping) *feeder {
	t.Helper()
	m, err := cdc.NewMapper(cdc.MapperConfig{Mapping: mp, Logger: mapperLogger(t)})
	if err != nil {
		t.Fatalf("NewMapper: %v", err)
	}
	f := &feeder{t: t, m: m, lsn: 0x1000}
	f.tx(
		&cdc.Change{Op: cdc.OpInsert, Relation: relProducts, New: tup("p1", "T-Shirt", "s1")},
		&cdc.Change{Op: cdc.OpInsert, Relation: relProducts, New: tup("p2", "Mug", "<null>")},
		&cdc.Change{Op: cdc.OpInsert, Relation: relVariants, New: tup("v1", "p1", "Small", "TS-S", "19.99")},
		&cdc.Change{Op: cdc.OpInsert, Relation: relVariants, New: tup("v2", "p2", "White", "M-W", "9.50")},
	)
	return f
}

// tx maps changes as one transaction and returns the events.
func (f *feeder) tx(changes ...*cdc.Change) []cdc.Event {
	f.t.Helper()
	f.lsn += 0x100
	var evs []cdc.Event
	for i, c := range changes {
		c.CommitLSN, c.CommitTime, c.Index, c.XID = f.lsn, commit, uint32(i), 700
		var err error
		evs, err = f.m.Map(evs, c)
		if err != nil {
			f.t.Fatalf("Map(%s %v): %v", c.Op, c.Relation, err)
		}
	}
	return evs
}

// summary renders events as "room event payload" lines.
func summary(evs []cdc.Event) string {
	var b strings.Builder
	for _, e := range evs {
		b.WriteString(e.Room + " " + e.Name + " " + string(e.Payload) + "\n")
	}
	return b.String()
}

func inv(op cdc.Op, old, new cdc.Tuple) *cdc.Change {
	return &cdc.Change{Op: op, Relation: relInventory, Old: old, New: new}
}

func TestMapper_Inventory(t *testing.T) {
	f := newFeeder(t, nil)
	ms := commit.UnixMilli()
	_ = ms
	steps := []struct {
		name string
		c    *cdc.Change
		want string
	}{
		{"InsertHigh", inv(cdc.OpInsert, nil, tup("v1", "10", "2", "5")),
			`product:p1 product:stock-updated {"variantId":"v1","productId":"p1","available":8,"timestamp":1772366400123}` + "\n"},
		{"CrossDown", inv(cdc.OpUpdate, tup("v1", "10", "2", "5"), tup("v1", "7", "2", "5")),
			`product:p1 product:stock-updated {"variantId":"v1","productId":"p1","available":5,"timestamp":1772366400123}` + "\n" +
				`admin:room admin:low-stock {"variant":{"id":"v1","product_id":"p1","product_name":"T-Shirt","name":"Small","available":5,"threshold":5},"variantId":"v1","available":5,"threshold":5,"timestamp":1772366400123}` + "\n" +
				`seller:s1 inventory:low-stock {"id":"p1","name":"T-Shirt","stock":5,"variantId":"v1","variantName":"Small","threshold":5,"timestamp":1772366400123}` + "\n"},
		{"StayLow", inv(cdc.OpUpdate, tup("v1", "7", "2", "5"), tup("v1", "6", "2", "5")),
			`product:p1 product:stock-updated {"variantId":"v1","productId":"p1","available":4,"timestamp":1772366400123}` + "\n"},
		{"SameAvailable", inv(cdc.OpUpdate, tup("v1", "6", "2", "5"), tup("v1", "7", "3", "5")), ""},
		{"BackUp", inv(cdc.OpUpdate, tup("v1", "7", "3", "5"), tup("v1", "50", "3", "5")),
			`product:p1 product:stock-updated {"variantId":"v1","productId":"p1","available":47,"timestamp":1772366400123}` + "\n"},
		{"ThresholdRaised", inv(cdc.OpUpdate, tup("v1", "50", "3", "5"), tup("v1", "50", "3", "50")),
			`admin:room admin:low-stock {"variant":{"id":"v1","product_id":"p1","product_name":"T-Shirt","name":"Small","available":47,"threshold":50},"variantId":"v1","available":47,"threshold":50,"timestamp":1772366400123}` + "\n" +
				`seller:s1 inventory:low-stock {"id":"p1","name":"T-Shirt","stock":47,"variantId":"v1","variantName":"Small","threshold":50,"timestamp":1772366400123}` + "\n"},
		{"NoSellerNoSellerEvent", inv(cdc.OpInsert, nil, tup("v2", "1", "0", "<null>")),
			`product:p2 product:stock-updated {"variantId":"v2","productId":"p2","available":1,"timestamp":1772366400123}` + "\n" +
				`admin:room admin:low-stock {"variant":{"id":"v2","product_id":"p2","product_name":"Mug","name":"White","available":1,"threshold":5},"variantId":"v2","available":1,"threshold":5,"timestamp":1772366400123}` + "\n"},
		{"Delete", inv(cdc.OpDelete, tup("v1", "50", "3", "50"), nil), ""},
	}
	for _, s := range steps {
		got := summary(f.tx(s.c))
		if got != s.want {
			t.Errorf("%s: got\n%s\nwant\n%s", s.name, got, s.want)
		}
	}
}

func TestMapper_InventoryWithoutFullIdentity(t *testing.T) {
	f := newFeeder(t, nil)
	r := *relInventory
	r.ReplicaIdentity = 'd'
	evs := f.tx(&cdc.Change{Op: cdc.OpUpdate, Relation: &r, New: tup("v1", "1", "0", "5")})
	if len(evs) != 1 || evs[0].Name != cdc.EventStockUpdated {
		t.Fatalf("update without old row: got %s, want just product:stock-updated (no invented crossing)", summary(evs))
	}
	if got := f.m.Stats().MissingOldImage; got != 1 {
		t.Errorf("Stats().MissingOldImage = %d, want 1", got)
	}
}

func TestMapper_LookupFreshFromStream(t *testing.T) {
	f := newFeeder(t, nil)
	// The variant moves to product p2; the product is renamed.
	f.tx(&cdc.Change{Op: cdc.OpUpdate, Relation: relVariants, New: tup("v1", "p2", "Small", "TS-S", "19.99")},
		&cdc.Change{Op: cdc.OpUpdate, Relation: relProducts, New: tup("p2", "Big Mug", "s2")})
	evs := f.tx(inv(cdc.OpInsert, nil, tup("v1", "2", "0", "5")))
	got := summary(evs)
	for _, want := range []string{"product:p2 product:stock-updated", `"product_name":"Big Mug"`, "seller:s2 inventory:low-stock"} {
		if !strings.Contains(got, want) {
			t.Errorf("after variant/product updates got\n%s\nwant it to contain %s", got, want)
		}
	}
	// Deleted variant: no room to send stock to; counted as a lookup miss.
	f.tx(&cdc.Change{Op: cdc.OpDelete, Relation: relVariants, Old: tup("v1", "<null>", "<null>", "<null>", "<null>")})
	evs = f.tx(inv(cdc.OpUpdate, tup("v1", "2", "0", "5"), tup("v1", "3", "0", "5")))
	if len(evs) != 0 {
		t.Errorf("inventory of a deleted variant: got %s, want no events", summary(evs))
	}
	if f.m.Stats().LookupMisses == 0 {
		t.Error("Stats().LookupMisses = 0, want > 0")
	}
}

func orderRow(status, total, tracking, notes string) cdc.Tuple {
	return tup("o1", "ORD-1", "u1", "s1", status, total, tracking, notes, "2026-03-01 12:00:00.5+00")
}

func TestMapper_Orders(t *testing.T) {
	f := newFeeder(t, nil)
	row := `{"id":"o1","order_number":"ORD-1","user_id":"u1","seller_id":"s1","status":"pending","total":10.50,"tracking_number":null,"notes":"a \"note\"\n","created_at":"2026-03-01T12:00:00.5+00:00"}`
	steps := []struct {
		name string
		c    *cdc.Change
		want string
	}{
		{"Insert", &cdc.Change{Op: cdc.OpInsert, Relation: relOrders, New: orderRow("pending", "10.50", "<null>", "a \"note\"\n")},
			`admin:room admin:new-order {"order":` + row + `,"timestamp":1772366400123}` + "\n" +
				`seller:s1 order:new ` + row + "\n"},
		{"Status", &cdc.Change{Op: cdc.OpUpdate, Relation: relOrders, Old: orderRow("pending", "10.50", "<null>", "n"), New: orderRow("paid", "10.50", "<null>", "n")},
			`order:o1 order:status-changed {"orderId":"o1","status":"paid","trackingNumber":null,"timestamp":1772366400123}` + "\n" +
				`user:u1 order:status {"id":"o1","orderNumber":"ORD-1","status":"paid","timestamp":1772366400123}` + "\n"},
		{"TrackingOnly", &cdc.Change{Op: cdc.OpUpdate, Relation: relOrders, Old: orderRow("paid", "10.50", "<null>", "n"), New: orderRow("paid", "10.50", "1Z", "n")},
			`order:o1 order:status-changed {"orderId":"o1","status":"paid","trackingNumber":"1Z","timestamp":1772366400123}` + "\n"},
		{"NotesOnly", &cdc.Change{Op: cdc.OpUpdate, Relation: relOrders, Old: orderRow("paid", "10.50", "1Z", "n"), New: orderRow("paid", "10.50", "1Z", "m")}, ""},
		{"Delete", &cdc.Change{Op: cdc.OpDelete, Relation: relOrders, Old: orderRow("paid", "10.50", "1Z", "m")}, ""},
	}
	for _, s := range steps {
		got := summary(f.tx(s.c))
		if got != s.want {
			t.Errorf("%s: got\n%s\nwant\n%s", s.name, got, s.want)
		}
		for _, line := range strings.Split(strings.TrimSpace(got), "\n") {
			if line == "" {
				continue
			}
			if p := line[strings.LastIndex(line[:strings.Index(line, "{")], " ")+1:]; !json.Valid([]byte(p)) {
				t.Errorf("%s: payload is not valid JSON: %s", s.name, p)
			}
		}
	}
}

func TestMapper_OrderUnchangedToast(t *testing.T) {
	f := newFeeder(t, nil)
	r := *relOrders
	r.ReplicaIdentity = 'd'
	// Without FULL the unchanged TOAST column stays "unchanged": the row JSON
	// leaves it out instead of inventing null. Status events fire (the change
	// cannot be seen without the old row).
	evs := f.tx(&cdc.Change{Op: cdc.OpUpdate, Relation: &r, New: orderRow("shipped", "10.50", "<null>", "<u>")})
	got := summary(evs)
	if !strings.Contains(got, "order:o1 order:status-changed") || !strings.Contains(got, "user:u1 order:status") {
		t.Errorf("update without old row: got\n%s\nwant status-changed and status", got)
	}
}

func TestMapper_EventIDs(t *testing.T) {
	f := newFeeder(t, nil)
	evs := f.tx(
		&cdc.Change{Op: cdc.OpInsert, Relation: relOrders, New: orderRow("pending", "1", "<null>", "<null>")},
		&cdc.Change{Op: cdc.OpInsert, Relation: relProducts, New: tup("p3", "X", "<null>")},
		inv(cdc.OpUpdate, tup("v1", "9", "0", "5"), tup("v1", "1", "0", "5")),
	)
	var got []string
	for _, e := range evs {
		if e.ID.LSN != f.lsn {
			t.Errorf("event %s LSN = %s, want %s", e.Name, e.ID.LSN, f.lsn)
		}
		got = append(got, e.ID.String()[strings.Index(e.ID.String(), "-")+1:])
	}
	if want := "0,1,8,9,10"; strings.Join(got, ",") != want {
		t.Errorf("event indexes = %v, want %s", got, want)
	}
}

func TestMapper_Metrics(t *testing.T) {
	f := newFeeder(t, nil)
	if _, ok := f.m.MetricsEvent(commit); ok {
		t.Fatal("MetricsEvent without changes: want none")
	}
	o := func(id, status, total string) cdc.Tuple {
		return tup(id, "N-"+id, "u1", "<null>", status, total, "<null>", "<null>", "2026-03-01 12:00:00+00")
	}
	f.tx(
		&cdc.Change{Op: cdc.OpInsert, Relation: relOrders, New: o("a", "paid", "10.10")},
		&cdc.Change{Op: cdc.OpInsert, Relation: relOrders, New: o("b", "pending", "20.25")},
		&cdc.Change{Op: cdc.OpInsert, Relation: relOrders, New: o("c", "cancelled", "99")},
	)
	f.tx(&cdc.Change{Op: cdc.OpUpdate, Relation: relOrders, Old: o("b", "pending", "20.25"), New: o("b", "refunded", "20.25")})
	f.tx(&cdc.Change{Op: cdc.OpUpdate, Relation: relOrders, Old: o("c", "cancelled", "99"), New: o("c", "paid", "5")})
	f.tx(&cdc.Change{Op: cdc.OpDelete, Relation: relOrders, Old: o("a", "paid", "10.10")})
	f.tx(&cdc.Change{Op: cdc.OpInsert, Relation: relOrders, New: o("d", "paid", "0.001")})
	ev, ok := f.m.MetricsEvent(time.UnixMilli(1000))
	if !ok {
		t.Fatal("MetricsEvent after changes: want an event")
	}
	want := `{"metrics":{"totalRevenue":5.001,"totalOrders":2,"averageOrderValue":2.5005},"timestamp":1000}`
	if string(ev.Payload) != want || ev.Room != cdc.RoomMetrics || ev.Name != cdc.EventMetricsUpdated || !ev.ID.IsZero() {
		t.Errorf("MetricsEvent = %s %s %s %v, want %s admin:metrics zero id", ev.Room, ev.Name, ev.Payload, ev.ID, want)
	}
	if got := string(f.m.CurrentMetrics()); !strings.HasPrefix(got, `{"metrics":{"totalRevenue":5.001,"totalOrders":2,`) {
		t.Errorf("CurrentMetrics = %s", got)
	}
	// A redelivered transaction does not count twice.
	f.lsn -= 0x100
	f.tx(&cdc.Change{Op: cdc.OpInsert, Relation: relOrders, New: o("d", "paid", "0.001")})
	if _, ok := f.m.MetricsEvent(commit); ok {
		t.Error("redelivered transaction changed the metrics")
	}
	// Truncate resets.
	f.tx(&cdc.Change{Op: cdc.OpTruncate, Relation: relOrders, Truncated: []*cdc.Relation{relOrders}})
	if ev, ok := f.m.MetricsEvent(commit); !ok || !strings.Contains(string(ev.Payload), `"totalRevenue":0,"totalOrders":0,"averageOrderValue":0`) {
		t.Errorf("after truncate: %s %v", ev.Payload, ok)
	}
}

func msg(prefix, content string) *cdc.Change {
	return &cdc.Change{Op: cdc.OpMessage, Prefix: prefix, Content: []byte(content)}
}

func TestMapper_Messages(t *testing.T) {
	f := newFeeder(t, nil)
	evs := f.tx(
		msg("walcast", `{"room": "user:u1", "event": "notification", "payload": {"type": "info", "title": "Hi", "message": "Shipped"}}`),
		msg("walcast.heartbeat", `2026-03-01 12:00:00+00`),
		msg("someone.else", `{"room":"x","event":"y"}`),
		msg("walcast", `{"room": "r", "event": "e"}`),
	)
	want := `user:u1 notification {"type": "info", "title": "Hi", "message": "Shipped"}` + "\nr e null\n"
	if got := summary(evs); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	bad := []string{`not json`, `{"room":"","event":"e"}`, `{"room":"r"}`, `{"room":1,"event":"e"}`,
		`{"room":"r","event":"disconnect"}`, `{"room":"r\n","event":"e"}`, `[]`, `{"room":"r","event":"e","payload":}`}
	for _, b := range bad {
		if evs := f.tx(msg("walcast", b)); len(evs) != 0 {
			t.Errorf("bad message %s gave events %s", b, summary(evs))
		}
	}
	if got := f.m.Stats().BadMessages; got != uint64(len(bad)) {
		t.Errorf("Stats().BadMessages = %d, want %d", got, len(bad))
	}
}

func TestMapper_EventsSwitchedOff(t *testing.T) {
	mp, err := cdc.ParseMapping([]byte(`{"events": {"order:new": false, "walcast.emit": false, "product:stock-updated": false}}`))
	if err != nil {
		t.Fatal(err)
	}
	f := newFeeder(t, mp)
	evs := f.tx(
		&cdc.Change{Op: cdc.OpInsert, Relation: relOrders, New: orderRow("pending", "1", "<null>", "<null>")},
		msg("walcast", `{"room":"r","event":"e"}`),
		inv(cdc.OpInsert, nil, tup("v1", "50", "0", "5")),
	)
	if got := summary(evs); !strings.HasPrefix(got, "admin:room admin:new-order") || strings.Count(got, "\n") != 1 {
		t.Errorf("got\n%s\nwant only admin:new-order", got)
	}
}

func TestMapper_OtherNames(t *testing.T) {
	mp, err := cdc.ParseMapping([]byte(`{
		"orders": {"table": "shop.purchases", "id": "purchase_id", "sellerId": "", "trackingNumber": ""},
		"inventory": {"table": "stock", "variantId": "sku_id", "quantity": "on_hand", "reserved": "", "lowStockThreshold": ""},
		"lowStockThreshold": 3}`))
	if err != nil {
		t.Fatal(err)
	}
	f := newFeeder(t, mp)
	purchases := &cdc.Relation{ID: 10, Namespace: "shop", Name: "purchases", ReplicaIdentity: 'f', Columns: []cdc.Column{
		col("purchase_id", tInt4), col("order_number", tText), col("user_id", tText), col("status", tText), col("total", tNumeric)}}
	stock := rel(11, "stock", 'f', col("sku_id", tUUID), col("on_hand", tInt4))
	evs := f.tx(
		&cdc.Change{Op: cdc.OpInsert, Relation: purchases, New: tup("7", "N7", "u9", "new", "12.00")},
		&cdc.Change{Op: cdc.OpUpdate, Relation: purchases, Old: tup("7", "N7", "u9", "new", "12.00"), New: tup("7", "N7", "u9", "paid", "12.00")},
		&cdc.Change{Op: cdc.OpUpdate, Relation: stock, Old: tup("v1", "4"), New: tup("v1", "3")},
		&cdc.Change{Op: cdc.OpInsert, Relation: relOrders, New: orderRow("pending", "1", "<null>", "<null>")}, // public.orders is not mapped now
	)
	got := summary(evs)
	for _, want := range []string{
		`admin:room admin:new-order {"order":{"purchase_id":7,"order_number":"N7","user_id":"u9","status":"new","total":12.00}`,
		`order:7 order:status-changed {"orderId":7,"status":"paid","trackingNumber":null,`,
		`user:u9 order:status {"id":7,"orderNumber":"N7","status":"paid",`,
		`product:p1 product:stock-updated {"variantId":"v1","productId":"p1","available":3,`,
		`admin:room admin:low-stock`,
		`seller:s1 inventory:low-stock {"id":"p1","name":"T-Shirt","stock":3,`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("got\n%s\nwant a line containing %s", got, want)
		}
	}
	if strings.Count(got, "\n") != 6 {
		t.Errorf("got %d events, want 6:\n%s", strings.Count(got, "\n"), got)
	}
}

func TestParseMapping_Errors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"orders": {"tabel": "x"}}`, `unknown field "tabel"`},
		{`{"events": {"order:nwe": false}}`, `unknown event "order:nwe"`},
		{`{"orders": {"id": ""}}`, `orders.id: a column name is required`},
		{`{"inventory": {"table": "a.b.c"}}`, `inventory.table: bad table name`},
		{`{} {}`, `trailing data`},
	} {
		_, err := cdc.ParseMapping([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseMapping(%s): err = %v, want one containing %q", tc.in, err, tc.want)
		}
	}
	mp, err := cdc.ParseMapping([]byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(mp.Tables(), ","); got != "public.orders,public.inventory,public.variants,public.products" {
		t.Errorf("default Tables() = %s", got)
	}
}
