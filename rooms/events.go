package rooms

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/walcast/walcast/hub"
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

// socketState is the per-socket state; handlers of one socket run
// sequentially, so it needs no lock.
type socketState struct {
	p    *Policy
	s    *hub.Socket
	id   *Identity
	lim  *rate.Limiter // nil = unlimited
	subs map[string]struct{}

	abuseStart time.Time
	abuseCount int
	logged     int // refusal log lines written for this socket
	closing    bool
}

const maxRefusalLogsPerSocket = 5

func (p *Policy) newSocketState(s *hub.Socket, id *Identity) *socketState {
	st := &socketState{p: p, s: s, id: id, subs: make(map[string]struct{})}
	if p.cfg.EventRate > 0 {
		st.lim = rate.NewLimiter(rate.Limit(p.cfg.EventRate), p.cfg.EventBurst)
	}
	return st
}

func (st *socketState) install() {
	st.s.On(EventSubscribeProduct, st.handle(st.subscribeProduct))
	st.s.On(EventUnsubscribeProduct, st.handle(st.unsubscribeProduct))
	st.s.On(EventSubscribeOrder, st.handle(st.subscribeOrder))
	st.s.On(EventUnsubscribeOrder, st.handle(st.unsubscribeOrder))
	st.s.On(EventSubscribeMetrics, st.handle(st.subscribeMetrics))
	st.s.On(EventUnsubscribeMetrics, st.handle(st.unsubscribeMetrics))
	st.s.On(EventCartUpdate, st.handle(st.cartUpdate))
	st.s.OnAny(st.handle(func(m *hub.Message) *refusal {
		return &refusal{reason: "unknown_event", text: ErrTextUnknownEvent + ": " + strconv.Quote(truncate(m.Event, 64))}
	}))
}

// handle wraps an event handler with the rate limit, the ack and the
// refusal log and metric.
func (st *socketState) handle(fn func(m *hub.Message) *refusal) hub.EventHandler {
	return func(s *hub.Socket, m *hub.Message) {
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
					slog.String(LogKeyUserID, st.id.UserID), slog.String(LogKeySocket, s.ID()),
					slog.Int("refused", st.abuseCount), slog.Duration("window", st.p.cfg.AbuseWindow))
				st.ack(m, r)
				s.Disconnect()
				return
			}
		} else {
			r = fn(m)
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
		slog.String(LogKeyReason, r.reason), slog.String(LogKeyEvent, truncate(m.Event, 64)),
		slog.String(LogKeyUserID, st.id.UserID), slog.String(LogKeySocket, st.s.ID()),
	}
	if r.err != nil {
		attrs = append(attrs, slog.Any(LogKeyError, r.err))
	}
	if st.logged == maxRefusalLogsPerSocket {
		attrs = append(attrs, slog.Bool("further_refusals_not_logged", true))
	}
	st.p.log.Info("client event refused", attrs...)
}

// revalidate checks the rooms a recovered session brought back (the hub
// restores them from the session named by the client's pid) against this
// socket's identity: rooms of another user, admin rooms for a non-admin and
// orders the user does not own are left, the rest count as subscriptions.
// This matters when a client reconnects with another user's token but the
// previous session's pid (an app that switched accounts in place).
func (st *socketState) revalidate(auto []string) {
	keep := make(map[string]bool, len(auto)+1)
	for _, r := range auto {
		keep[r] = true
	}
	keep[st.s.ID()] = true
	var drop []string
	for _, room := range st.s.Rooms() {
		if keep[room] {
			continue
		}
		ok := false
		switch {
		case room == RoomMetrics:
			ok = st.id.Admin
		case strings.HasPrefix(room, "product:"):
			ok = ValidRoomID(room[len("product:"):])
		case strings.HasPrefix(room, "order:"):
			id := room[len("order:"):]
			if ValidRoomID(id) {
				if st.id.Admin {
					ok = true
				} else {
					owner, found, err := st.p.orderOwner(st.s.Context(), id)
					ok = err == nil && found && owner == st.id.UserID
				}
			}
		}
		if ok && (st.p.cfg.MaxRoomsPerSocket <= 0 || len(st.subs) < st.p.cfg.MaxRoomsPerSocket) {
			st.subs[room] = struct{}{}
			continue
		}
		drop = append(drop, room)
	}
	if len(drop) > 0 {
		st.s.Leave(drop...)
		st.p.log.Info("recovered session: rooms not allowed for this identity were left",
			slog.String(LogKeyUserID, st.id.UserID), slog.String(LogKeySocket, st.s.ID()), slog.Int("rooms", len(drop)))
	}
}

// roomID reads the first argument as a room id.
func roomID(m *hub.Message) (string, *refusal) {
	if len(m.Args) == 0 {
		return "", &refusal{reason: "bad_room_id", text: ErrTextNotString}
	}
	raw := bytes.TrimSpace(m.Args[0])
	if len(raw) == 0 || raw[0] != '"' {
		return "", &refusal{reason: "bad_room_id", text: ErrTextNotString}
	}
	var id string
	if err := json.Unmarshal(raw, &id); err != nil {
		return "", &refusal{reason: "bad_room_id", text: ErrTextNotString}
	}
	if !ValidRoomID(id) {
		return "", &refusal{reason: "bad_room_id", text: ErrTextBadRoomID}
	}
	return id, nil
}

func (st *socketState) join(room string) *refusal {
	if _, ok := st.subs[room]; ok {
		return nil
	}
	if max := st.p.cfg.MaxRoomsPerSocket; max > 0 && len(st.subs) >= max {
		return &refusal{reason: "too_many_rooms", text: fmt.Sprintf("%s (max %d)", ErrTextTooManyRooms, max)}
	}
	st.subs[room] = struct{}{}
	st.s.Join(room)
	return nil
}

// leave leaves a room the socket subscribed to; auto-joined rooms stay.
func (st *socketState) leave(room string) {
	if _, ok := st.subs[room]; !ok {
		return
	}
	delete(st.subs, room)
	st.s.Leave(room)
}

func (st *socketState) subscribeProduct(m *hub.Message) *refusal {
	id, r := roomID(m)
	if r != nil {
		return r
	}
	return st.joinWithState(RoomProduct(id))
}

func (st *socketState) unsubscribeProduct(m *hub.Message) *refusal {
	id, r := roomID(m)
	if r != nil {
		return r
	}
	st.leave(RoomProduct(id))
	return nil
}

func (st *socketState) subscribeOrder(m *hub.Message) *refusal {
	id, r := roomID(m)
	if r != nil {
		return r
	}
	if !st.id.Admin {
		owner, found, err := st.p.orderOwner(st.s.Context(), id)
		if err != nil {
			return &refusal{reason: "internal", text: ErrTextInternal, err: err}
		}
		if !found || owner != st.id.UserID {
			// Same answer for "no such order" and "someone else's": ids of
			// other users' orders must not be discoverable.
			return &refusal{reason: "forbidden", text: ErrTextOrderDenied}
		}
	}
	return st.joinWithState(RoomOrder(id))
}

func (st *socketState) unsubscribeOrder(m *hub.Message) *refusal {
	id, r := roomID(m)
	if r != nil {
		return r
	}
	st.leave(RoomOrder(id))
	return nil
}

func (st *socketState) subscribeMetrics(m *hub.Message) *refusal {
	if !st.id.Admin {
		return &refusal{reason: "forbidden", text: ErrTextAdminOnly}
	}
	if r := st.join(RoomMetrics); r != nil {
		return r
	}
	if src := st.p.cfg.Metrics; src != nil {
		ctx, cancel := context.WithTimeout(st.s.Context(), st.p.cfg.DBTimeout)
		defer cancel()
		cur, err := src.AdminMetrics(ctx)
		switch {
		case err != nil:
			st.p.log.Warn("current admin metrics unavailable", slog.Any(LogKeyError, err))
		case len(cur) > 0:
			_ = st.s.Emit(EventMetricsUpdated, cur)
		}
	}
	return nil
}

func (st *socketState) unsubscribeMetrics(m *hub.Message) *refusal {
	if !st.id.Admin {
		return &refusal{reason: "forbidden", text: ErrTextAdminOnly}
	}
	st.leave(RoomMetrics)
	return nil
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
		Rooms:     []string{RoomCart(st.id.UserID)},
		Except:    []string{st.s.ID()},
		Event:     EventCartSynced,
		Args:      []json.RawMessage{payload},
	}
	if st.p.cfg.Relay == nil {
		srv.Broadcast(b)
		return nil
	}
	ctx, cancel := context.WithTimeout(st.s.Context(), st.p.cfg.RelayTimeout)
	defer cancel()
	if err := st.p.cfg.Relay(ctx, b); err != nil {
		st.p.log.Warn("cart relay failed", slog.String(LogKeyUserID, st.id.UserID), slog.Any(LogKeyError, err))
		return &refusal{reason: "relay_failed", text: ErrTextRelayFailed}
	}
	return nil
}

// orderOwner runs OrderOwnerQuery. An id Postgres cannot read as the key's
// type (a slug for a uuid column) is "not found", not an error.
func (p *Policy) orderOwner(ctx context.Context, orderID string) (owner string, found bool, err error) {
	if p.cfg.DB == nil {
		return "", false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.DBTimeout)
	defer cancel()
	var o *string
	err = p.cfg.DB.QueryRow(ctx, p.cfg.OrderOwnerQuery, orderID).Scan(&o)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "", false, nil
	case isDataException(err):
		return "", false, nil // data exception: invalid input for the id type
	case err != nil:
		return "", false, fmt.Errorf("order owner query for order %q: %w", orderID, err)
	case o == nil:
		return "", false, nil
	}
	return *o, true, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
