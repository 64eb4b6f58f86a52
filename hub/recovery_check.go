package hub

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/walcast/walcast/internal/logkey"
)

// RecoveryCheck decides whether a CONNECT may resume sess, the session its
// pid names. It runs on the connection's reader goroutine after the
// middlewares accepted the CONNECT, so h carries their User and Data. A
// refused session is saved back unchanged, for its owner to resume, and the
// CONNECT goes on as a new session (new pid, socket.recovered false).
type RecoveryCheck func(h *Handshake, sess Session) bool

// OnRecoveryCheck sets the namespace's recovery check, replacing an earlier
// one. nil = a session is resumed only by a handshake whose User equals the
// session's (both "" when no middleware sets User).
func (n *Namespace) OnRecoveryCheck(fn RecoveryCheck) {
	n.mu.Lock()
	n.recCheck = fn
	n.mu.Unlock()
}

func (n *Namespace) recoveryCheck() RecoveryCheck {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.recCheck
}

// Outcomes of a CONNECT that asked to resume a session: the result label of
// walcast_hub_recoveries_total.
const (
	recoveryRecovered = "recovered"        // resumed with what it missed
	recoveryUnknown   = "unknown"          // no such session: expired, ended or taken
	recoveryRefused   = "refused"          // the RecoveryCheck refused (another user's session); put back
	recoveryNamespace = "namespace"        // a session of another namespace; put back
	recoveryLive      = "live"             // its socket is still connected
	recoveryEnded     = "ended"            // ended by EndAllSessions
	recoveryOffset    = "offset_gone"      // the offset is no longer in the store
	recoveryTooLarge  = "replay_too_large" // the replay would not fit the queue budget
	recoveryError     = "store_error"      // the store failed
)

var recoveryResults = []string{recoveryRecovered, recoveryUnknown, recoveryRefused, recoveryNamespace,
	recoveryLive, recoveryEnded, recoveryOffset, recoveryTooLarge, recoveryError}

// recoveryAsk returns the pid and offset of a CONNECT payload that asks to
// resume a session (socket.io-client 4.6+ sends both as strings).
func recoveryAsk(auth json.RawMessage) (pid, offset string, ok bool) {
	var a struct {
		PID    *string `json:"pid"`
		Offset *string `json:"offset"`
	}
	if json.Unmarshal(auth, &a) != nil || a.PID == nil || a.Offset == nil || *a.PID == "" {
		return "", "", false
	}
	return *a.PID, *a.Offset, true
}

// takeSession takes the session pid for a CONNECT to n that the middlewares
// accepted, and returns it when hs may resume it. Whatever else happens the
// CONNECT goes on as a new session; a session that is not this CONNECT's
// to resume is saved back as it was.
func (c *conn) takeSession(ctx context.Context, n *Namespace, hs *Handshake, pid string) (Session, bool) {
	srv := c.srv
	if _, live := n.livePIDs.Load(pid); live {
		c.recoveryDenied(n, recoveryLive, "the session's socket is still connected")
		return Session{}, false
	}
	store := srv.cfg.Recovery.Store
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second) // a restarted node may hold it until its buffer is rebuilt
	sess, ok, err := store.TakeSession(tctx, pid)
	cancel()
	switch {
	case errors.Is(err, ErrSessionLive):
		c.recoveryDenied(n, recoveryLive, "the session's socket is still connected")
		return Session{}, false
	case err != nil:
		srv.log.Warn("recovery: take session", logkey.Conn, c.sid, logkey.Err, err)
		srv.m.recovery(recoveryError)
		return Session{}, false
	case !ok:
		srv.m.recovery(recoveryUnknown)
		return Session{}, false
	case sess.DisconnectedAt.UnixNano() < srv.resyncAt.Load():
		srv.m.recovery(recoveryEnded)
		return Session{}, false
	case n.rooms.socket(sess.SID) != nil:
		// A stale copy of a session whose socket is connected here: that
		// socket saves its own session when it goes.
		c.recoveryDenied(n, recoveryLive, "the session's socket is still connected")
		return Session{}, false
	}
	if sess.Namespace != n.name {
		c.putBack(sess)
		c.recoveryDenied(n, recoveryNamespace, "the session is of another namespace")
		return Session{}, false
	}
	allowed := sess.User == hs.User
	if check := n.recoveryCheck(); check != nil {
		if !c.runHandler(func() { allowed = check(hs, sess) }) {
			c.putBack(sess)
			return Session{}, false
		}
	}
	if !allowed {
		c.putBack(sess)
		c.recoveryDenied(n, recoveryRefused, "the session belongs to another user")
		return Session{}, false
	}
	return sess, true
}

// putBack saves sess again, unchanged, after this CONNECT took it without
// the right to resume it. Not bounded by the CONNECT's context: the session
// must survive this connection closing.
func (c *conn) putBack(sess Session) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.srv.cfg.Recovery.Store.SaveSession(ctx, sess); err != nil {
		c.srv.log.Warn("recovery: save back a refused session", logkey.Conn, c.sid, logkey.Err, err)
	}
}

// recoveryDenied counts and logs (at most once a second per namespace) a
// recovery this CONNECT may not have; it goes on as a new session.
func (c *conn) recoveryDenied(n *Namespace, result, why string) {
	c.srv.m.recovery(result)
	now := time.Now().UnixNano()
	last := n.refusedLogAt.Load()
	if now-last < int64(time.Second) || !n.refusedLogAt.CompareAndSwap(last, now) {
		return
	}
	c.srv.log.Info("recovery refused; the connection goes on as a new session", logkey.Conn, c.sid,
		logkey.Namespace, n.name, logkey.Reason, why, logkey.Remote, c.remoteAddr)
}
