package hub

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
)

// EventHandler handles one event received from a client.
type EventHandler func(s *Socket, m *Message)

// Message is an event received from a client.
type Message struct {
	Event       string
	Args        []json.RawMessage // placeholders left in place
	Attachments [][]byte

	s     *Socket
	ackID int64 // -1 = no ack requested
	acked bool
}

// ErrNoAck is returned by Message.Ack when the client asked for no ack or the
// ack was already sent.
var ErrNoAck = errors.New("hub: no ack requested or ack already sent")

// ErrDisconnected is returned when emitting to a socket that is gone.
var ErrDisconnected = errors.New("hub: socket disconnected")

// WantsAck reports whether the client asked for an acknowledgement.
func (m *Message) WantsAck() bool { return m.ackID >= 0 && !m.acked }

// Ack sends the acknowledgement with args (encoded like Socket.Emit args). It
// returns ErrNoAck if no ack was requested or it was already sent.
func (m *Message) Ack(args ...any) error {
	if !m.WantsAck() {
		return ErrNoAck
	}
	m.acked = true
	return m.s.sendAck(m.ackID, args)
}

// AckRaw is Ack with arguments already in JSON (placeholders referring to
// attachments allowed).
func (m *Message) AckRaw(args []json.RawMessage, attachments [][]byte) error {
	if !m.WantsAck() {
		return ErrNoAck
	}
	m.acked = true
	return m.s.sendAckRaw(m.ackID, args, attachments)
}

// Socket is one client in one namespace. Handlers for one socket run
// sequentially on that connection's reader goroutine (a slow handler slows
// only that socket). Methods are safe for concurrent use.
type Socket struct {
	id  string
	pid string
	nsp *Namespace
	c   *conn
	hs  *Handshake

	recovered bool

	mu       sync.Mutex
	ctx      context.Context
	cancel   context.CancelFunc
	closed   bool
	rooms    map[string]struct{}
	handlers map[string]EventHandler
	anyH     EventHandler
	onDisc   []func(*Socket, Reason)
	acks     map[int64]chan ackReply
	nextAck  int64
}

type ackReply struct {
	args        []json.RawMessage
	attachments [][]byte
}

// ID returns the socket id (per namespace, not the Engine.IO sid). It is also
// the name of a room that contains only this socket.
func (s *Socket) ID() string { return s.id }

// PID returns the private session id sent in the CONNECT reply for
// connection state recovery ("" when recovery is off).
func (s *Socket) PID() string { return s.pid }

// Namespace returns the socket's namespace name.
func (s *Socket) Namespace() string { return s.nsp.name }

// Handshake returns what the client presented at CONNECT.
func (s *Socket) Handshake() *Handshake { return s.hs }

// Data returns Handshake().Data, the value set by middlewares.
func (s *Socket) Data() any { return s.hs.Data }

// Recovered reports whether the socket resumed a previous session through
// connection state recovery.
func (s *Socket) Recovered() bool { return s.recovered }

// Context returns a context cancelled when the socket disconnects.
func (s *Socket) Context() context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx == nil {
		s.ctx, s.cancel = context.WithCancel(context.Background())
		if s.closed {
			s.cancel()
		}
	}
	return s.ctx
}

// On sets the handler of event, replacing an earlier one.
func (s *Socket) On(event string, h EventHandler) {
	s.mu.Lock()
	if s.handlers == nil {
		s.handlers = make(map[string]EventHandler)
	}
	s.handlers[event] = h
	s.mu.Unlock()
}

// OnAny sets the handler of events that have no On handler.
func (s *Socket) OnAny(h EventHandler) {
	s.mu.Lock()
	s.anyH = h
	s.mu.Unlock()
}

// OnDisconnect registers fn to run once when the socket disconnects, with the
// reason (ReasonClientNamespace, ReasonServerNamespace, ReasonTransportClose,
// ReasonPingTimeout, ReasonSlow, ReasonShutdown, …, or the one given to
// CloseTransport).
func (s *Socket) OnDisconnect(fn func(s *Socket, reason Reason)) {
	s.mu.Lock()
	s.onDisc = append(s.onDisc, fn)
	s.mu.Unlock()
}
