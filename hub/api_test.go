package hub_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/hub/hubtest"
)

// The hub API its users (rooms, cmd/walcast, hub/bus) rely on, checked at
// compile time.
var (
	_ func(hub.Config) (*hub.Server, error)                                         = hub.New
	_ func(*hub.Server, http.ResponseWriter, *http.Request)                         = (*hub.Server).ServeHTTP
	_ func(*hub.Server, string) *hub.Namespace                                      = (*hub.Server).Of
	_ func(*hub.Server, context.Context, ...*hub.Broadcast) error                   = (*hub.Server).Broadcast
	_ func(hub.Local, *hub.Broadcast)                                               = hub.Local.Deliver
	_ func(hub.RoomObserver, string, string, bool)                                  = hub.RoomObserver.RoomChanged
	_ func(*hub.Server, context.Context) error                                      = (*hub.Server).Shutdown
	_ func(*hub.Server) hub.Stats                                                   = (*hub.Server).Stats
	_ func(*hub.Namespace, hub.Middleware)                                          = (*hub.Namespace).Use
	_ func(*hub.Namespace, func(*hub.Socket))                                       = (*hub.Namespace).OnConnect
	_ hub.Middleware                                                                = func(context.Context, *hub.Handshake) error { return nil }
	_ error                                                                         = (*hub.ConnectError)(nil)
	_ func(*hub.Socket) string                                                      = (*hub.Socket).ID
	_ func(*hub.Socket) string                                                      = (*hub.Socket).Namespace
	_ func(*hub.Socket) *hub.Handshake                                              = (*hub.Socket).Handshake
	_ func(*hub.Socket) any                                                         = (*hub.Socket).Data
	_ func(*hub.Socket) context.Context                                             = (*hub.Socket).Context
	_ func(*hub.Socket) bool                                                        = (*hub.Socket).Recovered
	_ func(*hub.Socket, ...string)                                                  = (*hub.Socket).Join
	_ func(*hub.Socket, ...string)                                                  = (*hub.Socket).Leave
	_ func(*hub.Socket) []string                                                    = (*hub.Socket).Rooms
	_ func(*hub.Socket, string, hub.EventHandler)                                   = (*hub.Socket).On
	_ func(*hub.Socket, hub.EventHandler)                                           = (*hub.Socket).OnAny
	_ func(*hub.Socket, func(*hub.Socket, hub.Reason))                              = (*hub.Socket).OnDisconnect
	_ func(*hub.Socket, string, ...any) error                                       = (*hub.Socket).Emit
	_ func(*hub.Socket, context.Context, string, ...any) ([]json.RawMessage, error) = (*hub.Socket).EmitWithAck
	_ func(*hub.Socket)                                                             = (*hub.Socket).Disconnect
	_ func(*hub.Socket, hub.Reason)                                                 = (*hub.Socket).CloseTransport
	_ func(*hub.Message) bool                                                       = (*hub.Message).WantsAck
	_ func(*hub.Message, ...any) error                                              = (*hub.Message).Ack
	_ hub.RecoveryStore                                                             = (*hub.MemoryStore)(nil)
	_ func(time.Duration, int) *hub.MemoryStore                                     = hub.NewMemoryStore
	_                                                                               = hub.Stats{Connections: 0, Sockets: 0, Rooms: 0}
	_                                                                               = hub.Session{SID: "", PID: "", Namespace: "", Rooms: nil, DisconnectedAt: time.Time{}}
	_                                                                               = hub.Broadcast{Namespace: "", Rooms: nil, Except: nil, Event: "", Args: nil, Attachments: nil, Offset: "", CommitTime: time.Time{}}
	_                                                                               = hub.RecoveryConfig{Store: nil, MaxDisconnection: 0}
	_                                                                               = hub.Handshake{Namespace: "", Auth: nil, Header: nil, Query: nil, RemoteAddr: "", Data: nil}
	_                                                                               = hub.Message{Event: "", Args: nil, Attachments: nil}
	_                                                                               = hub.ConnectError{Message: "", Data: nil}

	// Introspection (internal/adminui).
	_ func(*hub.Server, *hub.Observer)                          = (*hub.Server).Observe
	_ func(*hub.Server) []hub.NamespaceInfo                     = (*hub.Server).Namespaces
	_ func(*hub.Server, string) *hub.Namespace                  = (*hub.Server).Lookup
	_ func(*hub.Server) int                                     = (*hub.Server).PollingConnections
	_ func(*hub.Namespace, []*hub.Socket) []*hub.Socket         = (*hub.Namespace).Sockets
	_ func(*hub.Namespace, string) *hub.Socket                  = (*hub.Namespace).Socket
	_ func(*hub.Namespace, []*hub.Socket, string) []*hub.Socket = (*hub.Namespace).InRoom
	_ func(*hub.Socket) string                                  = (*hub.Socket).ConnID
	_ func(*hub.Socket) string                                  = (*hub.Socket).Transport
)

// savingStore reports saved sessions.
type notifyStore struct {
	hub.RecoveryStore
	saved chan hub.Session
}

func (s *notifyStore) SaveSession(ctx context.Context, sess hub.Session) error {
	s.saved <- sess
	return s.RecoveryStore.SaveSession(ctx, sess)
}

func TestServer_Shutdown(t *testing.T) {
	store := &notifyStore{RecoveryStore: hub.NewMemoryStore(time.Minute, 100), saved: make(chan hub.Session, 10)}
	srv, ts := hubtest.NewServer(t, hub.Config{Logger: hubLogger(t), Recovery: &hub.RecoveryConfig{Store: store}})
	srv.Of("/").OnConnect(func(s *hub.Socket) { s.Join("r") })
	a, b := dial(t, ts.URL, "/", ""), dial(t, ts.URL, "/", "")
	srv.Broadcast(context.Background(), &hub.Broadcast{Rooms: []string{"r"}, Event: "last", Offset: "1-0"})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for _, c := range []*hubtest.Client{a, b} {
		if e := next(t, c); e.Name != "last" {
			t.Fatalf("queued event before close: got %q", e.Name)
		}
		<-c.Done()
	}
	for range 2 {
		select {
		case s := <-store.saved:
			if len(s.Rooms) != 1 || s.Rooms[0] != "r" {
				t.Errorf("saved session rooms: %v", s.Rooms)
			}
		default:
			t.Fatal("Shutdown returned before the sessions were saved")
		}
	}
	if st := srv.Stats(); st.Connections != 0 || st.Sockets != 0 {
		t.Fatalf("after Shutdown: %+v", st)
	}
	if _, err := hubtest.Dial(t.Context(), ts.URL, "/", nil); err == nil {
		t.Fatal("new connection accepted after Shutdown")
	}
}
