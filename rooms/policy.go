package rooms

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/internal/logkey"
	"golang.org/x/time/rate"
)

// AdminNamespaceName is the namespace only admins may connect to (when
// Config.AdminNamespace is set).
const AdminNamespaceName = "/admin"

// Policy is walcast's authentication and room policy for a hub.Server.
type Policy struct {
	cfg      Config
	v        *Verifier
	log      *slog.Logger
	profiles *profileCache
	logLimit *rate.Limiter // bounds per-client log lines (refusals)

	mu  sync.Mutex
	srv *hub.Server

	connMu sync.Mutex
	conns  map[connKey]int // open (or reserved) sockets per namespace and user

	marks    markTable    // subscribes waiting for their stream marks (state.go)
	access   accessIndex  // this node's sockets by user and by subscribed room
	rechecks recheckQueue // rooms whose data changed (recheck.go)
	handlers policyHandlers
}

type connKey struct{ nsp, user string }

// New validates cfg and builds a Policy. It does no I/O.
func New(cfg Config) (*Policy, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &Policy{
		cfg: cfg,
		v:   newVerifier(cfg),
		log: cfg.Logger.With(slog.String(logkey.Component, "rooms")),
		profiles: &profileCache{
			ttl:  cfg.ProfileCacheTTL,
			max:  DefaultProfileCacheSize,
			now:  cfg.now,
			rows: make(map[string]profileEntry),
		},
		logLimit: rate.NewLimiter(10, 50),
		conns:    make(map[connKey]int),
	}
	p.rechecks.pending = make(map[string]uint32)
	p.rechecks.wake = make(chan struct{}, 1)
	p.makeHandlers()
	return p, nil
}

// Verifier returns the policy's token verifier.
func (p *Policy) Verifier() *Verifier { return p.v }

// Install adds the policy to srv: the auth middleware and connect handler on
// "/" and, when Config.AdminNamespace is set, on "/admin". Call it once,
// before serving.
func (p *Policy) Install(srv *hub.Server) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.srv != nil {
		return errors.New("rooms: Install called twice")
	}
	p.srv = srv
	names := []string{"/"}
	if p.cfg.AdminNamespace {
		names = append(names, AdminNamespaceName)
	}
	for _, name := range names {
		nsp := srv.Of(name)
		nsp.Use(p.middleware(name))
		nsp.OnRecoveryCheck(p.mayRecover)
		nsp.OnRecover(p.recoverRooms)
		nsp.OnConnect(p.onConnect)
	}
	return nil
}

// Run refreshes the JWKS in the background and runs the access rechecks of
// RoomDataChanged until ctx ends. Without it, keys are still fetched on
// demand (first token, unknown kid), but rooms whose data changed are not
// checked again.
func (p *Policy) Run(ctx context.Context) error {
	p.log.Info("rooms policy running", slog.Any("config", p.cfg))
	var wg sync.WaitGroup
	wg.Go(func() { p.runRechecks(ctx) })
	if d := p.cfg.RLSRecheckInterval; d > 0 {
		wg.Go(func() {
			t := time.NewTicker(d)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					p.PoliciesChanged()
				}
			}
		})
	}
	err := p.v.RunJWKS(ctx)
	wg.Wait()
	return err
}

// IdentityOf returns the socket's current Identity (the middleware's, or the
// one a later role change replaced it with), or nil.
func IdentityOf(s *hub.Socket) *Identity {
	if st, ok := s.Data().(*socketData); ok {
		return st.id.Load()
	}
	return nil
}

// socketData is what the middleware puts in Handshake.Data.
type socketData struct {
	id   atomic.Pointer[Identity] // replaced on a role change; never modified in place
	slot *connSlot
	// profileGen is the profile cache's generation before the role was read:
	// if the user's profile was invalidated after it by the time the socket
	// is indexed, a role change may have been missed and the role is read
	// again.
	profileGen uint64
	// subs and dropped are set by recoverRooms for a recovered session: the
	// rooms kept as subscriptions and the ones left.
	subs    map[string]grant
	dropped []string
	// st is the socket's state once connected (set by onConnect on the
	// socket's goroutine, where its event handlers run).
	st *socketState
}

// Identity lets other packages read the identity through an interface
// without importing this type's internals.
func (d *socketData) Identity() *Identity { return d.id.Load() }

// connSlot is one reserved place under MaxConnsPerUser; it is released when
// the socket disconnects or, if the socket never connects after the
// middleware accepted it, after slotClaimTimeout.
type connSlot struct {
	p       *Policy
	key     connKey
	once    sync.Once
	mu      sync.Mutex
	claimed bool
	timer   *time.Timer
}

const slotClaimTimeout = 30 * time.Second

func (p *Policy) reserve(nsp, user string) (*connSlot, bool) {
	key := connKey{nsp, user}
	if p.cfg.MaxConnsPerUser > 0 {
		p.connMu.Lock()
		if p.conns[key] >= p.cfg.MaxConnsPerUser {
			p.connMu.Unlock()
			return nil, false
		}
		p.conns[key]++
		p.connMu.Unlock()
	}
	sl := &connSlot{p: p, key: key}
	sl.timer = time.AfterFunc(slotClaimTimeout, func() {
		sl.mu.Lock()
		c := sl.claimed
		sl.mu.Unlock()
		if !c {
			sl.release()
		}
	})
	return sl, true
}

// claim marks the slot as owned by a connected socket; false if it was
// already released.
func (sl *connSlot) claim() bool {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if sl.claimed {
		return false
	}
	sl.claimed = true
	released := !sl.timer.Stop()
	return !released
}

func (sl *connSlot) release() {
	sl.once.Do(func() {
		sl.timer.Stop()
		p := sl.p
		if p.cfg.MaxConnsPerUser <= 0 {
			return
		}
		p.connMu.Lock()
		if p.conns[sl.key]--; p.conns[sl.key] <= 0 {
			delete(p.conns, sl.key)
		}
		p.connMu.Unlock()
	})
}

// ConnsOf returns how many sockets user has (or is connecting) in namespace
// nsp on this node.
func (p *Policy) ConnsOf(nsp, user string) int {
	p.connMu.Lock()
	defer p.connMu.Unlock()
	return p.conns[connKey{nsp, user}]
}

func (p *Policy) middleware(nsp string) hub.Middleware {
	return func(ctx context.Context, h *hub.Handshake) error {
		gen := p.profiles.generation()
		id, aerr := p.authenticate(ctx, nsp, h)
		if aerr != nil {
			p.cfg.Prom.authRefused(aerr.Code)
			if p.logLimit.Allow() {
				p.log.Info("connect refused", slog.String(logkey.Namespace, nsp),
					slog.String(logkey.Reason, aerr.Code), slog.String(logkey.Remote, h.RemoteAddr),
					slog.Any(logkey.Err, aerr.Err))
			}
			return &hub.ConnectError{Message: aerr.Message, Data: aerr.Data()}
		}
		slot, ok := p.reserve(nsp, id.UserID)
		if !ok {
			p.cfg.Prom.authRefused(CodeTooManyConns)
			if p.logLimit.Allow() {
				p.log.Info("connect refused", slog.String(logkey.Namespace, nsp),
					slog.String(logkey.Reason, CodeTooManyConns), slog.String(logkey.UserID, id.UserID))
			}
			return &hub.ConnectError{Message: MsgTooManyConns, Data: map[string]string{dataCodeKey: CodeTooManyConns}}
		}
		d := &socketData{slot: slot, profileGen: gen}
		d.id.Store(id)
		h.Data = d
		h.User = id.UserID
		return nil
	}
}

func (p *Policy) authenticate(ctx context.Context, nsp string, h *hub.Handshake) (*Identity, *AuthError) {
	tok, aerr := TokenFromAuth(h.Auth)
	if aerr != nil {
		return nil, aerr
	}
	claims, err := p.v.Verify(ctx, tok)
	if err != nil {
		var ae *AuthError
		if errors.As(err, &ae) {
			return nil, ae
		}
		return nil, authErr(MsgInvalidToken, CodeInvalidToken, err)
	}
	id, err := p.identify(ctx, claims)
	if err != nil {
		return nil, authErr(MsgAuthFailed, CodeProfileLookup, err)
	}
	if nsp == AdminNamespaceName && !id.Admin {
		return nil, authErr(MsgAdminOnly, CodeNotAdmin, fmt.Errorf("role %q is not an admin role", id.Role))
	}
	return id, nil
}

func (p *Policy) onConnect(s *hub.Socket) {
	d, ok := s.Data().(*socketData)
	if !ok || d.id.Load() == nil {
		// Another middleware replaced Data: refuse to guess who this is.
		p.log.Error("socket without identity; disconnecting", slog.String(logkey.Conn, s.ID()))
		s.Disconnect()
		return
	}
	if !d.slot.claim() {
		s.Disconnect()
		return
	}
	id := d.id.Load()
	st := p.newSocketState(s, d, id)
	d.st = st

	// Expiry: drop the transport at exp so the client reconnects with a fresh
	// token. A token accepted within the leeway keeps it until the leeway ends.
	now := p.cfg.now()
	at := id.ExpiresAt
	if !at.After(now) {
		at = at.Add(p.cfg.Leeway)
	}
	expiry := time.AfterFunc(at.Sub(now), func() {
		p.cfg.Prom.expired()
		p.log.Debug("token expired; closing transport", slog.String(logkey.UserID, id.UserID), slog.String(logkey.Conn, s.ID()))
		s.CloseTransport(ReasonTokenExpired)
	})
	// Indexed before anything else, so a role or owner change committed from
	// now on finds the socket.
	p.access.add(&p.access.users, id.UserID, st)
	context.AfterFunc(s.Context(), func() {
		expiry.Stop()
		d.slot.release()
		p.access.remove(p.access.users, id.UserID, st)
		st.mu.Lock()
		subs := make([]string, 0, len(st.subs))
		for r := range st.subs {
			subs = append(subs, r)
		}
		st.mu.Unlock()
		for _, r := range subs {
			p.unindexRoom(r, st)
		}
	})

	s.Join(autoRooms(id)...)
	if s.Recovered() {
		st.mu.Lock()
		for r, g := range d.subs {
			st.subs[r] = g
		}
		st.mu.Unlock()
		for r := range d.subs {
			p.indexRoom(r, st)
		}
		if len(d.dropped) > 0 {
			p.log.Info("recovered session: rooms not allowed for this identity were left",
				slog.String(logkey.UserID, id.UserID), slog.String(logkey.Conn, s.ID()), slog.Int("rooms", len(d.dropped)))
			st.tell(ReasonSessionRestored, id, d.dropped, nil)
		}
		d.subs, d.dropped = nil, nil
	}
	if id.roleFromProfile && p.profiles.changedSince(id.UserID, d.profileGen) {
		// A profile changed between the role lookup and the index: read it again.
		p.recheckRole(s.Context(), st)
	}
	st.install()
}
