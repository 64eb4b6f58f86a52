package main

// Cluster wiring: the Redis client, the Redis bus and the Redis recovery
// streams, used when WALCAST_REDIS_URL / REDIS_URL is set. serve.go calls
// newCluster before hub.New (the store goes into the hub's recovery config)
// and cluster.attach after it.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/hub/bus"
	"github.com/walcast/walcast/internal/redact"
)

// standbyBackoffMax caps the CDC reader's retry delay in cluster mode: a
// standby retries the slot at least this often, so it takes over within about
// this long (plus jitter) after the leader's walsender exits. The reader's
// default (5s, ±25%) alone would miss the 5-second takeover target.
const standbyBackoffMax = time.Second

// cluster holds the Redis parts of a multi-node walcast; nil when RedisURL is
// empty.
type cluster struct {
	client *redis.Client
	store  *bus.RedisStore
	bus    *bus.Redis
	m      *bus.Metrics
	log    *slog.Logger
	nsps   []string // namespaces the bus carries

	// leaderMetrics is the newest admin:metrics-updated payload the leader
	// published; a standby's own mapper sees no changes, so this is what a
	// new admin:metrics subscriber on a standby gets.
	metricsMu     sync.Mutex
	leaderMetrics json.RawMessage

	// floor is the bus's RedisConfig.Floor; nil without recovery.
	floor func() string

	// access receives the role and owner changes the leader read from the
	// stream (see serve_access.go); set before the bus runs.
	access accessPolicy
	// adminRemote is the admin UI's handler of other nodes' admin messages
	// (adminui.Admin.Remote); nil when the UI is off. Set before the bus runs.
	adminRemote func(*hub.Broadcast)
}

// observeRemote applies the access changes the leader published and keeps
// the newest metrics payload another node published.
func (cl *cluster) observeRemote(b *hub.Broadcast) {
	if cl.adminRemote != nil {
		cl.adminRemote(b)
	}
	if applyRemote(b, cl.access, cl.log) {
		return
	}
	if b.Event != cdc.EventMetricsUpdated || len(b.Args) != 1 {
		return
	}
	p := append(json.RawMessage(nil), b.Args[0]...)
	cl.metricsMu.Lock()
	cl.leaderMetrics = p
	cl.metricsMu.Unlock()
}

// remoteMetrics returns the newest metrics payload the leader published, or
// nil when none has been seen yet.
func (cl *cluster) remoteMetrics() json.RawMessage {
	cl.metricsMu.Lock()
	defer cl.metricsMu.Unlock()
	return cl.leaderMetrics
}

// newCluster creates the Redis client and, when recovery is on, the store of
// its recovery streams (no I/O); newService puts that store behind the
// Postgres session store. It returns nil for a single node.
func newCluster(c config, hcfg *hub.Config, reg prometheus.Registerer, log *slog.Logger) (*cluster, error) {
	if c.RedisURL == "" {
		return nil, nil
	}
	opt, err := redis.ParseURL(c.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("redis url %s: %w", redact.URL(c.RedisURL), err)
	}
	// Fail fast and let the bus retry: a dead Redis must not hold a publish
	// for the client's default 3 retries x 5 s dial timeout.
	opt.DialTimeout = 2 * time.Second
	opt.MaxRetries = 1
	// go-redis prints every failed dial to stderr; the bus already logs
	// Redis outages once (rate-limited), so route these to Debug.
	redis.SetLogger(redisLogger{log.With("component", "redis")})
	cl := &cluster{client: redis.NewClient(opt), m: bus.NewMetrics(reg), log: log, nsps: []string{"/"}}
	if c.AdminNamespace {
		cl.nsps = append(cl.nsps, "/admin")
	}
	if c.adminUIOn() {
		cl.nsps = append(cl.nsps, c.adminUINamespace())
	}
	if hcfg.Recovery != nil {
		// Sessions are kept in Postgres (see newService) and the streams are
		// refilled from the replication slot when Redis loses them.
		cl.store, err = bus.NewRedisStore(bus.RedisStoreConfig{
			Client:            cl.client,
			MaxAge:            hcfg.Recovery.MaxDisconnection,
			Refill:            true,
			SessionsElsewhere: true,
			Logger:            log,
		})
		if err != nil {
			return nil, err
		}
	}
	return cl, nil
}

// redisLogger adapts go-redis's internal logging to slog at Debug.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	if l.log.Enabled(ctx, slog.LevelDebug) {
		l.log.Debug(fmt.Sprintf(format, v...))
	}
}

// attach creates the Redis bus delivering to srv.
func (cl *cluster) attach(srv *hub.Server) (*bus.Redis, error) {
	b, err := bus.NewRedis(bus.RedisConfig{
		Client:     cl.client,
		Server:     srv,
		Store:      cl.store,
		Namespaces: cl.nsps,
		Metrics:    cl.m,
		OnRemote:   cl.observeRemote,
		Floor:      cl.floor,
		Logger:     cl.log,
	})
	if err != nil {
		return nil, err
	}
	cl.bus = b
	return b, nil
}

// close releases the Redis connections.
func (cl *cluster) close() {
	if cl != nil {
		cl.client.Close()
	}
}

// roleGauge exports walcast_role{role="leader"|"standby"}: 1 for the role this
// node has now. state returns the CDC reader's state (streaming = leader).
func newRoleGauge(reg prometheus.Registerer, state func() cdc.ReaderState) {
	for _, role := range []string{"leader", "standby"} {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "walcast_role",
			Help:        "1 for this node's current replication role: leader (streams the slot) or standby.",
			ConstLabels: prometheus.Labels{"role": role},
		}, func() float64 {
			if (state() == cdc.StateStreaming) == (role == "leader") {
				return 1
			}
			return 0
		}))
	}
}

// readerBackoffMax is the CDC reader's BackoffMax: standbyBackoffMax in
// cluster mode, else the reader's default (0).
func readerBackoffMax(c config) time.Duration {
	if c.RedisURL != "" {
		return standbyBackoffMax
	}
	return 0
}
