package rooms

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/walcast/walcast/hub"
)

// The hub restores a session (its rooms, and the events missed meanwhile)
// from the pid a client sends in CONNECT, before the policy's middleware
// runs. A client that switched accounts in place (socket.auth changed to
// another user's token) would recover the previous user's session.
// RecoveryGuard closes that.

const (
	pidOwnerTTL = time.Minute
	pidOwnerMax = 100000
)

// RecoveryGuard wraps the hub's RecoveryStore so that a session can only be
// recovered by its own user: it notes whose session each taken pid was, and
// the policy's middleware (Config.RecoveryGuard, or Policy.GuardRecovery)
// refuses a CONNECT whose token belongs to someone else, before the hub
// replays any missed event. Without it, such a CONNECT recovers the session
// with only the rooms the new identity may be in (the OnRecover filter runs
// before the replay either way).
type RecoveryGuard struct {
	hub.RecoveryStore
	owners pidOwners
	now    func() time.Time
}

// NewRecoveryGuard wraps inner (not nil: e.g. hub.NewMemoryStore(…) or the
// Redis store). Use the result as hub.RecoveryConfig.Store and give it to the
// policy as Config.RecoveryGuard.
func NewRecoveryGuard(inner hub.RecoveryStore) *RecoveryGuard {
	return &RecoveryGuard{RecoveryStore: inner, now: time.Now}
}

// GuardRecovery is NewRecoveryGuard for a policy that already exists: it
// wraps inner and makes p check the sessions it recovers.
func (p *Policy) GuardRecovery(inner hub.RecoveryStore) hub.RecoveryStore {
	g := NewRecoveryGuard(inner)
	g.now = p.cfg.now
	p.guard.Store(g)
	return g
}

// TakeSession records the owner of the taken session for the middleware.
func (g *RecoveryGuard) TakeSession(ctx context.Context, pid string) (hub.Session, bool, error) {
	s, ok, err := g.RecoveryStore.TakeSession(ctx, pid)
	if ok && err == nil {
		owner := ""
		for _, r := range s.Rooms {
			if strings.HasPrefix(r, "user:") {
				owner = r[len("user:"):]
				break
			}
		}
		g.owners.put(pid, owner, g.now())
	}
	return s, ok, err
}

// takeOwner returns and forgets the owner of the session pid just taken.
func (g *RecoveryGuard) takeOwner(pid string) (string, bool) {
	return g.owners.take(pid, g.now())
}

// pidOwners maps a just-taken session pid to its user, briefly.
type pidOwners struct {
	mu sync.Mutex
	m  map[string]pidOwner
}

type pidOwner struct {
	user string
	at   time.Time
}

func (o *pidOwners) put(pid, user string, now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = make(map[string]pidOwner)
	}
	if len(o.m) >= pidOwnerMax {
		for k, v := range o.m {
			if now.Sub(v.at) > pidOwnerTTL || len(o.m) >= pidOwnerMax {
				delete(o.m, k)
			}
		}
	}
	o.m[pid] = pidOwner{user: user, at: now}
}

// take returns and forgets the owner recorded for pid.
func (o *pidOwners) take(pid string, now time.Time) (string, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	v, ok := o.m[pid]
	if !ok {
		return "", false
	}
	delete(o.m, pid)
	if now.Sub(v.at) > pidOwnerTTL {
		return "", false
	}
	return v.user, true
}

// recoveringPID returns the pid of a recovery attempt in a CONNECT auth object.
func recoveringPID(auth json.RawMessage) string {
	var a struct {
		PID string `json:"pid"`
	}
	if json.Unmarshal(auth, &a) != nil {
		return ""
	}
	return a.PID
}
