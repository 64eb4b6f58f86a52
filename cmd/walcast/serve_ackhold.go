package main

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/hub"
)

// ackHold keeps the replication slot at the oldest event the in-memory
// recovery store still holds (its commit LSN, so Postgres sends that
// transaction again), so that after a restart of the process the reader
// re-reads every event a client may still recover and the store is rebuilt
// from the WAL with the same offsets. The store's own bounds (the recovery
// window) decide what is held, so the WAL retained is what the store holds.
//
// Right after a start the store is empty, and an empty store would let the
// first acknowledgement throw the retained window away. So until the reader
// has handled everything up to the server's WAL flush position read at start
// (start), the limit is "no advance": the slot stays where the previous
// process left it while the window is replayed into the store. From then on
// the store holds the replayed window and its oldest event is the limit; an
// empty store (nothing to recover) sets no limit. The walcast heartbeat
// writes WAL periodically, so the reader passes the start position even when
// the database is otherwise idle.
type ackHold struct {
	store *hub.MemoryStore
	stats func() cdc.ReaderStats // the reader's progress; set before it runs

	target atomic.Uint64 // server WAL position at start; 0 = not read yet
	caught atomic.Bool   // the reader has handled up to target
}

// start reads the server's WAL position, retrying while the database is
// unreachable; false means ctx ended first.
func (h *ackHold) start(ctx context.Context, db cdc.Querier, log *slog.Logger) bool {
	const q = `SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_flush_lsn() END - '0/0'::pg_lsn)::bigint`
	for attempt := 0; ; attempt++ {
		var pos int64
		err := db.QueryRow(ctx, q).Scan(&pos)
		if err == nil && pos > 0 {
			h.target.Store(uint64(pos))
			log.Debug("recovery: holding the slot until the window is replayed", "wal", cdc.LSN(pos).String())
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if attempt%10 == 0 {
			log.Warn("recovery: cannot read the WAL position; holding the slot and retrying", "err", err, "attempt", attempt+1)
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(min(time.Duration(attempt+1)*500*time.Millisecond, 5*time.Second)):
		}
	}
}

// limit is the reader's cdc.ReaderConfig.AckLimit. It is called on the
// reader's goroutine and only reads atomics and the store.
func (h *ackHold) limit() (cdc.LSN, bool) {
	if !h.caught.Load() {
		t := cdc.LSN(h.target.Load())
		st := h.stats()
		if t == 0 || max(st.HandledLSN, st.AckedLSN) < t {
			return 0, true // still replaying: no advance
		}
		h.caught.Store(true)
	}
	off, ok := h.store.Oldest()
	if !ok {
		return 0, false
	}
	id, err := cdc.ParseEventID(off)
	if err != nil {
		// Not an event id (only change events carry offsets here): hold
		// until it leaves the window.
		return 0, true
	}
	return id.LSN, true
}
