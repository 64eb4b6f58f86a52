package cdc

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/walcast/walcast/internal/micros"
)

// metricsState is the running order aggregate behind admin:metrics-updated.
// Amounts are fixed-point micro-units (6 decimals), exact for numeric(…, ≤6).
//
// Which orders count: every order whose status is not in
// Mapping.Metrics.ExcludeStatuses (default: cancelled, refunded). totalRevenue
// is the sum of their totals, totalOrders their number, averageOrderValue the
// quotient rounded to micro-units.
//
// The aggregate starts from one SQL statement at Load that also records the
// WAL insert position L after its snapshot. Only changes of
// transactions that commit at or after L are applied afterwards, so a backlog
// already counted by the query is not counted twice; a (change LSN, index)
// watermark likewise stops a redelivered transaction from counting twice.
// Updates and deletes need the old row (REPLICA IDENTITY FULL); without it
// they are not applied and counted in MapperStats.MissingOldImage.
type metricsState struct {
	revenue, count int64
	version, sent  uint64
	changed        time.Time // commit time of the last change that moved the aggregate

	wmLSN LSN
	wmIdx int64 // -1: nothing of wmLSN applied yet
}

// admit reports whether a change at (lsn, idx) is new to the aggregate, and
// advances the watermark if so.
func (s *metricsState) admit(lsn LSN, idx uint32) bool {
	if lsn < s.wmLSN || lsn == s.wmLSN && int64(idx) <= s.wmIdx {
		return false
	}
	s.wmLSN, s.wmIdx = lsn, int64(idx)
	return true
}

func (s *metricsState) add(total int64, sign int64, at time.Time) {
	s.revenue += sign * total
	s.count += sign
	s.version++
	s.changed = at
}

func (s *metricsState) reset(at time.Time) {
	s.revenue, s.count = 0, 0
	s.version++
	s.changed = at
}

// appendJSON appends {"totalRevenue":…,"totalOrders":…,"averageOrderValue":…}.
func (s *metricsState) appendJSON(dst []byte) []byte {
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

// loadMetrics runs the one SQL aggregate and reads the WAL insert position
// after its snapshot.
func loadMetrics(ctx context.Context, q Querier, mp *Mapping) (metricsState, error) {
	var s metricsState
	o := mp.Orders
	t, err := tableIdent(o.Table)
	if err != nil {
		return s, err
	}
	excl := mp.Metrics.ExcludeStatuses
	if excl == nil {
		excl = []string{}
	}
	// One statement: its snapshot is taken when it starts, and
	// pg_current_wal_insert_lsn() is evaluated in the final projection, after
	// the snapshot; so every transaction the aggregate sees has its commit
	// record before L.
	query := fmt.Sprintf(`SELECT count(*), coalesce(sum(%s), 0)::text, pg_current_wal_insert_lsn()::text
		FROM %s WHERE %s::text <> ALL($1::text[])`, colIdent(o.Total), t, colIdent(o.Status))
	var count int64
	var sum, lsn string
	if err := q.QueryRow(ctx, query, excl).Scan(&count, &sum, &lsn); err != nil {
		return s, fmt.Errorf("mapper: load order metrics from %s: %w", o.Table, err)
	}
	rev, ok := micros.Parse([]byte(sum))
	if !ok {
		return s, fmt.Errorf("mapper: load order metrics from %s: sum %q is not a decimal", o.Table, sum)
	}
	l, err := parseLSN(lsn)
	if err != nil {
		return s, fmt.Errorf("mapper: load order metrics: %w", err)
	}
	s.revenue, s.count = rev, count
	s.wmLSN, s.wmIdx = l, -1
	s.version = 1
	s.changed = time.Now()
	return s, nil
}

func parseLSN(s string) (LSN, error) {
	var hi, lo uint32
	if _, err := fmt.Sscanf(s, "%X/%X", &hi, &lo); err != nil {
		return 0, fmt.Errorf("parse lsn %q: %w", s, err)
	}
	return LSN(uint64(hi)<<32 | uint64(lo)), nil
}

// MetricsEvent returns an admin:metrics-updated event (room admin:metrics,
// zero EventID) if the aggregate changed since the last call, and false
// otherwise or when the event is switched off. Its timestamp is the commit
// time of the last change that moved the aggregate (the time of Load at
// first; now if neither is known). Safe to call from any goroutine; the
// binary calls it at most once per second.
func (m *Mapper) MetricsEvent(now time.Time) (Event, bool) {
	if !m.on.metrics {
		return Event{}, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.met.version == m.met.sent {
		return Event{}, false
	}
	m.met.sent = m.met.version
	at := m.met.changed
	if at.IsZero() {
		at = now
	}
	return Event{
		Room:       RoomMetrics,
		Name:       EventMetricsUpdated,
		Payload:    m.metricsPayloadLocked(nil, at.UnixMilli()),
		CommitTime: at,
	}, true
}

// CurrentMetrics returns the current admin:metrics-updated payload,
// {"metrics":{totalRevenue,totalOrders,averageOrderValue},"timestamp":ms}, with
// the commit time of the last change that moved it (or of Load), for a new
// subscriber; nil before Load and before any order change. Safe to call from
// any goroutine.
func (m *Mapper) CurrentMetrics() json.RawMessage {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.met.changed.IsZero() {
		return nil
	}
	return m.metricsPayloadLocked(nil, m.met.changed.UnixMilli())
}

func (m *Mapper) metricsPayloadLocked(dst []byte, ms int64) json.RawMessage {
	dst = append(dst, `{"metrics":`...)
	dst = m.met.appendJSON(dst)
	dst = append(dst, `,"timestamp":`...)
	dst = strconv.AppendInt(dst, ms, 10)
	return append(dst, '}')
}
