package main

// The recovery window of a cluster node, kept from its own publishes, and
// the refill of the Redis recovery streams from the replication slot.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/hub/bus"
	"github.com/walcast/walcast/internal/logkey"
)

// windowBucket is the span of commit times one windowTracker entry covers.
const windowBucket = 100 * time.Millisecond

// windowTracker remembers, for the events this node published, the commit
// LSN of the first one in each windowBucket of commit time, for as long as
// the recovery window. Its oldest entry is where the slot is held, so that
// the window can be read again from Postgres: after a restart of the leader,
// and when Redis lost the recovery streams. A restarted leader re-reads the
// window from the held slot, which refills the tracker with the commit times
// the events had. At most window/windowBucket entries (1,200 for 2 minutes).
type windowTracker struct {
	window time.Duration
	now    func() time.Time

	mu      sync.Mutex
	entries []windowEntry // in commit order
}

type windowEntry struct {
	lsn    cdc.LSN
	commit time.Time
}

// note records a published event.
func (w *windowTracker) note(lsn cdc.LSN, commit time.Time) {
	if lsn == 0 || commit.IsZero() {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if n := len(w.entries); n > 0 {
		last := w.entries[n-1]
		if lsn <= last.lsn || commit.Sub(last.commit) < windowBucket {
			return
		}
	}
	w.entries = append(w.entries, windowEntry{lsn: lsn, commit: commit})
}

// oldest is ackHold.oldest: the commit LSN of the oldest event published
// that committed within the window.
func (w *windowTracker) oldest() (cdc.LSN, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	cut := w.now().Add(-w.window)
	i := 0
	for i < len(w.entries) && w.entries[i].commit.Before(cut) {
		i++
	}
	if i > 0 {
		w.entries = append(w.entries[:0], w.entries[i:]...)
	}
	if len(w.entries) == 0 {
		return 0, false
	}
	return w.entries[0].lsn, true
}

// streamRefill runs the refills the Redis bus asks for: when a publish finds
// the recovery streams lost (*bus.StreamsLost), the sink rewinds the reader
// to the held slot, and once the reader has handled everything up to the
// WAL position of that moment, the streams hold the whole window again.
type streamRefill struct {
	bus    *bus.Redis
	db     cdc.Querier
	stats  func() cdc.ReaderStats
	rewind func() // the reader's Rewind
	log    *slog.Logger

	mu      sync.Mutex
	gen     uint64  // the refill running; 0 = none
	target  cdc.LSN // the server's WAL position when it started
	rewinds uint64  // the reader's rewinds before it: the re-read starts after one more
	started time.Time
	kick    chan struct{}
}

func newStreamRefill(b *bus.Redis, db cdc.Querier, log *slog.Logger) *streamRefill {
	return &streamRefill{bus: b, db: db, log: log, kick: make(chan struct{}, 1)}
}

// lost handles an error from the bus: for a *bus.StreamsLost it starts
// refill and returns an error that makes the reader rewind; other errors are
// returned as they are.
func (f *streamRefill) lost(ctx context.Context, err error) error {
	var sl *bus.StreamsLost
	if !errors.As(err, &sl) {
		return err
	}
	pos, qerr := walPosition(ctx, f.db)
	if qerr != nil {
		// Rewind anyway; the next publish finds the streams in refill and
		// does not ask again, so read the position later.
		f.log.Warn("refill: cannot read the WAL position; the refill ends at the next one read", logkey.Err, qerr)
	}
	rewinds := f.stats().Rewinds
	f.mu.Lock()
	f.gen, f.target, f.rewinds, f.started = sl.Gen, pos, rewinds, time.Now()
	f.mu.Unlock()
	select {
	case f.kick <- struct{}{}:
	default:
	}
	return fmt.Errorf("%w: %w", err, cdc.ErrRewind)
}

// run marks each refill done once the reader has handled up to its target,
// and while this node leads with no refill running checks the streams every
// checkEvery (a quiet leader publishes nothing that would find them lost),
// until ctx ends.
func (f *streamRefill) run(ctx context.Context) {
	const checkEvery = time.Second
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var checked time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-f.kick:
		}
		f.mu.Lock()
		gen, target, rewinds, started := f.gen, f.target, f.rewinds, f.started
		f.mu.Unlock()
		if gen == 0 {
			if time.Since(checked) < checkEvery || f.stats().State != cdc.StateStreaming {
				continue
			}
			checked = time.Now()
			if err := f.bus.CheckStreams(ctx); err != nil {
				if lerr := f.lost(ctx, err); errors.Is(lerr, cdc.ErrRewind) {
					f.rewind()
				} else if ctx.Err() == nil {
					f.log.Debug("refill: checking the recovery streams", logkey.Err, err)
				}
			}
			continue
		}
		if target == 0 {
			pos, err := walPosition(ctx, f.db)
			if err != nil || pos == 0 {
				continue
			}
			f.mu.Lock()
			if f.gen == gen {
				f.target, target = pos, pos
			}
			f.mu.Unlock()
		}
		st := f.stats()
		if st.Rewinds <= rewinds || max(st.HandledLSN, st.AckedLSN) < target {
			continue // not re-reading yet, or not up to the loss yet
		}
		marked, err := f.bus.MarkFilled(ctx, gen)
		if err != nil {
			f.log.Warn("refill: cannot mark the recovery streams filled; retrying", logkey.Err, err)
			continue
		}
		f.mu.Lock()
		if f.gen == gen {
			f.gen = 0
		}
		f.mu.Unlock()
		if !marked {
			f.log.Info("refill: superseded (the recovery streams were lost again, or another node refills them); the next refill marks them",
				"refill", gen, "took", time.Since(started).Round(time.Millisecond))
			continue
		}
		f.log.Info("refill: the recovery streams hold the window again", "refill", gen, "wal", target.String(),
			"took", time.Since(started).Round(time.Millisecond))
	}
}
