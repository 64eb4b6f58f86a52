package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/walcast/walcast/internal/backoff"
	"github.com/walcast/walcast/rooms"

	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/internal/logkey"
	"github.com/walcast/walcast/rules"
)

// newRooms builds walcast's room policy (identity, auto-joins, subscriptions)
// and installs it on srv. db runs the profile and order-owner queries.
// It lets a session be recovered by its own user only (the hub's recovery
// check); cart:synced reaches the user's devices on every node through the
// hub's adapter.
func newRooms(c config, srv *hub.Server, db *pgxpool.Pool, metrics interface {
	rooms.MetricsSource
	rooms.StateSource
}, reg prometheus.Registerer, log *slog.Logger) (*rooms.Policy, error) {
	r, err := rules.Load(c.Rules) // "" = the built-in file
	if err != nil {
		return nil, err
	}
	rcfg := rooms.Config{
		Kinds:              roomKinds(r),
		JWTSecret:          rooms.Secret(c.JWTSecret),
		JWKSURL:            c.JWKSURL,
		Issuer:             c.JWTIssuer,
		Audience:           c.JWTAudience,
		RoleClaim:          c.RoleClaim,
		AdminRoles:         c.AdminRoles,
		EventRate:          c.RateLimit,
		MaxConnsPerUser:    c.MaxConnsPerUser,
		MaxTokenLifetime:   c.MaxTokenLifetime,
		RLSRecheckInterval: c.RLSRecheck,
		AdminNamespace:     c.AdminNamespace,
		DB:                 db,
		Metrics:            metrics,
		State:              metrics,
		Prom:               rooms.NewPromMetrics(reg),
		Logger:             log,
	}
	p, err := rooms.New(rcfg)
	if err != nil {
		return nil, fmt.Errorf("rooms: %w", err)
	}
	if err := p.Install(srv); err != nil {
		return nil, fmt.Errorf("rooms: %w", err)
	}
	return p, nil
}

// roomKinds converts a rules file's room kinds for the rooms policy.
func roomKinds(r *rules.Rules) []rooms.Kind {
	var out []rooms.Kind
	query := func(q *rules.Query) *rooms.Query {
		if q == nil {
			return nil
		}
		return &rooms.Query{SQL: q.SQL, Params: slices.Clone(q.Params)}
	}
	for _, k := range r.RoomKinds() {
		s := k.Spec
		out = append(out, rooms.Kind{
			Name: k.Name, Subscribe: s.Subscribe, Unsubscribe: s.Unsubscribe,
			Prefix: k.Prefix, Constant: k.Constant, ID: s.ID, State: s.State,
			Anyone: s.Allow.Anyone, Admins: s.Allow.Admins, Roles: slices.Clone(s.Allow.Roles),
			Owner: query(k.Owner), SQL: query(k.SQL), RLS: query(k.RLS),
			Denied: s.Denied,
		})
	}
	return out
}

// pipeline is the CDC side: reader -> mapper -> sink, plus the metrics ticker.
type pipeline struct {
	cfg    config
	log    *slog.Logger
	sink   cdc.Sink
	mapper transformer
	stats  func() cdc.MapperStats
	checks []cdc.CheckTable // tables for the startup check
	p      *cdc.Pipeline
	db     cdc.Querier
	// remote returns the metrics payload the leader last published over the
	// bus (cluster mode); nil = single node.
	remote func() json.RawMessage
	hold   *ackHold     // nil unless the recovery buffer is in memory
	rules  *rules.Rules // the rules file (WALCAST_RULES); nil with the mapper
	// unlocked is set once the database refused FOR SHARE on the state rows
	// (the role lacks UPDATE on them): state reads then lock nothing.
	unlocked atomic.Bool
	access   *accessWatch
}

// hold (nil = none) caps the reader's acknowledgement at the oldest event the
// in-memory recovery buffer holds. onSlotLost runs after the reader recreated
// a lost slot (see cdc.SlotLoss); slotExpected (nil = none) is the reader's
// cdc.ReaderConfig.SlotExpected.
func newPipeline(c config, log *slog.Logger, db cdc.Querier, sink cdc.Sink, m *cdcMetrics, hold *ackHold, onSlotLost func(cdc.SlotLoss), slotExpected func(context.Context) bool) (*pipeline, error) {
	mapper, stats, checks, err := newTransformer(c, log)
	if err != nil {
		return nil, err
	}
	checks = append(checks, profilesCheck)
	rc := cdc.ReaderConfig{
		DSN:          c.DatabaseURL.Reveal(),
		Slot:         c.Slot,
		Publication:  c.Publication,
		BackoffMax:   readerBackoffMax(c),
		OnSlotLost:   onSlotLost,
		SlotExpected: slotExpected,
		Logger:       log,
	}
	if hold != nil {
		rc.AckLimit = hold.limit
	}
	var follow map[string][]rules.Follow
	var rf *rules.Rules
	if c.Rules != "" {
		if rf, err = rules.Load(c.Rules); err != nil {
			return nil, err
		}
		follow = rf.FollowTables()
	}
	access := newAccessWatch(mapper, follow, log)
	access.relay = c.RedisURL != ""
	p, err := cdc.NewPipeline(cdc.PipelineConfig{Reader: rc, Transformer: access, Sink: sink})
	if err != nil {
		return nil, fmt.Errorf("cdc: %w", err)
	}
	if hold != nil {
		hold.stats = p.Stats
	}
	pl := &pipeline{cfg: c, log: log, sink: sink, mapper: mapper, stats: stats, checks: checks, p: p, db: db, hold: hold, access: access, rules: rf}
	m.register(pl)
	return pl, nil
}

// run loads the mapper's lookups (retrying while the database is unreachable),
// then streams the slot and publishes the coalesced metrics event at most once
// per second, until ctx ends.
func (p *pipeline) run(ctx context.Context) error {
	p.startupCheck(ctx)
	for attempt := 0; ; attempt++ {
		err := p.mapper.Load(ctx, p.db)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, cdc.ErrMappingMismatch) || errors.Is(err, rules.ErrMismatch) {
			// A table or column the mapping names is missing: retrying cannot
			// help, so fail at start with the name (fix WALCAST_MAPPING or the schema).
			return err
		}
		if attempt == 0 || attempt%10 == 0 {
			p.log.Error("cannot load the mapping from the database; retrying", logkey.Err, err, logkey.Attempt, attempt+1)
		}
		if backoff.Sleep(ctx, backoff.Delay(500*time.Millisecond, 5*time.Second, attempt)) != nil {
			return nil
		}
	}
	if p.hold != nil && !p.hold.start(ctx, p.db, p.log) {
		return nil // ctx ended
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { p.metricsTicker(ctx) })
	if p.hold != nil {
		wg.Go(func() { p.hold.watch(ctx, p.log) })
	}
	err := p.p.Run(ctx)
	cancel()
	wg.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// startupCheck runs `walcast check` once and logs every problem with the SQL
// that fixes it, so an operator sees why replication cannot start. It never
// stops walcast: the reader keeps retrying, and the problem may be fixed live.
func (p *pipeline) startupCheck(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rep, err := cdc.Check(ctx, p.db, cdc.CheckConfig{Slot: p.cfg.Slot, Publication: p.cfg.Publication, Tables: p.checks})
	if err != nil {
		p.log.Warn("database check could not run", logkey.Err, err)
		return
	}
	for _, r := range rep.Problems() {
		if r.Code == cdc.CheckSlotMissing {
			continue // the reader creates the slot itself
		}
		if r.Code == cdc.CheckSlotLost {
			// The reader drops and recreates it, and logs the loss once at
			// Error with the window of changes that are not delivered.
			continue
		}
		lvl := slog.LevelWarn
		if r.Severity == cdc.CheckFail {
			lvl = slog.LevelError
		}
		p.log.Log(ctx, lvl, "database check: "+r.Message, "check", r.Name, "fix", r.Fix)
	}
}

func (p *pipeline) metricsTicker(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if p.p.Stats().State != cdc.StateStreaming {
				// Only the leader publishes: a standby's mapper sees no
				// changes, and with the Redis bus every node would publish.
				continue
			}
			ev, ok := p.mapper.MetricsEvent(now)
			if !ok {
				continue
			}
			if err := p.sink.Publish(ctx, []cdc.Event{ev}); err != nil && ctx.Err() == nil {
				p.log.Warn("publish metrics event", logkey.Err, err)
			}
		}
	}
}

// ready reports the replication state for /readyz: streaming, or standing by
// while another node holds the slot.
func (p *pipeline) ready() (string, bool) {
	st := p.p.Stats().State
	return st.String(), st == cdc.StateStreaming || st == cdc.StateStandingBy
}

// AdminMetrics implements rooms.MetricsSource: a new admin:metrics subscriber
// gets the current value at once.
// On a standby the local mapper follows no changes, so the value the leader
// last published over the bus is used instead.
func (p *pipeline) AdminMetrics(ctx context.Context) (json.RawMessage, error) {
	if p.remote != nil && p.p.Stats().State != cdc.StateStreaming {
		if m := p.remote(); m != nil {
			return m, nil
		}
	}
	return p.mapper.CurrentMetrics(), nil
}

// RoomStateAt implements rooms.StateSource with the mapper's current-state
// reads, or with a rules file's snapshot queries, ordered with the stream by
// a state mark (cdc.Mapper.RoomStateAt, rules.Rules.RoomStateAt).
func (p *pipeline) RoomStateAt(ctx context.Context, room, token string, ready func([]rooms.StateEvent)) (bool, error) {
	m, _ := p.mapper.(*cdc.Mapper)
	if m == nil && p.rules == nil {
		return false, nil
	}
	db, ok := p.db.(cdc.Beginner)
	if !ok {
		return false, nil
	}
	convert := func(evs []cdc.StateEvent) {
		out := make([]rooms.StateEvent, len(evs))
		for i, e := range evs {
			out[i] = rooms.StateEvent{Name: e.Name, Payload: e.Payload, User: e.User}
		}
		ready(out)
	}
	read := func(lock bool) (marked bool, err error) {
		// A pooled connection to a server that went away (a failover)
		// fails before anything was sent: try the next one.
		for attempt := 0; attempt < 3; attempt++ {
			if m != nil {
				_, marked, err = m.RoomStateAt(ctx, db, room, token, lock, convert)
			} else {
				marked, err = p.rules.RoomStateAt(ctx, db, room, token, convert)
			}
			if err == nil || !pgconn.SafeToRetry(err) || ctx.Err() != nil {
				break
			}
		}
		return marked, err
	}
	if !p.unlocked.Load() {
		marked, err := read(true)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42501" {
			return marked, err
		}
		p.unlocked.Store(true)
		p.log.Warn("state on subscribe: the database role may not lock the state rows (FOR SHARE needs UPDATE on a column); reading them unlocked, so a change committed during a read may reach that subscriber in neither the state nor the stream",
			logkey.Err, err)
	}
	return read(false)
}

// transformer is what the pipeline needs of the mapper (WALCAST_MAPPING) or
// of the rule engine (WALCAST_RULES).
type transformer interface {
	cdc.Transformer
	Load(ctx context.Context, q cdc.Querier) error
	MetricsEvent(now time.Time) (cdc.Event, bool)
	CurrentMetrics() json.RawMessage
}

// newTransformer returns the rule engine when a rules file is configured,
// else the mapper with the configured mapping, with its counters and the
// tables walcast check inspects.
func newTransformer(c config, log *slog.Logger) (transformer, func() cdc.MapperStats, []cdc.CheckTable, error) {
	if c.Rules != "" {
		r, err := rules.Load(c.Rules)
		if err != nil {
			return nil, nil, nil, err
		}
		en := rules.New(r, log)
		stats := func() cdc.MapperStats {
			st := en.Stats()
			return cdc.MapperStats{BadMessages: st.BadMessages, Unverified: st.Unverified, LookupMisses: st.LookupMisses, MissingOldImage: st.MissingOldImage}
		}
		return en, stats, rulesCheckTables(r), nil
	}
	mp, err := cdc.LoadMapping(c.Mapping)
	if err != nil {
		return nil, nil, nil, err
	}
	mapper, err := cdc.NewMapper(cdc.MapperConfig{Mapping: mp, Logger: log})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("mapper: %w", err)
	}
	return mapper, mapper.Stats, mp.CheckTables(), nil
}

// rulesCheckTables lists a rules file's tables for cdc.Check.
func rulesCheckTables(r *rules.Rules) []cdc.CheckTable {
	full := r.FullIdentityTables()
	var out []cdc.CheckTable
	for _, t := range r.PublishedTables() {
		out = append(out, cdc.CheckTable{Name: t, NeedFull: slices.Contains(full, t)})
	}
	return out
}
