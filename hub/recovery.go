package hub

import (
	"context"
	"errors"
	"time"
)

// RecoveryStore keeps what connection state recovery needs: broadcasts that
// carry an offset, and the sessions of recently disconnected sockets.
// Implementations must be safe for concurrent use.
type RecoveryStore interface {
	// Append stores a broadcast that carries an offset (called by Server.Broadcast).
	Append(ctx context.Context, b *Broadcast) error
	// Since returns the stored broadcasts of namespace nsp after offset, in order;
	// ok=false when the offset is unknown or has expired (no recovery then).
	Since(ctx context.Context, nsp, offset string) (out []*Broadcast, ok bool, err error)
	// SaveSession / TakeSession persist a disconnected socket's session for
	// MaxDisconnection. The hub calls TakeSession only for a CONNECT its
	// middlewares accepted; a session it then refuses (RecoveryCheck) is
	// saved back unchanged. TakeSession returns an error wrapping
	// ErrSessionLive, and leaves the session in place, when the session's
	// socket is still connected (a store that follows live sessions).
	SaveSession(ctx context.Context, sess Session) error
	TakeSession(ctx context.Context, pid string) (Session, bool, error)
}

// ErrSessionLive is what TakeSession wraps when the session's socket is still
// connected on some node: recovering it would give two live sockets one id,
// so the CONNECT goes on as a new session instead.
var ErrSessionLive = errors.New("hub: session is still connected")

// Session is the recoverable state of a disconnected socket.
type Session struct {
	SID, PID, Namespace string
	// User is the Handshake.User of the socket (the authenticated user the
	// middlewares set); "" when none was set, or for a session saved by a
	// version that did not record it.
	User           string
	Rooms          []string
	DisconnectedAt time.Time
}

// SessionChange is a socket's state after it connected, joined or left rooms,
// or disconnected (see Config.OnSessionChange).
type SessionChange struct {
	SID, PID, Namespace string
	// User is the socket's Handshake.User (see Session.User).
	User string
	// Rooms are the socket's rooms after the change, without its own id. On
	// disconnect they are the rooms it had.
	Rooms []string
	// Connected is false for the disconnect.
	Connected bool
	// Recoverable, on disconnect, says that the session was saved for
	// connection state recovery (the client may resume it by pid).
	Recoverable bool
	At          time.Time
}

// roomListLocked returns the socket's rooms without its own id.
func (s *Socket) roomListLocked() []string {
	out := make([]string, 0, len(s.rooms))
	for r := range s.rooms {
		out = append(out, r)
	}
	return out
}

// sessionChangedLocked calls Config.OnSessionChange, if set, with s.mu held.
func (s *Socket) sessionChangedLocked(connected, recoverable bool, rooms []string) {
	fn := s.nsp.srv.cfg.OnSessionChange
	if fn == nil {
		return
	}
	fn(SessionChange{SID: s.id, PID: s.pid, Namespace: s.nsp.name, User: s.hs.User, Rooms: rooms,
		Connected: connected, Recoverable: recoverable, At: time.Now()})
}
