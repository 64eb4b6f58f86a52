package rules

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/internal/logkey"
)

// Engine maps changes to events by a compiled rules file. It keeps the
// lookup caches fresh from the stream (Load fills them at start), runs the
// order_totals aggregate (MetricsEvent, CurrentMetrics) and maps
// walcast.emit messages. Load checks the rules against the catalog first.
//
// Map is safe for concurrent use (one mutex), but is meant for the
// pipeline's goroutine.
type Engine struct {
	r   *Rules
	log *slog.Logger

	mu      sync.Mutex
	rels    map[uint32]*relInfo
	lookups map[string]*lookupCache // by "schema.table"
	byName  map[string]*lookupCache
	e       env
	scratch []byte // payloads of the current change
	rooms   []byte // dynamic rooms of the current change
	marks   []mark

	// Collect rules: the groups of the transaction being read, in the order
	// of their first rows (see collect.go).
	groups       map[groupKey]*group
	order        []*group
	early        []cdc.Event // groups sent before the commit (full), this change
	key          []byte
	txLSN        cdc.LSN
	txLast       uint32 // index of the last collected change
	collectBytes int

	domains map[uint32]uint32 // domain type OID -> base type OID (from Load)
	agg     *orderTotals      // the order_totals aggregate, if declared

	verify cdc.EmitVerifier // "walcast" messages must be signed by walcast.emit

	lookupMisses, missingOld, badMessages atomic.Uint64
}

// EngineStats counts what the Engine could not map. Fields only grow.
type EngineStats struct {
	BadMessages     uint64 // walcast.emit messages that were not valid (logged, dropped)
	Unverified      uint64 // "walcast" messages without a valid signature: forged or unsigned (logged, dropped)
	LookupMisses    uint64 // a rule fired but a join found no row
	MissingOldImage uint64 // an update without REPLICA IDENTITY FULL where a rule reads old values
}

type mark struct {
	rule   *Rule
	p0, p1 int // payload in scratch
	r0, r1 int // dynamic room in rooms; r0 < 0: the rule's constant room
}

type lookupCache struct {
	name string
	spec LookupSpec
	rows map[string][]value
}

// relInfo is a Relation resolved against the rules.
type relInfo struct {
	rel                 *cdc.Relation
	ncols               int
	table               *Table
	idx                 []int    // table column slot -> column index (-1: not replicated)
	oids                []uint32 // column types
	elems               []uint32
	off                 bool // a referenced column is missing: the table's events are off
	joins               []*lookupCache
	lookup              *lookupCache // the relation is a lookup table
	aggStatus, aggTotal int          // columns of the aggregate, when it is on this relation (-1 otherwise)
	agg                 bool
	lkKey               int
	lkCols              []int
}

// New returns an Engine for r.
func New(r *Rules, log *slog.Logger) *Engine {
	if log == nil {
		log = slog.Default()
	}
	en := &Engine{r: r, log: log.With(logkey.Component, "rules"), rels: map[uint32]*relInfo{},
		lookups: map[string]*lookupCache{}, byName: map[string]*lookupCache{}}
	for name, spec := range r.File.Lookups {
		t, _ := normTable(spec.Table)
		lc := &lookupCache{name: name, spec: spec, rows: map[string][]value{}}
		en.lookups[t] = lc
		en.byName[name] = lc
	}
	for name, a := range r.File.Aggregates {
		t, _ := normTable(a.Table)
		ot := &orderTotals{event: name, spec: a, table: t, exclude: map[string]bool{}, wmIdx: -1}
		for _, st := range a.ExcludeStatuses {
			ot.exclude[st] = true
		}
		en.agg = ot // Parse allows only order_totals; the last one wins
	}
	return en
}

// Stats returns the Engine's counters.
func (en *Engine) Stats() EngineStats {
	return EngineStats{BadMessages: en.badMessages.Load(), Unverified: en.verify.Dropped(), LookupMisses: en.lookupMisses.Load(), MissingOldImage: en.missingOld.Load()}
}

func (en *Engine) relInfoLocked(rel *cdc.Relation) *relInfo {
	if ri := en.rels[rel.ID]; ri != nil && ri.rel == rel && ri.ncols == len(rel.Columns) {
		return ri
	}
	n := len(rel.Columns)
	ri := &relInfo{rel: rel, ncols: n, oids: make([]uint32, n), elems: make([]uint32, n)}
	col := func(name string) int {
		for j := range rel.Columns {
			if rel.Columns[j].Name == name {
				return j
			}
		}
		return -1
	}
	for i, c := range rel.Columns {
		ri.oids[i] = en.baseType(c.TypeOID)
		ri.elems[i] = cdc.ArrayElem(ri.oids[i])
	}
	full := rel.Namespace + "." + rel.Name
	if t := en.r.Tables[full]; t != nil {
		ri.table = t
		ri.idx = make([]int, len(t.scope.slots))
		for s, name := range t.scope.slots {
			if ri.idx[s] = col(name); ri.idx[s] < 0 {
				ri.off = true
				en.log.Error("a column the rules read is missing from the replicated relation (publication column list?); its events are off",
					logkey.Relation, full, "column", name)
			}
		}
		for _, j := range t.Joins {
			ri.joins = append(ri.joins, en.byName[j])
		}
	}
	ri.aggStatus, ri.aggTotal = -1, -1
	if en.agg != nil && en.agg.table == full {
		ri.agg, ri.aggStatus, ri.aggTotal = true, col(en.agg.spec.Status), col(en.agg.spec.Total)
	}
	if lc := en.lookups[full]; lc != nil {
		ri.lookup = lc
		ri.lkKey = col(lc.spec.Key)
		for _, c := range lc.spec.Columns {
			ri.lkCols = append(ri.lkCols, col(c))
		}
	}
	en.rels[rel.ID] = ri
	return ri
}

// Map appends the events of change c to dst. It never retains c's buffers.
func (en *Engine) Map(dst []cdc.Event, c *cdc.Change) ([]cdc.Event, error) {
	if c == nil {
		return dst, errors.New("rules: nil change")
	}
	switch c.Op {
	case cdc.OpInsert, cdc.OpUpdate, cdc.OpDelete:
	case cdc.OpMessage:
		en.mu.Lock()
		defer en.mu.Unlock()
		return en.mapMessageLocked(dst, c), nil
	case cdc.OpTruncate:
		en.mu.Lock()
		defer en.mu.Unlock()
		rels := c.Truncated
		if len(rels) == 0 && c.Relation != nil {
			rels = []*cdc.Relation{c.Relation}
		}
		for _, r := range rels {
			ri := en.relInfoLocked(r)
			if ri.lookup != nil {
				clear(ri.lookup.rows)
			}
			if ri.agg {
				en.agg.applyLocked(c, -1, -1)
			}
		}
		return dst, nil
	default:
		return dst, fmt.Errorf("rules: change with unknown op %d", c.Op)
	}
	if c.Relation == nil {
		return dst, fmt.Errorf("rules: %s change without a relation", c.Op)
	}
	en.mu.Lock()
	defer en.mu.Unlock()
	ri := en.relInfoLocked(c.Relation)
	if ri.lookup != nil {
		en.applyLookupLocked(ri, c)
	}
	aggMissing := ri.agg && en.agg.applyLocked(c, ri.aggStatus, ri.aggTotal)
	if ri.table == nil || ri.off {
		if aggMissing {
			en.missingOld.Add(1)
		}
		return dst, nil
	}
	return en.mapRowLocked(dst, c, ri, aggMissing), nil
}

func fullOld(c *cdc.Change) cdc.Tuple {
	if c.Old == nil || c.Relation.ReplicaIdentity != 'f' {
		return nil
	}
	return c.Old
}

func (en *Engine) mapRowLocked(dst []cdc.Event, c *cdc.Change, ri *relInfo, missing bool) []cdc.Event {
	t := ri.table
	var rules []*Rule
	switch c.Op {
	case cdc.OpInsert:
		rules = t.Events[0]
	case cdc.OpUpdate:
		rules = t.Events[1]
	case cdc.OpDelete:
		rules = t.Events[2]
	}
	if len(rules) == 0 {
		if missing {
			en.missingOld.Add(1)
		}
		return dst
	}
	e := &en.e
	*e = env{newRow: c.New, oldRow: fullOld(c), idx: ri.idx, oids: ri.oids, op: c.Op,
		commitMS: c.CommitTime.UnixMilli(), joins: e.joins[:0], lets: e.lets,
		joinKeys: t.joinKey, caches: ri.joins, keyBuf: e.keyBuf}
	if n := 2 * len(t.scope.letIdx); len(e.lets) < n {
		e.lets = make([]value, n)
	}
	if c.Op == cdc.OpDelete {
		e.newRow = c.Old
	}
	for range t.joinKey {
		e.joins = append(e.joins, nil) // looked up on first use (env.join)
	}
	if t.guard != nil && !t.guard.test(e) {
		if missing {
			en.missingOld.Add(1)
		}
		return dst
	}
	if c.Op == cdc.OpUpdate && e.oldRow == nil && !missing {
		for _, r := range rules {
			if r.usesOld {
				missing = true
				break
			}
		}
	}
	if missing { // once per change
		en.missingOld.Add(1)
	}
	en.scratch, en.rooms, en.marks, en.early = en.scratch[:0], en.rooms[:0], en.marks[:0], en.early[:0]
	fired := false
	rowStart, rowEnd := 0, 0 // the row() encoding in scratch, once done
next:
	for _, r := range rules {
		if r.when != nil && !e.cond(r) {
			continue
		}
		fired = true
		for _, j := range r.require {
			if e.join(j) == nil {
				continue next
			}
		}
		m := mark{rule: r, r0: -1}
		if len(r.room) != 1 || r.room[0].val != nil {
			m.r0 = len(en.rooms)
			for _, s := range r.room {
				if s.val == nil {
					en.rooms = append(en.rooms, s.lit...)
					continue
				}
				var ok bool
				if en.rooms, ok = appendText(en.rooms, s.val.eval(e)); !ok {
					en.rooms = en.rooms[:m.r0]
					continue next
				}
			}
			m.r1 = len(en.rooms)
		}
		if r.collect {
			room := r.constRoom
			if m.r0 >= 0 {
				room = string(en.rooms[m.r0:m.r1])
				en.rooms = en.rooms[:m.r0]
			}
			en.collectLocked(c, e, ri, r, room)
			continue
		}
		if len(r.payload) == 1 && r.payload[0].val != nil && r.payload[0].val.op == opRow && rowEnd > 0 {
			// The whole row was already encoded for an earlier event: share it.
			m.p0, m.p1 = rowStart, rowEnd
			en.marks = append(en.marks, m)
			continue
		}
		m.p0 = len(en.scratch)
		for _, s := range r.payload {
			if s.val == nil {
				en.scratch = append(en.scratch, s.lit...)
			} else if s.val.op == opRow {
				rowStart = len(en.scratch)
				en.scratch = cdc.AppendRowJSON(en.scratch, ri.rel, ri.oids, ri.elems, e.newRow)
				rowEnd = len(en.scratch)
			} else if s.val.op == opCol {
				// A plain column: encode from the tuple by its type.
				i := ri.idx[s.val.slot]
				t := e.newRow
				if s.val.old {
					t = e.oldRow
				}
				if i >= 0 && i < len(t) {
					en.scratch = cdc.AppendValueJSON(en.scratch, ri.oids[i], t[i])
				} else {
					en.scratch = append(en.scratch, "null"...)
				}
			} else {
				en.scratch = appendJSON(en.scratch, s.val.eval(e))
			}
		}
		m.p1 = len(en.scratch)
		en.marks = append(en.marks, m)
	}
	if fired {
		for j := range e.joins {
			if e.join(j) == nil {
				en.lookupMisses.Add(1)
				break
			}
		}
	}
	if len(en.marks) == 0 {
		return append(dst, en.early...)
	}
	// One allocation for all payloads and one for all dynamic rooms.
	payloads := make([]byte, len(en.scratch))
	copy(payloads, en.scratch)
	var rooms string
	if len(en.rooms) > 0 {
		rooms = string(en.rooms)
	}
	for _, m := range en.marks {
		room := ""
		if m.r0 < 0 {
			room = m.rule.constRoom
		} else {
			room = rooms[m.r0:m.r1]
		}
		dst = append(dst, cdc.Event{
			ID:         cdc.EventID{LSN: c.CommitLSN, Index: c.Index*maxEventsPerOp + m.rule.Index},
			Room:       room,
			Name:       m.rule.Spec.Event,
			Payload:    payloads[m.p0:m.p1:m.p1],
			CommitTime: c.CommitTime,
		})
	}
	if len(en.early) > 0 {
		start := len(dst) - len(en.marks)
		dst = append(dst, en.early...)
		slices.SortStableFunc(dst[start:], func(a, b cdc.Event) int { return cmp.Compare(a.ID.Index, b.ID.Index) })
	}
	return dst
}

// appendText appends v as room text; false for null or unknown.
func appendText(dst []byte, v value) ([]byte, bool) {
	switch v.k {
	case kText:
		return append(dst, v.b...), true
	case kInt:
		return strconv.AppendInt(dst, v.i, 10), true
	case kBool:
		return strconv.AppendBool(dst, v.i != 0), true
	}
	return dst, false
}

// appendJSON appends v as JSON the way to_jsonb encodes its type.
func appendJSON(dst []byte, v value) []byte {
	switch v.k {
	case kInt:
		return strconv.AppendInt(dst, v.i, 10)
	case kBool:
		return strconv.AppendBool(dst, v.i != 0)
	case kText:
		oid := v.oid
		if oid == 0 {
			oid = 25 // a literal is text
		}
		return cdc.AppendValueJSON(dst, oid, cdc.Value{Kind: cdc.ValueText, Data: v.b})
	}
	return append(dst, "null"...)
}

// applyLookupLocked keeps a lookup cache fresh from a change of its table.
func (en *Engine) applyLookupLocked(ri *relInfo, c *cdc.Change) {
	lc := ri.lookup
	if ri.lkKey < 0 {
		return
	}
	keyOf := func(t cdc.Tuple) ([]byte, bool) {
		if ri.lkKey >= len(t) || t[ri.lkKey].Kind != cdc.ValueText {
			return nil, false
		}
		return t[ri.lkKey].Data, true
	}
	if c.Op == cdc.OpDelete || c.Op == cdc.OpUpdate {
		if old, ok := keyOf(c.Old); ok {
			if nk, nok := keyOf(c.New); c.Op == cdc.OpDelete || !nok || string(nk) != string(old) {
				delete(lc.rows, string(old))
			}
		}
	}
	if c.Op == cdc.OpDelete {
		return
	}
	key, ok := keyOf(c.New)
	if !ok {
		return
	}
	prev := lc.rows[string(key)]
	row := make([]value, len(ri.lkCols))
	for i, ci := range ri.lkCols {
		if ci < 0 || ci >= len(c.New) {
			row[i] = value{k: kNull}
			continue
		}
		switch v := c.New[ci]; v.Kind {
		case cdc.ValueNull:
			row[i] = value{k: kNull}
		case cdc.ValueText:
			b := append([]byte(nil), v.Data...)
			row[i] = value{k: kText, b: b, oid: ri.oids[ci]}
		default: // not sent: keep what was known
			if prev != nil {
				row[i] = prev[i]
			} else {
				row[i] = value{k: kNull}
			}
		}
	}
	lc.rows[string(key)] = row
}
