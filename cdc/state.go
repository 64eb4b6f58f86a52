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

// StateEvent is one event of a room's current state.
type StateEvent struct {
	Name    string
	Payload json.RawMessage
}

// RoomState reads the current state of room from the database, as the events
// the stream would have sent for it, in the mapper's payload shapes:
//   - "product:{id}": product:stock-updated for every variant of the product;
//   - "order:{id}": order:status-changed for the order.
//
// Other rooms have no state (nil). The timestamp is the time of the read.
// The read is not ordered with the stream: a change committed while it runs
// may reach a subscriber just before or after it.
func (m *Mapper) RoomState(ctx context.Context, q Querier, room string) ([]StateEvent, error) {
	switch {
	case len(room) > len("product:") && room[:len("product:")] == "product:" && m.on.stock:
		return m.productState(ctx, q, room[len("product:"):])
	case len(room) > len("order:") && room[:len("order:")] == "order:" && m.on.statusChanged:
		return m.orderState(ctx, q, room[len("order:"):])
	}
	return nil, nil
}

func (m *Mapper) productState(ctx context.Context, q Querier, productID string) ([]StateEvent, error) {
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
WHERE v.%s::text = $1 AND i.%s IS NOT NULL ORDER BY v.%s::text`,
		colIdent(inv.VariantID), colIdent(v.ProductID), colIdent(inv.Quantity), reserved,
		it, vt, colIdent(v.ID), colIdent(inv.VariantID),
		colIdent(v.ProductID), colIdent(inv.Quantity), colIdent(v.ID))
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

func (m *Mapper) orderState(ctx context.Context, q Querier, orderID string) ([]StateEvent, error) {
	o := m.mp.Orders
	ot, err := tableIdent(o.Table)
	if err != nil {
		return nil, err
	}
	tracking := "'null'"
	if o.TrackingNumber != "" {
		tracking = "coalesce(to_jsonb(" + colIdent(o.TrackingNumber) + "), 'null')::text"
	}
	sql := fmt.Sprintf(`SELECT to_jsonb(%s)::text, coalesce(to_jsonb(%s), 'null')::text, %s FROM %s WHERE %s::text = $1`,
		colIdent(o.ID), colIdent(o.Status), tracking, ot, colIdent(o.ID))
	var id, status, track string
	if err := q.QueryRow(ctx, sql, orderID).Scan(&id, &status, &track); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, nil
		}
		return nil, fmt.Errorf("mapper: current status of order %q: %w", orderID, err)
	}
	b := append([]byte(`{"orderId":`), id...)
	b = append(b, `,"status":`...)
	b = append(b, status...)
	b = append(b, `,"trackingNumber":`...)
	b = append(b, track...)
	b = append(b, `,"timestamp":`...)
	b = strconv.AppendInt(b, time.Now().UnixMilli(), 10)
	return []StateEvent{{Name: EventOrderStatusChanged, Payload: append(b, '}')}}, nil
}
