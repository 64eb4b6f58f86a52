package adminui

import (
	"encoding/base64"
	"encoding/binary"
	"time"
)

// Internals for the fuzz tests.

var UnmarshalArgs = unmarshalArgs

func (a *Admin) ValidSession(id string) bool { return a.validSession(id, timeNow()) }

func (a *Admin) NewSession() string { return a.newSession(timeNow()) }

// SessionUntil returns the session id this node's key makes for a session
// that ends at the expiry encoded in id's first 8 bytes ("" when id is not
// that long): the fuzz oracle, independent of when or in which process a
// session was made.
func (a *Admin) SessionUntil(id string) string {
	b, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || len(b) < 8 {
		return ""
	}
	exp := time.Unix(int64(binary.BigEndian.Uint64(b[:8])), 0)
	return a.newSession(exp.Add(-a.cfg.SessionTTL))
}
