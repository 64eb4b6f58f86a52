package rules

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// builtinJSON is the shop catalogue of the demo schema (sql/010_demo_schema.sql).
//
//go:embed builtin.json
var builtinJSON []byte

// BuiltinJSON returns the text of the built-in rules file.
func BuiltinJSON() []byte { return bytes.Clone(builtinJSON) }

// File is a rules file as written (JSON; unknown fields are an error).
type File struct {
	// Extends "builtin" starts from the built-in file: its lookups, tables,
	// aggregates and rooms, overridden by name by this file's, and its events
	// followed by this file's.
	Extends string `json:"extends,omitempty"`
	// Lookups are tables kept in memory by key, loaded at start and kept
	// fresh from the stream, so events can name values of other rows.
	Lookups map[string]LookupSpec `json:"lookups"`
	// Tables holds, per "schema.table", derived values, joins and a guard
	// shared by the table's events.
	Tables map[string]TableSpec `json:"tables"`
	// Events are the rules, in order; the order of a table's events for one
	// operation fixes their event index.
	Events []EventSpec `json:"events"`
	// Aggregates are named built-in running aggregates, by event name.
	Aggregates map[string]AggregateSpec `json:"aggregates"`
	// Emit switches walcast.emit / walcast.notify messages (default on).
	Emit *bool `json:"emit,omitempty"`
	// Rooms are the room kinds clients subscribe to, by kind name.
	Rooms map[string]RoomSpec `json:"rooms,omitempty"`
}

// LookupSpec declares a lookup table.
type LookupSpec struct {
	Table   string   `json:"table"`
	Key     string   `json:"key"`
	Columns []string `json:"columns"`
}

// TableSpec is what a table's events share.
type TableSpec struct {
	Let  map[string]string `json:"let,omitempty"`  // derived value name -> expression
	Join map[string]string `json:"join,omitempty"` // lookup name -> key expression
	When string            `json:"when,omitempty"` // guard for every event of the table
}

// EventSpec is one rule: on these operations of this table, when the
// condition holds, send this event with this payload to this room.
type EventSpec struct {
	Event   string          `json:"event"`
	Table   string          `json:"table"`
	On      []string        `json:"on"`
	Require []string        `json:"require,omitempty"` // joins that must have found a row
	When    string          `json:"when,omitempty"`
	Room    string          `json:"room"`    // "product:{variant.product_id}"
	Payload json.RawMessage `json:"payload"` // an expression string, or an object of them (nested)
	// Collect makes one event per room (and By value) per transaction out
	// of all the rows that fire the rule in it, sent at its commit.
	Collect *CollectSpec `json:"collect,omitempty"`
}

// CollectSpec collects the rows of one transaction that fire a rule into
// one event per group: the rows with the same room and the same By value.
// The payload is evaluated on the group's first row; items() in it is the
// JSON array of Item evaluated on every row of the group, in commit order.
type CollectSpec struct {
	By   string          `json:"by,omitempty"` // template, e.g. "{order_id}"; empty: the room alone
	Item json.RawMessage `json:"item"`         // payload template of one row
}

// AggregateSpec configures a built-in aggregate.
type AggregateSpec struct {
	Builtin         string   `json:"builtin"` // "order_totals"
	Table           string   `json:"table"`
	Status          string   `json:"status"`
	Total           string   `json:"total"`
	ExcludeStatuses []string `json:"excludeStatuses"`
	Room            string   `json:"room"`
	Interval        string   `json:"interval"` // at most one event per interval (Go duration)
}

// Rules is a parsed and compiled rules file.
type Rules struct {
	File   File
	Tables map[string]*Table // by "schema.table"
	kinds  []*RoomKind       // sorted by name
}

// Table is the compiled rules of one table.
type Table struct {
	Name    string
	Joins   []string // lookup names in join order
	joinKey []*node
	guard   *node
	scope   *scope
	Events  [3][]*Rule     // by operation: insert, update, delete
	conds   map[string]int // condition source -> index: rules with the same condition share it
}

// Rule is one compiled event rule.
type Rule struct {
	Spec      EventSpec
	Index     uint32 // event number within its change
	when      *node
	cond      int // index of when among its table's conditions (evaluated once per change)
	require   []int
	room      []segment
	payload   []segment
	usesOld   bool
	constRoom string // the room when it has no {…}
	collect   bool
	by        []segment // group key beside the room (collect)
	item      []segment // one row's payload (collect)
}

// segment is a literal or a value of a template.
type segment struct {
	lit []byte
	val *node
}

// ErrInvalid reports a rules file with problems; the wrapped errors are one
// line each.
var ErrInvalid = errors.New("rules: invalid rules file")

// Builtin returns the compiled built-in rules.
func Builtin() (*Rules, error) { return Parse(builtinJSON) }

// Load reads and parses a rules file; an empty path is the built-in file.
func Load(path string) (*Rules, error) {
	if path == "" {
		return Builtin()
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rules: read %s: %w", path, err)
	}
	r, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("rules %s: %w", path, err)
	}
	return r, nil
}

// maxEventsPerOp is how many rules one table may have for one operation:
// event k of the change at position i in its transaction gets index i*4+k.
const maxEventsPerOp = 4

var opIndex = map[string]int{"insert": 0, "update": 1, "delete": 2}

// Parse parses and compiles a rules file without a database. Every problem
// is one line of the returned error (errors.Is(err, ErrInvalid)).
func Parse(b []byte) (*Rules, error) {
	var f File
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w:\nparse: %w", ErrInvalid, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w:\nparse: trailing data after the JSON object", ErrInvalid)
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch f.Extends {
	case "":
	case "builtin":
		f = extendBuiltin(f)
	default:
		bad("extends: unknown base %q (want builtin)", f.Extends)
	}
	r := &Rules{File: f, Tables: map[string]*Table{}}
	for name, l := range f.Lookups {
		if _, _, err := splitTable(l.Table); err != nil {
			bad("lookups.%s.table: %v", name, err)
		}
		if l.Key == "" {
			bad("lookups.%s.key: a key column is required", name)
		}
		if len(l.Columns) == 0 {
			bad("lookups.%s.columns: at least one column is required", name)
		}
	}
	table := func(name string) *Table {
		full, err := normTable(name)
		if err != nil {
			return nil
		}
		if t := r.Tables[full]; t != nil {
			return t
		}
		spec := f.Tables[name]
		if s, ok := f.Tables[full]; ok {
			spec = s
		}
		t := &Table{Name: full, scope: &scope{lets: spec.Let, lookups: map[string][]string{}, arith: map[string]bool{}}}
		r.Tables[full] = t
		// Joins in dependency order: a key may name an earlier join.
		pending := map[string]string{}
		for alias, key := range spec.Join {
			l, ok := f.Lookups[alias]
			if !ok {
				bad("tables.%s.join.%s: no lookup named %s", name, alias, alias)
				continue
			}
			pending[alias] = key
			t.scope.lookups[alias] = l.Columns
		}
		for len(pending) > 0 {
			progressed := false
			for _, alias := range sortedKeys(pending) {
				key := pending[alias]
				deps := false
				for other := range pending {
					if other != alias && strings.Contains(key, other+".") {
						deps = true
					}
				}
				if deps {
					continue
				}
				t.scope.joins = append(t.scope.joins, alias)
				n, err := compile(key, t.scope)
				if err != nil {
					bad("tables.%s.join.%s: %v", name, alias, err)
				}
				t.Joins = append(t.Joins, alias)
				t.joinKey = append(t.joinKey, n)
				delete(pending, alias)
				progressed = true
			}
			if !progressed {
				bad("tables.%s.join: the join keys depend on each other in a cycle", name)
				break
			}
		}
		if spec.When != "" {
			n, err := compile(spec.When, t.scope)
			if err != nil {
				bad("tables.%s.when: %v", name, err)
			}
			t.guard = n
		}
		return t
	}
	for name := range f.Tables {
		if _, err := normTable(name); err != nil {
			bad("tables.%s: %v", name, err)
			continue
		}
		table(name)
	}
	for i, e := range f.Events {
		at := fmt.Sprintf("events[%d] (%s)", i, e.Event)
		if strings.TrimSpace(e.Event) == "" {
			bad("%s.event: an event name is required", at)
		} else if reservedEventNames[e.Event] {
			bad("%s.event: %q is reserved by Socket.IO", at, e.Event)
		}
		if _, err := normTable(e.Table); err != nil {
			bad("%s.table: %v", at, err)
			continue
		}
		t := table(e.Table)
		rule := &Rule{Spec: e}
		if len(e.On) == 0 {
			bad("%s.on: at least one of insert, update, delete is required", at)
		}
		for _, op := range e.On {
			k, ok := opIndex[op]
			if !ok {
				bad("%s.on: unknown operation %q (want insert, update or delete)", at, op)
				continue
			}
			if len(t.Events[k]) >= maxEventsPerOp {
				bad("%s.on: table %s has more than %d events for %s", at, t.Name, maxEventsPerOp, op)
				continue
			}
			t.Events[k] = append(t.Events[k], rule)
		}
		for _, req := range e.Require {
			j := indexOf(t.Joins, req)
			if j < 0 {
				bad("%s.require: %s is not a join of table %s", at, req, t.Name)
				continue
			}
			rule.require = append(rule.require, j)
		}
		if e.When != "" {
			if t.conds == nil {
				t.conds = map[string]int{}
			}
			src := strings.TrimSpace(e.When)
			if i, ok := t.conds[src]; ok {
				for _, other := range t.allRules() {
					if other.cond == i && other.when != nil {
						rule.when, rule.usesOld, rule.cond = other.when, other.usesOld, i
						break
					}
				}
			}
			if rule.when == nil {
				n, err := compile(e.When, t.scope)
				if err != nil {
					bad("%s.when: %v", at, err)
				} else {
					rule.cond = len(t.conds)
					t.conds[src] = rule.cond
					rule.when, rule.usesOld = n, n.usesOld
				}
			}
		}
		room, err := compileTemplate(e.Room, t.scope)
		if err != nil {
			bad("%s.room: %v", at, err)
		} else if len(room) == 0 {
			bad("%s.room: a room is required", at)
		}
		rule.room = room
		if len(room) == 1 && room[0].val == nil {
			rule.constRoom = string(room[0].lit)
		}
		t.scope.payload = true
		if e.Collect != nil {
			rule.collect = true
			if rule.by, err = compileTemplate(e.Collect.By, t.scope); err != nil {
				bad("%s.collect.by: %v", at, err)
			}
			if rule.item, err = compilePayload(e.Collect.Item, t.scope); err != nil {
				bad("%s.collect.item: %v", at, err)
			}
			t.scope.items = true
		}
		payload, err := compilePayload(e.Payload, t.scope)
		t.scope.payload, t.scope.items = false, false
		if err != nil {
			bad("%s.payload: %v", at, err)
		} else if rule.collect && countItems(payload) != 1 {
			bad("%s.payload: a collect rule's payload must hold items() once", at)
		}
		rule.payload = payload
	}
	indexed := map[*Rule]bool{}
	for _, t := range r.Tables {
		for k := range t.Events {
			for i, rule := range t.Events[k] {
				if !indexed[rule] {
					rule.Index, indexed[rule] = uint32(i), true
				} else if rule.Index != uint32(i) {
					bad("table %s: event %s has index %d for one operation and %d for another; list it in the same position",
						t.Name, rule.Spec.Event, rule.Index, i)
				}
			}
		}
	}
	for name, a := range f.Aggregates {
		if a.Builtin != "order_totals" {
			bad("aggregates.%s.builtin: unknown built-in %q (known: order_totals)", name, a.Builtin)
		}
		if _, err := normTable(a.Table); err != nil {
			bad("aggregates.%s.table: %v", name, err)
		}
		if a.Status == "" || a.Total == "" {
			bad("aggregates.%s: status and total columns are required", name)
		}
		if a.Room == "" {
			bad("aggregates.%s.room: a room is required", name)
		}
		if a.Interval != "" {
			if d, err := time.ParseDuration(a.Interval); err != nil || d <= 0 {
				bad("aggregates.%s.interval: %q is not a positive duration", name, a.Interval)
			}
		}
	}
	r.parseRooms(bad)
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w:\n%w", ErrInvalid, errors.Join(errs...))
	}
	return r, nil
}

// extendBuiltin returns the built-in file with f's entries added.
func extendBuiltin(f File) File {
	var base File
	if err := json.Unmarshal(builtinJSON, &base); err != nil {
		panic("rules: the built-in file does not parse: " + err.Error()) // programmer error, caught by TestBuiltin_Parses
	}
	base.Lookups = mergeMap(base.Lookups, f.Lookups)
	base.Tables = mergeMap(base.Tables, f.Tables)
	base.Aggregates = mergeMap(base.Aggregates, f.Aggregates)
	base.Rooms = mergeMap(base.Rooms, f.Rooms)
	base.Events = append(base.Events, f.Events...)
	if f.Emit != nil {
		base.Emit = f.Emit
	}
	base.Extends = "" // the result stands alone (walcast rules prints it)
	return base
}

func mergeMap[V any](base, over map[string]V) map[string]V {
	if base == nil && over == nil {
		return nil
	}
	out := make(map[string]V, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}

// allRules returns the table's rules (each once).
func (t *Table) allRules() []*Rule {
	var out []*Rule
	for k := range t.Events {
		for _, r := range t.Events[k] {
			if !slices.Contains(out, r) {
				out = append(out, r)
			}
		}
	}
	return out
}

// compileTemplate compiles "text {expr} text".
func compileTemplate(s string, sc *scope) ([]segment, error) {
	var out []segment
	for s != "" {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			out = append(out, segment{lit: []byte(s)})
			break
		}
		if i > 0 {
			out = append(out, segment{lit: []byte(s[:i])})
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("%q: { without }", s)
		}
		n, err := compile(s[i+1:i+j], sc)
		if err != nil {
			return nil, err
		}
		out = append(out, segment{val: n})
		s = s[i+j+1:]
	}
	return out, nil
}

// compilePayload compiles a payload template: a JSON string is an
// expression; an object's values are templates in turn (keys keep their
// order); numbers, booleans and null are literals.
func compilePayload(raw json.RawMessage, sc *scope) ([]segment, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, errors.New("a payload is required")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var out []segment
	lit := func(b []byte) {
		if n := len(out); n > 0 && out[n-1].val == nil {
			out[n-1].lit = append(out[n-1].lit, b...)
			return
		}
		out = append(out, segment{lit: append([]byte(nil), b...)})
	}
	var value func(depth int) error
	value = func(depth int) error {
		if depth > 16 {
			return errors.New("payload nests too deeply")
		}
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch v := tok.(type) {
		case json.Delim:
			if v != '{' {
				return errors.New("arrays are not supported in payload templates")
			}
			lit([]byte("{"))
			for first := true; dec.More(); first = false {
				kt, err := dec.Token()
				if err != nil {
					return err
				}
				k, _ := kt.(string)
				if !first {
					lit([]byte(","))
				}
				kb, _ := json.Marshal(k)
				lit(append(kb, ':'))
				if err := value(depth + 1); err != nil {
					return fmt.Errorf("%s: %w", k, err)
				}
			}
			if _, err := dec.Token(); err != nil {
				return err
			}
			lit([]byte("}"))
		case string:
			n, err := compile(v, sc)
			if err != nil {
				return err
			}
			out = append(out, segment{val: n})
		case json.Number:
			lit([]byte(v.String()))
		case bool:
			lit([]byte(fmt.Sprint(v)))
		case nil:
			lit([]byte("null"))
		}
		return nil
	}
	if err := value(0); err != nil {
		return nil, err
	}
	return out, nil
}

// countItems counts the items() segments of a payload.
func countItems(segs []segment) int {
	n := 0
	for _, s := range segs {
		if s.val != nil && s.val.op == opItems {
			n++
		}
	}
	return n
}

// Socket.IO reserves these event names.
var reservedEventNames = map[string]bool{
	"connect": true, "connect_error": true, "disconnect": true, "disconnecting": true,
	"newListener": true, "removeListener": true,
}

// splitTable splits "schema.table" or "table" (schema public).
func splitTable(s string) (schema, name string, err error) {
	schema, name, ok := strings.Cut(strings.TrimSpace(s), ".")
	if !ok {
		schema, name = "public", schema
	}
	if schema == "" || name == "" || strings.Contains(name, ".") {
		return "", "", fmt.Errorf("bad table name %q: want table or schema.table", s)
	}
	return schema, name, nil
}

func normTable(s string) (string, error) {
	schema, name, err := splitTable(s)
	if err != nil {
		return "", err
	}
	return schema + "." + name, nil
}

func indexOf(xs []string, s string) int {
	for i, x := range xs {
		if x == s {
			return i
		}
	}
	return -1
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// PublishedTables returns every table the rules read, as "schema.table", for the
// publication: event tables, then aggregate and lookup tables.
func (r *Rules) PublishedTables() []string {
	var out []string
	add := func(t string) {
		if n, err := normTable(t); err == nil && indexOf(out, n) < 0 {
			out = append(out, n)
		}
	}
	for _, e := range r.File.Events {
		add(e.Table)
	}
	for _, name := range sortedKeys(mapKeys(r.File.Aggregates)) {
		add(r.File.Aggregates[name].Table)
	}
	for _, name := range sortedKeys(mapKeys(r.File.Lookups)) {
		add(r.File.Lookups[name].Table)
	}
	for _, k := range r.kinds {
		for _, t := range sortedKeys(k.Spec.Follow) {
			add(t)
		}
	}
	return out
}

// FullIdentityTables returns the tables that need REPLICA IDENTITY FULL:
// those with update or delete rules (they compare old and new values) and
// aggregate tables.
func (r *Rules) FullIdentityTables() []string {
	var out []string
	for _, t := range r.PublishedTables() {
		tb := r.Tables[t]
		need := tb != nil && (len(tb.Events[1]) > 0 || len(tb.Events[2]) > 0)
		for _, a := range r.File.Aggregates {
			if n, _ := normTable(a.Table); n == t {
				need = true
			}
		}
		if need {
			out = append(out, t)
		}
	}
	return out
}

func mapKeys[V any](m map[string]V) map[string]string {
	out := make(map[string]string, len(m))
	for k := range m {
		out[k] = k
	}
	return out
}
