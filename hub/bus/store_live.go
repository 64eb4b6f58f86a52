package bus

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/internal/backoff"
	"github.com/walcast/walcast/internal/logkey"
)

// Live sessions: the hub saves a socket's session when the socket disconnects.
// A node that is killed saves nothing, so its clients could not recover on
// another node. The store therefore also keeps the session of every connected
// socket in Redis, refreshed while the socket lives (rooms changes within
// liveTick, the expiry every MaxAge/3). If the node dies, the last record stays
// recoverable for MaxAge, and another node's TakeSession finds it.
//
// A record is keyed by the socket's private id (hub.Socket.PID); a socket
// without one (recovery off) is not tracked.
//
// A live record names its node, and every node keeps a heartbeat key
// (<Prefix>:node:<uid>) that expires liveNodeTTL after its last refresh.
// TakeSession does not take the record of a socket that is connected on a
// live node (hub.ErrSessionLive): one session never has two live sockets. It
// waits up to liveWait for a remote node's heartbeat to expire first, so a
// client of a node that was just killed still recovers on another node (on
// the same node restarted, with RedisStoreConfig.Node, at once). The session
// a node saves when its socket disconnects names no node.

// liveTick is how often rooms of connected sockets are checked for changes;
// liveSettle is how long after a new socket its session is first written (so
// the auto-joins of OnConnect handlers are in it).
// liveNodeTTL is how long a node's heartbeat outlives its last refresh;
// liveWait bounds how long TakeSession waits for a live record's remote node
// to be seen dead, polling every livePoll.
const (
	liveTick    = time.Second
	liveSettle  = 100 * time.Millisecond
	liveNodeTTL = 3 * liveTick
	liveWait    = liveNodeTTL + 500*time.Millisecond
	livePoll    = 250 * time.Millisecond
)

type liveEntry struct {
	sock    *hub.Socket
	pid     string
	rooms   []string
	written time.Time
}

type liveSessions struct {
	// flushMu is held while live records are written, and read-held by
	// SaveSession, so that a flush in flight cannot overwrite the session a
	// socket saved when it disconnected with a live record (saves still run
	// in parallel with each other, e.g. at shutdown).
	flushMu sync.RWMutex

	mu      sync.Mutex
	entries map[*hub.Socket]*liveEntry
	byPID   map[string]*liveEntry
	added   chan struct{} // a socket was tracked; flush soon
}

// forgetLocked stops tracking e (s.live.mu held).
func (l *liveSessions) forgetLocked(e *liveEntry) {
	delete(l.entries, e.sock)
	if l.byPID[e.pid] == e {
		delete(l.byPID, e.pid)
	}
}

// tracked reports whether this node has a connected socket with pid.
func (l *liveSessions) tracked(pid string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.byPID[pid]
	return ok
}

// nodeKey is the heartbeat key of the node uid.
func (s *RedisStore) nodeKey(uid string) string { return s.cfg.Prefix + ":node:" + uid }

// track starts keeping sock's session; install it with Namespace.OnConnect.
func (s *RedisStore) track(sock *hub.Socket) {
	pid := sock.PID()
	if pid == "" {
		s.log.Debug("live session not tracked: no pid", logkey.Conn, sock.ID())
		return
	}
	e := &liveEntry{sock: sock, pid: pid}
	s.live.mu.Lock()
	if s.live.entries == nil {
		s.live.entries = make(map[*hub.Socket]*liveEntry)
		s.live.byPID = make(map[string]*liveEntry)
	}
	s.live.entries[sock] = e
	s.live.byPID[pid] = e
	s.live.mu.Unlock()
	select {
	case s.live.added <- struct{}{}:
	default:
	}
	sock.OnDisconnect(func(sock *hub.Socket, reason hub.Reason) {
		s.live.mu.Lock()
		s.live.forgetLocked(e)
		s.live.mu.Unlock()
		if !reason.Recoverable() {
			// The hub saved nothing; drop the live record so the session
			// cannot be resumed after an explicit disconnect. Not on the
			// hub's goroutine: Redis may be slow or down.
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				_ = s.cfg.Client.Del(ctx, s.sessPrefix+e.pid).Err()
			}()
		}
	})
}

// keepLive writes changed or ageing live sessions every liveTick until ctx ends.
func (s *RedisStore) keepLive(ctx context.Context) {
	t := time.NewTicker(liveTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.live.added:
			if backoff.Sleep(ctx, liveSettle) != nil {
				return
			}
		}
		s.flushLive(ctx)
	}
}

func (s *RedisStore) flushLive(ctx context.Context) {
	s.live.flushMu.Lock()
	defer s.live.flushMu.Unlock()
	now := time.Now()
	var due []hub.Session
	var dueEntries []*liveEntry
	s.live.mu.Lock()
	for _, e := range s.live.entries {
		rooms := e.sock.Rooms()
		slices.Sort(rooms) // the hub's order may vary; compare sets
		if slices.Equal(rooms, e.rooms) && now.Sub(e.written) < s.cfg.MaxAge/3 {
			continue
		}
		due = append(due, hub.Session{SID: e.sock.ID(), PID: e.pid, Namespace: e.sock.Namespace(), User: e.sock.Handshake().User, Rooms: rooms, DisconnectedAt: now})
		dueEntries = append(dueEntries, e)
	}
	s.live.mu.Unlock()
	p := s.cfg.Client.Pipeline()
	p.Set(ctx, s.nodeKey(s.uid), "1", liveNodeTTL)
	for _, sess := range due {
		p.Set(ctx, s.sessPrefix+sess.PID, encodeSession(sess, s.uid, s.cfg.Node), s.cfg.MaxAge)
	}
	if len(due) == 0 {
		if _, err := p.Exec(ctx); err != nil {
			s.log.Debug("node heartbeat", logkey.Err, err)
		}
		return
	}
	s.log.Debug("saving live sessions", "count", len(due))
	if _, err := p.Exec(ctx); err != nil {
		s.log.Warn("save live sessions; retrying at the next tick", "count", len(due), logkey.Err, err)
		return
	}
	s.live.mu.Lock()
	for i, e := range dueEntries {
		e.rooms, e.written = due[i].Rooms, now
	}
	s.live.mu.Unlock()
}
