package cdc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// A state mark orders a subscriber's snapshot with the stream. RoomStateAt
// reads a room's state and, in the same transaction, commits a logical
// message with prefix MessagePrefixMark whose content is a token; the
// Pipeline turns that message into an Event for MarkRoom named EventMark with
// the token as payload, at the message's place in commit order. The rows read
// are locked FOR SHARE until the commit, so every change to them is either in
// the snapshot (committed before the lock) or after the mark in the stream
// (blocked until the commit). A token is an opaque string of at most
// MaxMarkTokenLen bytes in [0-9a-zA-Z_-]; a mark with another content is
// dropped, so any role may emit marks without reaching a client.
const (
	MessagePrefixMark = "walcast.mark"
	MarkRoom          = "walcast:mark" // no client can join it (rooms refuses it)
	EventMark         = "walcast:mark"
	MaxMarkTokenLen   = 64
)

// StateEvent is one event of a room's current state.
type StateEvent struct {
	Name    string
	Payload json.RawMessage
	// User, when set, limits the event to that user's sockets (order:status
	// goes to the order's owner only).
	User string
}

// Beginner starts transactions (a pgx pool or connection).
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// RoomState reads the current state of room from the database, as the events
// the stream would have sent for it, in the mapper's payload shapes:
//   - "product:{id}": product:stock-updated for every variant of the product;
//   - "order:{id}": order:status-changed for the order, and order:status for
//     its owner (User set).
//
// Other rooms have no state (nil). The timestamp is the time of the read.
// The read is not ordered with the stream: a change committed while it runs
// may reach a subscriber just before or after it. RoomStateAt orders it.
func (m *Mapper) RoomState(ctx context.Context, q Querier, room string) ([]StateEvent, error) {
	return m.roomState(ctx, q, room, "")
}

// RoomStateAt is RoomState ordered with the stream: it reads room's state
// with its rows locked FOR SHARE and commits a state mark with token in the
// same transaction (see MessagePrefixMark). The snapshot is exact at the
// mark's place in the stream: a change committed before the mark is in it,
// one after is not. marked is false when room has no state (no transaction
// ran, no mark will come). lockRows false reads without FOR SHARE (for a
// role without the UPDATE privilege FOR SHARE needs): a change committed
// while the transaction runs may then be in neither. ready, when not nil, is
// called with the events before the commit, so a caller can have them in
// place before the mark can reach it.
func (m *Mapper) RoomStateAt(ctx context.Context, db Beginner, room, token string, lockRows bool, ready func([]StateEvent)) (evs []StateEvent, marked bool, err error) {
	if !validMarkToken(token) {
		return nil, false, fmt.Errorf("mapper: state mark token %.70q is not 1-%d bytes of [0-9a-zA-Z_-]", token, MaxMarkTokenLen)
	}
	if !m.hasState(room) {
		return nil, false, nil
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("mapper: state of %q: begin: %w", room, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	lock := ""
	if lockRows {
		lock = " FOR SHARE"
	}
	if evs, err = m.roomState(ctx, tx, room, lock); err != nil {
		return nil, false, err
	}
	if _, err := tx.Exec(ctx, `SELECT pg_logical_emit_message(true, $1, $2)`, MessagePrefixMark, token); err != nil {
		return nil, false, fmt.Errorf("mapper: state of %q: emit mark: %w", room, err)
	}
	if ready != nil {
		ready(evs)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, false, fmt.Errorf("mapper: state of %q: commit: %w", room, err)
	}
	return evs, true, nil
}

// hasState reports whether RoomState has a state for room.
func (m *Mapper) hasState(room string) bool {
	_, kind := stateRoom(room)
	return (kind == 'p' && m.on.stock) || (kind == 'o' && m.on.statusChanged)
}

// stateRoom splits "product:{id}" ('p') and "order:{id}" ('o').
func stateRoom(room string) (id string, kind byte) {
	switch {
	case len(room) > len("product:") && room[:len("product:")] == "product:":
		return room[len("product:"):], 'p'
	case len(room) > len("order:") && room[:len("order:")] == "order:":
		return room[len("order:"):], 'o'
	}
	return "", 0
}

func (m *Mapper) roomState(ctx context.Context, q Querier, room, lock string) ([]StateEvent, error) {
	if !m.hasState(room) {
		return nil, nil
	}
	id, kind := stateRoom(room)
	if kind == 'p' {
		return m.productState(ctx, q, id, lock)
	}
	return m.orderState(ctx, q, id, lock)
}

// ParseMark returns the token of a state mark message's content.
func ParseMark(content []byte) (string, bool) {
	t := string(content)
	return t, validMarkToken(t)
}

func validMarkToken(t string) bool {
	if len(t) == 0 || len(t) > MaxMarkTokenLen {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func (m *Mapper) productState(ctx context.Context, q Querier, productID, lock string) ([]StateEvent, error) {
	inv, v := m.mp.Inventory, m.mp.Variants
	it, err := tableIdent(inv.Table)
	if err != nil {
		return nil, err
	}
	vt, err := tableIdent(v.Table)
	if err != nil {
		return nil, err
	}
	reserved := "0"
	if inv.Reserved != "" {
		reserved = "coalesce(i." + colIdent(inv.Reserved) + ", 0)"
	}
	sql := fmt.Sprintf(`SELECT to_jsonb(i.%s)::text, to_jsonb(v.%s)::text, (i.%s - %s)::bigint
FROM %s i JOIN %s v ON v.%s = i.%s
WHERE v.%s::text = $1 AND i.%s IS NOT NULL ORDER BY v.%s::text%s`,
		colIdent(inv.VariantID), colIdent(v.ProductID), colIdent(inv.Quantity), reserved,
		it, vt, colIdent(v.ID), colIdent(inv.VariantID),
		colIdent(v.ProductID), colIdent(inv.Quantity), colIdent(v.ID), lockOf(lock, "i"))
	rows, err := q.Query(ctx, sql, productID)
	if err != nil {
		return nil, fmt.Errorf("mapper: current stock of product %q: %w", productID, err)
	}
	defer rows.Close()
	ts := strconv.AppendInt(nil, time.Now().UnixMilli(), 10)
	var out []StateEvent
	for rows.Next() {
		var vid, pid string
		var avail int64
		if err := rows.Scan(&vid, &pid, &avail); err != nil {
			return nil, fmt.Errorf("mapper: current stock of product %q: %w", productID, err)
		}
		b := append([]byte(`{"variantId":`), vid...)
		b = append(b, `,"productId":`...)
		b = append(b, pid...)
		b = append(b, `,"available":`...)
		b = strconv.AppendInt(b, avail, 10)
		b = append(b, `,"timestamp":`...)
		b = append(b, ts...)
		out = append(out, StateEvent{Name: EventStockUpdated, Payload: append(b, '}')})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("mapper: current stock of product %q: %w", productID, err)
	}
	return out, nil
}

func (m *Mapper) orderState(ctx context.Context, q Querier, orderID, lock string) ([]StateEvent, error) {
	o := m.mp.Orders
	ot, err := tableIdent(o.Table)
	if err != nil {
		return nil, err
	}
	jsonCol := func(col string) string {
		if col == "" {
			return "'null'"
		}
		return "coalesce(to_jsonb(" + colIdent(col) + "), 'null')::text"
	}
	user := "NULL::text"
	if o.UserID != "" {
		user = colIdent(o.UserID) + "::text"
	}
	sql := fmt.Sprintf(`SELECT to_jsonb(%s)::text, %s, %s, %s, %s FROM %s WHERE %s::text = $1%s`,
		colIdent(o.ID), jsonCol(o.Status), jsonCol(o.TrackingNumber), jsonCol(o.OrderNumber), user,
		ot, colIdent(o.ID), lockOf(lock, ""))
	var id, status, track, number string
	var owner *string
	if err := q.QueryRow(ctx, sql, orderID).Scan(&id, &status, &track, &number, &owner); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, nil
		}
		return nil, fmt.Errorf("mapper: current status of order %q: %w", orderID, err)
	}
	ts := strconv.AppendInt(nil, time.Now().UnixMilli(), 10)
	b := append([]byte(`{"orderId":`), id...)
	b = append(b, `,"status":`...)
	b = append(b, status...)
	b = append(b, `,"trackingNumber":`...)
	b = append(b, track...)
	b = append(b, `,"timestamp":`...)
	b = append(b, ts...)
	out := []StateEvent{{Name: EventOrderStatusChanged, Payload: append(b, '}')}}
	if m.on.orderStatus && owner != nil {
		// The shape the mapper sends to user:{owner} when the status changes.
		b := append([]byte(`{"id":`), id...)
		b = append(b, `,"orderNumber":`...)
		b = append(b, number...)
		b = append(b, `,"status":`...)
		b = append(b, status...)
		b = append(b, `,"timestamp":`...)
		b = append(b, ts...)
		out = append(out, StateEvent{Name: EventOrderStatus, Payload: append(b, '}'), User: *owner})
	}
	return out, nil
}

// lockOf is the locking clause for lock (" FOR SHARE" or "") on table alias
// (none: the only table).
func lockOf(lock, alias string) string {
	if lock == "" || alias == "" {
		return lock
	}
	return lock + " OF " + alias
}
