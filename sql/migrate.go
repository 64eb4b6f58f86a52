package sql

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

//go:embed *.sql
var files embed.FS

// FS holds the embedded .sql files.
var FS fs.FS = files

// The embedded files by role.
const (
	FileWalcast    = "001_walcast.sql"
	FileDemoSchema = "010_demo_schema.sql"
	FileDemoSeed   = "020_demo_seed.sql"
)

// Defaults for Options.
const (
	DefaultPublication = "walcast"
)

// DefaultTables are the tables the default mapping reads: the demo schema's.
var DefaultTables = []string{"public.orders", "public.inventory", "public.variants", "public.products"}

// DefaultOptionalTables are published when they exist: role changes in
// profiles are applied to connected sockets from the replication stream.
var DefaultOptionalTables = []string{"public.profiles"}

// DefaultFullIdentityTables get REPLICA IDENTITY FULL by default.
var DefaultFullIdentityTables = []string{"public.orders", "public.inventory"}

// Options say what Migrate does. The zero value installs the walcast schema and
// a publication "walcast" on DefaultTables, which must already exist.
type Options struct {
	// Publication is the publication name; empty means DefaultPublication.
	Publication string
	// Tables are put in the publication, as "schema.table" or "table"
	// (schema public). Nil means DefaultTables. Tables already in the
	// publication are left alone; none is removed.
	Tables []string
	// FullIdentity tables get REPLICA IDENTITY FULL (needed for status
	// changes, low-stock crossings, metrics and unchanged TOAST values).
	// Nil means DefaultFullIdentityTables when Demo is set and none otherwise;
	// an empty non-nil slice means none.
	FullIdentity []string
	// Demo also installs the demo schema (010) and, unless NoSeed, its seed
	// data (020).
	Demo bool
	// NoSeed skips the demo seed data.
	NoSeed bool
	// OptionalTables are put in the publication too, each only if it
	// exists: tables walcast reads when the schema has them, such as the
	// profiles whose role changes walcast applies to connected sockets
	// (DefaultOptionalTables when nil; an empty non-nil slice means none).
	OptionalTables []string
	// Slot, when not empty, names a durable logical replication slot with the
	// pgoutput plugin that Migrate creates if it does not exist. It is created
	// after the migration transaction commits (Postgres forbids creating a
	// logical slot in a transaction that has written).
	Slot string
}

// DB is what Migrate needs from a connection: *pgx.Conn and *pgxpool.Pool
// both satisfy it.
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Files returns the names of the files Migrate runs for opts, in order.
func Files(opts Options) []string {
	names := []string{FileWalcast}
	if opts.Demo {
		names = append(names, FileDemoSchema)
		if !opts.NoSeed {
			names = append(names, FileDemoSeed)
		}
	}
	return names
}

// File returns the text of the embedded file name.
func File(name string) (string, error) {
	b, err := files.ReadFile(name)
	if err != nil {
		return "", fmt.Errorf("sql: read %s: %w", name, err)
	}
	return string(b), nil
}

// AllFiles returns the names of every embedded file in apply order.
func AllFiles() []string {
	ents, _ := files.ReadDir(".")
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// migrateLockKey is the advisory lock key that serialises Migrate calls.
const migrateLockKey = 0x77616c63 // "walc"

// Migrate applies the files for opts in one transaction, then makes sure the
// publication holds opts.Tables, sets replica identity, and creates the slot.
func Migrate(ctx context.Context, db DB, opts Options) (err error) {
	pub := opts.Publication
	if pub == "" {
		pub = DefaultPublication
	}
	tables := opts.Tables
	if tables == nil {
		tables = DefaultTables
	}
	full := opts.FullIdentity
	if full == nil && opts.Demo {
		full = DefaultFullIdentityTables
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("sql: migrate: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(migrateLockKey)); err != nil {
		return fmt.Errorf("sql: migrate: advisory lock: %w", err)
	}
	for _, name := range Files(opts) {
		text, err := File(name)
		if err != nil {
			return err
		}
		// No arguments: pgx sends it with the simple protocol, which allows
		// several statements.
		if _, err := tx.Exec(ctx, text); err != nil {
			return fmt.Errorf("sql: migrate: apply %s: %w", name, err)
		}
	}
	for _, t := range full {
		id, err := ParseTable(t)
		if err != nil {
			return err
		}
		// Skip tables already FULL: ALTER TABLE takes an ACCESS EXCLUSIVE lock.
		var ident string
		err = tx.QueryRow(ctx, "SELECT relreplident::text FROM pg_class WHERE oid = to_regclass($1)", id.Sanitize()).Scan(&ident)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("sql: migrate: replica identity full on %s: table not found", t)
		}
		if err != nil {
			return fmt.Errorf("sql: migrate: replica identity of %s: %w", t, err)
		}
		if ident == "f" {
			continue
		}
		if _, err := tx.Exec(ctx, "ALTER TABLE "+id.Sanitize()+" REPLICA IDENTITY FULL"); err != nil {
			return fmt.Errorf("sql: migrate: replica identity full on %s: %w", t, err)
		}
	}
	optional := opts.OptionalTables
	if optional == nil {
		optional = DefaultOptionalTables
	}
	for _, t := range optional {
		id, err := ParseTable(t)
		if err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", id.Sanitize()).Scan(&exists); err != nil {
			return fmt.Errorf("sql: migrate: look up %s: %w", t, err)
		}
		if exists && !containsTable(tables, t) {
			tables = append(tables[:len(tables):len(tables)], t)
		}
	}
	if err := ensurePublication(ctx, tx, pub, tables); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("sql: migrate: commit: %w", err)
	}
	if opts.Slot != "" {
		if err := EnsureSlot(ctx, db, opts.Slot); err != nil {
			return err
		}
	}
	return nil
}

// containsTable reports whether tables names t ("table" is "public.table").
func containsTable(tables []string, t string) bool {
	want, err := ParseTable(t)
	if err != nil {
		return false
	}
	for _, x := range tables {
		if id, err := ParseTable(x); err == nil && id[0] == want[0] && id[1] == want[1] {
			return true
		}
	}
	return false
}

// ParseTable splits "schema.table" (or "table", schema public) into a pgx
// identifier. Names are taken literally (no case folding, no quotes).
func ParseTable(s string) (pgx.Identifier, error) {
	s = strings.TrimSpace(s)
	schema, name, ok := strings.Cut(s, ".")
	if !ok {
		schema, name = "public", s
	}
	if schema == "" || name == "" || strings.Contains(name, ".") {
		return nil, fmt.Errorf("sql: bad table name %q: want table or schema.table", s)
	}
	return pgx.Identifier{schema, name}, nil
}

func ensurePublication(ctx context.Context, tx pgx.Tx, pub string, tables []string) error {
	ids := make([]pgx.Identifier, 0, len(tables))
	for _, t := range tables {
		id, err := ParseTable(t)
		if err != nil {
			return err
		}
		ids = append(ids, id)
	}
	var exists, allTables bool
	err := tx.QueryRow(ctx, "SELECT true, puballtables FROM pg_publication WHERE pubname = $1", pub).Scan(&exists, &allTables)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("sql: migrate: look up publication %q: %w", pub, err)
	}
	pubID := pgx.Identifier{pub}.Sanitize()
	if !exists {
		list := make([]string, len(ids))
		for i, id := range ids {
			list[i] = id.Sanitize()
		}
		q := "CREATE PUBLICATION " + pubID
		if len(list) > 0 {
			q += " FOR TABLE " + strings.Join(list, ", ")
		}
		if _, err := tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("sql: migrate: create publication %q: %w", pub, err)
		}
		return nil
	}
	if allTables {
		return nil
	}
	for i, id := range ids {
		var in bool
		err := tx.QueryRow(ctx,
			"SELECT EXISTS (SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3)",
			pub, id[0], id[1]).Scan(&in)
		if err != nil {
			return fmt.Errorf("sql: migrate: check publication %q for %s: %w", pub, tables[i], err)
		}
		if in {
			continue
		}
		if _, err := tx.Exec(ctx, "ALTER PUBLICATION "+pubID+" ADD TABLE "+id.Sanitize()); err != nil {
			return fmt.Errorf("sql: migrate: add %s to publication %q: %w", tables[i], pub, err)
		}
	}
	return nil
}

// EnsureSlot creates the durable logical replication slot name with plugin
// pgoutput unless a slot of that name exists. On Postgres 17+ the slot is
// created with failover on, so standbys with sync_replication_slots keep a
// copy that survives a promotion (an existing slot is switched over by
// `walcast serve`, whose replication connection can alter it). It must not run
// inside a transaction that has written.
func EnsureSlot(ctx context.Context, db DB, name string) error {
	tx, err := db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("sql: ensure slot %q: begin: %w", name, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("sql: ensure slot %q: %w", name, err)
	}
	if exists {
		return nil
	}
	var num int
	if err := tx.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&num); err != nil {
		return fmt.Errorf("sql: ensure slot %q: server version: %w", name, err)
	}
	create := "SELECT pg_create_logical_replication_slot($1, 'pgoutput')"
	if num >= 170000 {
		create = "SELECT pg_create_logical_replication_slot($1, 'pgoutput', false, false, true)" // temporary, two-phase, failover
	}
	if _, err := tx.Exec(ctx, create, name); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42710" { // duplicate_object: created concurrently
			return nil
		}
		return fmt.Errorf("sql: create replication slot %q: %w", name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("sql: ensure slot %q: commit: %w", name, err)
	}
	return nil
}
