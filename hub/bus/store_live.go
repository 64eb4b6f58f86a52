package bus

import (
	"context"
	"sync"
	"time"

	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/internal/backoff"
	"github.com/walcast/walcast/internal/logkey"
)

// Live sessions: the hub saves a socket's session when the socket disconnects.
// A node that is killed saves nothing, so its clients could not recover on
// another node. The store therefore also keeps the session of every connected
// socket in Redis: the hub reports each connect, join, leave and disconnect
// (hub.Config.OnSessionChange = RedisStore.OnSessionChange), and the store
// writes the changed sessions liveSettle later in one pipeline, and every
// session again each MaxAge/3 so that its expiry does not pass while the
// socket lives. If the node dies, the last record stays recoverable for
// MaxAge, and another node's TakeSession finds it.
//
// A record is keyed by the socket's private id (hub.Socket.PID); a socket
// without one (recovery off) is not tracked.

// liveSettle is how long after a change the changed sessions are written, so
// that a socket's auto-joins right after its CONNECT go out in one write.
const liveSettle = 100 * time.Millisecond

type liveSessions struct {
	mu      sync.Mutex
	entries map[string]hub.Session // by pid: every connected socket's session
	dirty   map[string]struct{}    // pids to write
	deletes []string               // pids to delete (explicit disconnects)
	changed chan struct{}          // dirty or deletes grew; flush soon
}

// OnSessionChange follows the hub's sockets (hub.Config.OnSessionChange). It
// does not block: the writes happen in RunLive's goroutine.
func (s *RedisStore) OnSessionChange(c hub.SessionChange) {
	if c.PID == "" {
		return
	}
	l := &s.live
	l.mu.Lock()
	if c.Connected {
		l.entries[c.PID] = hub.Session{SID: c.SID, PID: c.PID, Namespace: c.Namespace, User: c.User, Rooms: c.Rooms}
		l.dirty[c.PID] = struct{}{}
	} else {
		delete(l.entries, c.PID)
		delete(l.dirty, c.PID)
		if !c.Recoverable {
			// The hub saved nothing; drop the live record so the session
			// cannot be resumed after an explicit disconnect.
			l.deletes = append(l.deletes, c.PID)
		}
	}
	l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

// RunLive writes the live sessions until ctx ends: the changed ones
// liveSettle after a change, all of them every MaxAge/3.
func (s *RedisStore) RunLive(ctx context.Context) {
	t := time.NewTicker(s.cfg.MaxAge / 3)
	defer t.Stop()
	for {
		all := false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			all = true
		case <-s.live.changed:
			if backoff.Sleep(ctx, liveSettle) != nil {
				return
			}
		}
		if !s.flushLive(ctx, all) && backoff.Sleep(ctx, time.Second) == nil {
			select {
			case s.live.changed <- struct{}{}:
			default:
			}
		}
	}
}

// flushLive reports false when Redis refused the writes (kept for the next flush).
func (s *RedisStore) flushLive(ctx context.Context, all bool) bool {
	now := time.Now()
	l := &s.live
	l.mu.Lock()
	var due []hub.Session
	if all {
		for _, sess := range l.entries {
			due = append(due, sess)
		}
	} else {
		for pid := range l.dirty {
			due = append(due, l.entries[pid])
		}
	}
	clear(l.dirty)
	dels := l.deletes
	l.deletes = nil
	l.mu.Unlock()
	if len(due) == 0 && len(dels) == 0 {
		return true
	}
	p := s.cfg.Client.Pipeline()
	for _, sess := range due {
		sess.DisconnectedAt = now
		p.Set(ctx, s.sessPrefix+sess.PID, encodeSession(sess), s.cfg.MaxAge)
	}
	for _, pid := range dels {
		p.Del(ctx, s.sessPrefix+pid)
	}
	s.log.Debug("saving live sessions", logkey.Count, len(due), "deleted", len(dels))
	if _, err := p.Exec(ctx); err != nil {
		s.log.Warn("save live sessions; retrying", logkey.Count, len(due), logkey.Err, err)
		// Write them again next time (unless they changed or ended since).
		l.mu.Lock()
		for _, sess := range due {
			if _, ok := l.entries[sess.PID]; ok {
				l.dirty[sess.PID] = struct{}{}
			}
		}
		l.deletes = append(dels, l.deletes...)
		l.mu.Unlock()
		return false
	}
	return true
}
