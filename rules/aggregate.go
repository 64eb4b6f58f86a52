package rules

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/internal/micros"
)

// orderTotals is the built-in "order_totals" aggregate: revenue, count and
// average of the orders whose status is not excluded. Amounts are fixed-point
// micro-units (6 decimals), exact for numeric(…, ≤6).
//
// It starts from one SQL statement at Load that also records the WAL insert
// position L after its snapshot; only changes of transactions committing at
// or after L are applied, and a (LSN, index) watermark stops a redelivered
// transaction from counting twice. Updates and deletes need the old row
// (REPLICA IDENTITY FULL); without it they are not applied and counted in
// EngineStats.MissingOldImage.
type orderTotals struct {
	event   string
	spec    AggregateSpec
	table   string // "schema.table"
	exclude map[string]bool

	revenue, count int64
	version, sent  uint64
	changed        time.Time
	wmLSN          cdc.LSN
	wmIdx          int64 // -1: nothing of wmLSN applied yet
}

func (s *orderTotals) admit(lsn cdc.LSN, idx uint32) bool {
	if lsn < s.wmLSN || lsn == s.wmLSN && int64(idx) <= s.wmIdx {
		return false
	}
	s.wmLSN, s.wmIdx = lsn, int64(idx)
	return true
}

func (s *orderTotals) add(total, sign int64, at time.Time) {
	s.revenue += sign * total
	s.count += sign
	s.version++
	s.changed = at
}

// amount returns a row's total in micro-units if it counts.
func (s *orderTotals) amount(t cdc.Tuple, status, total int) (int64, bool) {
	if status < 0 || status >= len(t) || t[status].Kind != cdc.ValueText || s.exclude[string(t[status].Data)] {
		return 0, false
	}
	if total < 0 || total >= len(t) {
		return 0, false
	}
	switch v := t[total]; v.Kind {
	case cdc.ValueNull:
		return 0, true
	case cdc.ValueText:
		return micros.Parse(v.Data)
	}
	return 0, false
}

// applyLocked moves the aggregate by one change of its table; it reports
// whether an old row was needed and missing.
func (s *orderTotals) applyLocked(c *cdc.Change, status, total int) (missingOld bool) {
	if !s.admit(c.CommitLSN, c.Index) {
		return false
	}
	var oldT, newT cdc.Tuple
	switch c.Op {
	case cdc.OpInsert:
		newT = c.New
	case cdc.OpUpdate, cdc.OpDelete:
		if oldT = fullOld(c); oldT == nil {
			return true
		}
		if c.Op == cdc.OpUpdate {
			newT = c.New
		}
	case cdc.OpTruncate:
		s.revenue, s.count = 0, 0
		s.version++
		s.changed = c.CommitTime
		return false
	}
	if oldT != nil {
		if a, ok := s.amount(oldT, status, total); ok {
			s.add(a, -1, c.CommitTime)
		}
	}
	if newT != nil {
		if a, ok := s.amount(newT, status, total); ok {
			s.add(a, 1, c.CommitTime)
		}
	}
	return false
}

func (s *orderTotals) appendJSON(dst []byte) []byte {
	dst = append(dst, `{"totalRevenue":`...)
	dst = micros.AppendJSON(dst, s.revenue)
	dst = append(dst, `,"totalOrders":`...)
	dst = strconv.AppendInt(dst, s.count, 10)
	dst = append(dst, `,"averageOrderValue":`...)
	var avg int64
	if s.count > 0 {
		avg = s.revenue / s.count
		if r := s.revenue % s.count; r*2 >= s.count {
			avg++
		} else if r*2 <= -s.count {
			avg--
		}
	}
	dst = micros.AppendJSON(dst, avg)
	return append(dst, '}')
}

func (s *orderTotals) payload(ms int64) json.RawMessage {
	dst := append([]byte(nil), `{"metrics":`...)
	dst = s.appendJSON(dst)
	dst = append(dst, `,"timestamp":`...)
	dst = strconv.AppendInt(dst, ms, 10)
	return append(dst, '}')
}

// load runs the one SQL aggregate and reads the WAL insert position after
// its snapshot (pg_current_wal_insert_lsn() in the final projection).
func (s *orderTotals) load(ctx context.Context, q cdc.Querier) error {
	schema, name, _ := splitTable(s.spec.Table)
	excl := s.spec.ExcludeStatuses
	if excl == nil {
		excl = []string{}
	}
	query := fmt.Sprintf(`SELECT count(*), coalesce(sum(%s), 0)::text, pg_current_wal_insert_lsn()::text
		FROM %s WHERE %s::text <> ALL($1::text[])`,
		pgx.Identifier{s.spec.Total}.Sanitize(), pgx.Identifier{schema, name}.Sanitize(), pgx.Identifier{s.spec.Status}.Sanitize())
	var count int64
	var sum, lsn string
	if err := q.QueryRow(ctx, query, excl).Scan(&count, &sum, &lsn); err != nil {
		return fmt.Errorf("rules: load aggregate %s from %s.%s: %w", s.event, schema, name, err)
	}
	rev, ok := micros.Parse([]byte(sum))
	if !ok {
		return fmt.Errorf("rules: load aggregate %s: sum %q is not a decimal", s.event, sum)
	}
	var hi, lo uint32
	if _, err := fmt.Sscanf(lsn, "%X/%X", &hi, &lo); err != nil {
		return fmt.Errorf("rules: load aggregate %s: parse lsn %q: %w", s.event, lsn, err)
	}
	l := cdc.LSN(uint64(hi)<<32 | uint64(lo))
	// Keep the watermark of changes already applied in this process.
	if l < s.wmLSN {
		l = s.wmLSN
	} else {
		s.wmIdx = -1
	}
	s.revenue, s.count, s.wmLSN = rev, count, l
	s.sent = 0
	s.version++
	s.changed = time.Now()
	return nil
}

// MetricsEvent returns the aggregate's event (its room, zero EventID) if it
// changed since the last call; false otherwise or without an aggregate.
// Its timestamp is the commit time of the last change that moved it.
func (en *Engine) MetricsEvent(now time.Time) (cdc.Event, bool) {
	en.mu.Lock()
	defer en.mu.Unlock()
	s := en.agg
	if s == nil || s.version == s.sent {
		return cdc.Event{}, false
	}
	s.sent = s.version
	at := s.changed
	if at.IsZero() {
		at = now
	}
	return cdc.Event{Room: s.spec.Room, Name: s.event, Payload: s.payload(at.UnixMilli()), CommitTime: at}, true
}

// CurrentMetrics returns the aggregate's current payload for a new
// subscriber; nil before Load and before any change.
func (en *Engine) CurrentMetrics() json.RawMessage {
	en.mu.Lock()
	defer en.mu.Unlock()
	if en.agg == nil || en.agg.changed.IsZero() {
		return nil
	}
	return en.agg.payload(en.agg.changed.UnixMilli())
}
