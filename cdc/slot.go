package cdc

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walcast/walcast/internal/logkey"
)

// ErrNoPublication reports that the configured publication does not exist in
// the database (run `walcast migrate`). The Reader logs it and keeps retrying.
var ErrNoPublication = errors.New("cdc: publication does not exist")

// ErrSlotLost reports a replication slot that Postgres invalidated because
// the WAL it needed was removed (max_slot_wal_keep_size). It cannot stream
// again; the Reader drops and recreates it (see SlotLoss), and the changes in
// between are lost.
var ErrSlotLost = errors.New("cdc: replication slot invalidated (WAL removed); drop and recreate it")

// SlotLoss describes a lost slot the Reader recreated: the changes committed
// between From and To were never delivered and never will be.
type SlotLoss struct {
	Cause    string // "invalidated" (wal_status lost) or "missing" (gone, e.g. after a promotion on Postgres 15/16)
	From, To LSN    // From: the last position delivered (0 when unknown); To: the server's WAL position when the new slot was made
}

// ensureSlot checks the publication and the slot over the replication
// connection, creates the slot when it is missing (pgoutput, durable), and
// makes sure the Reader never acknowledges less than the slot already has.
// Slot and publication names were validated by NewReader, so quoting them as
// literals is safe.
func (r *Reader) ensureSlot(ctx context.Context, conn *pgconn.PgConn) error {
	r.noteTimeline(ctx, conn)
	res, err := conn.Exec(ctx, "SELECT 1 FROM pg_publication WHERE pubname = '"+r.cfg.Publication+"'").ReadAll()
	if err != nil {
		return fmt.Errorf("check publication %q: %w", r.cfg.Publication, err)
	}
	if len(res) == 0 || len(res[0].Rows) == 0 {
		return fmt.Errorf("%w: %q", ErrNoPublication, r.cfg.Publication)
	}

	failover := serverMajor(conn) >= 17
	failoverCol := "true"
	if failover {
		failoverCol = "failover"
	}
	res, err = conn.Exec(ctx, "SELECT plugin, database = current_database(), coalesce(confirmed_flush_lsn::text, '0/0'), coalesce(wal_status, ''), "+failoverCol+" FROM pg_replication_slots WHERE slot_name = '"+r.cfg.Slot+"'").ReadAll()
	if err != nil {
		return fmt.Errorf("check replication slot %q: %w", r.cfg.Slot, err)
	}
	if len(res) > 0 && len(res[0].Rows) > 0 {
		row := res[0].Rows[0]
		if len(row) != 5 {
			return fmt.Errorf("check replication slot %q: unexpected result", r.cfg.Slot)
		}
		if string(row[0]) != "pgoutput" {
			return fmt.Errorf("replication slot %q uses plugin %q, want pgoutput", r.cfg.Slot, row[0])
		}
		if string(row[1]) != "t" {
			return fmt.Errorf("replication slot %q belongs to another database", r.cfg.Slot)
		}
		if string(row[3]) == "lost" {
			from, _ := pglogrepl.ParseLSN(string(row[2]))
			if h := r.handled.Load(); h > uint64(from) {
				from = pglogrepl.LSN(h) // delivered but held back by AckLimit
			}
			if _, err := conn.Exec(ctx, `DROP_REPLICATION_SLOT "`+r.cfg.Slot+`"`).ReadAll(); err != nil {
				return fmt.Errorf("slot %q: %w; dropping it: %w", r.cfg.Slot, ErrSlotLost, err)
			}
			return r.recreateLost(ctx, conn, failover, "invalidated", LSN(from))
		}
		if failover && string(row[4]) != "t" {
			r.alterFailover(ctx, conn)
		}
		confirmed, err := pglogrepl.ParseLSN(string(row[2]))
		if err != nil {
			return fmt.Errorf("replication slot %q: confirmed_flush_lsn: %w", r.cfg.Slot, err)
		}
		// Postgres 15 lets a status update move confirmed_flush backwards;
		// never report less than the slot already has.
		for {
			cur := r.acked.Load()
			if uint64(confirmed) <= cur || r.acked.CompareAndSwap(cur, uint64(confirmed)) {
				break
			}
		}
		return nil
	}

	if acked := max(r.acked.Load(), r.handled.Load()); acked != 0 {
		// This Reader streamed from the slot before and it is gone (a
		// promotion on a server without failover slots, or a drop).
		return r.recreateLost(ctx, conn, failover, "missing", LSN(acked))
	}
	if r.cfg.SlotExpected != nil && r.cfg.SlotExpected(ctx) {
		// An earlier process streamed from it (e.g. the server was promoted
		// while walcast was stopped); where it stopped is unknown here.
		return r.recreateLost(ctx, conn, failover, "missing", 0)
	}
	return r.createSlot(ctx, conn, failover)
}

// noteTimeline reads the server's timeline (IDENTIFY_SYSTEM) and logs at
// Info when it changed since the last session: the server is a promoted
// standby. Whether the slot survived is decided by ensureSlot; a failure to
// read it only leaves the timeline out of the logs.
func (r *Reader) noteTimeline(ctx context.Context, conn *pgconn.PgConn) {
	sys, err := pglogrepl.IdentifySystem(ctx, conn)
	if err != nil || sys.Timeline <= 0 {
		return
	}
	tl := int64(sys.Timeline)
	prev := r.timeline.Swap(tl)
	if prev != 0 {
		r.prevTimeline.Store(prev)
	}
	if prev != 0 && prev != tl {
		r.log.Info("server timeline changed: connected to a promoted standby", "timeline", tl, "previous_timeline", prev)
	}
}

// recreateLost creates the slot anew after it was lost, says so once at
// Error with the window of changes that cannot be delivered, counts it, and
// tells OnSlotLost.
func (r *Reader) recreateLost(ctx context.Context, conn *pgconn.PgConn, failover bool, cause string, from LSN) error {
	if err := r.createSlot(ctx, conn, failover); err != nil {
		return err
	}
	var to LSN
	if res, err := conn.Exec(ctx, "SELECT pg_current_wal_lsn()::text").ReadAll(); err == nil && len(res) > 0 && len(res[0].Rows) > 0 {
		if l, err := pglogrepl.ParseLSN(string(res[0].Rows[0][0])); err == nil {
			to = LSN(l)
		}
	}
	loss := SlotLoss{Cause: cause, From: from, To: to}
	r.slotsLost.Add(1)
	attrs := []any{"cause", cause, "undelivered_from", from.String(), "undelivered_to", to.String()}
	if from == 0 {
		attrs[3] = "unknown"
	}
	if tl := r.timeline.Load(); tl != 0 {
		attrs = append(attrs, "timeline", tl)
		if prev := r.prevTimeline.Load(); prev != 0 && prev != tl {
			attrs = append(attrs, "previous_timeline", prev) // the server was promoted
		}
	}
	r.log.Error("replication slot lost and recreated: changes in this window are not delivered; clients must resynchronise", attrs...)
	// OnSlotLost runs before the new position is stored: whoever waits for
	// the Reader to reach a position (walcast serve's recovery hold) must
	// not see it before the sessions were ended.
	if r.cfg.OnSlotLost != nil {
		r.cfg.OnSlotLost(loss)
	}
	// The new slot starts at To: positions acknowledged on the old one mean nothing to it.
	r.acked.Store(uint64(to))
	r.handled.Store(uint64(to))
	return nil
}

// createSlot creates the slot (pgoutput, durable, failover on 17+).
func (r *Reader) createSlot(ctx context.Context, conn *pgconn.PgConn, failover bool) error {
	var err error
	if failover {
		// Postgres 17+: a failover slot is synchronised to standbys
		// (sync_replication_slots) and survives a promotion. The pinned
		// pglogrepl has no option for it, so the command is written out.
		_, err = conn.Exec(ctx, `CREATE_REPLICATION_SLOT "`+r.cfg.Slot+`" LOGICAL pgoutput (SNAPSHOT 'nothing', FAILOVER true)`).ReadAll()
	} else {
		_, err = pglogrepl.CreateReplicationSlot(ctx, conn, r.cfg.Slot, "pgoutput", pglogrepl.CreateReplicationSlotOptions{
			Mode:           pglogrepl.LogicalReplication,
			SnapshotAction: "NOEXPORT_SNAPSHOT",
		})
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42710" {
		return nil // another node created it first
	}
	if err != nil {
		return fmt.Errorf("create replication slot %q: %w", r.cfg.Slot, err)
	}
	r.log.Info("created replication slot", "plugin", "pgoutput", "failover", failover)
	return nil
}

// alterFailover turns on the failover flag of an existing slot (Postgres
// 17+). A failure is logged, not returned: the slot still streams, and
// `walcast check` reports the missing flag with the SQL that fixes it.
func (r *Reader) alterFailover(ctx context.Context, conn *pgconn.PgConn) {
	if _, err := conn.Exec(ctx, `ALTER_REPLICATION_SLOT "`+r.cfg.Slot+`" (FAILOVER true)`).ReadAll(); err != nil {
		r.log.Warn("could not enable failover on the replication slot; it will not survive a promotion", logkey.Err, err)
		return
	}
	r.log.Info("enabled failover on the replication slot")
}

// serverMajor returns the server's major version from the server_version
// parameter the server reports at startup, or 0 when it cannot be read.
func serverMajor(conn *pgconn.PgConn) int {
	v := conn.ParameterStatus("server_version")
	n := 0
	for _, c := range v {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}
