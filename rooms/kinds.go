package rooms

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/internal/logkey"
)

// Kind is a kind of room clients subscribe to: a rules file's rooms entry.
// Config.Kinds lists them; nil is DefaultKinds, the built-in product, order
// and metrics rooms.
type Kind struct {
	Name        string // the kind's name in the rules file
	Subscribe   string // client event that subscribes
	Unsubscribe string // client event that unsubscribes; "" = none
	// Prefix: rooms are Prefix+id, or Prefix itself when Constant.
	Prefix   string
	Constant bool
	ID       string // how the client's id is checked: IDSlug (""), IDUUID or IDInteger
	State    string // what a new subscriber gets first: "", StateSnapshot or StateAggregate

	// Who may subscribe; any alternative that holds allows.
	Anyone bool     // every authenticated user
	Admins bool     // an admin role (Config.AdminRoles)
	Roles  []string // one of these roles
	Owner  *Query   // returns the owner's user id (text) of the room's id
	SQL    *Query   // a predicate run as walcast's database role
	RLS    *Query   // a predicate run as Config.RLSRole with request.jwt.claims set

	Denied string // ack error of a refused subscribe; "" = ErrTextDenied
}

// Query is a SQL text with positional parameters; Params[i] names what $i+1
// is bound to: "id" (the client's id), "user" (the token's sub), "role" (the
// user's role) or "claims" (the token's claims, JSON). A query allows when it
// returns a row whose first column is neither false nor null.
type Query struct {
	SQL    string
	Params []string
}

// Id formats and state modes of a Kind.
const (
	IDSlug    = "slug"
	IDUUID    = "uuid"
	IDInteger = "integer"

	StateSnapshot  = "snapshot"  // Config.State reads the room's rows, ordered with the stream
	StateAggregate = "aggregate" // Config.Metrics gives the current aggregate, after the join
)

// DefaultRLSRole is the database role RLS queries run as.
const DefaultRLSRole = "authenticated"

// DefaultKinds returns the built-in room kinds, with ownerQuery (a query with
// $1, the order id) deciding who owns an order.
func DefaultKinds(ownerQuery string) []Kind {
	return []Kind{
		{Name: "metrics", Subscribe: EventSubscribeMetrics, Unsubscribe: EventUnsubscribeMetrics, Prefix: RoomMetrics, Constant: true,
			State: StateAggregate, Admins: true, Denied: ErrTextAdminOnly},
		{Name: "order", Subscribe: EventSubscribeOrder, Unsubscribe: EventUnsubscribeOrder, Prefix: "order:",
			State: StateSnapshot, Admins: true, Owner: &Query{SQL: ownerQuery, Params: []string{"id"}}, Denied: ErrTextOrderDenied},
		{Name: "product", Subscribe: EventSubscribeProduct, Unsubscribe: EventUnsubscribeProduct, Prefix: "product:",
			State: StateSnapshot, Anyone: true},
	}
}

// Ack errors of room kinds.
const (
	ErrTextDenied     = "not allowed"
	ErrTextBadUUID    = "invalid id: must be a UUID"
	ErrTextBadInteger = "invalid id: must be an integer of at most 18 digits"
)

// checkKinds validates kinds.
func checkKinds(kinds []Kind) error {
	var errs []error
	events := map[string]bool{EventCartUpdate: true}
	for _, k := range kinds {
		for _, ev := range []string{k.Subscribe, k.Unsubscribe} {
			if ev != "" && events[ev] {
				errs = append(errs, fmt.Errorf("rooms: kind %s: client event %q is used twice", k.Name, ev))
			}
			events[ev] = true
		}
		if k.Subscribe == "" || k.Prefix == "" {
			errs = append(errs, fmt.Errorf("rooms: kind %s: Subscribe and Prefix are required", k.Name))
		}
		switch k.ID {
		case "", IDSlug, IDUUID, IDInteger:
		default:
			errs = append(errs, fmt.Errorf("rooms: kind %s: unknown ID format %q", k.Name, k.ID))
		}
		if !k.Anyone && !k.Admins && len(k.Roles) == 0 && k.Owner == nil && k.SQL == nil && k.RLS == nil {
			errs = append(errs, fmt.Errorf("rooms: kind %s: nobody may subscribe", k.Name))
		}
	}
	return errors.Join(errs...)
}

// kindOf returns the kind of room, or nil.
func (p *Policy) kindOf(room string) *Kind {
	var best *Kind
	for i := range p.cfg.Kinds {
		k := &p.cfg.Kinds[i]
		switch {
		case k.Constant:
			if room == k.Prefix {
				return k
			}
		case strings.HasPrefix(room, k.Prefix) && len(room) > len(k.Prefix):
			if best == nil || len(k.Prefix) > len(best.Prefix) {
				best = k
			}
		}
	}
	return best
}

// validID reports whether id is acceptable for k.
func (k *Kind) validID(id string) bool {
	switch k.ID {
	case IDUUID:
		return isUUID(id)
	case IDInteger:
		return isInteger(id)
	}
	return ValidRoomID(id)
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
			continue
		}
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func isInteger(s string) bool {
	if len(s) == 0 || len(s) > 18 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// roomIDOf reads the first argument of a subscribe to k as a room id: a
// string, or for IDInteger also a JSON integer.
func (k *Kind) roomIDOf(m *hub.Message) (string, *refusal) {
	if k.ID == IDInteger && len(m.Args) > 0 {
		raw := bytes.TrimSpace(m.Args[0])
		if len(raw) > 0 && raw[0] >= '0' && raw[0] <= '9' {
			if !isInteger(string(raw)) {
				return "", &refusal{reason: "bad_room_id", text: ErrTextBadInteger}
			}
			return string(raw), nil
		}
	}
	if k.ID == "" || k.ID == IDSlug {
		return roomID(m)
	}
	id, r := stringArg(m)
	if r != nil {
		return "", r
	}
	if !k.validID(id) {
		text := ErrTextBadUUID
		if k.ID == IDInteger {
			text = ErrTextBadInteger
		}
		return "", &refusal{reason: "bad_room_id", text: text}
	}
	return id, nil
}

// roleAllows reports whether id's role alone allows k.
func (k *Kind) roleAllows(id *Identity) bool {
	return k.Anyone || (k.Admins && id.Admin) || slices.Contains(k.Roles, id.Role)
}

// dataRules reports whether k asks the database.
func (k *Kind) dataRules() bool { return k.Owner != nil || k.SQL != nil || k.RLS != nil }

// authorize decides whether who may subscribe to k's room with roomID. The
// grant records whether the data allowed it (it then rests on the data,
// whatever the role). Data rules are asked even when the role allows, so
// that a demotion keeps the rooms the data grants.
func (p *Policy) authorize(ctx context.Context, k *Kind, who *Identity, roomID string) (grant, *refusal) {
	if k.Anyone {
		return grant{}, nil
	}
	var g grant
	var err error
	if k.dataRules() {
		g.owner, err = p.dataAllows(ctx, k, who, roomID)
	}
	switch {
	case k.roleAllows(who) || g.owner:
		return g, nil
	case err != nil:
		return g, &refusal{reason: "internal", text: ErrTextInternal, err: err}
	}
	// Same answer for "no such row" and "someone else's": ids of other
	// users' rows must not be discoverable.
	text := k.Denied
	if text == "" {
		text = ErrTextDenied
	}
	return g, &refusal{reason: "forbidden", text: text}
}

// dataAllows runs k's data rules: the first that allows wins.
func (p *Policy) dataAllows(ctx context.Context, k *Kind, who *Identity, roomID string) (bool, error) {
	if p.cfg.DB == nil {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.DBTimeout)
	defer cancel()
	var errs []error
	if k.Owner != nil {
		owner, found, err := p.ownerOf(ctx, k.Owner, who, roomID)
		if err == nil && found && owner == who.UserID {
			return true, nil
		}
		errs = append(errs, err)
	}
	if k.SQL != nil {
		ok, err := truthy(p.cfg.DB.QueryRow(ctx, k.SQL.SQL, k.SQL.args(who, roomID)...))
		if err == nil && ok {
			return true, nil
		}
		errs = append(errs, wrapQuery(err, k, "sql", roomID))
	}
	if k.RLS != nil {
		ok, err := p.rlsAllows(ctx, k, who, roomID)
		if err == nil && ok {
			return true, nil
		}
		errs = append(errs, wrapQuery(err, k, "rls", roomID))
	}
	return false, errors.Join(errs...)
}

func wrapQuery(err error, k *Kind, what, roomID string) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s query of room kind %s for id %q: %w", what, k.Name, roomID, err)
}

// ownerOf runs an owner query. An id Postgres cannot read as the key's type
// (a slug for a uuid column) is "not found", not an error.
func (p *Policy) ownerOf(ctx context.Context, q *Query, who *Identity, roomID string) (owner string, found bool, err error) {
	var o *string
	err = p.cfg.DB.QueryRow(ctx, q.SQL, q.args(who, roomID)...).Scan(&o)
	switch {
	case errors.Is(err, pgx.ErrNoRows), isDataException(err):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("owner query for %q: %w", roomID, err)
	case o == nil:
		return "", false, nil
	}
	return *o, true, nil
}

// Beginner is the part of a *pgxpool.Pool RLS queries need: Config.DB must
// implement it for room kinds with an RLS rule.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// rlsAllows runs k's RLS query the way PostgREST runs a request: in a
// transaction, as Config.RLSRole, with request.jwt.claims (and, for older
// auth.uid() definitions, request.jwt.claim.sub) set to the token's, all
// local to the transaction, which is rolled back.
func (p *Policy) rlsAllows(ctx context.Context, k *Kind, who *Identity, roomID string) (bool, error) {
	db, ok := p.cfg.DB.(Beginner)
	if !ok {
		return false, errors.New("the database handle cannot begin transactions")
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `select set_config('role', $1, true), set_config('request.jwt.claims', $2, true), set_config('request.jwt.claim.sub', $3, true)`,
		p.cfg.RLSRole, who.claimsJSON(), who.UserID); err != nil {
		return false, fmt.Errorf("set role %s and request.jwt.claims: %w", p.cfg.RLSRole, err)
	}
	return truthy(tx.QueryRow(ctx, k.RLS.SQL, k.RLS.args(who, roomID)...))
}

// truthy reads a predicate's row: no row, false, null or a value the id's
// type cannot hold (a data exception) do not allow.
func truthy(row pgx.Row) (bool, error) {
	var v any
	err := row.Scan(&v)
	switch {
	case errors.Is(err, pgx.ErrNoRows), isDataException(err):
		return false, nil
	case err != nil:
		return false, err
	}
	if b, ok := v.(bool); ok {
		return b, nil
	}
	return v != nil, nil
}

// args binds q's parameters.
func (q *Query) args(who *Identity, roomID string) []any {
	out := make([]any, len(q.Params))
	for i, name := range q.Params {
		switch name {
		case "id":
			out[i] = roomID
		case "user":
			out[i] = who.UserID
		case "role":
			out[i] = who.Role
		case "claims":
			out[i] = who.claimsJSON()
		}
	}
	return out
}

// claimsJSON returns the token's claims as JSON text ("{}" when unknown).
func (id *Identity) claimsJSON() string {
	if len(id.claims) == 0 {
		return "{}"
	}
	return string(id.claims)
}

// subscribeKind handles k.Subscribe.
func (st *socketState) subscribeKind(k *Kind, m *hub.Message) *refusal {
	room, roomID := k.Prefix, ""
	if !k.Constant {
		var r *refusal
		if roomID, r = k.roomIDOf(m); r != nil {
			return r
		}
		room += roomID
	}
	who, gen := st.snapshot()
	epoch := st.p.rechecks.epoch(room)
	g, r := st.p.authorize(st.s.Context(), k, who, roomID)
	if r != nil {
		return r
	}
	if k.State == StateSnapshot {
		r = st.joinWithState(room, gen, g)
	} else {
		r = st.join(room, gen, g)
	}
	if r != nil {
		return r
	}
	if k.dataRules() && st.p.rechecks.epoch(room) != epoch {
		// The data changed while it was asked: the recheck that change
		// queued may have missed this socket, so queue one more.
		st.p.RoomDataChanged(room, st.p.rechecks.xidOf(room))
	}
	if k.State == StateAggregate {
		st.sendAggregate()
	}
	return nil
}

// sendAggregate emits the current metrics (Config.Metrics) to the socket.
func (st *socketState) sendAggregate() {
	src := st.p.cfg.Metrics
	if src == nil {
		return
	}
	ctx, cancel := context.WithTimeout(st.s.Context(), st.p.cfg.DBTimeout)
	defer cancel()
	cur, err := src.AdminMetrics(ctx)
	switch {
	case err != nil:
		st.p.log.Warn("current admin metrics unavailable", logkey.Err, err)
	case len(cur) > 0:
		_ = st.s.Emit(EventMetricsUpdated, cur)
	}
}

// unsubscribeKind handles k.Unsubscribe. A constant room that only roles
// allow refuses users without them (as subscribe does).
func (st *socketState) unsubscribeKind(k *Kind, m *hub.Message) *refusal {
	room := k.Prefix
	if !k.Constant {
		id, r := k.roomIDOf(m)
		if r != nil {
			return r
		}
		room += id
	} else if !k.dataRules() && !k.roleAllows(st.identity()) {
		text := k.Denied
		if text == "" {
			text = ErrTextDenied
		}
		return &refusal{reason: "forbidden", text: text}
	}
	st.leave(room)
	return nil
}

// stringArg reads the first argument as a JSON string.
func stringArg(m *hub.Message) (string, *refusal) {
	if len(m.Args) == 0 {
		return "", &refusal{reason: "bad_room_id", text: ErrTextNotString}
	}
	raw := bytes.TrimSpace(m.Args[0])
	var id string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &id) != nil {
		return "", &refusal{reason: "bad_room_id", text: ErrTextNotString}
	}
	return id, nil
}
