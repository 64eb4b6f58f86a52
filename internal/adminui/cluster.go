package adminui

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"time"

	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/internal/logkey"
)

// The events nodes send each other in requestRoom.
const (
	evSocketsRequest = "walcast:sockets?" // [request id]
	evSocketsAnswer  = "walcast:sockets"  // [request id, server id, [socket...]]
	evAction         = "walcast:action"   // [action]
)

// peerTTL is how long a node counts as present after its last server stats
// (the UI itself marks a server unhealthy after 10 s).
const peerTTL = 10 * time.Second

// Features as the UI names them.
var (
	actionFeatures = []string{"DISCONNECT", "LEAVE", "MLEAVE", "MDISCONNECT"}
)

func (a *Admin) features() []string {
	var f []string
	if !a.cfg.ReadOnly {
		f = append(f, actionFeatures...)
	}
	f = append(f, "AGGREGATED_EVENTS")
	if a.cfg.Mode == Development {
		f = append(f, "ALL_EVENTS")
	}
	return f
}

// peer is another node as its server stats describe it.
type peer struct {
	seen   time.Time
	admins int // sockets in its admin namespace
}

// updateWatched recomputes watched; peers older than peerTTL are dropped.
func (a *Admin) updateWatched(t time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	w := a.admins.Load() > 0
	for id, p := range a.peers {
		if t.Sub(p.seen) > peerTTL {
			delete(a.peers, id)
			continue
		}
		w = w || p.admins > 0
	}
	a.watched.Store(w)
}

// reasonAdminDisconnect closes a socket the Admin UI's "disconnect" action
// named; not recoverable, so the client starts a new session.
const reasonAdminDisconnect hub.Reason = "admin disconnect"

// onAdmin runs for every accepted admin socket. Its stats go out at once, so
// the other nodes start sending per-socket messages before they answer its
// all_sockets request (published after it, on the same connection).
func (a *Admin) onAdmin(s *hub.Socket) {
	a.admins.Add(1)
	a.updateWatched(time.Now())
	s.OnDisconnect(func(*hub.Socket, hub.Reason) {
		a.admins.Add(-1)
		a.updateWatched(time.Now())
	})
	a.emitStats()
	if d, ok := s.Data().(*adminData); ok && d.session != "" {
		s.Emit("session", d.session)
	}
	s.Emit("config", map[string]any{"supportedFeatures": a.features()})
	if !a.cfg.ReadOnly {
		s.On("_disconnect", a.onDisconnectAction)
		s.On("leave", a.onLeaveAction)
	}
	s.OnAny(func(s *hub.Socket, m *hub.Message) {
		a.log.Warn("admin ui request refused: not supported", logkey.Event, m.Event, logkey.Remote, s.Handshake().RemoteAddr)
	})
	if a.cfg.Mode == Development {
		a.goCtx(func(ctx context.Context) { a.sendAllSockets(ctx, s) })
	}
}

// action is one UI action, run on every node.
type action struct {
	Kind   string `json:"kind"` // "disconnect" or "leave"
	Nsp    string `json:"nsp"`
	Room   string `json:"room,omitempty"`   // leave: the room to leave
	Filter string `json:"filter,omitempty"` // a socket id or room; "" = every socket (leave only)
	Close  bool   `json:"close,omitempty"`  // disconnect: close the whole connection
}

// onDisconnectAction handles "_disconnect" (nsp, close, filter).
func (a *Admin) onDisconnectAction(s *hub.Socket, m *hub.Message) {
	var act action
	if !unmarshalArgs(m.Args, &act.Nsp, &act.Close, &act.Filter) || act.Filter == "" {
		a.log.Warn("admin ui disconnect refused: a namespace and a socket id or room are required", logkey.Remote, s.Handshake().RemoteAddr)
		return
	}
	act.Kind = "disconnect"
	a.runAction(s, act)
}

// onLeaveAction handles "leave" (nsp, room, filter).
func (a *Admin) onLeaveAction(s *hub.Socket, m *hub.Message) {
	var act action
	if !unmarshalArgs(m.Args, &act.Nsp, &act.Room, &act.Filter) || act.Room == "" {
		a.log.Warn("admin ui leave refused: a namespace and a room are required", logkey.Remote, s.Handshake().RemoteAddr)
		return
	}
	act.Kind = "leave"
	a.runAction(s, act)
}

func (a *Admin) runAction(s *hub.Socket, act action) {
	a.log.Info("admin ui action", "action", act.Kind, logkey.Namespace, act.Nsp, logkey.Room, act.Room,
		"filter", act.Filter, "close", act.Close, logkey.Remote, s.Handshake().RemoteAddr)
	a.apply(act)
	if a.cfg.Publish != nil {
		raw, err := encodeArgs([]any{act})
		if err == nil {
			a.send(&hub.Broadcast{Rooms: []string{requestRoom}, Event: evAction, Args: raw})
		}
	}
}

// apply runs act on this node's sockets.
func (a *Admin) apply(act action) {
	n := a.srv.Lookup(act.Nsp)
	if n == nil {
		return
	}
	var targets []*hub.Socket
	if act.Filter == "" {
		targets = n.Sockets(nil)
	} else {
		targets = n.InRoom(nil, act.Filter)
	}
	a.log.Debug("admin ui action applied", "action", act.Kind, "sockets", len(targets))
	for _, t := range targets {
		switch act.Kind {
		case "disconnect":
			if act.Close {
				t.CloseTransport(reasonAdminDisconnect)
			} else {
				t.Disconnect()
			}
		case "leave":
			t.Leave(act.Room)
		}
	}
}

// unmarshalArgs decodes args[i] into dst[i]; missing or null trailing
// arguments leave their zero value. It reports false on a type mismatch.
func unmarshalArgs(args []json.RawMessage, dst ...any) bool {
	for i, d := range dst {
		if i >= len(args) {
			return true
		}
		if string(args[i]) == "null" {
			continue
		}
		if err := json.Unmarshal(args[i], d); err != nil {
			return false
		}
	}
	return true
}

// localSockets serializes up to MaxSockets sockets of this node.
func (a *Admin) localSockets() []json.RawMessage {
	var out []json.RawMessage
	for _, ni := range a.srv.Namespaces() {
		n := a.srv.Lookup(ni.Name)
		if n == nil {
			continue
		}
		for _, s := range n.Sockets(nil) {
			if len(out) >= a.cfg.MaxSockets {
				return out
			}
			out = append(out, a.serialize(s))
		}
	}
	return out
}

// livePeers returns the other nodes whose stats arrived within peerTTL.
func (a *Admin) livePeers(t time.Time) map[string]bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]bool)
	for id, p := range a.peers {
		if t.Sub(p.seen) <= peerTTL {
			out[id] = true
		}
	}
	return out
}

// unknownPeersWait is how long sendAllSockets waits for answers when it
// knows no other node yet.
const unknownPeersWait = 500 * time.Millisecond

// sendAllSockets gathers every node's sockets and sends them to s as
// all_sockets.
func (a *Admin) sendAllSockets(ctx context.Context, s *hub.Socket) {
	all := a.localSockets()
	peers := a.livePeers(time.Now())
	// No peer known yet (this node, or the others, just started: their
	// stats come every 2 s): ask anyway, and take the answers that come
	// within unknownPeersWait.
	unknown := len(peers) == 0
	if a.cfg.Publish != nil {
		id := randomID()
		ch := make(chan gathered, 16)
		a.mu.Lock()
		a.pending[id] = ch
		a.mu.Unlock()
		defer func() {
			a.mu.Lock()
			delete(a.pending, id)
			a.mu.Unlock()
		}()
		raw, _ := encodeArgs([]any{id})
		a.send(&hub.Broadcast{Rooms: []string{requestRoom}, Event: evSocketsRequest, Args: raw})
		wait := a.cfg.GatherTimeout
		if unknown {
			wait = min(wait, unknownPeersWait)
		}
		t := time.NewTimer(wait)
		defer t.Stop()
	wait:
		for unknown || len(peers) > 0 {
			select {
			case g := <-ch:
				delete(peers, g.serverID)
				all = append(all, g.sockets...)
			case <-t.C:
				if !unknown {
					a.log.Warn("admin ui: nodes did not list their sockets in time", "missing", len(peers))
				}
				break wait
			case <-ctx.Done():
				return
			}
		}
	}
	if all == nil {
		all = []json.RawMessage{}
	}
	s.Emit("all_sockets", all)
}

// Remote handles a broadcast that another node published; the bus calls it
// (RedisConfig.OnRemote) for every remote broadcast, so it returns at once
// for anything that is not the admin namespace's. It never blocks.
func (a *Admin) Remote(b *hub.Broadcast) {
	if b.Namespace != a.nsp || len(b.Args) == 0 {
		return
	}
	switch {
	case b.Event == "server_stats":
		var st struct {
			ServerID   string `json:"serverId"`
			Namespaces []struct {
				Name         string `json:"name"`
				SocketsCount int    `json:"socketsCount"`
			} `json:"namespaces"`
		}
		if json.Unmarshal(b.Args[0], &st) != nil || st.ServerID == "" || st.ServerID == a.cfg.ServerID {
			return
		}
		p := peer{seen: time.Now()}
		for _, n := range st.Namespaces {
			if n.Name == a.nsp {
				p.admins = n.SocketsCount
			}
		}
		a.mu.Lock()
		if _, known := a.peers[st.ServerID]; known || len(a.peers) < 1024 {
			a.peers[st.ServerID] = p
		}
		a.mu.Unlock()
		a.updateWatched(p.seen)
	case len(b.Rooms) != 1 || b.Rooms[0] != requestRoom:
	case b.Event == evSocketsRequest:
		var id string
		if !unmarshalArgs(b.Args, &id) || id == "" || a.cfg.Mode != Development {
			return
		}
		a.queueWork(func(context.Context) {
			raw, err := encodeArgs([]any{id, a.cfg.ServerID, a.localSockets()})
			if err == nil {
				a.send(&hub.Broadcast{Rooms: []string{requestRoom}, Event: evSocketsAnswer, Args: raw})
			}
		})
	case b.Event == evSocketsAnswer:
		var id, server string
		var socks []json.RawMessage
		if !unmarshalArgs(b.Args, &id, &server, &socks) {
			return
		}
		a.mu.Lock()
		ch := a.pending[id]
		a.mu.Unlock()
		if ch != nil {
			select {
			case ch <- gathered{serverID: server, sockets: socks}:
			default:
			}
		}
	case b.Event == evAction:
		var act action
		if a.cfg.ReadOnly || !unmarshalArgs(b.Args, &act) {
			return
		}
		if act.Kind == "disconnect" && act.Filter == "" {
			return
		}
		a.log.Debug("admin ui action from another node", "action", act.Kind, logkey.Namespace, act.Nsp, logkey.Room, act.Room, "filter", act.Filter)
		a.queueWork(func(context.Context) { a.apply(act) })
	}
}

// queueWork hands fn to Run's goroutine, dropping it when the queue is full.
func (a *Admin) queueWork(fn func(context.Context)) {
	if !a.running.Load() {
		return
	}
	select {
	case a.work <- fn:
	default:
		a.dropped.Add(1)
	}
}

// emitStats queues this node's server_stats (also called by onAdmin, on a
// connection's goroutine).
func (a *Admin) emitStats() {
	a.updateWatched(time.Now())
	st := a.srv.Stats()
	nsps := a.srv.Namespaces()
	type nspJSON struct {
		Name         string `json:"name"`
		SocketsCount int    `json:"socketsCount"`
	}
	ns := make([]nspJSON, 0, len(nsps))
	for _, n := range nsps {
		ns = append(ns, nspJSON{Name: n.Name, SocketsCount: n.Sockets})
	}
	host := a.host
	fields := map[string]any{}
	if a.cfg.Extra != nil {
		summary, f := a.cfg.Extra()
		if summary != "" {
			host += " (" + summary + ")"
		}
		for k, v := range f {
			fields[k] = v
		}
	}
	fields["adminDropped"] = a.dropped.Load()
	stats := map[string]any{
		"serverId":            a.cfg.ServerID,
		"hostname":            host,
		"pid":                 os.Getpid(),
		"uptime":              time.Since(a.started).Seconds(),
		"clientsCount":        st.Connections,
		"pollingClientsCount": a.srv.PollingConnections(),
		"aggregatedEvents":    a.buf.drain(),
		"namespaces":          ns,
		"walcast":             fields,
	}
	a.emit("server_stats", stats)
}

func randomID() string {
	b := make([]byte, 8)
	crand.Read(b)
	return hex.EncodeToString(b)
}
