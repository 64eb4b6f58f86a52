package hub

import (
	"sync"
	"sync/atomic"
)

// roomShards spreads the room and socket maps over independent locks so
// joins on one room do not stall broadcasts to another.
const roomShards = 32

// roomIndex is one namespace's sockets and rooms. A socket id is a room that
// holds only that socket; it is resolved through the socket map and not
// stored as a room.
type roomIndex struct {
	rooms  [roomShards]roomShard
	socks  [roomShards]sockShard
	nrooms atomic.Int64
	m      *Metrics
	nsp    string
	obs    RoomObserver // nil = none
}

type roomShard struct {
	mu    sync.RWMutex
	rooms map[string]map[*Socket]struct{}
}

type sockShard struct {
	mu    sync.RWMutex
	socks map[string]*Socket
}

func newRoomIndex(m *Metrics, nsp string, obs RoomObserver) *roomIndex {
	ri := &roomIndex{m: m, nsp: nsp, obs: obs}
	for i := range ri.rooms {
		ri.rooms[i].rooms = make(map[string]map[*Socket]struct{})
		ri.socks[i].socks = make(map[string]*Socket)
	}
	return ri
}

func shardOf(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h % roomShards
}

func (ri *roomIndex) count() int { return int(ri.nrooms.Load()) }

func (ri *roomIndex) addSocket(s *Socket) {
	sh := &ri.socks[shardOf(s.id)]
	sh.mu.Lock()
	sh.socks[s.id] = s
	sh.mu.Unlock()
}

func (ri *roomIndex) removeSocket(s *Socket) {
	sh := &ri.socks[shardOf(s.id)]
	sh.mu.Lock()
	if sh.socks[s.id] == s {
		delete(sh.socks, s.id)
	}
	sh.mu.Unlock()
}

func (ri *roomIndex) socket(id string) *Socket {
	sh := &ri.socks[shardOf(id)]
	sh.mu.RLock()
	s := sh.socks[id]
	sh.mu.RUnlock()
	return s
}

func (ri *roomIndex) join(s *Socket, room string) {
	sh := &ri.rooms[shardOf(room)]
	sh.mu.Lock()
	set := sh.rooms[room]
	if set == nil {
		set = make(map[*Socket]struct{})
		sh.rooms[room] = set
		ri.nrooms.Add(1)
		ri.m.addRooms(1)
		if ri.obs != nil {
			ri.obs.RoomChanged(ri.nsp, room, true)
		}
	}
	set[s] = struct{}{}
	sh.mu.Unlock()
}

func (ri *roomIndex) leave(s *Socket, room string) {
	sh := &ri.rooms[shardOf(room)]
	sh.mu.Lock()
	if set := sh.rooms[room]; set != nil {
		delete(set, s)
		if len(set) == 0 {
			delete(sh.rooms, room)
			ri.nrooms.Add(-1)
			ri.m.addRooms(-1)
			if ri.obs != nil {
				ri.obs.RoomChanged(ri.nsp, room, false)
			}
		}
	}
	sh.mu.Unlock()
}

// list returns the rooms that have members, socket ids excluded.
func (ri *roomIndex) list() []string {
	out := make([]string, 0, ri.count())
	for i := range ri.rooms {
		sh := &ri.rooms[i]
		sh.mu.RLock()
		for r := range sh.rooms {
			out = append(out, r)
		}
		sh.mu.RUnlock()
	}
	return out
}

// has reports whether room has members.
func (ri *roomIndex) has(room string) bool {
	sh := &ri.rooms[shardOf(room)]
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return len(sh.rooms[room]) > 0
}

// members appends the sockets of room (or the socket whose id is room).
func (ri *roomIndex) members(dst []*Socket, room string) []*Socket {
	sh := &ri.rooms[shardOf(room)]
	sh.mu.RLock()
	set := sh.rooms[room]
	for s := range set {
		dst = append(dst, s)
	}
	sh.mu.RUnlock()
	if set == nil {
		if s := ri.socket(room); s != nil {
			dst = append(dst, s)
		}
	}
	return dst
}

// collect appends the sockets in any of rooms (all sockets when empty) and in
// none of except, each once. Locks are held only while copying.
func (ri *roomIndex) collect(dst []*Socket, rooms, except []string) []*Socket {
	var ex map[*Socket]struct{}
	if len(except) > 0 {
		var tmp []*Socket
		for _, r := range except {
			tmp = ri.members(tmp, r)
		}
		ex = make(map[*Socket]struct{}, len(tmp))
		for _, s := range tmp {
			ex[s] = struct{}{}
		}
	}
	start := len(dst)
	switch len(rooms) {
	case 0:
		for i := range ri.socks {
			sh := &ri.socks[i]
			sh.mu.RLock()
			for _, s := range sh.socks {
				dst = append(dst, s)
			}
			sh.mu.RUnlock()
		}
	case 1:
		dst = ri.members(dst, rooms[0])
	default:
		for _, r := range rooms {
			dst = ri.members(dst, r)
		}
		seen := make(map[*Socket]struct{}, len(dst)-start)
		out := dst[:start]
		for _, s := range dst[start:] {
			if _, dup := seen[s]; !dup {
				seen[s] = struct{}{}
				out = append(out, s)
			}
		}
		dst = out
	}
	if ex != nil {
		out := dst[:start]
		for _, s := range dst[start:] {
			if _, skip := ex[s]; !skip {
				out = append(out, s)
			}
		}
		dst = out
	}
	return dst
}
