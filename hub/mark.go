package hub

import (
	"encoding/json"
	"sync/atomic"
)

// A stream mark is a broadcast that orders something with the broadcasts
// around it instead of delivering an event. Its source commits it into the
// same ordered stream as the events (for walcast, the replication stream), so
// when it reaches Server.Broadcast every event committed before it has been
// fanned out and none committed after it has. The hub stores a mark for
// recovery like any broadcast with an offset, delivers it to nobody, and calls
// the handler registered with Server.OnMark, in broadcast order: the next
// broadcast waits until the handler returns.
//
// Socket.JoinAt is what a handler typically does there: join a socket to a
// room and queue the room's state read at the mark, so that the socket gets
// that state, then exactly the changes after it.

// Mark is one stream mark as its handler sees it.
type Mark struct {
	Namespace string
	Offset    string          // the mark's recovery offset ("" without one)
	Arg       json.RawMessage // the mark broadcast's first argument (nil if none)
}

// markHandler is what Server.OnMark registered.
type markHandler struct {
	room string
	fn   func(Mark)
}

// OnMark makes every broadcast to room (and to no other room) a stream mark
// handled by fn. room must be one that no socket can join. Register it before
// the first broadcast; a later call replaces the handler.
func (s *Server) OnMark(room string, fn func(Mark)) {
	s.marks.Store(&markHandler{room: room, fn: fn})
}

// mark reports whether b is a stream mark, and handles it if so.
func (s *Server) mark(b *Broadcast, nsp, offset string) bool {
	h := s.marks.Load()
	if h == nil || len(b.Rooms) != 1 || b.Rooms[0] != h.room {
		return false
	}
	m := Mark{Namespace: nsp, Offset: offset}
	if len(b.Args) > 0 {
		m.Arg = b.Args[0]
	}
	h.fn(m)
	return true
}

// marks is the Server's stream-mark handler (nil: none).
type marks = atomic.Pointer[markHandler]

// StateEvent is one event of a room's state for Socket.JoinAt.
type StateEvent struct {
	Event string
	Args  []json.RawMessage
}

// JoinAt joins the socket to room and queues evs to it, each carrying offset
// as its recovery offset, as if they had been broadcast at that position.
// Called from a mark handler with the mark's offset, it gives the socket the
// room's state as of the mark and then every broadcast after it, once: a
// client that reconnects later resumes after the mark, not before the join.
// A closed socket gets nothing.
func (s *Socket) JoinAt(room, offset string, evs ...StateEvent) {
	s.Join(room)
	if s.isClosed() {
		return
	}
	withOffset := s.c.srv.cfg.Recovery != nil
	if !withOffset {
		offset = ""
	}
	for _, e := range evs {
		b := Broadcast{Namespace: s.nsp.name, Event: e.Event, Args: e.Args, Offset: offset}
		text, atts := encodeBroadcast(&b, withOffset, offset)
		text.off = offset
		if len(atts) == 0 {
			s.c.enqueue1(text)
			continue
		}
		for i := range atts {
			atts[i].off = offset
		}
		s.c.enqueue(append([]frame{text}, atts...)...)
	}
}
