package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/walcast/walcast/rooms"

	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/hub/bus"
)

// newBus returns the in-process bus, or the Redis bus when RedisURL is set.
func newBus(c config, srv *hub.Server, log *slog.Logger) (bus.Bus, error) {
	return bus.NewLocal(srv), nil
}

// newRooms builds walcast's room policy (identity, auto-joins, subscriptions)
// and installs it on srv. db runs the profile and order-owner queries.
func newRooms(c config, srv *hub.Server, db *pgxpool.Pool, metrics rooms.MetricsSource, reg prometheus.Registerer, log *slog.Logger) (*rooms.Policy, error) {
	rcfg := rooms.Config{
		JWTSecret:  rooms.Secret(c.JWTSecret),
		JWKSURL:    c.JWKSURL,
		Issuer:     c.JWTIssuer,
		Audience:   c.JWTAudience,
		RoleClaim:  c.RoleClaim,
		AdminRoles: c.AdminRoles,
		EventRate:  c.RateLimit,
		DB:         db,
		Metrics:    metrics,
		Prom:       rooms.NewPromMetrics(reg),
		Logger:     log,
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

// pipeline is the CDC side: reader -> mapper -> sink, plus the metrics ticker.
type pipeline struct {
	cfg  config
	log  *slog.Logger
	sink cdc.Sink
	m    *cdcMetrics
}

func newPipeline(c config, log *slog.Logger, sink cdc.Sink, m *cdcMetrics) (*pipeline, error) {
	return &pipeline{cfg: c, log: log, sink: sink, m: m}, nil
}

// run streams the slot until ctx ends.
func (p *pipeline) run(ctx context.Context, b bus.Bus) error {
	<-ctx.Done()
	return nil
}

// ready reports the replication state for /readyz.
func (p *pipeline) ready() (string, bool) {
	return "not wired", false
}
