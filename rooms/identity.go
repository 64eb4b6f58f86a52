package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sync/singleflight"
)

// Identity is the verified user of a socket; the middleware stores it in
// hub.Handshake.Data (read it back with IdentityOf).
type Identity struct {
	UserID    string    // the token's sub
	Email     string    // token email, else the profile's
	FullName  string    // from the profile, may be ""
	Role      string    // claim path, else profile, else "customer"
	Admin     bool      // Role is one of Config.AdminRoles
	Seller    bool      // Role is Config.SellerRole
	ExpiresAt time.Time // the token's exp

	roleFromProfile bool   // Role came from the profile (or its absence), not a claim: profile changes apply
	claims          []byte // the token's claims as JSON, for room kinds' queries
}

// profile is one row of the profile query.
type profile struct {
	role, email, fullName string
	found                 bool
}

type profileEntry struct {
	p       profile
	expires time.Time
}

// profileCache caches profile rows for a short TTL, bounded in size, and
// merges concurrent lookups of the same user.
type profileCache struct {
	ttl  time.Duration
	max  int
	now  func() time.Time
	sf   singleflight.Group
	mu   sync.Mutex
	rows map[string]profileEntry

	// Invalidations, so that a lookup which started before one neither
	// caches nor hands out its (possibly older) row: seq counts them, inval
	// holds each user's last, and floor is the seq up to which they were
	// forgotten (a lookup older than floor counts as invalidated).
	seq   atomic.Uint64
	inval map[string]invalMark
	floor uint64
}

type invalMark struct {
	seq uint64
	at  time.Time
}

// Invalidation marks are kept for invalMarkTTL, which is longer than a
// handshake can take (key lookup plus profile query), and at most
// invalMarkMax of them.
const (
	invalMarkTTL = time.Minute
	invalMarkMax = 10000
)

// generation returns the invalidation count, to pass to changedSince later.
func (c *profileCache) generation() uint64 { return c.seq.Load() }

// changedSince reports whether id's profile was invalidated after gen.
func (c *profileCache) changedSince(id string, gen uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changedSinceLocked(id, gen)
}

func (c *profileCache) changedSinceLocked(id string, gen uint64) bool {
	if gen < c.floor {
		return true
	}
	m, ok := c.inval[id]
	return ok && m.seq > gen
}

// invalidate records that id's role is now role: unless the cached row
// already says so, it is dropped, and lookups in flight (which may have read
// the row before the change) are not cached and not shared with later ones.
func (c *profileCache) invalidate(id, role string) {
	c.mu.Lock()
	now := c.now()
	if e, ok := c.rows[id]; ok && !now.After(e.expires) && e.p.roleOrCustomer() == role {
		c.mu.Unlock()
		return
	}
	delete(c.rows, id)
	if c.inval == nil {
		c.inval = make(map[string]invalMark)
	}
	if len(c.inval) >= invalMarkMax {
		for k, m := range c.inval {
			if now.Sub(m.at) > invalMarkTTL {
				delete(c.inval, k)
			}
		}
		if len(c.inval) >= invalMarkMax {
			// A burst of changes: forget them all, and treat every lookup
			// that started before now as invalidated.
			c.floor = c.seq.Load() + 1
			clear(c.inval)
		}
	}
	c.inval[id] = invalMark{seq: c.seq.Add(1), at: now}
	c.mu.Unlock()
	c.sf.Forget(id)
}

// roleOrCustomer is the role a profile row gives.
func (p profile) roleOrCustomer() string {
	if !p.found || p.role == "" {
		return DefaultCustomerRole
	}
	return p.role
}

func (c *profileCache) get(id string) (profile, bool) {
	if c.ttl <= 0 {
		return profile{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.rows[id]
	if !ok || c.now().After(e.expires) {
		return profile{}, false
	}
	return e.p, true
}

// put caches p, read by a lookup that started at generation gen.
func (c *profileCache) put(id string, p profile, gen uint64) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.changedSinceLocked(id, gen) {
		return // invalidated since the lookup started
	}
	now := c.now()
	if len(c.rows) >= c.max {
		for k, e := range c.rows {
			if now.After(e.expires) {
				delete(c.rows, k)
			}
		}
		// Still full: drop arbitrary entries (map order) to make room.
		for k := range c.rows {
			if len(c.rows) < c.max {
				break
			}
			delete(c.rows, k)
		}
	}
	c.rows[id] = profileEntry{p: p, expires: now.Add(c.ttl)}
}

// identify builds the Identity of verified claims: role from the claim path,
// else from the profile query (cached), else customer.
func (p *Policy) identify(ctx context.Context, c *Claims) (*Identity, error) {
	id := &Identity{UserID: c.Subject, Email: c.Email, ExpiresAt: c.ExpiresAt}
	if c.Raw != nil {
		id.claims, _ = json.Marshal(c.Raw)
	}
	role, ok := claimPath(c.Raw, p.cfg.RoleClaim)
	id.roleFromProfile = !ok
	if !ok && p.cfg.DB != nil {
		pr, err := p.lookupProfile(ctx, c.Subject)
		if err != nil {
			return nil, err
		}
		if pr.found {
			role = pr.role
			if id.Email == "" {
				id.Email = pr.email
			}
			id.FullName = pr.fullName
		}
	}
	if role == "" {
		role = DefaultCustomerRole
	}
	p.setRole(id, role)
	return id, nil
}

func (p *Policy) lookupProfile(ctx context.Context, userID string) (profile, error) {
	if pr, ok := p.profiles.get(userID); ok {
		return pr, nil
	}
	ch := p.profiles.sf.DoChan(userID, func() (any, error) {
		gen := p.profiles.generation()
		// Detached from the handshake that started it, so one client giving up
		// does not fail the others waiting on the same row.
		qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.DBTimeout)
		defer cancel()
		var role, email, name *string
		err := p.cfg.DB.QueryRow(qctx, p.cfg.ProfileQuery, userID).Scan(&role, &email, &name)
		var pr profile
		switch {
		case errors.Is(err, pgx.ErrNoRows), isDataException(err):
			// No profile (or a sub the key column cannot hold): a customer.
		case err != nil:
			return profile{}, fmt.Errorf("profile query for user %q: %w", userID, err)
		default:
			pr.found = true
			pr.role, pr.email, pr.fullName = deref(role), deref(email), deref(name)
		}
		p.profiles.put(userID, pr, gen)
		return pr, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return profile{}, r.Err
		}
		return r.Val.(profile), nil
	case <-ctx.Done():
		return profile{}, fmt.Errorf("profile query for user %q: %w", userID, ctx.Err())
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// isDataException reports a Postgres class 22 error, e.g. a value that is not
// valid input for a uuid column.
func isDataException(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && len(pgErr.Code) == 5 && pgErr.Code[:2] == "22"
}
