package hub

import (
	"context"
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
	// SaveSession / TakeSession persist a disconnected socket's session for MaxDisconnection.
	SaveSession(ctx context.Context, sess Session) error
	TakeSession(ctx context.Context, pid string) (Session, bool, error)
}

// Session is the recoverable state of a disconnected socket.
type Session struct {
	SID, PID, Namespace string
	Rooms               []string
	DisconnectedAt      time.Time
}
