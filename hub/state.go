package hub

import "sync"

// stateCache keeps, per room of a namespace, the last broadcast of each state
// key (Broadcast.StateKey), encoded, so that a socket joining the room with
// Socket.JoinWithState gets the room's current state before its live stream.
//
// mu is held by a state broadcast for its whole fan-out and by JoinWithState
// for its join and enqueue, so no state broadcast to a room falls between a
// joiner's state and its first live event: each one is either in the state
// it gets or sent to it live, once.
//
// Memory: a room is cached only while it has members when a state broadcast
// reaches it; a state broadcast to a room without members drops the room's
// entry.
type stateCache struct {
	mu    sync.Mutex
	rooms map[string]*roomState
}

// roomState is one room's states in the order their keys first appeared.
type roomState struct {
	keys   []string
	frames map[string][]frame
}

// put records fs as the state of key in room (the caller holds mu).
func (c *stateCache) put(room, key string, fs []frame) {
	if c.rooms == nil {
		c.rooms = make(map[string]*roomState)
	}
	rs := c.rooms[room]
	if rs == nil {
		rs = &roomState{frames: make(map[string][]frame)}
		c.rooms[room] = rs
	}
	if _, ok := rs.frames[key]; !ok {
		rs.keys = append(rs.keys, key)
	}
	rs.frames[key] = fs
}

// drop forgets room (the caller holds mu).
func (c *stateCache) drop(room string) { delete(c.rooms, room) }

// size returns the number of cached rooms and states.
func (c *stateCache) size() (rooms, states int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range c.rooms {
		states += len(rs.keys)
	}
	return len(c.rooms), states
}

// JoinWithState joins room and queues to the socket the room's current state
// (the last broadcast of each Broadcast.StateKey to it), atomically with
// respect to state broadcasts: every state broadcast to room reaches the
// socket exactly once, either in that state or live after it. It reports
// whether the room had a cached state (false: the caller has to get the
// present value another way). Each state keeps its broadcast's recovery
// offset.
func (s *Socket) JoinWithState(room string) (warm bool) {
	c := &s.nsp.state
	c.mu.Lock()
	defer c.mu.Unlock()
	s.Join(room)
	rs := c.rooms[room]
	if rs == nil {
		return false
	}
	for _, k := range rs.keys {
		fs := rs.frames[k]
		if len(fs) == 1 {
			s.c.enqueue1(fs[0])
		} else {
			s.c.enqueue(fs...)
		}
	}
	return true
}

// StateCacheSize returns the number of rooms with a cached state and the
// number of states cached, over all namespaces.
func (s *Server) StateCacheSize() (rooms, states int) {
	s.nspMu.RLock()
	nsps := make([]*Namespace, 0, len(s.nsps))
	for _, n := range s.nsps {
		nsps = append(nsps, n)
	}
	s.nspMu.RUnlock()
	for _, n := range nsps {
		r, st := n.state.size()
		rooms += r
		states += st
	}
	return rooms, states
}
