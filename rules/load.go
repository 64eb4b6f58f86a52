package rules

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/internal/logkey"
)

// Load checks the rules against the catalog (CheckCatalog), fills the
// lookup caches from the database, starts the aggregate and learns the
// domain types (a domain column is encoded like its base type), and reads
// the key walcast.emit messages are verified with (cdc.LoadEmitKey). q is an ordinary
// (not replication) connection or pool. It may run again after a reconnect.
func (en *Engine) Load(ctx context.Context, q cdc.Querier) error {
	if err := en.r.CheckCatalog(ctx, q); err != nil {
		return err
	}
	domains := map[uint32]uint32{}
	rows, err := q.Query(ctx, `SELECT oid::int8, typbasetype::int8 FROM pg_catalog.pg_type WHERE typtype = 'd'`)
	if err != nil {
		return fmt.Errorf("rules: load domain types: %w", err)
	}
	for rows.Next() {
		var oid, base int64
		if err := rows.Scan(&oid, &base); err != nil {
			rows.Close()
			return fmt.Errorf("rules: load domain types: %w", err)
		}
		domains[uint32(oid)] = uint32(base)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("rules: load domain types: %w", err)
	}
	loaded := map[string]map[string][]value{}
	for name, lc := range en.byName {
		schema, table, _ := splitTable(lc.spec.Table)
		oids := make([]uint32, len(lc.spec.Columns))
		sel := []string{pgx.Identifier{lc.spec.Key}.Sanitize() + "::text"}
		for i, c := range lc.spec.Columns {
			var oid int64
			err := q.QueryRow(ctx, `SELECT coalesce(nullif(t.typbasetype, 0), t.oid)::int8
				FROM pg_catalog.pg_attribute a
				JOIN pg_catalog.pg_class cl ON cl.oid = a.attrelid
				JOIN pg_catalog.pg_namespace n ON n.oid = cl.relnamespace
				JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
				WHERE n.nspname = $1 AND cl.relname = $2 AND a.attname = $3 AND a.attnum > 0 AND NOT a.attisdropped`,
				schema, table, c).Scan(&oid)
			if err != nil {
				return fmt.Errorf("rules: lookup %s: column %s.%s.%s: %w", name, schema, table, c, err)
			}
			oids[i] = uint32(oid)
			sel = append(sel, pgx.Identifier{c}.Sanitize()+"::text")
		}
		rs, err := q.Query(ctx, fmt.Sprintf("SELECT %s FROM %s", strings.Join(sel, ", "), pgx.Identifier{schema, table}.Sanitize()))
		if err != nil {
			return fmt.Errorf("rules: load lookup %s from %s.%s: %w", name, schema, table, err)
		}
		m := map[string][]value{}
		for rs.Next() {
			vals := make([]*string, len(sel))
			dst := make([]any, len(sel))
			for i := range vals {
				dst[i] = &vals[i]
			}
			if err := rs.Scan(dst...); err != nil {
				rs.Close()
				return fmt.Errorf("rules: load lookup %s: %w", name, err)
			}
			if vals[0] == nil {
				continue
			}
			row := make([]value, len(lc.spec.Columns))
			for i := range row {
				if vals[i+1] == nil {
					row[i] = value{k: kNull}
				} else {
					row[i] = value{k: kText, b: []byte(*vals[i+1]), oid: oids[i]}
				}
			}
			m[*vals[0]] = row
		}
		if err := rs.Err(); err != nil {
			return fmt.Errorf("rules: load lookup %s: %w", name, err)
		}
		loaded[name] = m
	}
	if en.r.File.Emit == nil || *en.r.File.Emit {
		// Without the key no walcast.emit message verifies, but table
		// changes still map: the error is logged, not returned.
		key, err := cdc.LoadEmitKey(ctx, q)
		if err != nil {
			en.log.Error("walcast.emit messages will be dropped until walcast is restarted with the key", logkey.Err, err)
		}
		en.verify.SetKey(key)
	}
	en.mu.Lock()
	defer en.mu.Unlock()
	if en.agg != nil {
		if err := en.agg.load(ctx, q); err != nil {
			return err
		}
	}
	en.domains = domains
	for name, m := range loaded {
		en.byName[name].rows = m
	}
	clear(en.rels) // resolve column types again with the domains
	return nil
}

// baseType follows domains to their base type (bounded against cycles).
func (en *Engine) baseType(oid uint32) uint32 {
	for range 8 {
		base, ok := en.domains[oid]
		if !ok {
			break
		}
		oid = base
	}
	return oid
}
