package main

import (
	"context"
	"log/slog"

	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/hub/bus"
)

// newBus returns the in-process bus, or the Redis bus when RedisURL is set.
func newBus(c config, srv *hub.Server, log *slog.Logger) (bus.Bus, error) {
	return bus.NewLocal(srv), nil
}

// installRooms installs walcast's room policy (identity, auto-joins,
// subscriptions) on srv.
func installRooms(c config, srv *hub.Server, log *slog.Logger) error {
	return nil
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
