package hub

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
)

// Middleware runs at every CONNECT to a namespace, in the order added, also for
// a recovered session (so an expired token cannot resume). Returning a
// *ConnectError refuses the connection with that message and data; any other
// error refuses it with the error's text.
type Middleware func(ctx context.Context, h *Handshake) error

// Handshake is what a client presented when it connected to a namespace.
type Handshake struct {
	Namespace string
	Auth      json.RawMessage // the CONNECT payload ("auth" object), {} when absent
	// Header is the handshake request's headers, without Connection,
	// Upgrade, Sec-WebSocket-*, Cache-Control, Pragma, Accept-Encoding and
	// Content-* (kept for the connection's life, so trimmed).
	Header http.Header
	// Query is the handshake URL's query without the Engine.IO parameters
	// (EIO, transport, sid, t); nil when nothing else was sent.
	Query      url.Values
	RemoteAddr string
	Data       any // set by middlewares (e.g. the verified identity); read by handlers
	// User is the authenticated user, set by a middleware (e.g. the token's
	// subject). It is saved with the socket's session for connection state
	// recovery, and a session is resumed only by a CONNECT whose User is the
	// same (or as the namespace's RecoveryCheck decides).
	User string
}

// ConnectError refuses a CONNECT: the client receives
// CONNECT_ERROR {"message":Message,"data":Data} ("data" omitted when nil) and
// socket.io-client raises connect_error with err.message and err.data.
type ConnectError struct {
	Message string
	Data    any
}

func (e *ConnectError) Error() string { return "hub: connect refused: " + e.Message }

// Namespace is a Socket.IO namespace declared with Server.Of.
type Namespace struct {
	srv  *Server
	name string

	mu        sync.RWMutex
	mws       []Middleware
	onConnect []func(*Socket)
	onRecover RecoverFilter
	recCheck  RecoveryCheck
	// refusedLogAt (unix nanoseconds) rate-limits the log of refused
	// recoveries to one line a second.
	refusedLogAt atomic.Int64

	rooms      *roomIndex
	livePIDs   sync.Map               // pid → *Socket: this node's connected sockets (recovery)
	lastOffset atomic.Pointer[string] // latest broadcast offset (recovery)
	state      stateCache             // per-room last state broadcasts (JoinWithState)
}

// Name returns the namespace name, e.g. "/" or "/admin".
func (n *Namespace) Name() string { return n.name }

// Use appends a connect middleware.
func (n *Namespace) Use(mw Middleware) {
	n.mu.Lock()
	n.mws = append(n.mws, mw)
	n.mu.Unlock()
}

// OnConnect registers fn to run for every new socket of the namespace, after
// its CONNECT reply is queued and before the client receives it: rooms fn
// joins are joined by the time the client sees "connect". It runs on the
// connection's reader goroutine, so a slow fn delays that client's connect.
func (n *Namespace) OnConnect(fn func(s *Socket)) {
	n.mu.Lock()
	n.onConnect = append(n.onConnect, fn)
	n.mu.Unlock()
}

// RecoverFilter decides which rooms of a recovered session a socket gets
// back: it receives the handshake (with the Data the middlewares set) and the
// session's rooms, and returns the rooms to rejoin (it may reuse the slice).
type RecoverFilter func(h *Handshake, rooms []string) []string

// OnRecover sets the filter of recovered sessions' rooms, replacing an earlier
// one. It runs on the connection's reader goroutine after the middlewares
// accepted the CONNECT and before the socket rejoins the rooms and is replayed
// what it missed: a missed broadcast is replayed only if it was sent to a room
// the filter kept. nil = every room of the session is rejoined.
func (n *Namespace) OnRecover(fn RecoverFilter) {
	n.mu.Lock()
	n.onRecover = fn
	n.mu.Unlock()
}

func (n *Namespace) recoverFilter() RecoverFilter {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.onRecover
}

func (n *Namespace) middlewares() []Middleware {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.mws
}

func (n *Namespace) connectHandlers() []func(*Socket) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.onConnect
}
