package cdc

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walcast/walcast/internal/logkey"
)

// heartbeat commits a heartbeat every HeartbeatInterval until ctx ends. Its
// transaction flows through the slot like any other, so an idle database's
// slot advances and the whole path is exercised. Failures are logged and
// retried on the next tick; they never stop the stream.
func (r *Reader) heartbeat(ctx context.Context) {
	if r.cfg.HeartbeatInterval < 0 {
		return
	}
	var conn *pgconn.PgConn
	defer func() {
		if conn != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			conn.Close(cctx)
			cancel()
		}
	}()
	query := ""
	failing := false
	t := time.NewTicker(r.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := func() error {
			qctx, cancel := context.WithTimeout(ctx, r.cfg.HeartbeatInterval)
			defer cancel()
			if conn == nil || conn.IsClosed() {
				c, err := pgconn.Connect(qctx, r.cfg.DSN)
				if err != nil {
					return fmt.Errorf("connect: %w", err)
				}
				conn = c
				query = ""
			}
			if query == "" {
				res, err := conn.Exec(qctx, "SELECT to_regprocedure('walcast.heartbeat()') IS NOT NULL").ReadAll()
				if err != nil {
					return fmt.Errorf("look up walcast.heartbeat(): %w", err)
				}
				query = "SELECT pg_logical_emit_message(true, '" + DefaultHeartbeatPrefix + "', '')"
				if len(res) > 0 && len(res[0].Rows) > 0 && string(res[0].Rows[0][0]) == "t" {
					query = "SELECT walcast.heartbeat()"
				}
			}
			if _, err := conn.Exec(qctx, query).ReadAll(); err != nil {
				q := query
				query = "" // the function may have been created or dropped since
				return fmt.Errorf("%s: %w", q, err)
			}
			return nil
		}()
		if err != nil && ctx.Err() == nil {
			if !failing {
				r.log.Warn("heartbeat failed", logkey.Err, err)
			}
			failing = true
			continue
		}
		if failing && err == nil {
			r.log.Info("heartbeat recovered")
		}
		failing = false
	}
}
