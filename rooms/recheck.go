package rooms

import (
	"context"
	"hash/fnv"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/walcast/walcast/internal/logkey"
)

// Rechecks: authorization that follows the data for room kinds whose
// subscriptions rest on a query (Owner, SQL, RLS). The code that reads the
// replication stream calls RoomDataChanged with the room of a changed row
// (a rules file's follow); Run's recheck loop then asks the kind's queries
// again for each subscriber of that room on this node and removes those no
// longer allowed, who get EventAccessChanged with ReasonAccessRevoked. The
// queries run off the caller's goroutine, at most recheckParallel at once.
//
// A subscribe whose query ran while the data changed could be missed by that
// recheck (it was not in the index yet): each room hashes to an epoch that
// RoomDataChanged bumps, and a subscribe that sees its room's epoch move
// between its query and its join queues one more recheck.

// ReasonAccessRevoked: a row the subscription rested on changed and the
// kind's query no longer allows it.
const ReasonAccessRevoked = "access_revoked"

const (
	maxPendingRechecks = 10000 // distinct rooms waiting; more are dropped (logged)
	recheckParallel    = 4
)

type recheckQueue struct {
	epochs  [256]atomic.Uint64
	lastXID [256]atomic.Uint32 // the xid of the latest change, per epoch

	mu       sync.Mutex
	pending  map[string]uint32 // room -> xid of its latest change (0 = unknown)
	policies bool              // PoliciesChanged since the last batch
	lastPol  time.Time         // when the last policy batch started
	dropped  uint64
	wake     chan struct{}
}

func roomHash(room string) uint8 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(room))
	return uint8(h.Sum32())
}

func (q *recheckQueue) epoch(room string) uint64 { return q.epochs[roomHash(room)].Load() }

// xidOf returns the xid of the latest change of room's epoch (or of another
// room sharing it).
func (q *recheckQueue) xidOf(room string) uint32 { return q.lastXID[roomHash(room)].Load() }

// RoomDataChanged reports a committed change, by transaction xid (0 =
// unknown), of a row room's authorization may rest on: its subscribers on
// this node are checked again (soon, by Run). It does no I/O and is safe for
// concurrent use.
//
// The replication stream can deliver a commit a moment before it is visible
// to other sessions (Postgres writes the commit record before it updates the
// shared snapshot state), so a recheck first waits until xid is visible.
func (p *Policy) RoomDataChanged(room string, xid uint32) {
	q := &p.rechecks
	h := roomHash(room)
	if xid != 0 {
		q.lastXID[h].Store(xid)
	}
	q.epochs[h].Add(1)
	k := p.kindOf(room)
	if k == nil || !k.dataRules() || !p.access.has(room) {
		return
	}
	q.mu.Lock()
	if len(q.pending) < maxPendingRechecks {
		q.pending[room] = xid
	} else {
		q.dropped++
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// policyRecheckEvery is the least time between two policy batches: a burst
// of policy changes (a migration) costs one pass over the subscriptions.
const policyRecheckEvery = time.Second

// PoliciesChanged reports that row-level security policies or privileges
// may have changed (an event trigger's message, or the periodic fallback):
// every subscription of this node to a kind with an RLS rule is checked
// again, at most once per policyRecheckEvery, through the same bounded
// queue and at most recheckParallel queries at once. It does no I/O and is
// safe for concurrent use.
func (p *Policy) PoliciesChanged() {
	q := &p.rechecks
	q.mu.Lock()
	q.policies = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// rlsRooms returns the rooms of this node whose kind has an RLS rule.
func (p *Policy) rlsRooms() []string {
	x := &p.access
	x.mu.Lock()
	rooms := make([]string, 0, len(x.rooms))
	for room := range x.rooms {
		rooms = append(rooms, room)
	}
	x.mu.Unlock()
	out := rooms[:0]
	for _, room := range rooms {
		if k := p.kindOf(room); k != nil && k.RLS != nil {
			out = append(out, room)
		}
	}
	return out
}

// runRechecks is Run's recheck loop.
func (p *Policy) runRechecks(ctx context.Context) {
	q := &p.rechecks
	sem := make(chan struct{}, recheckParallel)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
		}
		q.mu.Lock()
		policies := q.policies
		if policies {
			if wait := policyRecheckEvery - time.Since(q.lastPol); wait > 0 {
				q.mu.Unlock()
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
				q.mu.Lock()
			}
			q.policies, q.lastPol = false, time.Now()
		}
		batch := q.pending
		q.pending = make(map[string]uint32)
		dropped := q.dropped
		q.dropped = 0
		q.mu.Unlock()
		if policies {
			for _, room := range p.rlsRooms() {
				if _, ok := batch[room]; !ok {
					batch[room] = 0
				}
			}
		}
		if dropped > 0 {
			p.log.Warn("too many rooms waiting for an access recheck; some subscribers keep their rooms until their next change",
				slog.Uint64("dropped", dropped))
		}
		var xids []int64
		for _, xid := range batch {
			if xid != 0 {
				xids = append(xids, int64(xid))
			}
		}
		p.waitVisible(ctx, xids)
		for room := range batch {
			k := p.kindOf(room)
			if k == nil {
				continue
			}
			roomID := room[len(k.Prefix):]
			for _, st := range p.access.snapshot(p.access.rooms, room) {
				select {
				case sem <- struct{}{}:
				case <-ctx.Done():
					return
				}
				wg.Go(func() {
					defer func() { <-sem }()
					st.recheckData(ctx, k, room, roomID)
				})
			}
		}
	}
}

// Bounds of waitVisible.
const (
	visibleWait = 2 * time.Second
	visiblePoll = 5 * time.Millisecond
)

// visibleSQL reports whether every 32-bit xid of $1 is visible to a new
// snapshot; each gets its epoch from the snapshot's xmax.
const visibleSQL = `WITH s AS (SELECT pg_current_snapshot() AS s, pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS x)
SELECT coalesce(bool_and(pg_visible_in_snapshot(((((s.x >> 32) - CASE WHEN xid > (s.x & 4294967295) THEN 1 ELSE 0 END) << 32) | xid)::text::xid8, s.s)), true)
FROM s, unnest($1::bigint[]) AS xid`

// waitVisible waits (at most visibleWait) until the transactions xids are
// visible to new snapshots, so the rechecks that follow read their rows.
func (p *Policy) waitVisible(ctx context.Context, xids []int64) {
	if len(xids) == 0 || p.cfg.DB == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, visibleWait)
	defer cancel()
	for {
		var ok bool
		err := p.cfg.DB.QueryRow(ctx, visibleSQL, xids).Scan(&ok)
		if err == nil && ok {
			return
		}
		if err != nil {
			if ctx.Err() == nil {
				p.log.Warn("access recheck: cannot tell whether the change is visible yet; rechecking now", slog.Any(logkey.Err, err))
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(visiblePoll):
		}
	}
}

// recheckData asks k's rules again for this socket's subscription to room.
// A query that fails keeps the subscription (logged).
func (st *socketState) recheckData(ctx context.Context, k *Kind, room, roomID string) {
	st.mu.Lock()
	_, in := st.subs[room]
	id, gen := st.id, st.gen
	st.mu.Unlock()
	if !in {
		return
	}
	g, r := st.p.authorize(ctx, k, id, roomID)
	if r != nil && r.reason == "internal" {
		st.p.log.Warn("access recheck failed; the subscription stays until the next change",
			slog.String(logkey.Room, room), slog.String(logkey.UserID, id.UserID), slog.Any(logkey.Err, r.err))
		return
	}
	st.mu.Lock()
	if _, still := st.subs[room]; !still || st.gen != gen {
		st.mu.Unlock() // left, or re-judged by an access change meanwhile
		return
	}
	if r == nil {
		st.subs[room] = g
		st.mu.Unlock()
		return
	}
	delete(st.subs, room)
	st.mu.Unlock()
	st.s.Leave(room)
	st.p.unindexRoom(room, st)
	st.tell(ReasonAccessRevoked, id, []string{room}, nil)
}
