package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"testing"

	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/rules"
)

type recordPolicy struct{ rooms []string }

func (r *recordPolicy) RoleChanged(string, string)       {}
func (r *recordPolicy) OrderOwnerChanged(string, string) {}
func (r *recordPolicy) PoliciesChanged()                 {}
func (r *recordPolicy) RoomDataChanged(room string, xid uint32) {
	r.rooms = append(r.rooms, room+"@"+string(rune('0'+xid)))
}

// TestAccessWatch_Follow: a change of a followed table re-checks the rooms of
// its old and new ids (once each), locally and, relayed over the bus as an
// access change, on another node.
func TestAccessWatch_Follow(t *testing.T) {
	r, err := rules.Load("../../testdata/marketplace/rules.json")
	if err != nil {
		t.Fatal(err)
	}
	rel := &cdc.Relation{ID: 1, Namespace: "public", Name: "order_items", Columns: []cdc.Column{{Name: "order_id"}, {Name: "product_id"}}}
	text := func(s string) cdc.Value { return cdc.Value{Kind: cdc.ValueText, Data: []byte(s)} }
	pol := &recordPolicy{}
	w := newAccessWatch(nopTransformer{}, r.FollowTables(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	w.policy, w.relay = pol, true
	out, err := w.Map(nil, &cdc.Change{Op: cdc.OpUpdate, Relation: rel, XID: 7,
		Old: cdc.Tuple{text("100"), text("3")}, New: cdc.Tuple{text("101"), text("3")}})
	if err != nil {
		t.Fatal(err)
	}
	if got := pol.rooms; len(got) != 2 || got[0] != "order:100@7" || got[1] != "order:101@7" {
		t.Errorf("rechecked %v, want order:100 and order:101 with xid 7", got)
	}
	if _, err := w.Map(nil, &cdc.Change{Op: cdc.OpDelete, Relation: rel, XID: 8, Old: cdc.Tuple{text("100"), text("3")}}); err != nil {
		t.Fatal(err)
	}
	if got := pol.rooms; len(got) != 3 || got[2] != "order:100@8" {
		t.Errorf("after the delete rechecked %v, want order:100 with xid 8 last", got)
	}
	if len(out) != 2 {
		t.Fatalf("relayed %d access changes, want 2", len(out))
	}
	remote := &recordPolicy{}
	for _, e := range out {
		b := &hub.Broadcast{Rooms: []string{e.Room}, Event: e.Name, Args: []json.RawMessage{e.Payload}}
		if !applyRemote(b, remote, slog.New(slog.NewTextHandler(io.Discard, nil))) {
			t.Fatalf("applyRemote(%s) = false", e.Payload)
		}
	}
	if got := remote.rooms; len(got) != 2 || got[0] != "order:100@7" || got[1] != "order:101@7" {
		t.Errorf("the other node rechecked %v, want order:100 and order:101 with xid 7", got)
	}
}

type nopTransformer struct{}

func (nopTransformer) Map(dst []cdc.Event, _ *cdc.Change) ([]cdc.Event, error) { return dst, nil }
