package rules

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/walcast/walcast/cdc"
)

// ErrMismatch reports rules naming a table or column the database does not
// have, or a column of the wrong type. CheckCatalog wraps it with one line
// per problem; retrying will not help.
var ErrMismatch = errors.New("rules: rules do not match the database")

var (
	integerTypes = []string{"smallint", "integer", "bigint"}
	numberTypes  = []string{"smallint", "integer", "bigint", "numeric", "real", "double precision"}
)

// DefaultRLSRole is the database role rls rules run as (the rooms policy's
// default).
const DefaultRLSRole = "authenticated"

// checkQuery asks the database to plan q, with every parameter null and no
// row fetched: a missing table or column, a type error or a syntax error is
// reported with the server's message.
func checkQuery(ctx context.Context, db cdc.Querier, q *Query) error {
	args := make([]any, len(q.Params))
	rows, err := db.Query(ctx, "SELECT * FROM ("+strings.TrimRight(strings.TrimSpace(q.SQL), ";")+") walcast_check LIMIT 0", args...)
	if err == nil {
		rows.Close()
		err = rows.Err()
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s (SQLSTATE %s)", pe.Message, pe.Code)
	}
	return err
}

// CheckCatalog checks every table and column the rules read against the
// database: tables exist, columns exist, columns used as integers have an
// integer type and aggregate totals a number type (domains count as their
// base type).
func (r *Rules) CheckCatalog(ctx context.Context, q cdc.Querier) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	cols := map[string]map[string]string{}
	for _, t := range r.PublishedTables() {
		schema, name, _ := splitTable(t)
		rows, err := q.Query(ctx, `SELECT a.attname::text, coalesce(nullif(ty.typbasetype, 0), ty.oid)::regtype::text
			FROM pg_catalog.pg_attribute a
			JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
			JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
			JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid
			WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped`, schema, name)
		if err != nil {
			return fmt.Errorf("rules: read catalog for %s: %w", t, err)
		}
		have := map[string]string{}
		for rows.Next() {
			var col, typ string
			if err := rows.Scan(&col, &typ); err != nil {
				rows.Close()
				return fmt.Errorf("rules: read catalog for %s: %w", t, err)
			}
			have[col] = typ
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("rules: read catalog for %s: %w", t, err)
		}
		if len(have) == 0 {
			bad("table %s not found in the database", t)
			continue
		}
		cols[t] = have
	}
	check := func(where, table, col string, want []string) {
		have, ok := cols[table]
		if !ok {
			return // reported as a missing table
		}
		typ, ok := have[col]
		if !ok {
			bad("%s: column %q not found in table %s", where, col, table)
			return
		}
		if want != nil && !slices.Contains(want, typ) {
			bad("%s: column %s.%s has type %s; want one of %s", where, table, col, typ, strings.Join(want, ", "))
		}
	}
	for _, name := range sortedKeys(mapKeys(r.Tables)) {
		t := r.Tables[name]
		for _, col := range t.scope.slots {
			var want []string
			if t.scope.arith[col] {
				want = integerTypes
			}
			check("tables."+name, name, col, want)
		}
	}
	for _, name := range sortedKeys(mapKeys(r.File.Lookups)) {
		l := r.File.Lookups[name]
		t, _ := normTable(l.Table)
		check("lookups."+name+".key", t, l.Key, nil)
		for _, c := range l.Columns {
			check("lookups."+name+".columns", t, c, nil)
		}
	}
	for _, name := range sortedKeys(mapKeys(r.File.Aggregates)) {
		a := r.File.Aggregates[name]
		t, _ := normTable(a.Table)
		check("aggregates."+name+".status", t, a.Status, nil)
		check("aggregates."+name+".total", t, a.Total, numberTypes)
	}
	rls := false
	for _, k := range r.kinds {
		for _, table := range sortedKeys(k.Spec.Follow) {
			t, _ := normTable(table)
			check("rooms."+k.Name+".follow", t, k.Spec.Follow[table], nil)
		}
		for _, qq := range []struct {
			field string
			q     *Query
		}{{"owner", k.Owner}, {"sql", k.SQL}, {"rls", k.RLS}} {
			if qq.q == nil {
				continue
			}
			if err := checkQuery(ctx, q, qq.q); err != nil {
				bad("rooms.%s.allow.%s: %v", k.Name, qq.field, err)
			}
		}
		for i, sn := range k.Snapshot {
			if err := checkQuery(ctx, q, sn.Query); err != nil {
				bad("rooms.%s.snapshot[%d].sql: %v", k.Name, i, err)
			}
		}
		rls = rls || k.RLS != nil
	}
	if rls {
		var member *bool
		err := q.QueryRow(ctx, `SELECT pg_has_role(current_user, r.oid, 'MEMBER') FROM pg_roles r WHERE r.rolname = $1`, DefaultRLSRole).Scan(&member)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			bad("rooms: rls rules run as role %s, which does not exist (CREATE ROLE %s NOLOGIN)", DefaultRLSRole, DefaultRLSRole)
		case err != nil:
			return fmt.Errorf("rules: read role %s: %w", DefaultRLSRole, err)
		case member == nil || !*member:
			bad("rooms: rls rules run as role %s, which walcast's role may not SET ROLE to (GRANT %s TO current_user)", DefaultRLSRole, DefaultRLSRole)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w:\n%w", ErrMismatch, errors.Join(errs...))
	}
	return nil
}
