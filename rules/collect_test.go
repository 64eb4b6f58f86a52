package rules_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/rules"
)

const collectRules = `{
  "events": [{
    "event": "order:new", "table": "public.order_items", "on": ["insert"],
    "room": "seller:{seller_id}",
    "collect": {"by": "{order_id}", "item": {"p": "product_id", "note": "note"}},
    "payload": {"orderId": "order_id", "items": "items()"}
  }]
}`

var relItems = rel(9, "order_items", 'd', col("order_id", tInt4), col("product_id", tInt4), col("seller_id", tText), col("note", tText))

func itemChange(lsn cdc.LSN, idx uint32, order, product int, seller, note string) *cdc.Change {
	return &cdc.Change{Op: cdc.OpInsert, Relation: relItems, New: tup(fmt.Sprint(order), fmt.Sprint(product), seller, note),
		CommitLSN: lsn, CommitTime: time.UnixMilli(1000), Index: idx}
}

// TestEngine_Collect: a collect rule sends one event per room and by value
// at the commit, after the transaction's own indexes; a transaction sent
// again after a reconnect is not counted twice; a group past the size limit
// goes out at once and a later row starts a new one.
func TestEngine_Collect(t *testing.T) {
	r, err := rules.Parse([]byte(collectRules))
	if err != nil {
		t.Fatal(err)
	}
	en := rules.New(r, discard())
	m := func(c *cdc.Change) {
		t.Helper()
		if evs, err := en.Map(nil, c); err != nil || len(evs) != 0 {
			t.Fatalf("Map = %v, %v; want nothing before the commit", evs, err)
		}
	}
	t.Run("Groups", func(t *testing.T) {
		m(itemChange(100, 0, 1, 10, "a", "x"))
		m(itemChange(100, 1, 1, 11, "b", "x"))
		m(itemChange(100, 2, 2, 12, "a", "x"))
		m(itemChange(100, 3, 1, 13, "a", "x"))
		got := describe(en.MapCommit(nil, 100, time.UnixMilli(1000), 4))
		want := describe([]cdc.Event{
			{ID: cdc.EventID{LSN: 100, Index: 16}, Room: "seller:a", Name: "order:new", Payload: []byte(`{"orderId":1,"items":[{"p":10,"note":"x"},{"p":13,"note":"x"}]}`)},
			{ID: cdc.EventID{LSN: 100, Index: 17}, Room: "seller:b", Name: "order:new", Payload: []byte(`{"orderId":1,"items":[{"p":11,"note":"x"}]}`)},
			{ID: cdc.EventID{LSN: 100, Index: 18}, Room: "seller:a", Name: "order:new", Payload: []byte(`{"orderId":2,"items":[{"p":12,"note":"x"}]}`)},
		})
		if got != want {
			t.Errorf("got\n%s\nwant\n%s", got, want)
		}
		if evs := en.MapCommit(nil, 100, time.UnixMilli(1000), 4); len(evs) != 0 {
			t.Errorf("second commit gave %d events, want 0", len(evs))
		}
	})
	t.Run("Redelivered", func(t *testing.T) {
		m(itemChange(200, 0, 1, 10, "a", "x"))
		m(itemChange(200, 1, 1, 11, "a", "x"))
		// The connection ended before the commit; Postgres sends it again.
		m(itemChange(200, 0, 1, 10, "a", "x"))
		m(itemChange(200, 1, 1, 11, "a", "x"))
		got := describe(en.MapCommit(nil, 200, time.UnixMilli(1000), 2))
		want := describe([]cdc.Event{{ID: cdc.EventID{LSN: 200, Index: 8}, Room: "seller:a", Name: "order:new",
			Payload: []byte(`{"orderId":1,"items":[{"p":10,"note":"x"},{"p":11,"note":"x"}]}`)}})
		if got != want {
			t.Errorf("got\n%s\nwant\n%s", got, want)
		}
	})
	t.Run("Bounded", func(t *testing.T) {
		note := strings.Repeat("n", 64<<10)
		var early []cdc.Event
		const rows = 40 // 40 × 64 KiB: past the 1 MiB group limit
		for i := range rows {
			evs, err := en.Map(nil, itemChange(300, uint32(i), 1, i, "a", note))
			if err != nil {
				t.Fatal(err)
			}
			early = append(early, evs...)
		}
		if len(early) != 2 || early[0].ID.Index != 15*4 {
			t.Fatalf("sent early: %d events (first index %v), want 2 (the first at row 15)", len(early), early[0].ID)
		}
		last := en.MapCommit(nil, 300, time.UnixMilli(1000), rows)
		n := 0
		for _, e := range append(early, last...) {
			n += strings.Count(string(e.Payload), `"p":`)
		}
		if len(last) != 1 || n != rows {
			t.Errorf("commit gave %d events and %d items in all, want 1 and %d", len(last), n, rows)
		}
	})
}

func TestParse_CollectErrors(t *testing.T) {
	for name, c := range map[string]struct{ file, want string }{
		"NoItems": {`{"events": [{"event": "e", "table": "t", "on": ["insert"], "room": "r",
			"collect": {"item": "a"}, "payload": {"x": "a"}}]}`, "must hold items() once"},
		"ItemsOutside": {`{"events": [{"event": "e", "table": "t", "on": ["insert"], "room": "r", "payload": {"x": "items()"}}]}`,
			"items() is only allowed in the payload of a collect rule"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := rules.Parse([]byte(c.file))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Parse = %v, want %q", err, c.want)
			}
		})
	}
}
