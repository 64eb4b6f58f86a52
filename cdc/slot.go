package cdc

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNoPublication reports that the configured publication does not exist in
// the database (run `walcast migrate`). The Reader logs it and keeps retrying.
var ErrNoPublication = errors.New("cdc: publication does not exist")

// ErrSlotLost reports a replication slot that Postgres invalidated because
// the WAL it needed was removed (max_slot_wal_keep_size). It cannot stream
// again: an operator must drop and recreate it, and the changes in between
// are lost. The Reader logs it at Error and keeps retrying.
var ErrSlotLost = errors.New("cdc: replication slot invalidated (WAL removed); drop and recreate it")

// ensureSlot checks the publication and the slot over the replication
// connection, creates the slot when it is missing (pgoutput, durable), and
// makes sure the Reader never acknowledges less than the slot already has.
// Slot and publication names were validated by NewReader, so quoting them as
// literals is safe.
func (r *Reader) ensureSlot(ctx context.Context, conn *pgconn.PgConn) error {
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
			return fmt.Errorf("slot %q: %w", r.cfg.Slot, ErrSlotLost)
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
		r.log.Warn("could not enable failover on the replication slot; it will not survive a promotion", "err", err)
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
