package main

// Cluster wiring: the Redis client, the Redis bus (the hub's adapter) and the
// Redis recovery streams, used when WALCAST_REDIS_URL / REDIS_URL is set.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/hub/bus"
	"github.com/walcast/walcast/internal/adminui"
	"github.com/walcast/walcast/internal/logkey"
	"github.com/walcast/walcast/internal/redact"
	"github.com/walcast/walcast/rooms"
)

// standbyBackoffMax caps the CDC reader's retry delay in cluster mode: a
// standby retries the slot at least this often, so it takes over within about
// this long (plus jitter) after the leader's walsender exits. The reader's
// default (5s, ±25%) alone would miss the 5-second takeover target.
const standbyBackoffMax = time.Second

// cluster holds the Redis parts of a multi-node walcast; nil when RedisURL is
// empty.
type cluster struct {
	client redis.UniversalClient
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

// newCluster creates the Redis client, the bus and, when recovery is on, the
// store of its recovery streams (no I/O); newService puts that store behind
// the Postgres session store and the bus in as hcfg.Adapter. It returns nil
// for a single node.
func newCluster(c config, hcfg *hub.Config, reg prometheus.Registerer, log *slog.Logger) (*cluster, error) {
	if c.RedisURL == "" {
		return nil, nil
	}
	client, err := newRedisClient(c)
	if err != nil {
		return nil, err
	}
	// go-redis prints every failed dial to stderr; the bus already logs
	// Redis outages once (rate-limited), so route these to Debug.
	redis.SetLogger(redisLogger{log.With(logkey.Component, "redis")})
	cl := &cluster{client: client, m: bus.NewMetrics(reg), log: log, nsps: []string{"/"}}
	if c.AdminNamespace {
		cl.nsps = append(cl.nsps, "/admin")
	}
	if c.adminUIOn() {
		cl.nsps = append(cl.nsps, c.adminUINamespace())
	}
	if hcfg.Recovery != nil {
		shards := 1
		if c.RedisCluster {
			// Spread each namespace's recovery stream over the shards.
			shards = clusterStreamShards
		}
		// Sessions are kept in Postgres (see newService) and the streams are
		// refilled from the replication slot when Redis loses them.
		cl.store, err = bus.NewRedisStore(bus.RedisStoreConfig{
			Client:            cl.client,
			MaxAge:            hcfg.Recovery.MaxDisconnection,
			Shards:            shards,
			Refill:            true,
			SessionsElsewhere: true,
			Logger:            log,
		})
		if err != nil {
			return nil, err
		}
	}
	cl.bus, err = bus.NewRedis(bus.RedisConfig{
		Client:     cl.client,
		Store:      cl.store,
		Namespaces: cl.nsps,
		Sharded:    c.RedisMode == "sharded",
		// Every node reads these whatever its sockets: the leader's metrics
		// (a standby's answer to a new subscriber), access changes and the
		// state marks.
		AlwaysRooms: []string{rooms.RoomMetrics, accessRoom, cdc.MarkRoom, adminui.RequestRoom},
		Metrics:     cl.m,
		OnRemote:    cl.observeRemote,
		Floor:       func() string { return cl.floorOffset() },
		Logger:      cl.log,
	})
	if err != nil {
		return nil, err
	}
	return cl, nil
}

// clusterStreamShards is how many streams a namespace's recovery stream is
// split into on a Redis Cluster (hash-tagged keys, spread over the primaries).
const clusterStreamShards = 16

// newRedisClient returns the client for c.RedisURL: one server; with
// RedisCluster the cluster whose nodes the URL names; with a master_name
// parameter the master that the sentinels the URL names point to
// (redis://sentinel1:26379?master_name=mymaster&addr=sentinel2:26379).
func newRedisClient(c config) (redis.UniversalClient, error) {
	// Fail fast and let the bus retry: a dead Redis must not hold a publish
	// for the client's default 3 retries x 5 s dial timeout.
	if c.RedisCluster {
		opt, err := redis.ParseClusterURL(c.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("redis cluster url %s: %w", redact.URL(c.RedisURL), err)
		}
		opt.DialTimeout = 2 * time.Second
		opt.MaxRetries = 1
		return redis.NewClusterClient(opt), nil
	}
	if u, err := url.Parse(c.RedisURL); err == nil && u.Query().Has("master_name") {
		// Sentinel: the URL names the sentinels and the master.
		opt, err := redis.ParseFailoverURL(c.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("redis sentinel url %s: %w", redact.URL(c.RedisURL), err)
		}
		opt.DialTimeout = 2 * time.Second
		opt.MaxRetries = 1
		return redis.NewFailoverClient(opt), nil
	}
	opt, err := redis.ParseURL(c.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("redis url %s: %w", redact.URL(c.RedisURL), err)
	}
	opt.DialTimeout = 2 * time.Second
	opt.MaxRetries = 1
	return redis.NewClient(opt), nil
}

// redisLogger adapts go-redis's internal logging to slog at Debug.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	if l.log.Enabled(ctx, slog.LevelDebug) {
		l.log.Debug(fmt.Sprintf(format, v...))
	}
}

// floorOffset is the bus's RedisConfig.Floor: cl.floor, set by newService
// once the recovery hold exists; "" without recovery.
func (cl *cluster) floorOffset() string {
	if cl.floor == nil {
		return ""
	}
	return cl.floor()
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
