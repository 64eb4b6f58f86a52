package main

import (
	"context"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"
	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/internal/redact"
	"github.com/walcast/walcast/rules"
)

// runCheck connects with an ordinary connection, runs cdc.Check and prints one
// line per finding with the SQL that fixes each problem. It fails (exit 1) when
// anything is wrong.
func runCheck(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := newFlagSet("check", stderr)
	c, err := parseConfig(fs, optDB, args, getenv)
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, c.DatabaseURL.Reveal())
	if err != nil {
		return fmt.Errorf("connect to the database: %s", redact.Error(err, c.DatabaseURL.Reveal()))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var tables []cdc.CheckTable
	var rulesErr error
	if c.Rules != "" {
		r, err := rules.Load(c.Rules)
		if err != nil {
			return err
		}
		if rulesErr = r.CheckCatalog(ctx, conn); rulesErr != nil {
			fmt.Fprintln(stderr, rulesErr)
		}
		tables = rulesCheckTables(r)
	} else {
		mp, err := cdc.LoadMapping(c.Mapping)
		if err != nil {
			return err
		}
		tables = mp.CheckTables()
	}
	tables = append(tables, profilesCheck)
	rep, err := cdc.Check(ctx, conn, cdc.CheckConfig{Slot: c.Slot, Publication: c.Publication, Tables: tables})
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	// A replication connection is only worth trying once the role may replicate.
	for _, r := range rep {
		if r.Name == "replication" && r.Severity == cdc.CheckOK {
			rep = append(rep, cdc.CheckReplicationConn(ctx, c.DatabaseURL.Reveal()))
		}
	}
	fmt.Fprint(stderr, cdc.FormatCheckReport(rep))
	if rulesErr != nil && !rep.Failed() {
		fmt.Fprintln(stderr, "walcast check: the rules do not match the database (lines above)")
		return errSilent
	}
	if rep.Failed() {
		fmt.Fprintf(stderr, "walcast check: %d problem(s); run the fix lines above (or walcast migrate), then check again\n", countFail(rep))
		return errSilent
	}
	fmt.Fprintln(stderr, "walcast check: ok")
	return nil
}

func countFail(r cdc.CheckReport) int {
	n := 0
	for _, c := range r {
		if c.Severity == cdc.CheckFail {
			n++
		}
	}
	return n
}
