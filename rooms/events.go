package rooms

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/internal/logkey"
	"golang.org/x/time/rate"
)

// Client events the policy accepts.
const (
	EventSubscribeProduct   = "subscribe:product"
	EventUnsubscribeProduct = "unsubscribe:product"
	EventSubscribeOrder     = "subscribe:order"
	EventUnsubscribeOrder   = "unsubscribe:order"
	EventSubscribeMetrics   = "subscribe:metrics"
	EventUnsubscribeMetrics = "unsubscribe:metrics"
	EventCartUpdate         = "cart:update"

	EventCartSynced     = "cart:synced"
	EventMetricsUpdated = "admin:metrics-updated"
)

// Ack error strings (the "error" of {ok:false,error}).
const (
	ErrTextRateLimited  = "rate limited"
	ErrTextBadRoomID    = "invalid id: must be a UUID or 1-64 characters of A-Z a-z 0-9 _ -"
	ErrTextNotString    = "invalid id: must be a string"
	ErrTextTooManyRooms = "too many subscriptions"
	ErrTextOrderDenied  = "not allowed: only the order's owner or an admin may subscribe"
	ErrTextAdminOnly    = "not allowed: admins only"
	ErrTextCartTooLarge = "cart too large"
	ErrTextCartMissing  = "cart missing"
	ErrTextRelayFailed  = "cart not synced, try again"
	ErrTextBinary       = "binary payloads are not accepted"
	ErrTextInternal     = "internal error, try again"
	ErrTextUnknownEvent = "event not allowed"
)

// refusal is a refused client event: reason labels the metric and the log,
// text goes to the client's ack.
type refusal struct {
	reason, text string
	err          error // cause for the log, optional
}

// socketState is the per-socket state. Handlers of one socket run
// sequentially on its reader goroutine; the identity and the subscriptions
// are also changed by access changes (access.go), so they are under mu.
type socketState struct {
	p   *Policy
	s   *hub.Socket
	d   *socketData
	lim *rate.Limiter // nil = unlimited

	mu   sync.Mutex
	id   *Identity        // current identity; replaced, never modified
	subs map[string]grant // rooms the client subscribed to (auto-joined rooms are not here)
	gen  uint64           // bumped by every access change, so a check made before one is not used after it

	abuseStart time.Time
	abuseCount int
	logged     int // refusal log lines written for this socket
	closing    bool
}

const maxRefusalLogsPerSocket = 5

// identity returns the socket's current identity.
func (st *socketState) identity() *Identity {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.id
}

// snapshot returns the current identity and access generation.
func (st *socketState) snapshot() (*Identity, uint64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.id, st.gen
}

func (p *Policy) newSocketState(s *hub.Socket, d *socketData, id *Identity) *socketState {
	st := &socketState{p: p, s: s, d: d, id: id, subs: make(map[string]grant)}
	if p.cfg.EventRate > 0 {
		st.lim = rate.NewLimiter(rate.Limit(p.cfg.EventRate), p.cfg.EventBurst)
	}
	return st
}

func (st *socketState) install() {
	h := &st.p.handlers
	for i := range st.p.cfg.Kinds {
		k := &st.p.cfg.Kinds[i]
		st.s.On(k.Subscribe, h.subscribe[i])
		if k.Unsubscribe != "" {
			st.s.On(k.Unsubscribe, h.unsubscribe[i])
		}
	}
	st.s.On(EventCartUpdate, h.cart)
	st.s.OnAny(h.unknown)
}

// policyHandlers are the event handlers every socket gets, made once per
// Policy (a socket's state is in its socketData): a socket holds only its
// handler table, not closures of its own.
type policyHandlers struct {
	subscribe, unsubscribe []hub.EventHandler // by Config.Kinds index; nil when the kind has no unsubscribe
	cart, unknown          hub.EventHandler
}

func (p *Policy) makeHandlers() {
	h := &p.handlers
	h.subscribe = make([]hub.EventHandler, len(p.cfg.Kinds))
	h.unsubscribe = make([]hub.EventHandler, len(p.cfg.Kinds))
	for i := range p.cfg.Kinds {
		k := &p.cfg.Kinds[i]
		h.subscribe[i] = handle(func(st *socketState, m *hub.Message) *refusal { return st.subscribeKind(k, m) })
		if k.Unsubscribe != "" {
			h.unsubscribe[i] = handle(func(st *socketState, m *hub.Message) *refusal { return st.unsubscribeKind(k, m) })
		}
	}
	h.cart = handle((*socketState).cartUpdate)
	h.unknown = handle(func(_ *socketState, m *hub.Message) *refusal {
		return &refusal{reason: "unknown_event", text: ErrTextUnknownEvent + ": " + strconv.Quote(truncate(m.Event, 64))}
	})
}

// handle wraps an event handler with the rate limit, the ack and the
// refusal log and metric; the socket's state is the one onConnect put in
// its socketData.
func handle(fn func(st *socketState, m *hub.Message) *refusal) hub.EventHandler {
	return func(s *hub.Socket, m *hub.Message) {
		d, ok := s.Data().(*socketData)
		if !ok || d.st == nil {
			return
		}
		st := d.st
		if st.closing {
			return
		}
		var r *refusal
		if st.lim != nil && !st.lim.Allow() {
			r = &refusal{reason: "rate_limited", text: ErrTextRateLimited}
			if st.abused() {
				st.closing = true
				st.p.cfg.Prom.abuse()
				st.p.log.Warn("disconnecting socket for sustained flooding",
					slog.String(logkey.UserID, st.identity().UserID), slog.String(logkey.Conn, s.ID()),
					slog.Int("refused", st.abuseCount), slog.Duration("window", st.p.cfg.AbuseWindow))
				st.ack(m, r)
				s.Disconnect()
				return
			}
		} else {
			r = fn(st, m)
		}
		if r != nil {
			st.p.cfg.Prom.eventRefused(r.reason)
			st.logRefusal(m, r)
		}
		st.ack(m, r)
	}
}

// abused counts a rate-limited event and reports whether the socket went over
// AbuseLimit refusals within AbuseWindow.
func (st *socketState) abused() bool {
	if st.p.cfg.AbuseLimit < 0 {
		return false
	}
	now := st.p.cfg.now()
	if now.Sub(st.abuseStart) > st.p.cfg.AbuseWindow {
		st.abuseStart, st.abuseCount = now, 0
	}
	st.abuseCount++
	return st.abuseCount > st.p.cfg.AbuseLimit
}

var (
	ackOK = json.RawMessage(`{"ok":true}`)
)

func (st *socketState) ack(m *hub.Message, r *refusal) {
	if !m.WantsAck() {
		return
	}
	if r == nil {
		_ = m.Ack(ackOK)
		return
	}
	_ = m.Ack(struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}{false, r.text})
}

func (st *socketState) logRefusal(m *hub.Message, r *refusal) {
	if st.logged >= maxRefusalLogsPerSocket || !st.p.logLimit.Allow() {
		return
	}
	st.logged++
	attrs := []any{
		slog.String(logkey.Reason, r.reason), slog.String(logkey.Event, truncate(m.Event, 64)),
		slog.String(logkey.UserID, st.identity().UserID), slog.String(logkey.Conn, st.s.ID()),
	}
	if r.err != nil {
		attrs = append(attrs, slog.Any(logkey.Err, r.err))
	}
	if st.logged == maxRefusalLogsPerSocket {
		attrs = append(attrs, slog.Bool("further_refusals_not_logged", true))
	}
	st.p.log.Info("client event refused", attrs...)
}

// roomID reads the first argument as a room id (ValidRoomID).
func roomID(m *hub.Message) (string, *refusal) {
	id, r := stringArg(m)
	if r != nil {
		return "", r
	}
	if !ValidRoomID(id) {
		return "", &refusal{reason: "bad_room_id", text: ErrTextBadRoomID}
	}
	return id, nil
}

// join subscribes to room with grant g, decided on the identity of access
// generation gen: if the access changed since, the decision is stale and the
// client is asked to try again.
func (st *socketState) join(room string, gen uint64, g grant) *refusal {
	st.mu.Lock()
	defer st.mu.Unlock()
	already, r := st.subscribeLocked(room, gen, g)
	if r == nil && !already {
		st.s.Join(room)
	}
	return r
}

// subscribeLocked records the subscription to room (the caller holds mu and
// joins the hub room, now or at its state mark); already reports one that
// existed.
func (st *socketState) subscribeLocked(room string, gen uint64, g grant) (already bool, r *refusal) {
	if st.gen != gen {
		return false, &refusal{reason: "access_changed", text: ErrTextInternal}
	}
	if _, ok := st.subs[room]; ok {
		st.subs[room] = g
		return true, nil
	}
	if max := st.p.cfg.MaxRoomsPerSocket; max > 0 && len(st.subs) >= max {
		return false, &refusal{reason: "too_many_rooms", text: fmt.Sprintf("%s (max %d)", ErrTextTooManyRooms, max)}
	}
	st.subs[room] = g
	// Under mu, so an access change either sees the subscription or comes
	// after it (and finds it in the index).
	st.p.indexRoom(room, st)
	return false, nil
}

// stillSubscribedLocked reports whether room is still subscribed with no
// access change since gen (the caller holds mu).
func (st *socketState) stillSubscribedLocked(room string, gen uint64) bool {
	_, ok := st.subs[room]
	return ok && st.gen == gen
}

// leave leaves a room the socket subscribed to; auto-joined rooms stay.
func (st *socketState) leave(room string) {
	st.mu.Lock()
	if _, ok := st.subs[room]; !ok {
		st.mu.Unlock()
		return
	}
	delete(st.subs, room)
	st.mu.Unlock()
	st.s.Leave(room)
	st.p.unindexRoom(room, st)
}

func (st *socketState) cartUpdate(m *hub.Message) *refusal {
	if len(m.Attachments) > 0 {
		return &refusal{reason: "bad_payload", text: ErrTextBinary}
	}
	if len(m.Args) == 0 || len(bytes.TrimSpace(m.Args[0])) == 0 {
		return &refusal{reason: "bad_payload", text: ErrTextCartMissing}
	}
	cart := m.Args[0]
	if max := st.p.cfg.MaxCartBytes; len(cart) > max {
		return &refusal{reason: "cart_too_large", text: fmt.Sprintf("%s (%d bytes, max %d)", ErrTextCartTooLarge, len(cart), max)}
	}
	if !json.Valid(cart) {
		return &refusal{reason: "bad_payload", text: ErrTextCartMissing}
	}
	st.p.mu.Lock()
	srv := st.p.srv
	st.p.mu.Unlock()
	payload := make([]byte, 0, len(cart)+96)
	payload = append(payload, `{"cart":`...)
	payload = append(payload, cart...)
	payload = append(payload, `,"updatedBy":`...)
	payload = strconv.AppendQuote(payload, st.s.ID())
	payload = append(payload, `,"timestamp":`...)
	payload = strconv.AppendInt(payload, st.p.cfg.now().UnixMilli(), 10)
	payload = append(payload, '}')
	b := &hub.Broadcast{
		Namespace: st.s.Namespace(),
		Rooms:     []string{RoomCart(st.identity().UserID)},
		Except:    []string{st.s.ID()},
		Event:     EventCartSynced,
		Args:      []json.RawMessage{payload},
	}
	ctx, cancel := context.WithTimeout(st.s.Context(), st.p.cfg.BroadcastTimeout)
	defer cancel()
	if err := srv.Broadcast(ctx, b); err != nil {
		st.p.log.Warn("cart relay failed", slog.String(logkey.UserID, st.identity().UserID), slog.Any(logkey.Err, err))
		return &refusal{reason: "relay_failed", text: ErrTextRelayFailed}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
