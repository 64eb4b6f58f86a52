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
// GuardRecovery closes that: the wrapped store notes whose session each taken
// pid was, and the middleware refuses a CONNECT whose token belongs to someone
// else.

const (
	pidOwnerTTL = time.Minute
	pidOwnerMax = 100000
)

// GuardRecovery wraps the hub's RecoveryStore so that a session can only be
// recovered by its own user. Use it as hub.RecoveryConfig.Store (wrap
// hub.NewMemoryStore(...) or the Redis store). Without it, recovered rooms are
// still revalidated on connect, but the events missed during the
// disconnection are replayed before the policy can check them.
func (p *Policy) GuardRecovery(inner hub.RecoveryStore) hub.RecoveryStore {
	return &recoveryGuard{RecoveryStore: inner, p: p}
}

type recoveryGuard struct {
	hub.RecoveryStore
	p *Policy
}

// TakeSession records the owner of the taken session for the middleware.
func (g *recoveryGuard) TakeSession(ctx context.Context, pid string) (hub.Session, bool, error) {
	s, ok, err := g.RecoveryStore.TakeSession(ctx, pid)
	if ok && err == nil {
		owner := ""
		for _, r := range s.Rooms {
			if strings.HasPrefix(r, "user:") {
				owner = r[len("user:"):]
				break
			}
		}
		g.p.pids.put(pid, owner, g.p.cfg.now())
	}
	return s, ok, err
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
