package rules

import (
	"errors"
	"strings"
	"testing"
)

func TestCompileQuery(t *testing.T) {
	tests := []struct {
		in, sql, params string
	}{
		{"select user_id::text from orders where id = $id", "select user_id::text from orders where id = $1", "id"},
		{"select 1 from o where id = $id and seller = $user and $id <> '$role'",
			"select 1 from o where id = $1 and seller = $2 and $1 <> '$role'", "id,user"},
		{"select $claims.app_metadata.team = team from t where id = $id",
			"select ($1::jsonb #>> '{app_metadata,team}') = team from t where id = $2", "claims,id"},
		{"select $claims->>'sub' = $role", "select $1::jsonb->>'sub' = $2", "claims,role"},
	}
	for _, tt := range tests {
		q, err := compileQuery(tt.in)
		if err != nil {
			t.Errorf("compileQuery(%q): %v", tt.in, err)
			continue
		}
		if q.SQL != tt.sql || strings.Join(q.Params, ",") != tt.params {
			t.Errorf("compileQuery(%q) = %q %v, want %q %s", tt.in, q.SQL, q.Params, tt.sql, tt.params)
		}
	}
	for _, in := range []string{"", "select $1", "select $nope", "select 'x", "select $ 1"} {
		if _, err := compileQuery(in); err == nil {
			t.Errorf("compileQuery(%q): no error", in)
		}
	}
}

func TestParse_Rooms(t *testing.T) {
	r, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, k := range r.RoomKinds() {
		names = append(names, k.Name+"="+k.Prefix)
	}
	if got := strings.Join(names, " "); got != "metrics=admin:metrics order=order: product=product:" {
		t.Errorf("built-in room kinds = %s", got)
	}
	if f := r.FollowTables()["public.orders"]; len(f) != 1 || f[0].Column != "id" || f[0].Kind.Name != "order" {
		t.Errorf("FollowTables[public.orders] = %+v", f)
	}

	bad := `{"rooms": {
		"a": {"room": "a:{id}", "subscribe": "subscribe:a", "allow": {}},
		"b": {"room": "b:{x}", "subscribe": "subscribe:a", "allow": {"anyone": true}},
		"c": {"room": "c", "subscribe": "connect", "id": "hex", "state": "all", "allow": {"sql": "select $1"}, "follow": {"t": "id"}},
		"d": {"room": "a:{id}", "allow": {"rls": "select $what"}},
		"e": {"room": "e:{id}", "subscribe": "subscribe:e", "allow": {"anyone": true},
		      "snapshot": [{"event": "", "sql": "select * from t where id = $id and owner = $user"}]}
	}}`
	_, err = Parse([]byte(bad))
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Parse: %v, want ErrInvalid", err)
	}
	for _, want := range []string{
		"rooms.a.allow: say who may subscribe",
		`rooms.b.room: "b:{x}": want a prefix then {id}`,
		`rooms.b: client event "subscribe:a" is also rooms.a's`,
		`rooms.c: "connect" is reserved`,
		`rooms.c.id: unknown id format "hex"`,
		`rooms.c.state: unknown state "all"`,
		"rooms.c.allow.sql: a constant room has no $id",
		"rooms.c.allow.sql: positional parameter $1",
		"rooms.c.follow: a constant room has no id to follow",
		"rooms.d.subscribe: the client event that subscribes is required",
		`rooms.d.room: rooms "a:{id}" are also rooms.a's`,
		"rooms.d.allow.rls: unknown parameter $what",
		"rooms.e.snapshot: set state to snapshot",
		"rooms.e.snapshot[0].event: an event name is required",
		"rooms.e.snapshot[0].sql: $user: state queries may use $id only",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Parse error lacks %q:\n%v", want, err)
		}
	}
}

func TestParse_ExtendsBuiltin(t *testing.T) {
	r, err := Load("../testdata/shipments/rules.json")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Builtin()
	if got, want := len(r.File.Events), len(b.File.Events)+1; got != want {
		t.Errorf("events = %d, want %d (the built-in ones and order:shipment)", got, want)
	}
	if r.File.Extends != "" || len(r.RoomKinds()) != 3 || r.File.Aggregates["admin:metrics-updated"].Builtin != "order_totals" {
		t.Errorf("extended file = extends %q, %d room kinds, aggregates %v", r.File.Extends, len(r.RoomKinds()), r.File.Aggregates)
	}
	if _, err := Parse([]byte(`{"extends": "demo"}`)); err == nil || !strings.Contains(err.Error(), `extends: unknown base "demo"`) {
		t.Errorf("extends demo: %v", err)
	}
}
