package hub

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/walcast/walcast/hub/packet"
	"github.com/walcast/walcast/internal/logkey"
)

// Broadcast is one event for many sockets; it is encoded once whatever the
// number of receivers. The hub does not modify it; callers must not modify it
// after passing it to Server.Broadcast (the RecoveryStore may keep it).
type Broadcast struct {
	Namespace string   // "" = "/"
	Rooms     []string // empty = every socket of the namespace
	Except    []string // rooms to skip (each socket id is also a room)
	Event     string
	// Args holds each argument's JSON; it may contain
	// {"_placeholder":true,"num":i} referring to Attachments.
	Args        []json.RawMessage
	Attachments [][]byte  // binary arguments (BINARY_EVENT)
	Offset      string    // recovery offset appended as the last argument; "" = none
	CommitTime  time.Time // source commit time, for the commit-to-send histogram
	// StateKey, when set with Rooms, makes this broadcast the current state
	// of that key in each of its rooms (e.g. one product variant, or an
	// order's status): the hub keeps the last one per (room, key) while the
	// room has members, and Socket.JoinWithState sends it to a joiner.
	StateKey string
}

// maxInlineTargets is the largest audience written inline (see Broadcast).
const maxInlineTargets = 64

// recoveryAppendTimeout bounds RecoveryStore.Append in Broadcast.
const recoveryAppendTimeout = time.Second

var targetsPool = sync.Pool{New: func() any { s := make([]*Socket, 0, 256); return &s }}

// Restore puts b into the recovery buffer as if it had been broadcast, without
// delivering it to anyone: a node that restarted re-reads the events of its
// recovery window from a durable log and restores them, so that clients that
// reconnect with an offset of the previous process get what they missed from
// there (Socket.IO connection state recovery). It also makes b.Offset the
// namespace's latest offset. Without recovery, or without b.Offset, it does
// nothing.
func (s *Server) Restore(b *Broadcast) {
	rc := s.cfg.Recovery
	if rc == nil || b.Offset == "" {
		return
	}
	n := s.namespace(packet.Namespace(b.Namespace))
	if n == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), recoveryAppendTimeout)
	defer cancel()
	if err := rc.Store.Append(ctx, b); err != nil {
		s.log.Warn("recovery: restore broadcast", logkey.Event, b.Event, logkey.Err, err)
	}
	offset := b.Offset
	n.lastOffset.Store(&offset)
}

// Broadcast delivers bs, in order, to every node of the cluster through
// Config.Adapter (on one node: at once). It returns nil once the adapter
// accepted every broadcast, and an error (wrapping ctx.Err() when ctx ended)
// when it did not; they must then be treated as not delivered. One node never
// fails while ctx lives.
//
// On each node a broadcast reaches the sockets of its namespace that are in
// one of b.Rooms (all when empty) and in none of b.Except. The event is
// encoded once and the same bytes are queued to every receiver without
// waiting for any client (a receiver over its queue budget is disconnected as
// "slow"). When recovery is on and b.Offset != "", b is appended to the
// RecoveryStore first. Broadcasts to an undeclared namespace are dropped. A
// broadcast to the room registered with OnMark is a stream mark: stored,
// delivered to nobody, and handed to the mark handler.
func (s *Server) Broadcast(ctx context.Context, bs ...*Broadcast) error {
	if len(bs) == 0 {
		return nil
	}
	if a, ok := s.adapter.(*singleNode); ok {
		// Called on the concrete type so that bs does not escape: the
		// variadic slice stays on the caller's stack (TestInlineWrite_Allocs).
		return a.Publish(ctx, bs)
	}
	return s.adapter.Publish(ctx, slices.Clone(bs))
}

// deliver delivers b on this node (Local.Deliver).
func (s *Server) deliver(b *Broadcast) {
	n := s.namespace(packet.Namespace(b.Namespace))
	if n == nil {
		return
	}
	rc := s.cfg.Recovery
	offset := b.Offset
	if rc != nil {
		if offset != "" {
			// Bounded: a stuck store must not stall the fan-out for long.
			ctx, cancel := context.WithTimeout(context.Background(), recoveryAppendTimeout)
			if err := rc.Store.Append(ctx, b); err != nil {
				s.log.Warn("recovery: append broadcast", logkey.Event, b.Event, logkey.Err, err)
			}
			cancel()
			n.lastOffset.Store(&offset)
		} else {
			offset = n.offsetFor("")
		}
	}
	if s.mark(b, n.name, b.Offset) {
		return
	}
	text, atts := encodeBroadcast(b, rc != nil, offset)
	if rc != nil && b.Offset != "" {
		text.off = b.Offset
		for i := range atts {
			atts[i].off = b.Offset
		}
	}
	var fs []frame
	if len(atts) > 0 {
		fs = append([]frame{text}, atts...)
	}
	if b.StateKey != "" && len(b.Rooms) > 0 {
		// Held through the fan-out: see stateCache.
		n.state.mu.Lock()
		defer n.state.mu.Unlock()
		st := fs
		if st == nil {
			st = []frame{text}
		}
		for _, r := range b.Rooms {
			if n.rooms.has(r) {
				n.state.put(r, b.StateKey, st)
			} else {
				n.state.drop(r)
			}
		}
	}
	tp := targetsPool.Get().(*[]*Socket)
	targets := n.rooms.collect((*tp)[:0], b.Rooms, b.Except)
	// Inline writes only for small audiences: for big rooms the queues let
	// frames that pile up under load go out several per writev (measured by
	// walcast-load at 5,000 receivers x 50 broadcasts/s: 2.4 us server CPU
	// per delivery queued vs 7 us inline, one syscall and TCP segment each).
	var iw *inlineWrite
	if fs == nil && len(targets) > 0 && len(targets) <= maxInlineTargets {
		iw = newInlineWrite(text)
	}
	delivered := 0
	for _, sock := range targets {
		var ok bool
		switch {
		case iw != nil:
			ok = sock.c.deliverInline(iw, text)
		case fs == nil:
			ok = sock.c.enqueue1(text)
		default:
			ok = sock.c.enqueue(fs...)
		}
		if ok {
			delivered++
		}
	}
	clear(targets)
	*tp = targets[:0]
	targetsPool.Put(tp)
	s.m.eventOut(b.Event, delivered)
	s.m.broadcast(b.CommitTime)
	s.observeBroadcast(b, delivered)
}
