package hub

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
)

type conn struct{}

type roomIndex struct{}

func newRoomIndex() *roomIndex  { return &roomIndex{} }
func (r *roomIndex) count() int { return 0 }
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	http.Error(w, "not implemented", http.StatusNotImplemented)
}
func (s *Server) shutdown(ctx context.Context) error { return nil }

// Broadcast delivers b to the sockets of its namespace that are in one of
// b.Rooms (all when empty) and in none of b.Except. It encodes the event once,
// never blocks on a client, and, when recovery is on and b.Offset != "",
// appends b to the RecoveryStore.
func (s *Server) Broadcast(b *Broadcast) {}

// Join adds the socket to rooms.
func (s *Socket) Join(rooms ...string) {}

// Leave removes the socket from rooms.
func (s *Socket) Leave(rooms ...string) {}

// Rooms returns the socket's rooms, its own id first.
func (s *Socket) Rooms() []string { return []string{s.id} }

// Emit sends an event to this socket. json.RawMessage arguments pass through,
// []byte becomes a binary attachment, anything else is json.Marshal'ed.
func (s *Socket) Emit(event string, args ...any) error { return errors.New("not implemented") }

// EmitWithAck sends an event asking for an acknowledgement and waits for it
// until ctx ends.
func (s *Socket) EmitWithAck(ctx context.Context, event string, args ...any) ([]json.RawMessage, error) {
	return nil, errors.New("not implemented")
}

// Disconnect sends the namespace DISCONNECT packet; the client does not
// reconnect on its own ("io server disconnect").
func (s *Socket) Disconnect() {}

// CloseTransport drops the whole Engine.IO connection without a DISCONNECT
// packet; the client reconnects on its own.
func (s *Socket) CloseTransport(reason string) {}

func (s *Socket) sendAck(id int64, args []any) error { return errors.New("not implemented") }
