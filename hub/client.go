package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/walcast/walcast/hub/packet"
	"github.com/walcast/walcast/internal/jsonw"
	"github.com/walcast/walcast/internal/logkey"
)

// onMessage handles an Engine.IO message (a Socket.IO packet or one of its
// attachments); it returns false when the connection must close. Caller
// holds readMu.
func (c *conn) onMessage(data []byte, binary bool) bool {
	if c.srv.cfg.OnRawMessage != nil {
		c.srv.cfg.OnRawMessage(data, binary, func(d []byte, bin bool) {
			op := opText
			if bin {
				op = opBinary
				d = append([]byte(nil), d...)
			} else {
				d = append([]byte{packet.EngineMessage}, d...)
			}
			c.enqueue(frame{data: d, op: op})
		})
		return true
	}
	if binary {
		pb := c.pendingBin
		if pb == nil {
			c.badInput("socket", errors.New("unexpected binary attachment"))
			return false
		}
		pb.attachments = append(pb.attachments, data)
		if len(pb.attachments) < pb.p.Attachments {
			return true
		}
		c.pendingBin = nil
		if err := packet.ValidatePlaceholders(pb.p.Data, len(pb.attachments)); err != nil {
			c.badInput("socket", err)
			return false
		}
		return c.dispatch(pb.p, pb.attachments)
	}
	if c.pendingBin != nil {
		c.badInput("socket", errors.New("text packet while waiting for attachments"))
		return false
	}
	p, err := packet.ParseSocket(data)
	if err != nil {
		c.badInput("socket", err)
		return false
	}
	if p.Attachments > 0 {
		c.pendingBin = &pendingBinary{p: p, attachments: make([][]byte, 0, p.Attachments)}
		return true
	}
	return c.dispatch(p, nil)
}

func (c *conn) socketOf(nsp string) *Socket {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sockets[nsp]
}

func (c *conn) dispatch(p packet.Socket, atts [][]byte) bool {
	s := c.socketOf(p.Nsp)
	if p.Type == packet.SocketConnect {
		if s != nil {
			c.badInput("state", fmt.Errorf("second CONNECT to %q", p.Nsp))
			return false
		}
		return c.onConnect(p)
	}
	if s == nil || p.Type == packet.SocketConnectError {
		c.badInput("state", fmt.Errorf("packet type %q for namespace %q not connected", p.Type, p.Nsp))
		return false
	}
	switch p.Type {
	case packet.SocketDisconnect:
		s.onClose(ReasonClientNamespace)
	case packet.SocketEvent, packet.SocketBinaryEvent:
		var args []json.RawMessage
		if err := json.Unmarshal(p.Data, &args); err != nil || len(args) == 0 {
			c.badInput("socket", errors.New("bad event payload"))
			return false
		}
		name, err := packet.EventName(args[0])
		if err != nil {
			c.badInput("socket", err)
			return false
		}
		m := &Message{Event: name, Args: args[1:], Attachments: atts, s: s, ackID: p.ID}
		s.mu.Lock()
		h := s.handlers[name]
		label := name // bounded: only names the application handles
		if h == nil {
			h = s.anyH
			label = "_unhandled"
		}
		s.mu.Unlock()
		c.srv.m.eventIn(label)
		s.observeEventIn(name, m.Args)
		if h != nil {
			return c.runHandler(func() { h(s, m) })
		}
	case packet.SocketAck, packet.SocketBinaryAck:
		var args []json.RawMessage
		if err := json.Unmarshal(p.Data, &args); err != nil {
			c.badInput("socket", errors.New("bad ack payload"))
			return false
		}
		s.mu.Lock()
		ch := s.acks[p.ID]
		delete(s.acks, p.ID)
		s.mu.Unlock()
		if ch != nil {
			ch <- ackReply{args: args, attachments: atts}
		}
	}
	return true
}

// runHandler runs application code; a panic closes only this connection.
func (c *conn) runHandler(fn func()) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			c.srv.log.Error("handler panic, closing connection", logkey.Conn, c.sid, "panic", r, "stack", string(debug.Stack()))
			c.close(ReasonForcedServerClose, false)
			ok = false
		}
	}()
	fn()
	return true
}

// connectFrame encodes the CONNECT reply (or CONNECT_ERROR when isErr).
func connectFrame(nsp string, typ byte, payload []byte) []byte {
	b := make([]byte, 0, len(payload)+len(nsp)+4)
	b = append(b, packet.EngineMessage)
	b = packet.AppendSocketHeader(b, typ, 0, nsp, -1)
	return append(b, payload...)
}

func connectErrorPayload(msg string, data any) []byte {
	b := []byte(`{"message":`)
	b = jsonw.AppendString(b, msg)
	if data != nil {
		if d, err := marshalArg(data); err == nil {
			b = append(b, `,"data":`...)
			b = append(b, d...)
		}
	}
	return append(b, '}')
}

var emptyAuth = json.RawMessage(`{}`)

// onConnect handles CONNECT: namespace check, middlewares, recovery, reply.
func (c *conn) onConnect(p packet.Socket) bool {
	srv := c.srv
	n := srv.namespace(p.Nsp)
	if n == nil {
		srv.m.badPacket("namespace")
		c.enqueue(frame{data: connectFrame(p.Nsp, packet.SocketConnectError, connectErrorPayload("Invalid namespace", nil)), op: opText})
		return true
	}
	auth := emptyAuth
	if p.Data != nil {
		auth = append(json.RawMessage(nil), p.Data...)
	}
	ctx := context.Background()
	mws := n.middlewares()
	if len(mws) > 0 || srv.cfg.Recovery != nil {
		// Cancelled when the connection closes, released when this CONNECT is
		// handled: an idle connection keeps no context.
		var cancel context.CancelFunc
		ctx, cancel = c.connectContext()
		defer cancel()
	}
	hs := &Handshake{Namespace: n.name, Auth: auth, Header: c.header, Query: c.query, RemoteAddr: c.remoteAddr}

	for _, mw := range mws {
		var err error
		ok := c.runHandler(func() { err = mw(ctx, hs) })
		if !ok {
			return false
		}
		if err != nil {
			var ce *ConnectError
			msg, data := err.Error(), any(nil)
			if errors.As(err, &ce) {
				msg, data = ce.Message, ce.Data
			}
			srv.m.badPacket("refused")
			srv.log.Debug("connect refused", logkey.Conn, c.sid, logkey.Namespace, n.name, logkey.Reason, msg)
			c.enqueue(frame{data: connectFrame(n.name, packet.SocketConnectError, connectErrorPayload(msg, data)), op: opText})
			return true
		}
	}

	// Only now, with the middlewares' verdict, is the session store
	// touched: a refused CONNECT costs it nothing, and a session this
	// handshake may not resume is left to its owner.
	var sess Session
	recovered := false
	var offset string
	if srv.cfg.Recovery != nil && p.Data != nil {
		if pid, off, ok := recoveryAsk(p.Data); ok {
			sess, recovered = c.takeSession(ctx, n, hs, pid)
			offset = off
		}
	}

	s := &Socket{id: newID(), nsp: n, c: c, hs: hs, recovered: recovered}
	if srv.cfg.Recovery != nil {
		s.pid = newID()
	}
	if recovered {
		s.id, s.pid = sess.SID, sess.PID
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	if c.sockets == nil {
		c.sockets = make(map[string]*Socket, 1)
	}
	c.sockets[n.name] = s
	c.connected.Store(true)
	c.ip.authenticated()
	if c.connTimer != nil {
		c.connTimer.Stop()
		c.connTimer = nil
	}
	if recovered {
		// Hold the queue: live broadcasts from now on wait behind the replay.
		c.holding++
	}
	c.mu.Unlock()
	n.rooms.addSocket(s)
	if s.pid != "" {
		n.livePIDs.Store(s.pid, s)
	}
	srv.nSockets.Add(1)
	srv.m.addSockets(1)
	s.mu.Lock()
	s.sessionChangedLocked(true, false, nil)
	s.mu.Unlock()
	if recovered && len(sess.Rooms) > 0 {
		rooms := sess.Rooms
		if fn := n.recoverFilter(); fn != nil {
			if !c.runHandler(func() { rooms = fn(hs, rooms) }) {
				return false
			}
		}
		s.Join(rooms...)
	}
	if recovered {
		c.replay(s, offset)
	}
	reply := []byte(`{"sid":`)
	reply = jsonw.AppendString(reply, s.id)
	if s.pid != "" {
		reply = append(reply, `,"pid":`...)
		reply = jsonw.AppendString(reply, s.pid)
	}
	reply = append(reply, '}')
	handlers := n.connectHandlers()
	if len(handlers) > 0 {
		// The client gets the reply only once the handlers have run: a
		// client that saw "connect" and then caused a broadcast (or simply
		// awaited the next commit) finds the socket in the rooms they join.
		// The handlers' own emits follow the reply.
		c.mu.Lock()
		c.holding++
		c.mu.Unlock()
	}
	c.enqueue(frame{data: connectFrame(n.name, packet.SocketConnect, reply), op: opText})
	s.observeConnect()
	ok := true
	for _, fn := range handlers {
		if ok = c.runHandler(func() { fn(s) }); !ok {
			break
		}
	}
	if len(handlers) > 0 {
		c.mu.Lock()
		c.holding--
		c.w.kickLocked()
		c.mu.Unlock()
	}
	return ok
}

// replay queues the broadcasts s missed after offset, read from the store
// after s was registered so none falls between the two: broadcasts queued
// meanwhile (held) that are also in the replay are dropped, the rest follow
// it. If the offset is gone, or the replay would take more than
// the budget less 1/replayReserve, the socket is not recovered (new pid).
//
// The replay is queued at once. Before this limit a replay over the budget
// was queued whole, the CONNECT reply then overflowed the budget, the
// connection was closed as slow with its session saved at the same offset,
// and every reconnect failed the same way until the window ended. A client
// that missed more than the budget is better served by a new session:
// socket.io-client reports socket.recovered false, so the application
// subscribes again and gets the current state, which is smaller than the
// history. Streaming a larger replay was not chosen: it would hold live
// broadcasts behind it for as long as it takes. The rest of the budget takes
// the CONNECT reply and the live broadcasts while the replay drains; a
// connection that still overflows has by then delivered part of the replay,
// so its next attempt resumes from a later offset.
func (c *conn) replay(s *Socket, offset string) {
	n := s.nsp
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	missed, ok, err := c.srv.cfg.Recovery.Store.Since(ctx, n.name, offset)
	cancel()
	result := recoveryRecovered
	if err != nil {
		c.srv.log.Warn("recovery: read missed packets", logkey.Err, err)
		result = recoveryError
	} else if !ok {
		result = recoveryOffset
	}
	limit := c.srv.cfg.MaxQueueBytes - c.srv.cfg.MaxQueueBytes/replayReserve
	var fs []frame
	seen := make(map[string]struct{}, len(missed))
	size := 0
	if ok {
		for _, b := range missed {
			seen[b.Offset] = struct{}{}
			if !s.matches(b) {
				continue
			}
			text, atts := encodeBroadcast(b, true, b.Offset)
			text.off = b.Offset
			fs = append(fs, text)
			size += frameCost(text)
			for _, a := range atts {
				a.off = b.Offset
				fs = append(fs, a)
				size += frameCost(a)
			}
			if size > limit {
				ok, result = false, recoveryTooLarge
				break
			}
		}
	}
	if !ok {
		// The old pid is not resumed: it ends, and the socket goes on under a
		// new one, without the session's rooms, as any new session: the
		// client (socket.recovered false) joins again what it wants, through
		// the application's checks, which then also follow those rooms.
		fs, seen, size = nil, nil, 0
		s.mu.Lock()
		s.sessionChangedLocked(false, false, nil)
		for r := range s.rooms {
			delete(s.rooms, r)
			n.rooms.leave(s, r)
		}
		s.recovered = false
		old := s.pid
		s.pid = newID()
		s.sessionChangedLocked(true, false, nil)
		s.mu.Unlock()
		n.livePIDs.CompareAndDelete(old, s)
		n.livePIDs.Store(s.pid, s)
	}
	if result == recoveryRecovered {
		c.srv.m.recovery(result)
	} else {
		c.recoveryDenied(n, result, "cannot replay what the session missed: "+result)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.holding--
	if c.closed {
		return
	}
	if len(seen) > 0 {
		c.replayed = seen
	}
	c.w.replayLocked(fs, seen)
}

// replayReserve: 1/replayReserve of the queue budget is kept free of the
// replay (128 KiB of the default 1 MiB).
const replayReserve = 8

// matches reports whether b would have been delivered to s (recovery replay).
func (s *Socket) matches(b *Broadcast) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := func(r string) bool {
		if r == s.id {
			return true
		}
		_, ok := s.rooms[r]
		return ok
	}
	for _, r := range b.Except {
		if in(r) {
			return false
		}
	}
	if len(b.Rooms) == 0 {
		return true
	}
	for _, r := range b.Rooms {
		if in(r) {
			return true
		}
	}
	return false
}

// onClose disconnects the socket once: index cleanup, pending acks fail,
// session saved for recovery, OnDisconnect handlers. It reports whether
// this call closed it (false: it was closed already).
func (s *Socket) onClose(reason Reason) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	s.closed = true
	if s.cancel != nil {
		s.cancel()
	}
	rooms := make([]string, 0, len(s.rooms))
	for r := range s.rooms {
		rooms = append(rooms, r)
	}
	for r := range s.rooms {
		s.nsp.rooms.leave(s, r)
	}
	s.rooms = nil
	acks := s.acks
	s.acks = nil
	handlers := s.onDisc
	rc := s.nsp.srv.cfg.Recovery
	saved := rc != nil && reason.Recoverable()
	s.sessionChangedLocked(false, saved, rooms)
	s.mu.Unlock()

	n := s.nsp
	n.rooms.removeSocket(s)
	n.livePIDs.CompareAndDelete(s.pid, s)
	c := s.c
	c.mu.Lock()
	if c.sockets[n.name] == s {
		delete(c.sockets, n.name)
	}
	c.mu.Unlock()
	for _, ch := range acks {
		close(ch)
	}
	srv := n.srv
	srv.nSockets.Add(-1)
	srv.m.addSockets(-1)
	if saved {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := rc.Store.SaveSession(ctx, Session{SID: s.id, PID: s.pid, Namespace: n.name, User: s.hs.User, Rooms: rooms, DisconnectedAt: time.Now()})
		cancel()
		if err != nil {
			srv.log.Warn("recovery: save session", logkey.Err, err)
		}
	}
	s.observeDisconnect(reason.String(), rooms)
	for _, fn := range handlers {
		c.runHandler(func() { fn(s, reason) })
	}
	return true
}
