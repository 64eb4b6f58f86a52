package cdc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"
)

// Defaults for ReaderConfig.
const (
	DefaultSlot              = "walcast"
	DefaultPublication       = "walcast"
	DefaultStatusInterval    = 10 * time.Second
	DefaultHeartbeatInterval = 15 * time.Second
	DefaultBackoffMin        = 250 * time.Millisecond
	DefaultBackoffMax        = 5 * time.Second
	// DefaultHeartbeatPrefix is the logical message prefix of the fallback
	// heartbeat, used when the database has no walcast.heartbeat() function.
	DefaultHeartbeatPrefix = "walcast.heartbeat"
)

// ReaderConfig configures a Reader.
type ReaderConfig struct {
	// DSN is a libpq connection string or postgres:// URL of the database to
	// stream (a direct connection, not a pooler). The Reader adds
	// replication=database itself. The libpq PG* environment variables apply.
	DSN string

	// Slot is the durable logical replication slot (plugin pgoutput); created on
	// first use. Empty means DefaultSlot. Must match [a-z0-9_]+.
	Slot string

	// Publication names the publication to stream. Empty means
	// DefaultPublication. Must match [A-Za-z0-9_]+.
	Publication string

	// StatusInterval is the longest time between two standby status updates
	// (Postgres's wal_sender_timeout defaults to 60s and wants one at least every
	// half of it). Zero means DefaultStatusInterval; negative is invalid.
	StatusInterval time.Duration

	// HeartbeatInterval is how often, while streaming, the Reader commits a
	// heartbeat over a normal connection (`select walcast.heartbeat()` when that
	// function exists, else a transactional pg_logical_emit_message with prefix
	// DefaultHeartbeatPrefix), so an idle database's slot still advances and the
	// whole path is proven alive. Zero means DefaultHeartbeatInterval; negative
	// disables heartbeats.
	HeartbeatInterval time.Duration

	// ReadTimeout is how long the replication connection may stay silent before
	// it is considered dead (a half-open TCP connection). While idle the Reader
	// asks the server for a reply with every status update, so a live server is
	// never silent for more than StatusInterval. Zero means 3*StatusInterval;
	// negative is invalid.
	ReadTimeout time.Duration

	// BackoffMin and BackoffMax set the delay between reconnect attempts:
	// before attempt n, d = BackoffMin·2ⁿ capped at BackoffMax, jittered
	// over [d/2, d]. Zero means DefaultBackoffMin / DefaultBackoffMax.
	BackoffMin, BackoffMax time.Duration

	// AckLimit, when set, caps the position the Reader acknowledges to the
	// slot: while it returns (limit, true) the confirmed position never
	// passes limit, so Postgres keeps the WAL from there on and, after a
	// restart of the process, sends again every transaction whose commit LSN
	// is at or after limit. A caller that must rebuild state from the slot
	// (a recovery buffer) returns the commit LSN (EventID.LSN) of the oldest
	// event it still needs. (0, false) means no cap. It is called from the
	// Reader's goroutine at every acknowledgement and status update (at
	// least every StatusInterval), so a rising limit is acknowledged within
	// one StatusInterval; it must be cheap and must not block.
	//
	// The cap holds back only what the slot confirms: a reconnect within the
	// same Reader resumes after the last transaction it handed on, so a
	// Postgres restart does not deliver the held-back window a second time.
	AckLimit func() (LSN, bool)

	// OnSlotLost, when set, is called (from Run's goroutine) after the Reader
	// found its slot lost and recreated it, before it streams from the new
	// slot: the changes in the SlotLoss window will never be delivered, so
	// whoever holds state derived from them must resynchronise (walcast serve
	// ends every client session without recovery).
	OnSlotLost func(SlotLoss)

	// SlotExpected, when set, is asked (from Run's goroutine, bounded by
	// its context) when the slot does not exist and this Reader has not
	// streamed from it: true means an earlier process did (walcast serve
	// asks whether its predecessor left sessions behind), so the slot was
	// lost, not never made, e.g. by a promotion on Postgres 15/16 while
	// walcast was stopped. The Reader then takes the lost-slot path
	// (OnSlotLost, with SlotLoss.From 0: unknown). Nil means a missing slot
	// is lost only when this Reader streamed from it.
	SlotExpected func(context.Context) bool

	// Logger receives lifecycle logs; nil means slog.Default().
	Logger *slog.Logger
}

var (
	slotNameRE = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)
	pubNameRE  = regexp.MustCompile(`^[A-Za-z0-9_]{1,63}$`)
)

// withDefaults returns cfg with zero fields filled in, or every problem found.
func (cfg ReaderConfig) withDefaults() (ReaderConfig, error) {
	if cfg.Slot == "" {
		cfg.Slot = DefaultSlot
	}
	if cfg.Publication == "" {
		cfg.Publication = DefaultPublication
	}
	if cfg.StatusInterval == 0 {
		cfg.StatusInterval = DefaultStatusInterval
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = 3 * cfg.StatusInterval
	}
	if cfg.BackoffMin == 0 {
		cfg.BackoffMin = DefaultBackoffMin
	}
	if cfg.BackoffMax == 0 {
		cfg.BackoffMax = DefaultBackoffMax
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	var errs []error
	if cfg.DSN == "" {
		errs = append(errs, errors.New("cdc: ReaderConfig.DSN is required"))
	}
	if !slotNameRE.MatchString(cfg.Slot) {
		errs = append(errs, fmt.Errorf("cdc: ReaderConfig.Slot %q: want 1-63 of [a-z0-9_]", cfg.Slot))
	}
	if !pubNameRE.MatchString(cfg.Publication) {
		errs = append(errs, fmt.Errorf("cdc: ReaderConfig.Publication %q: want 1-63 of [A-Za-z0-9_]", cfg.Publication))
	}
	if cfg.StatusInterval < 0 {
		errs = append(errs, fmt.Errorf("cdc: ReaderConfig.StatusInterval %v is negative", cfg.StatusInterval))
	}
	if cfg.ReadTimeout < 0 {
		errs = append(errs, fmt.Errorf("cdc: ReaderConfig.ReadTimeout %v is negative", cfg.ReadTimeout))
	}
	if cfg.BackoffMin < 0 || cfg.BackoffMax < cfg.BackoffMin {
		errs = append(errs, fmt.Errorf("cdc: ReaderConfig backoff min %v max %v: want 0 <= min <= max", cfg.BackoffMin, cfg.BackoffMax))
	}
	return cfg, errors.Join(errs...)
}
