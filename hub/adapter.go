package hub

import "context"

// Adapter carries a server's broadcasts to every node of a cluster
// (Config.Adapter), as a socket.io adapter does. Server.Broadcast hands its
// broadcasts to the adapter; the adapter sends them to the other nodes and
// delivers them on this node through the Local it was attached to.
//
// The default (Config.Adapter nil) is one node: Publish delivers each
// broadcast at once, in order, and never fails while ctx lives.
type Adapter interface {
	// Attach is called once by New, before any other method, with this
	// node's delivery. The adapter keeps it.
	Attach(local Local)
	// Publish sends bs, in order, to every node, this one included through
	// Local.Deliver. It returns nil only when every broadcast was accepted
	// (for a cluster transport: acknowledged by it), and an error wrapping
	// ctx.Err() when ctx ended first; the caller must then treat bs as not
	// delivered. It may block while the transport is down. It does not
	// retain the slice; the broadcasts must not be modified afterwards.
	Publish(ctx context.Context, bs []*Broadcast) error
}

// RoomObserver is implemented by an Adapter that wants to know which rooms
// have members on this node, e.g. to subscribe only to those rooms' channels.
// RoomChanged is called when a room of namespace nsp gets its first member on
// this node (members true) and when it loses its last one (false); the
// socket-id rooms are not reported. It is called in order for each room,
// with the room index's lock held: it must not block and must not call the
// Server (record the change and act on it elsewhere).
type RoomObserver interface {
	RoomChanged(nsp, room string, members bool)
}

// Local is this node's side of an Adapter.
type Local interface {
	// Deliver delivers b to the sockets of this node only (see
	// Server.Broadcast for the rules).
	Deliver(b *Broadcast)
	// Restore puts b into this node's recovery buffer only (Server.Restore).
	Restore(b *Broadcast)
	// Rooms returns the rooms of namespace nsp that have members on this
	// node, socket ids excluded, in no particular order.
	Rooms(nsp string) []string
	// HasRoom reports whether room of namespace nsp has members on this
	// node, or is the id of one of its sockets.
	HasRoom(nsp, room string) bool
	// Sockets returns this node's sockets of namespace nsp that are in one
	// of rooms (all when empty) and in none of except.
	Sockets(nsp string, rooms, except []string) []SocketInfo
}

// SocketInfo describes one socket for Local.Sockets.
type SocketInfo struct {
	ID         string
	Rooms      []string // its own id first
	RemoteAddr string
}

// localNode implements Local for a Server.
type localNode struct{ s *Server }

func (l localNode) Deliver(b *Broadcast) { l.s.deliver(b) }
func (l localNode) Restore(b *Broadcast) { l.s.Restore(b) }
func (l localNode) Rooms(nsp string) []string {
	n := l.s.namespace(nsp)
	if n == nil {
		return nil
	}
	return n.rooms.list()
}

func (l localNode) HasRoom(nsp, room string) bool {
	n := l.s.namespace(nsp)
	return n != nil && (n.rooms.has(room) || n.rooms.socket(room) != nil)
}

func (l localNode) Sockets(nsp string, rooms, except []string) []SocketInfo {
	n := l.s.namespace(nsp)
	if n == nil {
		return nil
	}
	socks := n.rooms.collect(nil, rooms, except)
	out := make([]SocketInfo, len(socks))
	for i, s := range socks {
		out[i] = SocketInfo{ID: s.ID(), Rooms: s.Rooms(), RemoteAddr: s.hs.RemoteAddr}
	}
	return out
}

// singleNode is the default Adapter: this node is the cluster.
type singleNode struct{ s *Server }

func (a *singleNode) Attach(l Local) {
	if n, ok := l.(localNode); ok {
		a.s = n.s
	}
}

func (a *singleNode) Publish(ctx context.Context, bs []*Broadcast) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, b := range bs {
		a.s.deliver(b)
	}
	return nil
}
