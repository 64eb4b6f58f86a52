package cdc_test

import (
	"encoding/json"
	"testing"

	"github.com/walcast/walcast/cdc"
)

// FuzzMapMessage: any signed walcast.emit body gives either no event (counted
// as bad) or one event with a valid JSON payload and non-empty room and name.
func FuzzMapMessage(f *testing.F) {
	for _, s := range []string{
		`{"room": "user:u1", "event": "notification", "payload": {"type": "info", "title": "Hi", "message": "Shipped"}}`,
		`{"room":"r","event":"e"}`, `{"room":"","event":"e"}`, `not json`, `{"room":"r","event":"connect"}`,
		`{"room":"r","event":"e","payload":[1,2,{"a":null}]}`, `{"room":"\u0000","event":"e"}`, "",
	} {
		f.Add(s)
	}
	m, err := cdc.NewMapper(cdc.MapperConfig{Logger: mapperDiscardLogger(), EmitKey: mKey})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, content string) {
		evs, err := m.Map(nil, &cdc.Change{Op: cdc.OpMessage, Prefix: "walcast", XID: 700, Content: mKey.SignEmit(700, []byte(content))})
		if err != nil {
			t.Fatalf("Map: %v", err)
		}
		for _, e := range evs {
			if e.Room == "" || e.Name == "" || !json.Valid(e.Payload) {
				t.Fatalf("bad event from %q: %q %q %q", content, e.Room, e.Name, e.Payload)
			}
		}
	})
}

// FuzzMapRow: any column bytes of any type give valid JSON payloads.
func FuzzMapRow(f *testing.F) {
	f.Add("o1", "ORD-1", "12.50", "2026-03-01 12:00:00+00", "t", `{"a":1}`, "u1")
	f.Add("\xff\x00\"\\", "NaN", "Infinity", "2026-03-01 12:00:00.123456+05:30", "x", `{`, "-")
	f.Add("", "", "-0.5e10", "infinity", "f", "null", "")
	relRow := &cdc.Relation{ID: 99, Namespace: "public", Name: "orders", ReplicaIdentity: 'f', Columns: []cdc.Column{
		mCol("id", mtUUID), mCol("order_number", mtText), mCol("total", mtNumeric), mCol("created_at", mtTimestamptz),
		mCol("flag", mtBool), mCol("meta", mtJSONB), mCol("status", mtEnum), mCol("user_id", 1114), mCol("seller_id", 701)}}
	m, err := cdc.NewMapper(cdc.MapperConfig{Logger: mapperDiscardLogger()})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, id, num, total, ts, flag, meta, status string) {
		row := mTup(id, num, total, ts, flag, meta, status, ts, total)
		for _, c := range []*cdc.Change{
			{Op: cdc.OpInsert, Relation: relRow, New: row},
			{Op: cdc.OpUpdate, Relation: relRow, Old: mTup(id, num, "1", ts, flag, meta, "x", ts, total), New: row},
		} {
			evs, err := m.Map(nil, c)
			if err != nil {
				t.Fatalf("Map: %v", err)
			}
			for _, e := range evs {
				if !json.Valid(e.Payload) {
					t.Fatalf("invalid JSON payload for %s: %s", e.Name, e.Payload)
				}
			}
		}
	})
}
