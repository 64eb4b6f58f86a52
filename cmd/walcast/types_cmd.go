package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/walcast/walcast/internal/redact"
	"github.com/walcast/walcast/rules"
)

// runTypes prints a TypeScript declaration of the catalogue (the file
// WALCAST_RULES or -rules names, else the built-in file) for
// socket.io-client's Socket<ServerToClientEvents, ClientToServerEvents>.
// With a database URL the payloads' columns get their types from the
// catalog; without one they are unknown.
func runTypes(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("types", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("rules", getenv("WALCAST_RULES"), "rules file (default: WALCAST_RULES, else the built-in rules)")
	dbURL := getenv("WALCAST_DATABASE_URL")
	if dbURL == "" {
		dbURL = getenv("DATABASE_URL")
	}
	fs.StringVar(&dbURL, "database-url", dbURL, "database whose catalog types the payload columns (default: WALCAST_DATABASE_URL, DATABASE_URL; none = unknown)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	r, err := rules.Load(*path)
	if err != nil {
		return err
	}
	var cols rules.ColumnType
	if dbURL != "" {
		types, err := columnTypes(ctx, dbURL, r.PublishedTables())
		if err != nil {
			return err
		}
		cols = func(table, col string) (string, bool) {
			ts, ok := types[table+"."+col]
			return ts, ok
		}
	}
	_, err = io.WriteString(stdout, r.TypeScript(cols))
	return err
}

// columnTypes reads the TypeScript type of every column of tables, by
// "schema.table.column".
func columnTypes(ctx context.Context, dbURL string, tables []string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, fmt.Errorf("types: connect: %s", redact.Error(err, dbURL))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, `SELECT n.nspname || '.' || c.relname || '.' || a.attname,
			coalesce(nullif(ty.typbasetype, 0), ty.oid)::regtype::text, a.attnotnull
		FROM pg_catalog.pg_attribute a
		JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid
		WHERE n.nspname || '.' || c.relname = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped`, tables)
	if err != nil {
		return nil, fmt.Errorf("types: read the catalog: %w", err)
	}
	out := map[string]string{}
	for rows.Next() {
		var name, typ string
		var notNull bool
		if err := rows.Scan(&name, &typ, &notNull); err != nil {
			return nil, fmt.Errorf("types: read the catalog: %w", err)
		}
		out[name] = rules.TSType(typ, notNull)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("types: read the catalog: %w", err)
	}
	return out, nil
}
