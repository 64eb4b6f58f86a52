package hub

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/walcast/walcast/internal/logkey"
)

// Server is a Socket.IO server. Create it with New, mount it at Config.Path,
// declare namespaces with Of and stop it with Shutdown.
type Server struct {
	cfg Config
	log *slog.Logger
	m   *Metrics

	nspMu sync.RWMutex
	nsps  map[string]*Namespace

	connMu sync.Mutex
	conns  map[string]*conn

	ips *ipTable // per-IP caps on handshakes and connections

	closing atomic.Bool
	// resyncAt (unix nanoseconds) is the last EndAllSessions: sessions that
	// disconnected before it are not recovered.
	resyncAt atomic.Int64

	nConns   atomic.Int64
	nSockets atomic.Int64

	marks marks        // OnMark's handler
	obs   observerSlot // Observe's observer

	writers writerPool // runs the connections' flushes

	adapter Adapter      // Config.Adapter, or singleNode
	roomObs RoomObserver // the adapter, when it observes rooms
}

// Stats are point-in-time counts.
type Stats struct {
	Connections int // open Engine.IO connections
	Sockets     int // connected Socket.IO sockets over all namespaces
	Rooms       int // non-empty rooms over all namespaces, socket-id rooms excluded
}

// New returns a server for cfg; it does no I/O.
func New(cfg Config) (*Server, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:   c,
		log:   c.Logger.With(logkey.Component, "hub"),
		m:     c.Metrics,
		nsps:  make(map[string]*Namespace),
		conns: make(map[string]*conn),
	}
	s.ips = newIPTable(c)
	s.writers.init()
	s.adapter = c.Adapter
	if s.adapter == nil {
		s.adapter = &singleNode{}
	}
	s.roomObs, _ = s.adapter.(RoomObserver)
	s.adapter.Attach(localNode{s})
	s.Of("/")
	return s, nil
}

// Of declares the namespace name (a leading "/" is added if missing) and
// returns it; "/" always exists. A CONNECT to an undeclared namespace is
// refused with "Invalid namespace".
func (s *Server) Of(name string) *Namespace {
	if name == "" || name[0] != '/' {
		name = "/" + name
	}
	s.nspMu.Lock()
	defer s.nspMu.Unlock()
	if n, ok := s.nsps[name]; ok {
		return n
	}
	n := &Namespace{srv: s, name: name, rooms: newRoomIndex(s.m, name, s.roomObs)}
	s.nsps[name] = n
	return n
}

func (s *Server) namespace(name string) *Namespace {
	s.nspMu.RLock()
	defer s.nspMu.RUnlock()
	return s.nsps[name]
}

// Stats returns the current connection, socket and room counts.
func (s *Server) Stats() Stats {
	st := Stats{Connections: int(s.nConns.Load()), Sockets: int(s.nSockets.Load())}
	s.nspMu.RLock()
	for _, n := range s.nsps {
		st.Rooms += n.rooms.count()
	}
	s.nspMu.RUnlock()
	return st
}

// ServeHTTP serves Engine.IO requests (polling and WebSocket) at Config.Path.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.serveHTTP(w, r)
}

// Shutdown stops accepting connections, lets outbound queues drain until ctx
// ends, then closes every connection without a Socket.IO DISCONNECT so clients
// reconnect (to another instance). It returns ctx.Err() if the queues did not
// drain in time.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.shutdown(ctx)
}
