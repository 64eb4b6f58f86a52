package cdc

import (
	"context"
	"fmt"
)

// Acknowledgement rules:
//
//   - The flushed position sent to Postgres is the end LSN of a transaction
//     (CommitMessage.TransactionEndLSN), never its commit LSN (Postgres would
//     send that transaction again) and never the WALStart of a random message.
//   - It moves only after the Handler's Flush returned nil, which means every
//     change handed on before it has been accepted downstream.
//   - A keepalive's ServerWALEnd may be acknowledged when no transaction is
//     open: the walsender only reports positions it has fully decoded, so every
//     transaction committed before it has already been received. It becomes
//     ackable as soon as everything received is flushed.
//   - The position never moves backwards.
//   - ReaderConfig.AckLimit caps it: the stream remembers the highest safe
//     position (handled) and acknowledges min(handled, limit), re-evaluated
//     at every status update, so the slot catches up when the limit rises.

// commit records that a transaction ending at end has been handed on entirely.
func (s *stream) commit(end LSN) {
	if end > s.lastCommitEnd {
		s.lastCommitEnd = end
	}
	// A transaction whose changes all came before the last successful flush
	// (or which had none we handed on) needs no flush of its own.
	s.dirty = true
}

// keepalive handles a keepalive's server WAL end.
func (s *stream) keepalive(walEnd LSN) {
	if s.inTx {
		return
	}
	if walEnd > s.idleSafe {
		s.idleSafe = walEnd
	}
	if !s.dirty {
		s.advance(s.idleSafe)
	}
}

// flush asks the Handler to publish everything handed on, then advances the
// acknowledged position over every transaction seen committed.
func (s *stream) flush(ctx context.Context) error {
	if !s.dirty {
		return nil
	}
	if err := s.h.Flush(ctx); err != nil {
		return fmt.Errorf("flush events: %w", err)
	}
	s.dirty = false
	s.advance(max(s.lastCommitEnd, s.idleSafe))
	return nil
}

// advance records lsn as safe to acknowledge and moves the acknowledged
// position forward to it, or to the AckLimit if that is lower (never back).
func (s *stream) advance(lsn LSN) {
	if lsn > s.handled {
		s.handled = lsn
		s.r.handled.Store(uint64(lsn))
	}
	target := s.handled
	if f := s.r.cfg.AckLimit; f != nil {
		if limit, ok := f(); ok && limit < target {
			target = limit
		}
	}
	if target > s.acked {
		s.acked = target
		s.r.acked.Store(uint64(target))
	}
}
