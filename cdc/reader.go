package cdc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/walcast/walcast/internal/backoff"
	"github.com/walcast/walcast/internal/logkey"
)

// ErrSlotInUse reports that another process streams the replication slot
// (SQLSTATE 55006). The Reader then stands by and retries: the slot is the
// single-leader lock between walcast nodes.
var ErrSlotInUse = errors.New("cdc: replication slot in use")

// rewindReacquire is how long after a rewind a slot in use is taken for this
// Reader's previous walsender still exiting, and retried at once.
const rewindReacquire = 2 * time.Second

// ErrRewind, wrapped in an error a Handler returns, tells the Reader that
// what it handed on since its last acknowledgement was lost downstream: the
// Reader reconnects at once and streams again from the acknowledged position
// (the slot's confirmed position, which ReaderConfig.AckLimit may hold
// back), so every transaction after it is handed on again.
var ErrRewind = errors.New("cdc: rewind to the acknowledged position")

// Handler receives a Reader's stream. All calls come from the Reader's Run
// goroutine, one at a time.
type Handler interface {
	// HandleChange is called for every change, in commit order, as it arrives.
	// c and everything it refers to are only valid until HandleChange returns.
	HandleChange(ctx context.Context, c *Change) error

	// Flush is called before the Reader may wait for data, before standby
	// status updates and when the server asks for a reply. When it returns
	// nil, everything passed to HandleChange before it must have been
	// accepted downstream: the Reader then acknowledges the end LSN of every
	// transaction it has seen committed.
	Flush(ctx context.Context) error

	// Reset is called after the replication connection ended. Changes handed
	// on since the last successful Flush will be sent again by Postgres, so
	// buffered, unflushed work should be dropped.
	Reset()
}

// CommitHandler is an optional interface of a Handler. HandleCommit is
// called at the commit of every transaction that handed on at least one
// change, after its last HandleChange, with the transaction's commit LSN
// (Change.CommitLSN), commit time and number of changes handed on.
type CommitHandler interface {
	HandleCommit(ctx context.Context, lsn LSN, at time.Time, changes uint32) error
}

// ReaderState is what a Reader is doing.
type ReaderState int32

// The states of a Reader.
const (
	StateStopped      ReaderState = iota // Run not running
	StateConnecting                      // first connection attempt
	StateStreaming                       // holding the slot and streaming
	StateStandingBy                      // another process holds the slot; retrying
	StateReconnecting                    // lost the connection; retrying with backoff
)

func (s ReaderState) String() string {
	switch s {
	case StateStopped:
		return "stopped"
	case StateConnecting:
		return "connecting"
	case StateStreaming:
		return "streaming"
	case StateStandingBy:
		return "standing by"
	case StateReconnecting:
		return "reconnecting"
	}
	return "unknown"
}

// ReaderStats is a snapshot of a Reader's progress.
type ReaderStats struct {
	State        ReaderState
	ReceivedLSN  LSN // highest WAL position received
	AckedLSN     LSN // highest position acknowledged to Postgres (flush)
	HandledLSN   LSN // highest position safe to acknowledge; above AckedLSN only under AckLimit
	ServerWALEnd LSN // the server's WAL end as last reported
	Changes      uint64
	Transactions uint64
	Events       uint64 // events published (filled in by Pipeline)
	Reconnects   uint64
	SlotsLost    uint64 // slots found lost (invalidated, or gone) and recreated
	Rewinds      uint64 // re-reads from the acknowledged position asked by the Handler (ErrRewind)
}

// Reader streams a durable pgoutput replication slot.
//
// Protocol flow, per connection: connect with replication=database, check
// the publication and the slot (creating the slot, plugin pgoutput, durable,
// when missing), START_REPLICATION at the highest position known to be
// delivered (proto_version '2', messages 'true', publication_names; no
// streaming, no two_phase), then loop: receive with a read deadline, decode,
// hand each change to the Handler as it arrives (no per-transaction
// buffering), Flush the Handler whenever everything received is handled
// between transactions, and send a standby status update at least every
// StatusInterval and at once when the server asks.
//
// Acknowledgements: the flushed position sent is the end LSN of the last
// transaction whose changes were all handed on before a successful Flush,
// or a keepalive's WAL end seen with no transaction open once everything
// before it is flushed; it never moves back. Relation and Type messages are
// cached per connection.
//
// Failure: any error (connection, server error, decode, Flush or
// HandleChange error, ReadTimeout of silence) ends the connection; the
// Handler is Reset, and the Reader reconnects with jittered exponential
// backoff and resumes from the slot, so unacknowledged transactions come
// again with the same commit LSN and change indexes. A slot held by another
// process (ErrSlotInUse, SQLSTATE 55006) puts the Reader in StateStandingBy,
// logged once at Info, retried with the same backoff. An error wrapping
// ErrRewind reconnects at once, from the acknowledged position.
//
// Run is driven by one goroutine; Stats is safe from any goroutine.
type Reader struct {
	cfg ReaderConfig
	log *slog.Logger

	running atomic.Bool

	state        atomic.Int32
	received     atomic.Uint64
	acked        atomic.Uint64
	handled      atomic.Uint64 // >= acked; differs only under AckLimit
	serverWALEnd atomic.Uint64
	changes      atomic.Uint64
	txs          atomic.Uint64
	reconnects   atomic.Uint64
	slotsLost    atomic.Uint64
	rewinds      atomic.Uint64
	rewindAsked  atomic.Bool
	wake         atomic.Pointer[func()] // wakes the streaming session's blocked read; nil when none
	// timeline is the server timeline of the current session, prevTimeline
	// that of the one before (0: unknown); they differ after a promotion.
	timeline, prevTimeline atomic.Int64
}

// NewReader checks cfg and returns a Reader. It does no I/O.
func NewReader(cfg ReaderConfig) (*Reader, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Reader{cfg: cfg, log: cfg.Logger.With(logkey.Component, "cdc.reader", logkey.Slot, cfg.Slot)}, nil
}

// Rewind asks the running session to stream again from the acknowledged
// position, as a Handler error wrapping ErrRewind does, without waiting for
// the next change: a blocked read is woken. It does nothing when no session
// streams; safe from any goroutine.
func (r *Reader) Rewind() {
	if w := r.wake.Load(); w != nil {
		r.rewindAsked.Store(true)
		(*w)()
	}
}

// Stats returns a snapshot of the Reader's progress. It is safe to call from
// any goroutine.
func (r *Reader) Stats() ReaderStats {
	return ReaderStats{
		State:        ReaderState(r.state.Load()),
		ReceivedLSN:  LSN(r.received.Load()),
		AckedLSN:     LSN(r.acked.Load()),
		HandledLSN:   LSN(r.handled.Load()),
		ServerWALEnd: LSN(r.serverWALEnd.Load()),
		Changes:      r.changes.Load(),
		Transactions: r.txs.Load(),
		Rewinds:      r.rewinds.Load(),
		Reconnects:   r.reconnects.Load(),
		SlotsLost:    r.slotsLost.Load(),
	}
}

// Run streams the slot into h until ctx ends, reconnecting with backoff after
// any error. It returns ctx's error (or an error if Run is already running).
// A cancelled ctx cancels an in-flight Flush; whatever was not flushed is not
// acknowledged and will be sent again by Postgres.
func (r *Reader) Run(ctx context.Context, h Handler) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("cdc: Reader.Run called twice")
	}
	defer r.running.Store(false)
	defer r.state.Store(int32(StateStopped))
	r.state.Store(int32(StateConnecting))

	attempt := 0
	standingBy := false
	// One log line per distinct failure, repeated at most once a minute.
	var lastMsg string
	var lastLog time.Time
	suppressed := 0
	var rewoundAt time.Time
	for {
		start := time.Now()
		ackBefore := r.handled.Load()
		err := r.session(ctx, h)
		h.Reset()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		progressed := r.handled.Load() != ackBefore || time.Since(start) > time.Minute
		if progressed {
			attempt = 0
		}
		if errors.Is(err, ErrRewind) {
			r.handled.Store(r.acked.Load())
			r.rewinds.Add(1)
			r.log.Info("re-reading the replication slot from its confirmed position", logkey.LSN, LSN(r.acked.Load()).String(), "why", err)
			attempt, rewoundAt = 0, time.Now()
			r.state.Store(int32(StateReconnecting))
			continue
		}
		if errors.Is(err, ErrSlotInUse) && time.Since(rewoundAt) < rewindReacquire {
			// Most likely this Reader's own walsender of a moment ago, still
			// exiting: take the slot back before a standby does.
			r.state.Store(int32(StateReconnecting))
			if err := backoff.Sleep(ctx, 20*time.Millisecond); err != nil {
				return err
			}
			continue
		}
		if errors.Is(err, ErrSlotInUse) {
			r.state.Store(int32(StateStandingBy))
			if !standingBy {
				r.log.Info("replication slot held by another process; standing by", logkey.Err, err)
				standingBy = true
			}
		} else {
			standingBy = false
			r.state.Store(int32(StateReconnecting))
			r.reconnects.Add(1)
			if msg := err.Error(); msg != lastMsg || time.Since(lastLog) > time.Minute {
				level := slog.LevelWarn
				if errors.Is(err, ErrNoPublication) || errors.Is(err, ErrSlotLost) {
					level = slog.LevelError // an operator must act
				}
				r.log.Log(ctx, level, "replication stream ended; reconnecting", logkey.Err, err, logkey.Attempt, attempt+1, "suppressed", suppressed)
				lastMsg, lastLog, suppressed = msg, time.Now(), 0
			} else {
				suppressed++
			}
		}
		delay := backoff.Delay(r.cfg.BackoffMin, r.cfg.BackoffMax, attempt)
		attempt++
		if err := backoff.Sleep(ctx, delay); err != nil {
			return err
		}
	}
}

// connect opens a replication connection. Reads go through a large buffer so
// that a backlog is read in few system calls, and so the Reader can tell when
// everything received has been handled (see drained).
func (r *Reader) connect(ctx context.Context) (*pgconn.PgConn, *bufio.Reader, error) {
	pcfg, err := pgconn.ParseConfig(r.cfg.DSN)
	if err != nil {
		// pgconn redacts the password in its errors.
		return nil, nil, fmt.Errorf("parse DSN: %w", err)
	}
	pcfg.RuntimeParams["replication"] = "database"
	if pcfg.RuntimeParams["application_name"] == "" {
		pcfg.RuntimeParams["application_name"] = "walcast"
	}
	var br *bufio.Reader
	pcfg.BuildFrontend = func(rd io.Reader, w io.Writer) *pgproto3.Frontend {
		br = bufio.NewReaderSize(rd, 256<<10)
		return pgproto3.NewFrontend(br, w)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgconn.ConnectConfig(cctx, pcfg)
	if err != nil {
		return nil, nil, fmt.Errorf("connect for replication: %w", err)
	}
	return conn, br, nil
}

// session runs one replication connection until it fails or ctx ends.
func (r *Reader) session(ctx context.Context, h Handler) error {
	conn, br, err := r.connect(ctx)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		conn.Close(cctx)
	}()

	if err := r.ensureSlot(ctx, conn); err != nil {
		return err
	}
	// Resume after what this Reader already handed on: Postgres skips every
	// transaction whose commit LSN is before the requested position, even
	// when AckLimit holds the slot's confirmed position further back.
	acked := LSN(r.acked.Load())
	start := max(acked, LSN(r.handled.Load()))
	err = pglogrepl.StartReplication(ctx, conn, r.cfg.Slot, start, pglogrepl.StartReplicationOptions{
		Mode: pglogrepl.LogicalReplication,
		PluginArgs: []string{
			"proto_version '2'",
			"publication_names '" + r.cfg.Publication + "'",
			"messages 'true'",
		},
	})
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55006" {
			return fmt.Errorf("start replication on slot %q: %w (%s)", r.cfg.Slot, ErrSlotInUse, pgErr.Message)
		}
		return fmt.Errorf("start replication on slot %q at %s: %w", r.cfg.Slot, start, err)
	}
	r.state.Store(int32(StateStreaming))
	r.log.Info("streaming replication slot", logkey.LSN, start.String(), "publication", r.cfg.Publication)

	// The heartbeat runs only while this session streams.
	hctx, hcancel := context.WithCancel(ctx)
	defer hcancel()
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		r.heartbeat(hctx)
	}()
	defer func() { hcancel(); <-hbDone }()

	s := &stream{r: r, h: h, conn: conn, br: br, acked: acked, handled: start, types: pgtype.NewMap()}
	s.change.types = s.types
	return s.run(ctx)
}
