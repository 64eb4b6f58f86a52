package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/internal/backoff"
	"github.com/walcast/walcast/internal/logkey"
	"github.com/walcast/walcast/internal/sessions"
)

// ackHold makes connection state recovery survive a restart of walcast, and
// in a cluster a Redis that restarts without its data:
//
//   - the replication slot is held at the oldest event of the recovery
//     window (its commit LSN, so Postgres sends that transaction again): the
//     WAL retained is the recovery window. On a node without Redis that is
//     the oldest event the in-memory buffer holds; with Redis, the oldest
//     event this node published that committed within the window (see
//     windowTracker);
//   - after a start, the reader re-reads that window. Every event committed
//     before the server's WAL position read at start (target) is restored to
//     the buffer only (it was delivered by the previous process, or it was
//     committed while no process ran: either way the clients that reconnect
//     get it through recovery, from their offset), and later ones are
//     delivered live;
//   - until the reader has handled everything up to target, the slot is not
//     advanced at all (the buffer is still being rebuilt: an empty buffer
//     must not release the window), and recovering CONNECTs wait in the
//     session store's TakeSession. The walcast heartbeat writes WAL, so the
//     reader passes target even on an idle database.
//
// With Redis the replayed events go to the bus, which only stores again what
// its recovery streams already hold, and sessions are released at once (the
// streams are shared; a refill after Redis lost them is gated by the bus).
type ackHold struct {
	store *sessions.Store
	stats func() cdc.ReaderStats // the reader's progress; set before it runs
	// oldest returns the window's oldest event: its commit LSN; ok=false
	// when the window is empty.
	oldest func() (cdc.LSN, bool)

	target atomic.Uint64 // server WAL position at start; 0 = not read yet
	caught atomic.Bool   // the reader has handled up to target
}

// start reads the server's WAL position, retrying while the database is
// unreachable; false means ctx ended first.
func (h *ackHold) start(ctx context.Context, db cdc.Querier, log *slog.Logger) bool {
	for attempt := 0; ; attempt++ {
		pos, err := walPosition(ctx, db)
		if err == nil && pos > 0 {
			h.target.Store(uint64(pos))
			log.Debug("recovery: holding the slot until the window is replayed", "wal", cdc.LSN(pos).String())
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if attempt%10 == 0 {
			log.Warn("recovery: cannot read the WAL position; holding the slot and retrying", logkey.Err, err, logkey.Attempt, attempt+1)
		}
		if backoff.Sleep(ctx, backoff.Delay(500*time.Millisecond, 5*time.Second, attempt)) != nil {
			return false
		}
	}
}

// watch marks the hold caught up (and releases waiting CONNECTs) once the
// reader has handled up to target, polling its progress until ctx ends.
func (h *ackHold) watch(ctx context.Context, log *slog.Logger) {
	t0 := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !h.caughtUp() {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
	log.Info("recovery: window replayed from the slot; sessions of the previous process can resume",
		"wal", cdc.LSN(h.target.Load()).String(), "took", time.Since(t0).Round(time.Millisecond))
}

// caughtUp reports (and latches) whether the reader has handled up to target.
func (h *ackHold) caughtUp() bool {
	if h.caught.Load() {
		return true
	}
	t := cdc.LSN(h.target.Load())
	if t == 0 {
		return false
	}
	st := h.stats()
	if max(st.HandledLSN, st.AckedLSN) < t {
		return false
	}
	h.caught.Store(true)
	h.store.Ready()
	return true
}

// replayed reports whether an event committed at lsn belongs to the window a
// restart re-reads (restore it, do not deliver it).
func (h *ackHold) replayed(lsn cdc.LSN) bool {
	t := h.target.Load()
	return t == 0 || uint64(lsn) < t
}

// limit is the reader's cdc.ReaderConfig.AckLimit. It is called on the
// reader's goroutine and only reads atomics and the store.
func (h *ackHold) limit() (cdc.LSN, bool) {
	if !h.caughtUp() {
		return 0, true // still replaying: no advance
	}
	return h.oldest()
}

// bufferOldest is ackHold.oldest for the in-memory buffer of a node
// without Redis.
func bufferOldest(store *sessions.Store) func() (cdc.LSN, bool) {
	return func() (cdc.LSN, bool) {
		off, ok := store.Oldest()
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
}

// walPosition returns the server's WAL position: flushed on a primary,
// replayed on a standby.
func walPosition(ctx context.Context, db cdc.Querier) (cdc.LSN, error) {
	const q = `SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_flush_lsn() END - '0/0'::pg_lsn)::bigint`
	var pos int64
	if err := db.QueryRow(ctx, q).Scan(&pos); err != nil {
		return 0, fmt.Errorf("read the WAL position: %w", err)
	}
	return cdc.LSN(pos), nil
}

// floor is the Redis bus's RedisConfig.Floor: the offset just below the
// first event committed after this process started (what the slot re-sends
// before it was published by a predecessor); "" until the position is read.
func (h *ackHold) floor() string {
	t := h.target.Load()
	if t == 0 {
		return ""
	}
	return cdc.EventID{LSN: cdc.LSN(t - 1), Index: math.MaxUint32}.String()
}
