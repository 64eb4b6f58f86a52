package rooms

import "github.com/walcast/walcast/hub"

// mayRecover is the hub's RecoveryCheck: a session is resumed only by the
// user it was saved for (hub.Session.User, which the middleware sets from
// the token's subject). A session without a user, saved by a walcast that
// did not record it, is not resumed by anyone: the client gets a new session
// and subscribes again, which costs at most one recovery window after an
// upgrade. The hub keeps a refused session for its owner.
func (p *Policy) mayRecover(h *hub.Handshake, sess hub.Session) bool {
	d, ok := h.Data.(*socketData)
	if !ok {
		return false
	}
	id := d.id.Load()
	return id != nil && sess.User != "" && sess.User == id.UserID
}
