package cdc

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
)

// CheckReplicationConn opens a logical replication connection to dsn (as the
// Reader does, replication=database) and runs IDENTIFY_SYSTEM. It catches
// what the catalog cannot show: a pooler between walcast and Postgres
// (PgBouncer, Supavisor), pg_hba.conf rules, network paths. The result is
// named "replication_conn"; it never returns an error.
func CheckReplicationConn(ctx context.Context, dsn string) CheckResult {
	const name = "replication_conn"
	fix := "connect to Postgres directly (on Supabase the direct connection db.<ref>.supabase.co:5432, not the pooler) and allow the role in pg_hba.conf"
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return CheckResult{Name: name, Severity: CheckFail, Fix: fix, Message: fmt.Sprintf("cannot parse the connection string: %v", err)}
	}
	cfg.RuntimeParams["replication"] = "database"
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "walcast check"
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return CheckResult{Name: name, Severity: CheckFail, Fix: fix, Message: fmt.Sprintf("cannot open a replication connection: %v", err)}
	}
	defer conn.Close(context.WithoutCancel(ctx))
	sys, err := pglogrepl.IdentifySystem(ctx, conn)
	if err != nil {
		return CheckResult{Name: name, Severity: CheckFail, Fix: fix,
			Message: fmt.Sprintf("the server does not speak the replication protocol (a pooler?): %v", err)}
	}
	return CheckResult{Name: name, Severity: CheckOK,
		Message: fmt.Sprintf("replication connection works (system %s, timeline %d, WAL at %s)", sys.SystemID, sys.Timeline, sys.XLogPos)}
}
