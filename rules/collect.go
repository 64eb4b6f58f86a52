package rules

import (
	"time"

	"github.com/walcast/walcast/cdc"
)

// Limits of the groups of collect rules held until their commit. A group
// whose items pass maxGroupBytes, or a row that brings all the held items of
// the transaction past maxCollectBytes, sends its group at once (with the
// row's own event index) and a later row of the same group starts a new one:
// memory stays bounded whatever the transaction's size.
const (
	maxGroupBytes   = 1 << 20
	maxCollectBytes = 16 << 20
)

type groupKey struct {
	rule *Rule
	key  string // room, 0, by
}

// group is the event of a collect rule for one room (and by value) of one
// transaction: the payload around items() from the first row, and the
// items of every row.
type group struct {
	rule       *Rule
	key        string
	room       string
	head, tail []byte
	items      []byte // item,item,…
}

// collectLocked adds the row of change c that fired collect rule r to its
// group.
func (en *Engine) collectLocked(c *cdc.Change, e *env, ri *relInfo, r *Rule, room string) {
	if len(en.order) > 0 && (c.CommitLSN != en.txLSN || c.Index <= en.txLast) {
		// Another transaction, or this one sent again after a reconnect:
		// what is held never reached its commit.
		en.dropGroupsLocked()
	}
	en.txLSN, en.txLast = c.CommitLSN, c.Index
	en.key = append(append(en.key[:0], room...), 0)
	for _, s := range r.by {
		if s.val == nil {
			en.key = append(en.key, s.lit...)
		} else if b, ok := appendText(en.key, s.val.eval(e)); ok {
			en.key = b
		} else {
			en.key = append(en.key, "\x00null"...)
		}
	}
	if en.groups == nil {
		en.groups = map[groupKey]*group{}
	}
	g := en.groups[groupKey{r, string(en.key)}]
	if g == nil {
		g = &group{rule: r, key: string(en.key), room: room}
		inTail := false
		for _, s := range r.payload {
			if s.val != nil && s.val.op == opItems {
				inTail = true
				continue
			}
			if inTail {
				g.tail = en.appendSegment(g.tail, s, e, ri)
			} else {
				g.head = en.appendSegment(g.head, s, e, ri)
			}
		}
		en.groups[groupKey{r, g.key}] = g
		en.order = append(en.order, g)
		en.collectBytes += len(g.head) + len(g.tail)
	}
	n := len(g.items)
	if n > 0 {
		g.items = append(g.items, ',')
	}
	for _, s := range r.item {
		g.items = en.appendSegment(g.items, s, e, ri)
	}
	en.collectBytes += len(g.items) - n
	if len(g.items) >= maxGroupBytes || en.collectBytes >= maxCollectBytes {
		en.early = append(en.early, g.event(cdc.EventID{LSN: c.CommitLSN, Index: c.Index*maxEventsPerOp + r.Index}, c.CommitTime))
		en.removeGroupLocked(g)
	}
}

// appendSegment appends one payload segment of the row in e.
func (en *Engine) appendSegment(dst []byte, s segment, e *env, ri *relInfo) []byte {
	switch {
	case s.val == nil:
		return append(dst, s.lit...)
	case s.val.op == opRow:
		return cdc.AppendRowJSON(dst, ri.rel, ri.oids, ri.elems, e.newRow)
	case s.val.op == opCol:
		i := ri.idx[s.val.slot]
		t := e.newRow
		if s.val.old {
			t = e.oldRow
		}
		if i >= 0 && i < len(t) {
			return cdc.AppendValueJSON(dst, ri.oids[i], t[i])
		}
		return append(dst, "null"...)
	}
	return appendJSON(dst, s.val.eval(e))
}

func (g *group) event(id cdc.EventID, at time.Time) cdc.Event {
	p := make([]byte, 0, len(g.head)+len(g.items)+len(g.tail)+2)
	p = append(p, g.head...)
	p = append(p, '[')
	p = append(p, g.items...)
	p = append(p, ']')
	p = append(p, g.tail...)
	return cdc.Event{ID: id, Room: g.room, Name: g.rule.Spec.Event, Payload: p, CommitTime: at}
}

func (en *Engine) removeGroupLocked(g *group) {
	delete(en.groups, groupKey{g.rule, g.key})
	for i, o := range en.order {
		if o == g {
			en.order = append(en.order[:i], en.order[i+1:]...)
			break
		}
	}
	en.collectBytes -= len(g.head) + len(g.tail) + len(g.items)
}

func (en *Engine) dropGroupsLocked() {
	clear(en.groups)
	clear(en.order)
	en.order = en.order[:0]
	en.collectBytes = 0
}

// MapCommit implements cdc.Committer: it appends the events of the collect
// rules' groups of the transaction that commits at lsn, one per group in
// the order of their first rows, with indexes after every change's own
// (changes*4, changes*4+1, …).
func (en *Engine) MapCommit(dst []cdc.Event, lsn cdc.LSN, at time.Time, changes uint32) []cdc.Event {
	en.mu.Lock()
	defer en.mu.Unlock()
	if len(en.order) == 0 {
		return dst
	}
	if lsn == en.txLSN {
		for i, g := range en.order {
			dst = append(dst, g.event(cdc.EventID{LSN: lsn, Index: changes*maxEventsPerOp + uint32(i)}, at))
		}
	}
	en.dropGroupsLocked()
	return dst
}
