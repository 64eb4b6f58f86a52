package hub

import (
	"encoding/json"
	"sync/atomic"
)

// Introspection: what a monitoring tool (the Socket.IO Admin UI's server side,
// internal/adminui) needs to list the sockets of a server and follow them as
// they connect, join, leave, talk and disconnect, without the hub knowing that
// tool.

// Observer receives the hub's lifecycle events. Every field is optional. The
// functions run on hub goroutines (a connection's reader, a broadcaster) and
// must not block: copy what you keep and hand slow work to a goroutine of
// your own over a bounded queue. Join and Leave run with the socket's lock
// held, so there only ID, Namespace, ConnID, Transport and Handshake may be
// called on it.
type Observer struct {
	// ConnOpen runs when an Engine.IO session opens, ConnClose when it is
	// gone, with the close reason.
	ConnOpen  func()
	ConnClose func(reason string)
	// Connect runs when a socket connected (or was recovered), after its
	// CONNECT reply was queued and before the namespace's OnConnect
	// handlers: rooms joined by those handlers follow as Join.
	Connect func(s *Socket)
	// Upgrade runs for each socket of a connection that moved from polling
	// to WebSocket.
	Upgrade func(s *Socket)
	// Disconnect runs once when a socket disconnected, with the reason and
	// the rooms it was in (its own id first).
	Disconnect func(s *Socket, reason string, rooms []string)
	// Join and Leave run for each room a socket joins or leaves (not its own
	// id room, and not for the rooms a disconnect removes: see Disconnect).
	// They run with the socket's lock held.
	Join, Leave func(s *Socket, room string)
	// EventIn runs for each event a socket sent, before its handler; args
	// are the event's arguments (placeholders for attachments left in place).
	EventIn func(s *Socket, event string, args []json.RawMessage)
	// EventOut runs for each event sent to one socket (Socket.Emit and
	// friends, not broadcasts), after it was queued.
	EventOut func(s *Socket, event string, args []json.RawMessage)
	// Broadcast runs after each Server.Broadcast fanned out (stream marks
	// excluded), with the number of local sockets it was queued to.
	Broadcast func(b *Broadcast, delivered int)
}

// observerSlot is the Server's Observer (nil: none).
type observerSlot = atomic.Pointer[Observer]

// Observe installs o, replacing an earlier observer; nil removes it. Events
// that happened before are not replayed: list the present sockets with
// Namespace.Sockets after installing.
func (s *Server) Observe(o *Observer) { s.obs.Store(o) }

// observer returns the installed observer, or nil.
func (s *Server) observer() *Observer { return s.obs.Load() }

// NamespaceInfo is one namespace and its number of connected sockets.
type NamespaceInfo struct {
	Name    string
	Sockets int
}

// Lookup returns the declared namespace name ("/" added if missing), or nil;
// unlike Of it never declares one.
func (s *Server) Lookup(name string) *Namespace {
	if name == "" || name[0] != '/' {
		name = "/" + name
	}
	return s.namespace(name)
}

// Namespaces returns every declared namespace with its socket count, in no
// particular order.
func (s *Server) Namespaces() []NamespaceInfo {
	s.nspMu.RLock()
	nsps := make([]*Namespace, 0, len(s.nsps))
	for _, n := range s.nsps {
		nsps = append(nsps, n)
	}
	s.nspMu.RUnlock()
	out := make([]NamespaceInfo, 0, len(nsps))
	for _, n := range nsps {
		out = append(out, NamespaceInfo{Name: n.name, Sockets: n.rooms.socketCount()})
	}
	return out
}

// PollingConnections returns the number of open Engine.IO sessions on HTTP
// long-polling (not upgraded to WebSocket).
func (s *Server) PollingConnections() int {
	s.connMu.Lock()
	cs := make([]*conn, 0, len(s.conns))
	for _, c := range s.conns {
		cs = append(cs, c)
	}
	s.connMu.Unlock()
	n := 0
	for _, c := range cs {
		c.mu.Lock()
		if c.transport == transportPolling && !c.closed {
			n++
		}
		c.mu.Unlock()
	}
	return n
}

// Sockets appends the namespace's connected sockets to dst (a snapshot).
func (n *Namespace) Sockets(dst []*Socket) []*Socket {
	return n.rooms.collect(dst, nil, nil)
}

// Socket returns the connected socket with that id, or nil.
func (n *Namespace) Socket(id string) *Socket { return n.rooms.socket(id) }

// InRoom appends the sockets in room (or the socket whose id it is) to dst.
func (n *Namespace) InRoom(dst []*Socket, room string) []*Socket {
	return n.rooms.members(dst, room)
}

// ConnID returns the Engine.IO session id of the socket's connection (shared
// by the sockets of one browser tab in several namespaces).
func (s *Socket) ConnID() string { return s.c.sid }

// Transport returns the connection's transport: "polling" or "websocket".
func (s *Socket) Transport() string {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if s.c.transport == transportWebSocket {
		return "websocket"
	}
	return "polling"
}

// socketCount returns the number of connected sockets.
func (ri *roomIndex) socketCount() int {
	n := 0
	for i := range ri.socks {
		sh := &ri.socks[i]
		sh.mu.RLock()
		n += len(sh.socks)
		sh.mu.RUnlock()
	}
	return n
}

// The calls below are what the rest of the hub uses to report to the
// observer; each costs one atomic load when none is installed.

func (s *Server) observeConnOpen() {
	if o := s.observer(); o != nil && o.ConnOpen != nil {
		o.ConnOpen()
	}
}

func (s *Server) observeConnClose(reason string) {
	if o := s.observer(); o != nil && o.ConnClose != nil {
		o.ConnClose(reason)
	}
}

func (s *Socket) observeConnect() {
	if o := s.nsp.srv.observer(); o != nil && o.Connect != nil {
		o.Connect(s)
	}
}

// observeUpgrade reports the upgrade of c for each of its sockets.
func (c *conn) observeUpgrade() {
	o := c.srv.observer()
	if o == nil || o.Upgrade == nil {
		return
	}
	c.mu.Lock()
	socks := make([]*Socket, 0, len(c.sockets))
	for _, s := range c.sockets {
		socks = append(socks, s)
	}
	c.mu.Unlock()
	for _, s := range socks {
		o.Upgrade(s)
	}
}

func (s *Socket) observeDisconnect(reason string, rooms []string) {
	if o := s.nsp.srv.observer(); o != nil && o.Disconnect != nil {
		o.Disconnect(s, reason, append([]string{s.id}, rooms...))
	}
}

// observeJoinLocked and observeLeaveLocked run with s.mu held.
func (s *Socket) observeJoinLocked(room string) {
	if o := s.nsp.srv.observer(); o != nil && o.Join != nil {
		o.Join(s, room)
	}
}

func (s *Socket) observeLeaveLocked(room string) {
	if o := s.nsp.srv.observer(); o != nil && o.Leave != nil {
		o.Leave(s, room)
	}
}

func (s *Socket) observeEventIn(event string, args []json.RawMessage) {
	if o := s.nsp.srv.observer(); o != nil && o.EventIn != nil {
		o.EventIn(s, event, args)
	}
}

func (s *Socket) observeEventOut(event string, args []json.RawMessage) {
	if o := s.nsp.srv.observer(); o != nil && o.EventOut != nil {
		o.EventOut(s, event, args)
	}
}

func (s *Server) observeBroadcast(b *Broadcast, delivered int) {
	if o := s.observer(); o != nil && o.Broadcast != nil {
		o.Broadcast(b, delivered)
	}
}
