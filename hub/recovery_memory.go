package hub

import (
	"context"
	"sync"
	"time"

	"github.com/walcast/walcast/hub/packet"
)

// DefaultMemoryStorePackets is the packet bound of NewMemoryStore when
// maxPackets <= 0.
const DefaultMemoryStorePackets = 10_000

// MemoryStore is an in-process RecoveryStore bounded by age and packet count.
// It is safe for concurrent use. Broadcasts are kept by pointer and must not be
// modified after Append.
type MemoryStore struct {
	maxAge     time.Duration
	maxPackets int
	now        func() time.Time

	mu        sync.Mutex
	packets   []memPacket // in Append order
	base      uint64      // sequence number of packets[0]
	index     map[memKey]uint64
	sessions  map[string]Session
	lastSweep time.Time
}

type memPacket struct {
	b  *Broadcast
	at time.Time
}

type memKey struct{ nsp, offset string }

// NewMemoryStore returns an in-memory store that keeps broadcasts and sessions
// for maxAge (<= 0 = DefaultMaxDisconnection) and at most maxPackets
// broadcasts (<= 0 = DefaultMemoryStorePackets).
func NewMemoryStore(maxAge time.Duration, maxPackets int) *MemoryStore {
	if maxAge <= 0 {
		maxAge = DefaultMaxDisconnection
	}
	if maxPackets <= 0 {
		maxPackets = DefaultMemoryStorePackets
	}
	return &MemoryStore{
		maxAge:     maxAge,
		maxPackets: maxPackets,
		now:        time.Now,
		index:      make(map[memKey]uint64),
		sessions:   make(map[string]Session),
	}
}

// Append implements RecoveryStore.
func (m *MemoryStore) Append(_ context.Context, b *Broadcast) error {
	if b.Offset == "" {
		return nil
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expireLocked(now)
	at := now
	if !b.CommitTime.IsZero() && b.CommitTime.Before(now) {
		// Age from the source's commit: a broadcast restored after a restart
		// (Server.Restore) expires when it would have in the first process.
		at = b.CommitTime
	}
	if n := len(m.packets); n > 0 && at.Before(m.packets[n-1].at) {
		at = m.packets[n-1].at // keep ages in order, so expiry stays a head drop
	}
	seq := m.base + uint64(len(m.packets))
	m.packets = append(m.packets, memPacket{b: b, at: at})
	m.index[memKey{packet.Namespace(b.Namespace), b.Offset}] = seq
	for len(m.packets) > m.maxPackets {
		m.dropHeadLocked()
	}
	return nil
}

func (m *MemoryStore) dropHeadLocked() {
	p := m.packets[0]
	k := memKey{packet.Namespace(p.b.Namespace), p.b.Offset}
	if m.index[k] == m.base {
		delete(m.index, k)
	}
	m.packets[0] = memPacket{}
	m.packets = m.packets[1:]
	m.base++
}

func (m *MemoryStore) expireLocked(now time.Time) {
	cut := now.Add(-m.maxAge)
	for len(m.packets) > 0 && m.packets[0].at.Before(cut) {
		m.dropHeadLocked()
	}
	if now.Sub(m.lastSweep) < time.Second {
		return
	}
	m.lastSweep = now
	for pid, s := range m.sessions {
		if s.DisconnectedAt.Before(cut) {
			delete(m.sessions, pid)
		}
	}
}

// Oldest returns the offset of the oldest broadcast the store still holds
// (after dropping expired ones); ok=false when it holds none. Offsets are
// kept in Append order, so every held broadcast is at or after it; a caller
// whose offsets come from a durable log can keep that log from there on.
func (m *MemoryStore) Oldest() (offset string, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expireLocked(m.now())
	if len(m.packets) == 0 {
		return "", false
	}
	return m.packets[0].b.Offset, true
}

// Since implements RecoveryStore.
func (m *MemoryStore) Since(_ context.Context, nsp, offset string) ([]*Broadcast, bool, error) {
	nsp = packet.Namespace(nsp)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expireLocked(m.now())
	seq, ok := m.index[memKey{nsp, offset}]
	if !ok || seq < m.base {
		return nil, false, nil
	}
	var out []*Broadcast
	for _, p := range m.packets[seq-m.base+1:] {
		if packet.Namespace(p.b.Namespace) == nsp {
			out = append(out, p.b)
		}
	}
	return out, true, nil
}

// SaveSession implements RecoveryStore.
func (m *MemoryStore) SaveSession(_ context.Context, s Session) error {
	if s.DisconnectedAt.IsZero() {
		s.DisconnectedAt = m.now()
	}
	s.Rooms = append([]string(nil), s.Rooms...)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expireLocked(m.now())
	m.sessions[s.PID] = s
	return nil
}

// TakeSession implements RecoveryStore; a session can be taken once.
func (m *MemoryStore) TakeSession(_ context.Context, pid string) (Session, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[pid]
	if !ok {
		return Session{}, false, nil
	}
	delete(m.sessions, pid)
	if m.now().Sub(s.DisconnectedAt) > m.maxAge {
		return Session{}, false, nil
	}
	return s, true, nil
}
