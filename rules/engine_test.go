package rules_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/rules"
)

const (
	tUUID    = 2950
	tText    = 25
	tInt4    = 23
	tNumeric = 1700
	tTSTZ    = 1184
	tEnum    = 16400
)

func rel(id uint32, name string, ident byte, cols ...cdc.Column) *cdc.Relation {
	return &cdc.Relation{ID: id, Namespace: "public", Name: name, ReplicaIdentity: ident, Columns: cols}
}

func col(name string, oid uint32) cdc.Column { return cdc.Column{Name: name, TypeOID: oid} }

var (
	relProducts  = rel(1, "products", 'd', col("id", tUUID), col("name", tText), col("seller_id", tUUID))
	relVariants  = rel(2, "variants", 'd', col("id", tUUID), col("product_id", tUUID), col("name", tText), col("sku", tText), col("price", tNumeric))
	relInventory = rel(3, "inventory", 'f', col("variant_id", tUUID), col("quantity", tInt4), col("reserved", tInt4), col("low_stock_threshold", tInt4))
	relInvDef    = rel(3, "inventory", 'd', relInventory.Columns...)
	relOrders    = rel(4, "orders", 'f', col("id", tUUID), col("order_number", tText), col("user_id", tUUID), col("seller_id", tUUID),
		col("status", tEnum), col("total", tNumeric), col("tracking_number", tText), col("notes", tText), col("created_at", tTSTZ))
	relOrdersDef = rel(4, "orders", 'd', relOrders.Columns...)
)

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

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

const (
	p1, p2 = "10000000-0000-4000-8000-000000000001", "10000000-0000-4000-8000-000000000002"
	v1, v2 = "20000000-0000-4000-8000-000000000001", "20000000-0000-4000-8000-000000000002"
	s1, s2 = "00000000-0000-4000-8000-000000000011", "00000000-0000-4000-8000-000000000012"
	o1     = "30000000-0000-4000-8000-000000000101"
	u1     = "00000000-0000-4000-8000-000000000101"
)

func order(status, tracking, seller string) cdc.Tuple {
	return tup(o1, "ORD-2001", u1, seller, status, "59.97", tracking, "leave \"it\" at the door", "2026-02-10 08:30:00.123+00")
}

// changes is a stream that exercises every built-in row rule: lookups
// filled and changed from the stream, stock changes and crossings, lookup
// misses, orders inserted and updated, with and without full old images.
func changes() []*cdc.Change {
	return []*cdc.Change{
		{Op: cdc.OpInsert, Relation: relProducts, New: tup(p1, "Classic T-Shirt", s1)},
		{Op: cdc.OpInsert, Relation: relProducts, New: tup(p2, "Mug", "<null>")},
		{Op: cdc.OpInsert, Relation: relVariants, New: tup(v1, p1, "Small", "TS-S", "19.99")},
		{Op: cdc.OpInsert, Relation: relVariants, New: tup(v2, p2, "<null>", "MUG", "9.99")},
		{Op: cdc.OpInsert, Relation: relInventory, New: tup(v1, "40", "2", "5")},
		{Op: cdc.OpUpdate, Relation: relInventory, Old: tup(v1, "40", "2", "5"), New: tup(v1, "39", "2", "5")},
		{Op: cdc.OpUpdate, Relation: relInventory, Old: tup(v1, "39", "2", "5"), New: tup(v1, "7", "2", "5")},
		{Op: cdc.OpUpdate, Relation: relInventory, Old: tup(v1, "7", "2", "5"), New: tup(v1, "8", "3", "5")},
		{Op: cdc.OpUpdate, Relation: relInventory, Old: tup(v1, "8", "3", "5"), New: tup(v1, "4", "<null>", "<null>")},
		{Op: cdc.OpUpdate, Relation: relInventory, Old: tup(v2, "50", "0", "5"), New: tup(v2, "2", "0", "5")},
		{Op: cdc.OpInsert, Relation: relInventory, New: tup("20000000-0000-4000-8000-00000000dead", "1", "0", "5")},
		{Op: cdc.OpUpdate, Relation: relInvDef, New: tup(v1, "1", "0", "5")},
		{Op: cdc.OpUpdate, Relation: relInventory, Old: tup(v1, "8", "1", "5"), New: tup(v1, "<null>", "1", "5")},
		{Op: cdc.OpUpdate, Relation: relProducts, Old: tup(p1, "x", s1), New: tup(p1, "Classic \"Tee\"", s2)},
		{Op: cdc.OpUpdate, Relation: relVariants, New: tup(v2, p1, "Mug-sized", "MUG", "9.99")},
		{Op: cdc.OpUpdate, Relation: relInventory, Old: tup(v2, "50", "0", "5"), New: tup(v2, "3", "0", "5")},
		{Op: cdc.OpDelete, Relation: relInventory, Old: tup(v2, "3", "0", "5")},
		{Op: cdc.OpInsert, Relation: relOrders, New: order("pending", "<null>", s1)},
		{Op: cdc.OpInsert, Relation: relOrders, New: order("pending", "<null>", "<null>")},
		{Op: cdc.OpUpdate, Relation: relOrders, Old: order("pending", "<null>", s1), New: order("shipped", "1Z999", s1)},
		{Op: cdc.OpUpdate, Relation: relOrders, Old: order("shipped", "1Z999", s1), New: order("shipped", "1Z998", s1)},
		{Op: cdc.OpUpdate, Relation: relOrders, Old: order("shipped", "1Z998", s1), New: order("shipped", "1Z998", s1)},
		{Op: cdc.OpUpdate, Relation: relOrdersDef, New: order("delivered", "1Z998", s1)},
		{Op: cdc.OpDelete, Relation: relOrders, Old: order("delivered", "1Z998", s1)},
	}
}

func describe(evs []cdc.Event) string {
	var b bytes.Buffer
	for _, e := range evs {
		if e.Room == cdc.RoomMetrics {
			continue
		}
		fmt.Fprintf(&b, "%d-%d %s %s %s\n", e.ID.LSN, e.ID.Index, e.Room, e.Name, e.Payload)
	}
	return b.String()
}

// TestEngine_SameEventsAsMapper runs one stream through cdc.Mapper and
// through the Engine with the built-in rules: the row events must be
// byte-identical, and so must the counters they share.
func TestEngine_SameEventsAsMapper(t *testing.T) {
	r, err := rules.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	en := rules.New(r, discard())
	m, err := cdc.NewMapper(cdc.MapperConfig{Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 1, 12, 0, 0, 123e6, time.UTC)
	var got, want []cdc.Event
	for i, c := range changes() {
		c.CommitLSN, c.CommitTime, c.Index = cdc.LSN(1000+i), at.Add(time.Duration(i)*time.Second), uint32(i%3)
		want, err = m.Map(want, c)
		if err != nil {
			t.Fatal(err)
		}
		got, err = en.Map(got, c)
		if err != nil {
			t.Fatal(err)
		}
	}
	if g, w := describe(got), describe(want); g != w {
		t.Errorf("events differ\ngot:\n%s\nwant (cdc.Mapper):\n%s", g, w)
	}
	t.Logf("%d events, identical:\n%s", len(got), describe(got))
	if len(got) < 12 {
		t.Errorf("only %d events: the stream does not exercise the rules", len(got))
	}
	st, ms := en.Stats(), m.Stats()
	if st.LookupMisses != ms.LookupMisses {
		t.Errorf("LookupMisses = %d, mapper %d", st.LookupMisses, ms.LookupMisses)
	}
	if st.MissingOldImage != ms.MissingOldImage {
		t.Errorf("MissingOldImage = %d, mapper %d", st.MissingOldImage, ms.MissingOldImage)
	}
	// The order_totals aggregate follows the stream like the mapper's metrics.
	ge, gok := en.MetricsEvent(at)
	we, wok := m.MetricsEvent(at)
	if gok != wok || string(ge.Payload) != string(we.Payload) || ge.Room != we.Room || ge.Name != we.Name {
		t.Errorf("MetricsEvent = %v %s %s %s, mapper %v %s %s %s", gok, ge.Room, ge.Name, ge.Payload, wok, we.Room, we.Name, we.Payload)
	}
	if _, again := en.MetricsEvent(at); again {
		t.Error("MetricsEvent again without a change: want false")
	}
}

// BenchmarkMap maps the same rows through cdc.Mapper (engine=mapper) and
// through the Engine with the built-in rules (engine=rules), in one run.
func BenchmarkMap(b *testing.B) {
	r, err := rules.Builtin()
	if err != nil {
		b.Fatal(err)
	}
	en := rules.New(r, discard())
	m, err := cdc.NewMapper(cdc.MapperConfig{Logger: discard()})
	if err != nil {
		b.Fatal(err)
	}
	engines := []struct {
		name string
		t    cdc.Transformer
	}{{"mapper", m}, {"rules", en}}
	for _, e := range engines {
		for _, c := range changes()[:4] {
			if _, err := e.t.Map(nil, c); err != nil {
				b.Fatal(err)
			}
		}
	}
	cases := []struct {
		name string
		c    *cdc.Change
	}{
		{"inventory=stock", &cdc.Change{Op: cdc.OpUpdate, Relation: relInventory, Old: tup(v1, "40", "2", "5"), New: tup(v1, "39", "2", "5")}},
		{"inventory=crossing", &cdc.Change{Op: cdc.OpUpdate, Relation: relInventory, Old: tup(v1, "10", "2", "5"), New: tup(v1, "6", "2", "5")}},
		{"inventory=unchanged", &cdc.Change{Op: cdc.OpUpdate, Relation: relInventory, Old: tup(v1, "10", "2", "5"), New: tup(v1, "11", "3", "5")}},
		{"orders=insert", &cdc.Change{Op: cdc.OpInsert, Relation: relOrders, New: order("pending", "<null>", s1)}},
		{"orders=status", &cdc.Change{Op: cdc.OpUpdate, Relation: relOrders, Old: order("pending", "<null>", s1), New: order("shipped", "1Z999AA10123456785", s1)}},
	}
	for _, tc := range cases {
		for _, e := range engines {
			b.Run(tc.name+"/engine="+e.name, func(b *testing.B) {
				b.ReportAllocs()
				dst := make([]cdc.Event, 0, 8)
				var lsn cdc.LSN = 1 << 32
				for b.Loop() {
					lsn++
					tc.c.CommitLSN = lsn
					dst, err = e.t.Map(dst[:0], tc.c)
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
