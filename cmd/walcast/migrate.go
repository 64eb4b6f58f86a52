package main

import (
	"context"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"
	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/internal/logkey"
	"github.com/walcast/walcast/internal/redact"
	"github.com/walcast/walcast/rules"
	wsql "github.com/walcast/walcast/sql"
)

// runMigrate applies walcast's SQL (schema walcast with emit/notify/heartbeat),
// puts the mapped tables in the publication with REPLICA IDENTITY FULL where
// the mapper needs old values, and creates the slot. It is idempotent. -demo
// also installs the demo shop schema and its seed rows.
func runMigrate(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := newFlagSet("migrate", stderr)
	demo := fs.Bool("demo", false, "also install the demo shop schema (profiles, products, variants, inventory, orders) and seed rows")
	noSlot := fs.Bool("no-slot", false, "do not create the replication slot (walcast serve creates it on first start)")
	c, err := parseConfig(fs, optDB|optLog, args, getenv)
	if err != nil {
		return err
	}
	log := newLogger(c, stderr)
	conn, err := pgx.Connect(ctx, c.DatabaseURL.Reveal())
	if err != nil {
		return fmt.Errorf("connect to the database: %s", redact.Error(err, c.DatabaseURL.Reveal()))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	opts, err := migrateOptions(c)
	if err != nil {
		return err
	}
	opts.Demo = *demo
	if *noSlot {
		opts.Slot = ""
	}
	if err := wsql.Migrate(ctx, conn, opts); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	log.Info("migrated", "publication", c.Publication, logkey.Slot, opts.Slot, "tables", opts.Tables, "demo", opts.Demo)
	return nil
}

// migrateOptions are the sql.Migrate options for the configured mapping: its
// tables go into the publication, orders and inventory get REPLICA IDENTITY FULL.
func migrateOptions(c config) (wsql.Options, error) {
	if c.Rules != "" {
		r, err := rules.Load(c.Rules)
		if err != nil {
			return wsql.Options{}, err
		}
		return wsql.Options{Publication: c.Publication, Tables: r.PublishedTables(), FullIdentity: r.FullIdentityTables(), Slot: c.Slot}, nil
	}
	mp, err := cdc.LoadMapping(c.Mapping)
	if err != nil {
		return wsql.Options{}, err
	}
	return wsql.Options{
		Publication:  c.Publication,
		Tables:       mp.Tables(),
		FullIdentity: mp.FullIdentityTables(),
		Slot:         c.Slot,
	}, nil
}
