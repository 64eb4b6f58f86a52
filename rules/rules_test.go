package rules

import (
	"errors"
	"strings"
	"testing"

	"github.com/walcast/walcast/cdc"
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

// inventoryEnv builds an env for the built-in inventory table's columns
// (variant_id, quantity, reserved, low_stock_threshold, in slot order of
// the compiled scope).
func inventoryEnv(t *testing.T, tb *Table, op cdc.Op, oldRow, newRow cdc.Tuple) *env {
	t.Helper()
	cols := []string{"variant_id", "quantity", "reserved", "low_stock_threshold"}
	idx := make([]int, len(tb.scope.slots))
	for s, name := range tb.scope.slots {
		idx[s] = indexOf(cols, name)
		if idx[s] < 0 {
			t.Fatalf("scope has unexpected column %s", name)
		}
	}
	return &env{newRow: newRow, oldRow: oldRow, idx: idx, oids: []uint32{2950, 23, 23, 23}, op: op,
		joins: make([][]value, len(tb.Joins))}
}

func TestBuiltin_Parses(t *testing.T) {
	r, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	inv := r.Tables["public.inventory"]
	if inv == nil {
		t.Fatal("no public.inventory table")
	}
	if got := strings.Join(inv.Joins, ","); got != "variant,product" {
		t.Errorf("joins = %s, want variant,product (product's key names variant)", got)
	}
	var names []string
	for _, rule := range inv.Events[1] {
		names = append(names, rule.Spec.Event)
		if rule.Index != uint32(len(names)-1) {
			t.Errorf("%s index = %d", rule.Spec.Event, rule.Index)
		}
	}
	if got := strings.Join(names, ","); got != "product:stock-updated,admin:low-stock,inventory:low-stock" {
		t.Errorf("inventory update events = %s", got)
	}
	if inv.Events[1][0].usesOld || !inv.Events[1][1].usesOld {
		t.Error("changed() must not count as reading the old row; old.available must")
	}
	ord := r.Tables["public.orders"]
	if len(ord.Events[0]) != 2 || len(ord.Events[1]) != 2 || len(ord.Events[2]) != 0 {
		t.Errorf("orders events per op = %d/%d/%d, want 2/2/0", len(ord.Events[0]), len(ord.Events[1]), len(ord.Events[2]))
	}
}

// TestExpr_LowStockCrossing evaluates the built-in low-stock condition the
// way the hand-written mapper decides a crossing.
func TestExpr_LowStockCrossing(t *testing.T) {
	r, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	inv := r.Tables["public.inventory"]
	stock, low := inv.Events[1][0].when, inv.Events[1][1].when
	for _, tc := range []struct {
		name           string
		op             cdc.Op
		old, new       cdc.Tuple
		guard, changed bool
		crossed        bool
	}{
		{"crosses", cdc.OpUpdate, tup("v", "8", "1", "5"), tup("v", "6", "1", "5"), true, true, true},
		{"still low", cdc.OpUpdate, tup("v", "6", "1", "5"), tup("v", "4", "1", "5"), true, true, false},
		{"unchanged available", cdc.OpUpdate, tup("v", "10", "2", "5"), tup("v", "11", "3", "5"), true, false, false},
		{"threshold raised", cdc.OpUpdate, tup("v", "60", "5", "5"), tup("v", "60", "5", "60"), true, false, true},
		{"null reserved is 0", cdc.OpUpdate, tup("v", "8", "<null>", "5"), tup("v", "5", "<null>", "<null>"), true, true, true},
		{"insert low", cdc.OpInsert, nil, tup("v", "3", "0", "5"), true, true, true},
		{"no old image", cdc.OpUpdate, nil, tup("v", "1", "0", "5"), true, true, false},
		{"null quantity", cdc.OpUpdate, tup("v", "8", "1", "5"), tup("v", "<null>", "1", "5"), false, true, false},
		{"null variant", cdc.OpInsert, nil, tup("<null>", "3", "0", "5"), false, true, true},
	} {
		e := inventoryEnv(t, inv, tc.op, tc.old, tc.new)
		if got := truthy(inv.guard.eval(e)); got != tc.guard {
			t.Errorf("%s: guard = %v, want %v", tc.name, got, tc.guard)
		}
		if got := truthy(stock.eval(e)); got != tc.changed {
			t.Errorf("%s: changed(available) = %v, want %v", tc.name, got, tc.changed)
		}
		if got := truthy(low.eval(e)); got != tc.crossed {
			t.Errorf("%s: crossed = %v, want %v", tc.name, got, tc.crossed)
		}
	}
}

func TestExpr_Values(t *testing.T) {
	sc := &scope{lets: map[string]string{"d": "a - b", "dd": "d * 2"}, arith: map[string]bool{}}
	srcs := map[string]string{
		"a == 3": "true", "a != 3": "false", "s == 'x''y'": "true", "s < 'z'": "true",
		"n == null": "true", "n != null": "false", "n == 1": "false", "n != 1": "false",
		"u == null": "true", "-a + 1 == -2": "true", "dd == 2": "true", "old.a == 2": "true",
		"changed(a)": "true", "changed(s)": "false", "changed(n)": "false", "changed(u)": "true",
		"coalesce(n, u, 7) == 7": "true", "!(a > 2) || b == 2": "true", "op() == 'update'": "true",
		"commit_ms() == 42": "true", "s == 3": "false", "true && !false": "true",
	}
	cols := []string{"a", "b", "s", "n", "u"}
	for src, want := range srcs {
		n, err := compile(src, sc)
		if err != nil {
			t.Errorf("%s: %v", src, err)
			continue
		}
		idx := make([]int, len(sc.slots))
		for i, c := range sc.slots {
			idx[i] = indexOf(cols, c)
		}
		e := &env{newRow: tup("3", "2", "x'y", "<null>", "<u>"), oldRow: tup("2", "2", "x'y", "<null>", "<u>"),
			idx: idx, op: cdc.OpUpdate, commitMS: 42}
		if got := truthy(n.eval(e)); (got && want != "true") || (!got && want != "false") {
			t.Errorf("%s = %v, want %s", src, got, want)
		}
	}
	if !sc.arith["a"] || !sc.arith["b"] || sc.arith["s"] {
		t.Errorf("columns used as integers = %v, want a and b", sc.arith)
	}
}

func TestExpr_Errors(t *testing.T) {
	sc := &scope{lets: map[string]string{"x": "y + 1", "y": "x"}, joins: []string{"p"}, lookups: map[string][]string{"p": {"name"}}}
	for src, want := range map[string]string{
		"a ==":                 "unexpected end of expression",
		"a = 1":                "unexpected character '='",
		"'open":                "unterminated string",
		"f(a)":                 "unknown function f()",
		"x == 1":               "refers to itself",
		"p.price":              "lookup p has no column price",
		"old.p.name":           "unexpected",
		"q.name":               "unknown name q",
		"changed(old.a)":       "old. inside changed()",
		"row()":                "only allowed in a payload",
		"(a":                   `want ")"`,
		"op(1)":                "takes 0 arguments",
		"99999999999999999999": "integer out of range",
	} {
		_, err := compile(src, sc)
		var ee *ExprError
		if err == nil || !errors.As(err, &ee) || !strings.Contains(err.Error(), want) {
			t.Errorf("compile(%q) = %v, want an ExprError containing %q", src, err, want)
		}
	}
}

// TestParse_OneLinePerProblem checks that a bad file reports each problem
// on its own line, all at once.
func TestParse_OneLinePerProblem(t *testing.T) {
	_, err := Parse([]byte(`{
	  "lookups": {"p": {"table": "a.b.c", "key": "", "columns": []}},
	  "tables": {"items": {"join": {"nope": "id"}}},
	  "events": [
	    {"event": "connect", "table": "items", "on": ["upsert"], "room": "r:{id", "payload": "row()"},
	    {"event": "x", "table": "items", "on": ["insert"], "when": "a ==", "room": "r", "payload": {"k": "zz("}}
	  ],
	  "aggregates": {"m": {"builtin": "sum", "table": "orders", "room": "", "interval": "soon"}}
	}`))
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
	lines := strings.Split(err.Error(), "\n")[1:]
	for _, want := range []string{
		"lookups.p.table", "lookups.p.key", "lookups.p.columns", "join.nope: no lookup",
		`"connect" is reserved`, `unknown operation "upsert"`, "{ without }", "events[1] (x).when",
		"events[1] (x).payload", "unknown built-in", "status and total", "aggregates.m.room", "aggregates.m.interval",
	} {
		found := false
		for _, l := range lines {
			found = found || strings.Contains(l, want)
		}
		if !found {
			t.Errorf("no line contains %q in:\n%s", want, err)
		}
	}
	if _, err := Parse([]byte(`{"event": []}`)); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "unknown field") {
		t.Errorf("unknown field: err = %v", err)
	}
}

// TestExpr_EvalDoesNotAllocate pins the evaluator's cost: none per row.
func TestExpr_EvalDoesNotAllocate(t *testing.T) {
	r, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	inv := r.Tables["public.inventory"]
	e := inventoryEnv(t, inv, cdc.OpUpdate, tup("v", "8", "1", "5"), tup("v", "6", "1", "5"))
	allocs := testing.AllocsPerRun(200, func() {
		inv.guard.eval(e)
		for _, rule := range inv.Events[1] {
			rule.when.eval(e)
		}
	})
	if allocs != 0 {
		t.Errorf("%.1f allocs per row, want 0", allocs)
	}
}

func FuzzCompile(f *testing.F) {
	for _, s := range []string{"a == 1", "changed(a) || old.b > 2", "coalesce(a, 'x''y') != null", "-(-a) * 3", "p.name == 'k'"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		sc := &scope{lets: map[string]string{"d": "a - b"}, joins: []string{"p"}, lookups: map[string][]string{"p": {"name"}}, arith: map[string]bool{}}
		n, err := compile(src, sc)
		if err != nil {
			return
		}
		idx := make([]int, len(sc.slots))
		for i := range idx {
			idx[i] = i % 3
		}
		e := &env{newRow: tup("3", "<null>", "x"), oldRow: tup("<u>", "2", "y"), idx: idx, joins: [][]value{nil}, op: cdc.OpUpdate}
		n.eval(e)
	})
}
