package rooms_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/rooms"
)

// TestPolicy_Kinds: room kinds given as data replace the built-in ones. A
// kind allowed by a role, one allowed by a SQL predicate over $id and $user
// (or an admin role), their id formats, and a recheck after the predicate's
// row is deleted (RoomDataChanged): the member leaves with access_revoked,
// the admin stays.
func TestPolicy_Kinds(t *testing.T) {
	kinds := []rooms.Kind{
		{Name: "ticket", Subscribe: "subscribe:ticket", Unsubscribe: "unsubscribe:ticket", Prefix: "ticket:", ID: rooms.IDUUID,
			Roles: []string{"support"}, Denied: "support only"},
		{Name: "team", Subscribe: "subscribe:team", Prefix: "team:", ID: rooms.IDInteger, Admins: true,
			SQL: &rooms.Query{SQL: `select exists (select 1 from team_members where team_id = $1::bigint and user_id = $2::uuid)`, Params: []string{"id", "user"}}},
	}
	st := startStack(t, stackOpts{kinds: kinds, sql: `
create table team_members (team_id bigint, user_id uuid);
insert into team_members values (7, '` + uCustomer1 + `');`})
	d := startDriver(t, st.url)
	for name, u := range map[string][2]string{"support": {uGood, "support"}, "member": {uCustomer1, "customer"}, "other": {uCustomer2, "customer"}, "admin": {uAdmin, "admin"}} {
		if l := d.connect(name, st.token(t, u[0], u[1], time.Hour), connectOpts{}); l.Ev != "connect" {
			t.Fatalf("%s connect: %s", name, l.raw)
		}
	}
	const ticket = "3f1c2a8e-7b1d-4c55-9a7e-0d3c1e2f4a5b"
	for _, tt := range []struct {
		name, who, event string
		arg              any
		want             string // "" = ok
	}{
		{"RoleAllows", "support", "subscribe:ticket", ticket, ""},
		{"RoleRefused", "member", "subscribe:ticket", ticket, "support only"},
		{"NotUUID", "support", "subscribe:ticket", "ticket-1", rooms.ErrTextBadUUID},
		{"Unsubscribe", "support", "unsubscribe:ticket", ticket, ""},
		{"PredicateAllows", "member", "subscribe:team", 7, ""},
		{"PredicateAllowsString", "member", "subscribe:team", "7", ""},
		{"PredicateRefused", "other", "subscribe:team", 7, rooms.ErrTextDenied},
		{"NoSuchTeam", "member", "subscribe:team", 8, rooms.ErrTextDenied},
		{"AdminAllowed", "admin", "subscribe:team", 7, ""},
		{"NotInteger", "member", "subscribe:team", "7a", rooms.ErrTextBadInteger},
		{"TooLong", "member", "subscribe:team", "1234567890123456789", rooms.ErrTextBadInteger},
		{"Float", "member", "subscribe:team", 7.5, rooms.ErrTextBadInteger},
		{"BuiltinKindsReplaced", "member", rooms.EventSubscribeProduct, "p1", rooms.ErrTextUnknownEvent},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ok, e := ackOf(t, d, tt.who, tt.event, tt.arg)
			if tt.want == "" && !ok {
				t.Errorf("%s %s(%v): refused %q, want ok", tt.who, tt.event, tt.arg, e)
			}
			if tt.want != "" && (ok || !strings.HasPrefix(e, tt.want)) {
				t.Errorf("%s %s(%v) = ok %v %q, want refused %q", tt.who, tt.event, tt.arg, ok, e, tt.want)
			}
		})
	}

	t.Run("Recheck", func(t *testing.T) {
		probe := func(marker string) {
			st.hub.Broadcast(t.Context(), &hub.Broadcast{Rooms: []string{"team:7"}, Event: "probe", Args: []json.RawMessage{json.RawMessage(`"` + marker + `"`)}})
		}
		got := func(name, marker string) bool {
			return d.wait(name+" "+marker, 2*time.Second, func(x *dline) bool {
				return x.Name == name && x.Event == "probe" && strings.Contains(x.raw, marker)
			}) != nil
		}
		probe("before")
		if !got("member", "before") || !got("admin", "before") {
			t.Fatal("team:7 subscribers did not get the probe before the change")
		}
		st.pol.RoomDataChanged("team:7", 0) // nothing changed: everyone stays
		time.Sleep(200 * time.Millisecond)
		// Rechecked with the xid of the deleting transaction: the recheck
		// waits until it is visible (here at once).
		var xid int64
		if err := st.db.QueryRow(t.Context(), `with d as (delete from team_members where team_id = 7 returning 1)
			select pg_current_xact_id()::text::bigint & 4294967295 from (select count(*) from d) c`).Scan(&xid); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		st.pol.RoomDataChanged("team:7", uint32(xid))
		l := d.wait("member access:changed", driverWait, func(x *dline) bool {
			return x.Name == "member" && x.Event == rooms.EventAccessChanged && strings.Contains(x.raw, `"reason":"access_revoked"`)
		})
		if l == nil {
			t.Fatal("member got no access:changed")
		}
		t.Logf("member left team:7 %d ms after RoomDataChanged", l.at.Sub(t0).Milliseconds())
		probe("after")
		if !got("admin", "after") {
			t.Error("admin (allowed by role) did not get the probe after the change")
		}
		time.Sleep(300 * time.Millisecond)
		if n := d.count(func(x *dline) bool {
			return x.Name == "member" && x.Event == "probe" && strings.Contains(x.raw, "after")
		}); n != 0 {
			t.Errorf("member got %d probes after the row was deleted, want 0", n)
		}
		if n := d.count(func(x *dline) bool { return x.Name == "admin" && x.Event == rooms.EventAccessChanged }); n != 0 {
			t.Errorf("admin got %d access:changed, want 0", n)
		}
	})
}
