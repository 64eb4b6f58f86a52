package adminui

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"time"

	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/internal/logkey"
	"golang.org/x/crypto/bcrypt"
)

// timeNow is time.Now (session ids carry their expiry).
var timeNow = time.Now

// loginWait bounds the wait for a free password check.
const loginWait = 5 * time.Second

// loginRate bounds the password checks per second of a node: bcrypt at cost
// 10 takes tens of milliseconds of CPU, so a flood of wrong passwords may
// use at most a fraction of a core; over it a login is refused at once.
const loginRate = 5

// MsgTooManyLogins is the CONNECT_ERROR message of a login refused because
// too many passwords are being checked.
const MsgTooManyLogins = "too many login attempts, try again"

// adminData is the Handshake.Data of an accepted admin socket.
type adminData struct {
	session string // a new session id to hand out ("" when one was presented)
}

// credentials is the auth object the UI sends.
type credentials struct {
	Username  string `json:"username"`
	Password  string `json:"password"`
	SessionID string `json:"sessionId"`
}

// authenticate is the admin namespace's middleware: a valid session id, or
// the username and a password matching the bcrypt hash.
func (a *Admin) authenticate(ctx context.Context, h *hub.Handshake) error {
	var c credentials
	_ = json.Unmarshal(h.Auth, &c) // a non-object is a failed login like any other
	if c.SessionID != "" && a.validSession(c.SessionID, timeNow()) {
		h.Data = &adminData{}
		return nil
	}
	if c.Username == "" && c.Password == "" {
		if c.SessionID != "" {
			return a.refuse(h, "invalid or expired session id")
		}
		return a.refuse(h, "no credentials")
	}
	ok, err := a.checkPassword(ctx, c.Username, c.Password)
	if err != nil {
		if a.logLim.Allow() {
			a.log.Warn("admin ui login not checked", logkey.Remote, h.RemoteAddr, logkey.Err, err)
		}
		return &hub.ConnectError{Message: MsgTooManyLogins}
	}
	if !ok {
		return a.refuse(h, "wrong username or password")
	}
	h.Data = &adminData{session: a.newSession(timeNow())}
	a.log.Info("admin ui login", logkey.Remote, h.RemoteAddr)
	return nil
}

func (a *Admin) refuse(h *hub.Handshake, why string) error {
	if a.logLim.Allow() {
		a.log.Warn("admin ui login refused", logkey.Remote, h.RemoteAddr, logkey.Reason, why)
	}
	return &hub.ConnectError{Message: MsgInvalidCredentials}
}

// checkPassword compares in constant time and always runs bcrypt, so the
// time taken does not tell whether the username was right. At most two
// checks run at once and loginRate a second (bcrypt costs tens of
// milliseconds of CPU each).
func (a *Admin) checkPassword(ctx context.Context, user, pass string) (bool, error) {
	if !a.loginLim.Allow() {
		return false, errors.New("over the password checks per second")
	}
	ctx, cancel := context.WithTimeout(ctx, loginWait)
	defer cancel()
	select {
	case a.loginSem <- struct{}{}:
	case <-ctx.Done():
		return false, errors.New("password checks busy")
	}
	defer func() { <-a.loginSem }()
	userOK := subtle.ConstantTimeCompare([]byte(user), []byte(a.cfg.Username)) == 1
	passOK := bcrypt.CompareHashAndPassword([]byte(a.cfg.PasswordHash), []byte(pass)) == nil
	return userOK && passOK, nil
}

// sessionKey derives the session MAC key from the credentials: every node
// configured with them accepts the sessions of the others, and changing the
// password hash ends every session.
func sessionKey(user, hash string) []byte {
	m := hmac.New(sha256.New, []byte("walcast admin-ui session v1"))
	m.Write([]byte(user))
	m.Write([]byte{0})
	m.Write([]byte(hash))
	return m.Sum(nil)
}

// newSession returns a session id: its expiry and a MAC over it.
func (a *Admin) newSession(t time.Time) string {
	b := binary.BigEndian.AppendUint64(nil, uint64(t.Add(a.cfg.SessionTTL).Unix()))
	m := hmac.New(sha256.New, a.key)
	m.Write(b)
	return base64.RawURLEncoding.EncodeToString(m.Sum(b))
}

func (a *Admin) validSession(id string, t time.Time) bool {
	b, err := base64.RawURLEncoding.Strict().DecodeString(id)
	if err != nil || len(b) != 8+sha256.Size {
		return false
	}
	m := hmac.New(sha256.New, a.key)
	m.Write(b[:8])
	if !hmac.Equal(m.Sum(nil), b[8:]) {
		return false
	}
	return t.Unix() < int64(binary.BigEndian.Uint64(b[:8]))
}
