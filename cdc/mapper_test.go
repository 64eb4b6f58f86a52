package cdc_test

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/internal/testutil"
)

// Type OIDs used by the hand-built relations.
const (
	mtUUID        = 2950
	mtText        = 25
	mtInt4        = 23
	mtNumeric     = 1700
	mtTimestamptz = 1184
	mtBool        = 16
	mtJSONB       = 3802
	mtEnum        = 16400 // a user-defined enum: no special encoding
)

func mRel(id uint32, name string, ident byte, cols ...cdc.Column) *cdc.Relation {
	return &cdc.Relation{ID: id, Namespace: "public", Name: name, ReplicaIdentity: ident, Columns: cols}
}

func mCol(name string, oid uint32) cdc.Column { return cdc.Column{Name: name, TypeOID: oid} }

var (
	mRelProducts  = mRel(1, "products", 'd', mCol("id", mtUUID), mCol("name", mtText), mCol("seller_id", mtUUID))
	mRelVariants  = mRel(2, "variants", 'd', mCol("id", mtUUID), mCol("product_id", mtUUID), mCol("name", mtText), mCol("sku", mtText), mCol("price", mtNumeric))
	mRelInventory = mRel(3, "inventory", 'f', mCol("variant_id", mtUUID), mCol("quantity", mtInt4), mCol("reserved", mtInt4), mCol("low_stock_threshold", mtInt4))
	mRelOrders    = mRel(4, "orders", 'f', mCol("id", mtUUID), mCol("order_number", mtText), mCol("user_id", mtUUID), mCol("seller_id", mtUUID),
		mCol("status", mtEnum), mCol("total", mtNumeric), mCol("tracking_number", mtText), mCol("notes", mtText), mCol("created_at", mtTimestamptz))
)

// tup builds a tuple: "<null>" is NULL, "<u>" an unchanged TOAST value.
func mTup(vals ...string) cdc.Tuple {
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

var mCommit = time.Date(2026, 3, 1, 12, 0, 0, 123e6, time.UTC)

// mFeeder hands changes to a Mapper with increasing LSNs.
type mFeeder struct {
	t   *testing.T
	m   *cdc.Mapper
	lsn cdc.LSN
}

func newMFeeder(t *testing.T, mp *cdc.Mapping) *mFeeder {
	t.Helper()
	m, err := cdc.NewMapper(cdc.MapperConfig{Mapping: mp, Logger: testutil.Logger(t, slog.LevelDebug), EmitKey: mKey})
	if err != nil {
		t.Fatalf("NewMapper: %v", err)
	}
	f := &mFeeder{t: t, m: m, lsn: 0x1000}
	f.tx(
		&cdc.Change{Op: cdc.OpInsert, Relation: mRelProducts, New: mTup("p1", "T-Shirt", "s1")},
		&cdc.Change{Op: cdc.OpInsert, Relation: mRelProducts, New: mTup("p2", "Mug", "<null>")},
		&cdc.Change{Op: cdc.OpInsert, Relation: mRelVariants, New: mTup("v1", "p1", "Small", "TS-S", "19.99")},
		&cdc.Change{Op: cdc.OpInsert, Relation: mRelVariants, New: mTup("v2", "p2", "White", "M-W", "9.50")},
	)
	return f
}

// tx maps changes as one transaction and returns the events.
func (f *mFeeder) tx(changes ...*cdc.Change) []cdc.Event {
	f.t.Helper()
	f.lsn += 0x100
	var evs []cdc.Event
	for i, c := range changes {
		c.CommitLSN, c.CommitTime, c.Index, c.XID = f.lsn, mCommit, uint32(i), 700
		var err error
		evs, err = f.m.Map(evs, c)
		if err != nil {
			f.t.Fatalf("Map(%s %v): %v", c.Op, c.Relation, err)
		}
	}
	return evs
}

// summary renders events as "room event payload" lines.
func mSummary(evs []cdc.Event) string {
	var b strings.Builder
	for _, e := range evs {
		b.WriteString(e.Room + " " + e.Name + " " + string(e.Payload) + "\n")
	}
	return b.String()
}

func mInv(op cdc.Op, old, new cdc.Tuple) *cdc.Change {
	return &cdc.Change{Op: op, Relation: mRelInventory, Old: old, New: new}
}

func TestMapper_Inventory(t *testing.T) {
	f := newMFeeder(t, nil)
	ms := mCommit.UnixMilli()
	_ = ms
	steps := []struct {
		name string
		c    *cdc.Change
		want string
	}{
		{"InsertHigh", mInv(cdc.OpInsert, nil, mTup("v1", "10", "2", "5")),
			`product:p1 product:stock-updated {"variantId":"v1","productId":"p1","available":8,"timestamp":1772366400123}` + "\n"},
		{"CrossDown", mInv(cdc.OpUpdate, mTup("v1", "10", "2", "5"), mTup("v1", "7", "2", "5")),
			`product:p1 product:stock-updated {"variantId":"v1","productId":"p1","available":5,"timestamp":1772366400123}` + "\n" +
				`admin:room admin:low-stock {"variant":{"id":"v1","product_id":"p1","product_name":"T-Shirt","name":"Small","available":5,"threshold":5},"variantId":"v1","available":5,"threshold":5,"timestamp":1772366400123}` + "\n" +
				`seller:s1 inventory:low-stock {"id":"p1","name":"T-Shirt","stock":5,"variantId":"v1","variantName":"Small","threshold":5,"timestamp":1772366400123}` + "\n"},
		{"StayLow", mInv(cdc.OpUpdate, mTup("v1", "7", "2", "5"), mTup("v1", "6", "2", "5")),
			`product:p1 product:stock-updated {"variantId":"v1","productId":"p1","available":4,"timestamp":1772366400123}` + "\n"},
		{"SameAvailable", mInv(cdc.OpUpdate, mTup("v1", "6", "2", "5"), mTup("v1", "7", "3", "5")), ""},
		{"BackUp", mInv(cdc.OpUpdate, mTup("v1", "7", "3", "5"), mTup("v1", "50", "3", "5")),
			`product:p1 product:stock-updated {"variantId":"v1","productId":"p1","available":47,"timestamp":1772366400123}` + "\n"},
		{"ThresholdRaised", mInv(cdc.OpUpdate, mTup("v1", "50", "3", "5"), mTup("v1", "50", "3", "50")),
			`admin:room admin:low-stock {"variant":{"id":"v1","product_id":"p1","product_name":"T-Shirt","name":"Small","available":47,"threshold":50},"variantId":"v1","available":47,"threshold":50,"timestamp":1772366400123}` + "\n" +
				`seller:s1 inventory:low-stock {"id":"p1","name":"T-Shirt","stock":47,"variantId":"v1","variantName":"Small","threshold":50,"timestamp":1772366400123}` + "\n"},
		{"NoSellerNoSellerEvent", mInv(cdc.OpInsert, nil, mTup("v2", "1", "0", "<null>")),
			`product:p2 product:stock-updated {"variantId":"v2","productId":"p2","available":1,"timestamp":1772366400123}` + "\n" +
				`admin:room admin:low-stock {"variant":{"id":"v2","product_id":"p2","product_name":"Mug","name":"White","available":1,"threshold":5},"variantId":"v2","available":1,"threshold":5,"timestamp":1772366400123}` + "\n"},
		{"Delete", mInv(cdc.OpDelete, mTup("v1", "50", "3", "50"), nil), ""},
	}
	for _, s := range steps {
		got := mSummary(f.tx(s.c))
		if got != s.want {
			t.Errorf("%s: got\n%s\nwant\n%s", s.name, got, s.want)
		}
	}
}

func TestMapper_InventoryWithoutFullIdentity(t *testing.T) {
	f := newMFeeder(t, nil)
	r := *mRelInventory
	r.ReplicaIdentity = 'd'
	evs := f.tx(&cdc.Change{Op: cdc.OpUpdate, Relation: &r, New: mTup("v1", "1", "0", "5")})
	if len(evs) != 1 || evs[0].Name != cdc.EventStockUpdated {
		t.Fatalf("update without old row: got %s, want just product:stock-updated (no invented crossing)", mSummary(evs))
	}
	if got := f.m.Stats().MissingOldImage; got != 1 {
		t.Errorf("Stats().MissingOldImage = %d, want 1", got)
	}
}

func TestMapper_LookupFreshFromStream(t *testing.T) {
	f := newMFeeder(t, nil)
	// The variant moves to product p2; the product is renamed.
	f.tx(&cdc.Change{Op: cdc.OpUpdate, Relation: mRelVariants, New: mTup("v1", "p2", "Small", "TS-S", "19.99")},
		&cdc.Change{Op: cdc.OpUpdate, Relation: mRelProducts, New: mTup("p2", "Big Mug", "s2")})
	evs := f.tx(mInv(cdc.OpInsert, nil, mTup("v1", "2", "0", "5")))
	got := mSummary(evs)
	for _, want := range []string{"product:p2 product:stock-updated", `"product_name":"Big Mug"`, "seller:s2 inventory:low-stock"} {
		if !strings.Contains(got, want) {
			t.Errorf("after variant/product updates got\n%s\nwant it to contain %s", got, want)
		}
	}
	// Deleted variant: no room to send stock to; counted as a lookup miss.
	f.tx(&cdc.Change{Op: cdc.OpDelete, Relation: mRelVariants, Old: mTup("v1", "<null>", "<null>", "<null>", "<null>")})
	evs = f.tx(mInv(cdc.OpUpdate, mTup("v1", "2", "0", "5"), mTup("v1", "3", "0", "5")))
	if len(evs) != 0 {
		t.Errorf("inventory of a deleted variant: got %s, want no events", mSummary(evs))
	}
	if f.m.Stats().LookupMisses == 0 {
		t.Error("Stats().LookupMisses = 0, want > 0")
	}
}

func mOrderRow(status, total, tracking, notes string) cdc.Tuple {
	return mTup("o1", "ORD-1", "u1", "s1", status, total, tracking, notes, "2026-03-01 12:00:00.5+00")
}

func TestMapper_Orders(t *testing.T) {
	f := newMFeeder(t, nil)
	row := `{"id":"o1","order_number":"ORD-1","user_id":"u1","seller_id":"s1","status":"pending","total":10.5,"tracking_number":null,"notes":"a \"note\"\n","created_at":"2026-03-01T12:00:00.5+00:00"}`
	steps := []struct {
		name string
		c    *cdc.Change
		want string
	}{
		{"Insert", &cdc.Change{Op: cdc.OpInsert, Relation: mRelOrders, New: mOrderRow("pending", "10.50", "<null>", "a \"note\"\n")},
			`admin:room admin:new-order {"order":` + row + `,"timestamp":1772366400123}` + "\n" +
				`seller:s1 order:new ` + row + "\n"},
		{"Status", &cdc.Change{Op: cdc.OpUpdate, Relation: mRelOrders, Old: mOrderRow("pending", "10.50", "<null>", "n"), New: mOrderRow("paid", "10.50", "<null>", "n")},
			`order:o1 order:status-changed {"orderId":"o1","status":"paid","trackingNumber":null,"timestamp":1772366400123}` + "\n" +
				`user:u1 order:status {"id":"o1","orderNumber":"ORD-1","status":"paid","timestamp":1772366400123}` + "\n"},
		{"TrackingOnly", &cdc.Change{Op: cdc.OpUpdate, Relation: mRelOrders, Old: mOrderRow("paid", "10.50", "<null>", "n"), New: mOrderRow("paid", "10.50", "1Z", "n")},
			`order:o1 order:status-changed {"orderId":"o1","status":"paid","trackingNumber":"1Z","timestamp":1772366400123}` + "\n"},
		{"NotesOnly", &cdc.Change{Op: cdc.OpUpdate, Relation: mRelOrders, Old: mOrderRow("paid", "10.50", "1Z", "n"), New: mOrderRow("paid", "10.50", "1Z", "m")}, ""},
		{"Delete", &cdc.Change{Op: cdc.OpDelete, Relation: mRelOrders, Old: mOrderRow("paid", "10.50", "1Z", "m")}, ""},
	}
	for _, s := range steps {
		got := mSummary(f.tx(s.c))
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
	f := newMFeeder(t, nil)
	r := *mRelOrders
	r.ReplicaIdentity = 'd'
	// Without FULL the unchanged TOAST column stays "unchanged": the row JSON
	// leaves it out instead of inventing null. Status events fire (the change
	// cannot be seen without the old row).
	evs := f.tx(&cdc.Change{Op: cdc.OpUpdate, Relation: &r, New: mOrderRow("shipped", "10.50", "<null>", "<u>")})
	got := mSummary(evs)
	if !strings.Contains(got, "order:o1 order:status-changed") || !strings.Contains(got, "user:u1 order:status") {
		t.Errorf("update without old row: got\n%s\nwant status-changed and status", got)
	}
}

func TestMapper_EventIDs(t *testing.T) {
	f := newMFeeder(t, nil)
	evs := f.tx(
		&cdc.Change{Op: cdc.OpInsert, Relation: mRelOrders, New: mOrderRow("pending", "1", "<null>", "<null>")},
		&cdc.Change{Op: cdc.OpInsert, Relation: mRelProducts, New: mTup("p3", "X", "<null>")},
		mInv(cdc.OpUpdate, mTup("v1", "9", "0", "5"), mTup("v1", "1", "0", "5")),
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
	f := newMFeeder(t, nil)
	if _, ok := f.m.MetricsEvent(mCommit); ok {
		t.Fatal("MetricsEvent without changes: want none")
	}
	o := func(id, status, total string) cdc.Tuple {
		return mTup(id, "N-"+id, "u1", "<null>", status, total, "<null>", "<null>", "2026-03-01 12:00:00+00")
	}
	f.tx(
		&cdc.Change{Op: cdc.OpInsert, Relation: mRelOrders, New: o("a", "paid", "10.10")},
		&cdc.Change{Op: cdc.OpInsert, Relation: mRelOrders, New: o("b", "pending", "20.25")},
		&cdc.Change{Op: cdc.OpInsert, Relation: mRelOrders, New: o("c", "cancelled", "99")},
	)
	f.tx(&cdc.Change{Op: cdc.OpUpdate, Relation: mRelOrders, Old: o("b", "pending", "20.25"), New: o("b", "refunded", "20.25")})
	f.tx(&cdc.Change{Op: cdc.OpUpdate, Relation: mRelOrders, Old: o("c", "cancelled", "99"), New: o("c", "paid", "5")})
	f.tx(&cdc.Change{Op: cdc.OpDelete, Relation: mRelOrders, Old: o("a", "paid", "10.10")})
	f.tx(&cdc.Change{Op: cdc.OpInsert, Relation: mRelOrders, New: o("d", "paid", "0.001")})
	ev, ok := f.m.MetricsEvent(time.UnixMilli(1000))
	if !ok {
		t.Fatal("MetricsEvent after changes: want an event")
	}
	want := `{"metrics":{"totalRevenue":5.001,"totalOrders":2,"averageOrderValue":2.5005},"timestamp":1772366400123}`
	if string(ev.Payload) != want || ev.Room != cdc.RoomMetrics || ev.Name != cdc.EventMetricsUpdated || !ev.ID.IsZero() {
		t.Errorf("MetricsEvent = %s %s %s %v, want %s admin:metrics zero id", ev.Room, ev.Name, ev.Payload, ev.ID, want)
	}
	if got := string(f.m.CurrentMetrics()); !strings.HasPrefix(got, `{"metrics":{"totalRevenue":5.001,"totalOrders":2,`) {
		t.Errorf("CurrentMetrics = %s", got)
	}
	// A redelivered transaction does not count twice.
	f.lsn -= 0x100
	f.tx(&cdc.Change{Op: cdc.OpInsert, Relation: mRelOrders, New: o("d", "paid", "0.001")})
	if _, ok := f.m.MetricsEvent(mCommit); ok {
		t.Error("redelivered transaction changed the metrics")
	}
	// Truncate resets.
	f.tx(&cdc.Change{Op: cdc.OpTruncate, Relation: mRelOrders, Truncated: []*cdc.Relation{mRelOrders}})
	if ev, ok := f.m.MetricsEvent(mCommit); !ok || !strings.Contains(string(ev.Payload), `"totalRevenue":0,"totalOrders":0,"averageOrderValue":0`) {
		t.Errorf("after truncate: %s %v", ev.Payload, ok)
	}
}

// mKey is the feeder's emit key; mMsg signs "walcast" messages with it for
// the feeder's xid (700), as walcast.emit would.
var mKey, _ = cdc.NewEmitKey([]byte("0123456789abcdef0123456789abcdef"))

func mMsg(prefix, content string) *cdc.Change {
	if prefix == cdc.MessagePrefix {
		return &cdc.Change{Op: cdc.OpMessage, Prefix: prefix, Content: mKey.SignEmit(700, []byte(content))}
	}
	return &cdc.Change{Op: cdc.OpMessage, Prefix: prefix, Content: []byte(content)}
}

// TestMapper_UnverifiedMessages: a "walcast" message is delivered only with
// walcast.emit's signature for its own transaction.
func TestMapper_UnverifiedMessages(t *testing.T) {
	f := newMFeeder(t, nil)
	body := `{"room":"user:u1","event":"notification","payload":{"title":"sign in again at http://evil.example"}}`
	other, _ := cdc.NewEmitKey([]byte("another key, not walcast's: 32 b"))
	sig := string(mKey.SignEmit(700, []byte(body))[:64])
	for name, content := range map[string]string{
		"Unsigned":       body,
		"OtherKey":       string(other.SignEmit(700, []byte(body))),
		"OtherXID":       string(mKey.SignEmit(701, []byte(body))),
		"BodyChanged":    sig + strings.Replace(body, "u1", "u2", 1),
		"SignatureOnly":  sig,
		"TruncatedSig":   sig[:63] + body,
		"ZeroSignature":  strings.Repeat("0", 64) + body,
		"EmptyContent":   "",
		"NotHexSigLater": strings.Repeat("z", 64) + body,
	} {
		t.Run(name, func(t *testing.T) {
			before := f.m.Stats().Unverified
			evs := f.tx(&cdc.Change{Op: cdc.OpMessage, Prefix: cdc.MessagePrefix, Content: []byte(content)})
			if len(evs) != 0 {
				t.Errorf("Map gave %d events (%s), want 0", len(evs), mSummary(evs))
			}
			if got := f.m.Stats().Unverified - before; got != 1 {
				t.Errorf("Stats().Unverified grew by %d, want 1", got)
			}
		})
	}
	if evs := f.tx(mMsg(cdc.MessagePrefix, body)); len(evs) != 1 {
		t.Errorf("signed message: %d events, want 1", len(evs))
	}
	if got := f.m.Stats().BadMessages; got != 0 {
		t.Errorf("Stats().BadMessages = %d, want 0 (unverified messages are not parsed)", got)
	}
	// Without a key (walcast.emit_key unreadable) nothing verifies.
	m, err := cdc.NewMapper(cdc.MapperConfig{Logger: testutil.Logger(t, slog.LevelDebug)})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := m.Map(nil, &cdc.Change{Op: cdc.OpMessage, Prefix: cdc.MessagePrefix, XID: 700, Content: mKey.SignEmit(700, []byte(body))})
	if err != nil || len(evs) != 0 || m.Stats().Unverified != 1 {
		t.Errorf("no key: %d events, Unverified %d, err %v; want 0, 1, nil", len(evs), m.Stats().Unverified, err)
	}
}

func TestMapper_Messages(t *testing.T) {
	f := newMFeeder(t, nil)
	evs := f.tx(
		mMsg("walcast", `{"room": "user:u1", "event": "notification", "payload": {"type": "info", "title": "Hi", "message": "Shipped"}}`),
		mMsg("walcast.heartbeat", `2026-03-01 12:00:00+00`),
		mMsg("someone.else", `{"room":"x","event":"y"}`),
		mMsg("walcast", `{"room": "r", "event": "e"}`),
	)
	// The payload in canonical form (no spaces), as it is after Redis.
	want := `user:u1 notification {"type":"info","title":"Hi","message":"Shipped"}` + "\nr e null\n"
	if got := mSummary(evs); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	bad := []string{`not json`, `{"room":"","event":"e"}`, `{"room":"r"}`, `{"room":1,"event":"e"}`,
		`{"room":"r","event":"disconnect"}`, `{"room":"r\n","event":"e"}`, `[]`, `{"room":"r","event":"e","payload":}`,
		`{"room":"r","event":"e","payload":"` + strings.Repeat("x", cdc.MaxEmitBytes) + `"}`}
	for _, b := range bad {
		if evs := f.tx(mMsg("walcast", b)); len(evs) != 0 {
			t.Errorf("bad message %s gave events %s", b, mSummary(evs))
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
	f := newMFeeder(t, mp)
	evs := f.tx(
		&cdc.Change{Op: cdc.OpInsert, Relation: mRelOrders, New: mOrderRow("pending", "1", "<null>", "<null>")},
		mMsg("walcast", `{"room":"r","event":"e"}`),
		mInv(cdc.OpInsert, nil, mTup("v1", "50", "0", "5")),
	)
	if got := mSummary(evs); !strings.HasPrefix(got, "admin:room admin:new-order") || strings.Count(got, "\n") != 1 {
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
	f := newMFeeder(t, mp)
	purchases := &cdc.Relation{ID: 10, Namespace: "shop", Name: "purchases", ReplicaIdentity: 'f', Columns: []cdc.Column{
		mCol("purchase_id", mtInt4), mCol("order_number", mtText), mCol("user_id", mtText), mCol("status", mtText), mCol("total", mtNumeric)}}
	stock := mRel(11, "stock", 'f', mCol("sku_id", mtUUID), mCol("on_hand", mtInt4))
	evs := f.tx(
		&cdc.Change{Op: cdc.OpInsert, Relation: purchases, New: mTup("7", "N7", "u9", "new", "12.00")},
		&cdc.Change{Op: cdc.OpUpdate, Relation: purchases, Old: mTup("7", "N7", "u9", "new", "12.00"), New: mTup("7", "N7", "u9", "paid", "12.00")},
		&cdc.Change{Op: cdc.OpUpdate, Relation: stock, Old: mTup("v1", "4"), New: mTup("v1", "3")},
		&cdc.Change{Op: cdc.OpInsert, Relation: mRelOrders, New: mOrderRow("pending", "1", "<null>", "<null>")}, // public.orders is not mapped now
	)
	got := mSummary(evs)
	for _, want := range []string{
		`admin:room admin:new-order {"order":{"purchase_id":7,"order_number":"N7","user_id":"u9","status":"new","total":12}`,
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
		{`{"variants": {"table": "orders"}}`, `variants.table: public.orders is already mapped as orders`},
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
