package rules

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/internal/jsonw"
)

// RoomStateAt reads the state of room by its kind's snapshot queries and, in
// the same transaction, commits a stream mark with token (a
// cdc.MessagePrefixMark message), so the state is ordered with the stream:
// ready gets the events before the commit. marked is false when room's kind
// has no snapshot queries (nothing is read).
func (r *Rules) RoomStateAt(ctx context.Context, db cdc.Beginner, room, token string, ready func([]cdc.StateEvent)) (marked bool, err error) {
	k := r.KindOf(room)
	if k == nil || len(k.Snapshot) == 0 {
		return false, nil
	}
	id := ""
	if !k.Constant {
		id = room[len(k.Prefix):]
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("rules: state of %q: begin: %w", room, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var evs []cdc.StateEvent
	for i, sn := range k.Snapshot {
		args := make([]any, len(sn.Query.Params))
		for j := range args {
			args[j] = id // state queries take $id only
		}
		rows, err := tx.Query(ctx, "SELECT to_jsonb(walcast_state)::text FROM ("+strings.TrimRight(strings.TrimSpace(sn.Query.SQL), ";")+") walcast_state", args...)
		if isDataException(err) {
			return false, nil // an id the key's type cannot hold has no state
		}
		if err != nil {
			return false, fmt.Errorf("rules: state of %q: rooms.%s.snapshot[%d]: %w", room, k.Name, i, err)
		}
		for rows.Next() {
			var payload string
			if err := rows.Scan(&payload); err != nil {
				rows.Close()
				return false, fmt.Errorf("rules: state of %q: rooms.%s.snapshot[%d]: %w", room, k.Name, i, err)
			}
			// In canonical form, as the live events are (jsonb's text has
			// spaces and a numeric's trailing zeros).
			c, err := jsonw.AppendCanonical(nil, []byte(payload))
			if err != nil {
				rows.Close()
				return false, fmt.Errorf("rules: state of %q: rooms.%s.snapshot[%d]: %w", room, k.Name, i, err)
			}
			evs = append(evs, cdc.StateEvent{Name: sn.Event, Payload: json.RawMessage(c)})
		}
		if err := rows.Err(); err != nil {
			if isDataException(err) {
				return false, nil // an id the key's type cannot hold has no state
			}
			return false, fmt.Errorf("rules: state of %q: rooms.%s.snapshot[%d]: %w", room, k.Name, i, err)
		}
	}
	if _, err := tx.Exec(ctx, `SELECT pg_logical_emit_message(true, $1, $2)`, cdc.MessagePrefixMark, token); err != nil {
		return false, fmt.Errorf("rules: state of %q: emit mark: %w", room, err)
	}
	if ready != nil {
		ready(evs)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("rules: state of %q: commit: %w", room, err)
	}
	return true, nil
}

// isDataException reports a Postgres class 22 error, e.g. text that is not
// valid input for a uuid or bigint column.
func isDataException(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && len(pe.Code) == 5 && pe.Code[:2] == "22"
}
