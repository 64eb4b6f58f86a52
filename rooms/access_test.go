package rooms_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/rooms"
)

// TestPolicy_AccessChanges drives Policy.RoleChanged and RoomChanged (what
// cmd/walcast calls for the changes it reads from the replication stream)
// against real socket.io-client sockets: a role read from the profile
// follows the change, a role from a token claim does not, and RoomChanged
// removes exactly the members it disallows. Each case counts the probe
// events the socket gets after the change.
func TestPolicy_AccessChanges(t *testing.T) {
	st := startStack(t)
	d := startDriver(t, st.url)
	probes := 0
	// probe broadcasts to room and reports whether socket name got it.
	probe := func(name, room string) bool {
		probes++
		marker := fmt.Sprintf("probe-%d", probes)
		st.hub.Broadcast(context.Background(), &hub.Broadcast{Rooms: []string{room}, Event: "probe", Args: []json.RawMessage{json.RawMessage(`"` + marker + `"`)}})
		time.Sleep(150 * time.Millisecond)
		return d.count(func(x *dline) bool {
			return x.Name == name && x.Event == "probe" && strings.Contains(x.raw, `"`+marker+`"`)
		}) > 0
	}
	told := func(name, reason string) *dline {
		return d.wait(name+" access:changed", driverWait, func(x *dline) bool {
			return x.Name == name && x.Event == rooms.EventAccessChanged && strings.Contains(x.raw, `"reason":"`+reason+`"`)
		})
	}

	t.Run("RoleFromProfile", func(t *testing.T) {
		tok := st.token(t, uAdmin, "", time.Hour) // no role claim: the profile says admin
		if l := d.connect("p", tok, connectOpts{}); l.Ev != "connect" {
			t.Fatalf("connect: %s", l.raw)
		}
		if l := d.connect("padm", tok, connectOpts{nsp: "/admin"}); l.Ev != "connect" {
			t.Fatalf("connect /admin: %s", l.raw)
		}
		if ok, e := ackOf(t, d, "p", rooms.EventSubscribeMetrics); !ok {
			t.Fatal(e)
		}
		st.pol.RoleChanged(uAdmin, "customer")
		l := told("p", rooms.ReasonRoleChanged)
		if !strings.Contains(l.raw, rooms.RoomAdmin) || !strings.Contains(l.raw, rooms.RoomMetrics) || !strings.Contains(l.raw, `"role":"customer"`) {
			t.Errorf("access:changed = %s, want role customer and both admin rooms left", l.raw)
		}
		d.wait("/admin disconnect", driverWait, func(x *dline) bool { return x.Name == "padm" && x.Ev == "disconnect" })
		n := 0
		for _, r := range []string{rooms.RoomAdmin, rooms.RoomMetrics} {
			if probe("p", r) {
				n++
			}
		}
		if n != 0 {
			t.Errorf("%d of 2 admin rooms still deliver after the demotion, want 0", n)
		}
		if !probe("p", rooms.RoomUser(uAdmin)) {
			t.Error("the demoted socket lost its user room")
		}
		// Promoted again: admin:room is auto-joined at once.
		st.pol.RoleChanged(uAdmin, "admin")
		told("p", rooms.ReasonRoleChanged)
		if !probe("p", rooms.RoomAdmin) {
			t.Error("no admin:room after the promotion")
		}
	})

	t.Run("RoleFromClaim", func(t *testing.T) {
		if l := d.connect("c", st.token(t, uSeller, "seller", time.Hour), connectOpts{}); l.Ev != "connect" {
			t.Fatalf("connect: %s", l.raw)
		}
		st.pol.RoleChanged(uSeller, "customer") // the token's claim decides, not the profile
		if !probe("c", rooms.RoomSeller(uSeller)) {
			t.Error("a role from a token claim was changed by a profile change")
		}
	})

	t.Run("RoomChanged", func(t *testing.T) {
		for _, n := range []string{"r1", "r2"} {
			if l := d.connect(n, st.token(t, uCustomer1, "", time.Hour), connectOpts{}); l.Ev != "connect" {
				t.Fatalf("connect: %s", l.raw)
			}
			if ok, e := ackOf(t, d, n, rooms.EventSubscribeProduct, "p7"); !ok {
				t.Fatal(e)
			}
		}
		if l := d.connect("r3", st.token(t, uCustomer2, "", time.Hour), connectOpts{}); l.Ev != "connect" {
			t.Fatalf("connect: %s", l.raw)
		}
		if ok, e := ackOf(t, d, "r3", rooms.EventSubscribeProduct, "p7"); !ok {
			t.Fatal(e)
		}
		room := rooms.RoomProduct("p7")
		st.pol.RoomChanged(room, func(id *rooms.Identity) bool { return id.UserID != uCustomer1 }, nil, rooms.ReasonOwnerChanged)
		told("r1", rooms.ReasonOwnerChanged)
		told("r2", rooms.ReasonOwnerChanged)
		got := 0
		for _, n := range []string{"r1", "r2"} {
			if probe(n, room) {
				got++
			}
		}
		if got != 0 {
			t.Errorf("%d of 2 disallowed members still get %s, want 0", got, room)
		}
		if !probe("r3", room) {
			t.Errorf("the allowed member lost %s", room)
		}
	})

	t.Run("OrderOwnerChanged", func(t *testing.T) {
		if l := d.connect("o", st.token(t, uCustomer2, "", time.Hour), connectOpts{}); l.Ev != "connect" {
			t.Fatalf("connect: %s", l.raw)
		}
		if ok, e := ackOf(t, d, "o", rooms.EventSubscribeOrder, order2); !ok {
			t.Fatal(e)
		}
		st.pol.OrderOwnerChanged(order2, uCustomer2) // same owner: stays
		if !probe("o", rooms.RoomOrder(order2)) {
			t.Fatal("the owner left its order on an update that kept the owner")
		}
		st.pol.OrderOwnerChanged(order2, uCustomer1)
		told("o", rooms.ReasonOwnerChanged)
		if probe("o", rooms.RoomOrder(order2)) {
			t.Error("the previous owner still gets the reassigned order")
		}
	})
}
