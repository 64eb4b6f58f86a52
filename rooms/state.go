package rooms

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/internal/logkey"
)

// State on subscribe, ordered with the stream. A subscribe to a product or an
// order does not join the room at once. The StateSource reads the room's
// state and commits a stream mark with a fresh token in the same
// transaction; the mark comes back through the bus in commit order and the
// hub hands it to OnMark, which joins the socket and queues the state with
// the mark's offset, between the broadcasts before the mark and those after.
// The subscriber so gets the state, then every later change, each once, and
// a reconnect resumes after the mark.

// DefaultMarkWait is how long a subscribe waits for its stream mark before it
// joins without one (the stream is stalled or far behind).
const DefaultMarkWait = 5 * time.Second

// pendingState is a subscribe waiting for its mark.
type pendingState struct {
	st   *socketState
	gen  uint64 // the access generation the subscribe was allowed in
	room string
	evs  []hub.StateEvent // set before the mark is committed
	done chan struct{}    // closed by OnMark once joined
}

// markTable holds the subscribes waiting for their marks, by token.
type markTable struct {
	mu sync.Mutex
	m  map[string]*pendingState
}

func (t *markTable) put(token string, ps *pendingState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = make(map[string]*pendingState)
	}
	t.m[token] = ps
}

// setEvents sets ps's state (under the lock OnMark reads it with).
func (t *markTable) setEvents(ps *pendingState, evs []hub.StateEvent) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ps.evs = evs
}

// take removes and returns token's entry (nil: none, or taken already).
func (t *markTable) take(token string) *pendingState {
	t.mu.Lock()
	defer t.mu.Unlock()
	ps := t.m[token]
	delete(t.m, token)
	return ps
}

// OnMark handles a stream mark (register it with hub.Server.OnMark for the
// mark room): when this node has a subscribe waiting for the mark's token, the
// socket joins the room and gets the state read at the mark. Marks of other
// nodes, of a previous process, or forged are ignored.
func (p *Policy) OnMark(m hub.Mark) {
	token, err := strconv.Unquote(string(m.Arg))
	if err != nil {
		return
	}
	ps := p.marks.take(token)
	if ps == nil {
		return
	}
	p.marks.mu.Lock()
	evs := ps.evs
	p.marks.mu.Unlock()
	ps.st.mu.Lock()
	// An access change since the subscribe (access.go) removed it: no join.
	if ps.st.stillSubscribedLocked(ps.room, ps.gen) {
		ps.st.s.JoinAt(ps.room, m.Offset, evs...)
	}
	ps.st.mu.Unlock()
	close(ps.done)
}

// joinWithState joins room (allowed in access generation gen, with grant g),
// with its current state first (Config.State): see OnMark. Without a mark
// (no state source, a room without state, the database refused, or no mark
// within MarkWait) the socket joins at once and gets whatever state could
// be read, unordered with the stream.
func (st *socketState) joinWithState(room string, gen uint64, g grant) *refusal {
	src := st.p.cfg.State
	if src == nil {
		return st.join(room, gen, g)
	}
	st.mu.Lock()
	already, r := st.subscribeLocked(room, gen, g)
	st.mu.Unlock()
	if r != nil || already {
		return r // already subscribed: it has the changes since its state
	}
	token := newMarkToken()
	ps := &pendingState{st: st, gen: gen, room: room, done: make(chan struct{})}
	st.p.marks.put(token, ps)
	var read []hub.StateEvent
	ready := func(evs []StateEvent) {
		read = st.forMe(evs)
		st.p.marks.setEvents(ps, read) // before the commit: the mark cannot come earlier
	}
	ctx, cancel := context.WithTimeout(st.s.Context(), st.p.cfg.DBTimeout)
	marked, err := src.RoomStateAt(ctx, room, token, ready)
	cancel()
	if err != nil {
		st.p.log.Warn("current room state unavailable; the subscriber gets changes only", slog.String(logkey.Room, room), slog.Any(logkey.Err, err))
	}
	if err == nil && marked {
		t := time.NewTimer(st.p.cfg.MarkWait)
		defer t.Stop()
		select {
		case <-ps.done:
			return nil
		case <-st.s.Context().Done():
		case <-t.C:
			st.p.log.Warn("state on subscribe: no stream mark in time; joined without it, so a change committed meanwhile may come twice or before the state",
				slog.String(logkey.Room, room), slog.Duration("waited", st.p.cfg.MarkWait))
		}
	}
	if st.p.marks.take(token) == nil {
		<-ps.done // OnMark has it: it joins and queues at once
		return nil
	}
	st.mu.Lock()
	ok := st.stillSubscribedLocked(room, gen)
	if ok {
		st.s.Join(room)
	}
	st.mu.Unlock()
	if ok {
		for _, e := range read {
			_ = st.s.EmitRaw(e.Event, e.Args, nil)
		}
	}
	return nil
}

// forMe keeps the events meant for this socket's user, as hub state events.
func (st *socketState) forMe(evs []StateEvent) []hub.StateEvent {
	out := make([]hub.StateEvent, 0, len(evs))
	for _, e := range evs {
		if e.User != "" && e.User != st.identity().UserID {
			continue
		}
		out = append(out, hub.StateEvent{Event: e.Name, Args: []json.RawMessage{e.Payload}})
	}
	return out
}

// newMarkToken returns 128 random bits, hex.
func newMarkToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
