package cdc

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// EventID is an event's stable identity: its transaction's commit LSN (the
// "final LSN" pgoutput announces in Begin, identical on every redelivery) and
// the event's index within that transaction. Duplicates after a crash carry the
// same EventID. The zero EventID marks an event with no database position (for
// example coalesced metrics), which is not recoverable.
type EventID struct {
	LSN   LSN
	Index uint32
}

// IsZero reports whether id has no database position.
func (id EventID) IsZero() bool { return id.LSN == 0 && id.Index == 0 }

// String formats id as "<lsn decimal>-<index>". The form is also a valid Redis
// stream entry id, sorts like commit order, and is used as the Socket.IO
// connection-state-recovery offset.
func (id EventID) String() string { return fmt.Sprintf("%d-%d", uint64(id.LSN), id.Index) }

// ParseEventID parses the form produced by EventID.String.
func ParseEventID(s string) (EventID, error) {
	var lsn uint64
	var idx uint32
	if _, err := fmt.Sscanf(s, "%d-%d", &lsn, &idx); err != nil {
		return EventID{}, fmt.Errorf("parse event id %q: %w", s, err)
	}
	return EventID{LSN: LSN(lsn), Index: idx}, nil
}

// Event is one business event bound for one room.
type Event struct {
	ID         EventID
	Room       string          // e.g. "product:42", "admin:room"
	Name       string          // e.g. "product:stock-updated"
	Payload    json.RawMessage // the single event argument, a JSON value
	CommitTime time.Time       // the transaction's commit time
}

// Sink is the bus as the CDC side sees it. Publish returns nil only when every
// event in events has been accepted by the bus (handed to local delivery queues,
// or acknowledged by Redis); only then may the Reader acknowledge the position of
// the transaction they came from. Publish must not retain events after it returns.
type Sink interface {
	Publish(ctx context.Context, events []Event) error
}
