package adminui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/internal/logkey"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/time/rate"
)

// Defaults for zero Config fields.
const (
	DefaultNamespace      = "/walcast-admin"
	DefaultStatsInterval  = 2 * time.Second
	DefaultMaxSockets     = 1000
	DefaultQueueSize      = 4096
	DefaultMaxArgsBytes   = 16 << 10
	DefaultBroadcastRate  = 50
	DefaultGatherTimeout  = 1500 * time.Millisecond
	DefaultSessionTTL     = 24 * time.Hour
	DefaultPublishTimeout = 2 * time.Second
)

// Mode selects how much the UI is sent, as @socket.io/admin-ui's "mode".
type Mode string

const (
	// Development sends every socket, room and event (the UI's default).
	Development Mode = "development"
	// Production sends only the server stats (counts and aggregated events).
	Production Mode = "production"
)

// MsgInvalidCredentials is the CONNECT_ERROR message of a refused login; the
// UI shows its login form again on exactly this text.
const MsgInvalidCredentials = "invalid credentials"

// Config configures the admin namespace.
type Config struct {
	// Server is the hub to instrument; required.
	Server *hub.Server
	// Namespace is the admin namespace; "" = "/walcast-admin". It must not
	// be a namespace the application serves.
	Namespace string
	// Username and PasswordHash (bcrypt, e.g. from htpasswd -nbB or
	// bcryptjs) are the UI's basic auth; both required.
	Username     string
	PasswordHash string
	// ServerID names this node in the UI (its servers list aggregates by
	// it); "" = the host name.
	ServerID string
	// ReadOnly offers no action (disconnect, leave) to the UI.
	ReadOnly bool
	// Mode is Development ("" = Development) or Production.
	Mode Mode
	// Publish sends broadcasts to the admin namespace of every node,
	// including this one (walcast: the Redis bus's Publish); nil = this node
	// only (Server.Broadcast).
	Publish func(ctx context.Context, bs []*hub.Broadcast) error
	// Data returns what the UI shows as a socket's data (e.g. its user id
	// and role); nil = nothing. It runs on hub goroutines: no blocking.
	Data func(s *hub.Socket) any
	// Extra returns this node's own figures: a short summary appended to the
	// host name the UI shows (e.g. "leader, slot lag 0 B") and fields sent
	// under "walcast" in server_stats; nil = none.
	Extra func() (summary string, fields map[string]any)
	// StatsInterval is the time between server_stats; 0 = 2s.
	StatsInterval time.Duration
	// MaxSockets bounds the sockets one node lists in all_sockets; 0 = 1000.
	MaxSockets int
	// QueueSize bounds the messages waiting to be published; over it they
	// are dropped (counted); 0 = 4096.
	QueueSize int
	// MaxArgsBytes bounds an event's arguments shown in the UI; larger ones
	// are replaced with their size; 0 = 16 KiB.
	MaxArgsBytes int
	// BroadcastRate bounds the broadcasts per second shown as event_sent;
	// 0 = 50; negative = none shown.
	BroadcastRate int
	// GatherTimeout bounds the wait for the other nodes' sockets; 0 = 1.5s.
	GatherTimeout time.Duration
	// SessionTTL is how long a session id stays valid; 0 = 24h.
	SessionTTL time.Duration
	// PublishTimeout bounds one Publish call; 0 = 2s.
	PublishTimeout time.Duration
	// Logger receives the package's logs; nil = slog.Default().
	Logger *slog.Logger
}

// Admin is the admin namespace of one node.
type Admin struct {
	cfg      Config
	log      *slog.Logger
	srv      *hub.Server
	nsp      string
	started  time.Time
	host     string
	key      []byte // session HMAC key
	loginSem chan struct{}
	loginLim *rate.Limiter // password checks per second
	logLim   *rate.Limiter // refusal log lines per second

	out      chan *hub.Broadcast
	dropped  atomic.Int64
	running  atomic.Bool
	bcastLim *rate.Limiter

	work chan func(ctx context.Context) // Remote's requests, run by Run

	buf eventBuffer

	// watched is set while an admin socket is connected on this node
	// (admins) or on a node whose stats arrived within peerTTL: without one,
	// per-socket messages are not sent at all (see updateWatched).
	watched atomic.Bool
	admins  atomic.Int64

	mu      sync.Mutex
	peers   map[string]peer          // serverId → what its last server_stats said
	pending map[string]chan gathered // all_sockets requests of this node
	ctx     context.Context          // Run's, for goroutines started by handlers
	wg      sync.WaitGroup
}

// gathered is one node's answer to an all_sockets request.
type gathered struct {
	serverID string
	sockets  []json.RawMessage
}

// New declares the admin namespace on cfg.Server, with its middleware and
// handlers, and installs the observer; it does no I/O.
func New(cfg Config) (*Admin, error) {
	var errs []error
	if cfg.Server == nil {
		errs = append(errs, errors.New("adminui: Config.Server is required"))
	}
	if cfg.Namespace == "" {
		cfg.Namespace = DefaultNamespace
	}
	if cfg.Namespace[0] != '/' {
		cfg.Namespace = "/" + cfg.Namespace
	}
	if cfg.Namespace == "/" {
		errs = append(errs, errors.New("adminui: the admin namespace cannot be /"))
	}
	if cfg.Username == "" {
		errs = append(errs, errors.New("adminui: a username is required"))
	}
	if _, err := bcrypt.Cost([]byte(cfg.PasswordHash)); err != nil {
		errs = append(errs, fmt.Errorf("adminui: the password hash is not a bcrypt hash (make one with: htpasswd -nbBC 10 '' PASSWORD | cut -c2-): %w", err))
	}
	switch cfg.Mode {
	case "":
		cfg.Mode = Development
	case Development, Production:
	default:
		errs = append(errs, fmt.Errorf("adminui: mode %q is neither development nor production", cfg.Mode))
	}
	pos := func(name string, d *time.Duration, def time.Duration) {
		switch {
		case *d == 0:
			*d = def
		case *d < 0:
			errs = append(errs, fmt.Errorf("adminui: %s %v is negative", name, *d))
		}
	}
	pos("StatsInterval", &cfg.StatsInterval, DefaultStatsInterval)
	pos("GatherTimeout", &cfg.GatherTimeout, DefaultGatherTimeout)
	pos("SessionTTL", &cfg.SessionTTL, DefaultSessionTTL)
	pos("PublishTimeout", &cfg.PublishTimeout, DefaultPublishTimeout)
	if cfg.MaxSockets <= 0 {
		cfg.MaxSockets = DefaultMaxSockets
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.MaxArgsBytes <= 0 {
		cfg.MaxArgsBytes = DefaultMaxArgsBytes
	}
	if cfg.BroadcastRate == 0 {
		cfg.BroadcastRate = DefaultBroadcastRate
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	host, _ := os.Hostname()
	if cfg.ServerID == "" {
		cfg.ServerID = host
	}
	a := &Admin{
		cfg:      cfg,
		log:      cfg.Logger.With(logkey.Component, "adminui"),
		srv:      cfg.Server,
		nsp:      cfg.Namespace,
		started:  time.Now(),
		host:     host,
		key:      sessionKey(cfg.Username, cfg.PasswordHash),
		loginSem: make(chan struct{}, 2),
		loginLim: rate.NewLimiter(loginRate, 2*loginRate),
		logLim:   rate.NewLimiter(10, 50),
		out:      make(chan *hub.Broadcast, cfg.QueueSize),
		work:     make(chan func(context.Context), 64),
		peers:    make(map[string]peer),
		pending:  make(map[string]chan gathered),
	}
	if cfg.BroadcastRate > 0 {
		a.bcastLim = rate.NewLimiter(rate.Limit(cfg.BroadcastRate), cfg.BroadcastRate)
	}
	n := a.srv.Of(a.nsp)
	n.Use(a.authenticate)
	n.OnConnect(a.onAdmin)
	a.srv.Observe(a.observer())
	return a, nil
}

// Namespace returns the admin namespace's name.
func (a *Admin) Namespace() string { return a.nsp }

// Run emits this node's server stats every StatsInterval and publishes what
// the observer queued, until ctx ends; it returns nil then.
func (a *Admin) Run(ctx context.Context) error {
	a.mu.Lock()
	a.ctx = ctx
	a.mu.Unlock()
	a.running.Store(true)
	defer func() {
		// No goroutine starts after this (goCtx sees no context), so the
		// wait covers every one.
		a.mu.Lock()
		a.ctx = nil
		a.mu.Unlock()
		a.wg.Wait()
		a.running.Store(false)
	}()
	a.mu.Lock()
	a.wg.Go(func() { a.pump(ctx) })
	a.mu.Unlock()
	t := time.NewTicker(a.cfg.StatsInterval)
	defer t.Stop()
	a.emitStats()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			a.emitStats()
		case fn := <-a.work:
			fn(ctx)
		}
	}
}

// goCtx runs fn on a goroutine owned by Run; it does nothing when Run is not
// running.
func (a *Admin) goCtx(fn func(ctx context.Context)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ctx == nil || a.ctx.Err() != nil {
		return
	}
	ctx := a.ctx
	a.wg.Go(func() { fn(ctx) })
}

// send queues b for every node's admin sockets; it never blocks.
func (a *Admin) send(b *hub.Broadcast) {
	b.Namespace = a.nsp
	select {
	case a.out <- b:
	default:
		a.dropped.Add(1)
	}
}

// emit queues event with args (each JSON-encoded) for every admin socket.
func (a *Admin) emit(event string, args ...any) {
	raw, err := encodeArgs(args)
	if err != nil {
		a.log.Warn("encode admin event", logkey.Event, event, logkey.Err, err)
		return
	}
	a.send(&hub.Broadcast{Event: event, Args: raw})
}

// pump publishes the queue in batches until ctx ends.
func (a *Admin) pump(ctx context.Context) {
	batch := make([]*hub.Broadcast, 0, 256)
	var lastLog time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case b := <-a.out:
			batch = append(batch[:0], b)
		}
	more:
		for len(batch) < cap(batch) {
			select {
			case b := <-a.out:
				batch = append(batch, b)
			default:
				break more
			}
		}
		if err := a.publish(ctx, batch); err != nil {
			a.dropped.Add(int64(len(batch)))
			if time.Since(lastLog) > 10*time.Second {
				a.log.Warn("publish admin ui messages", "messages", len(batch), logkey.Err, err)
				lastLog = time.Now()
			}
		}
		clear(batch)
	}
}

func (a *Admin) publish(ctx context.Context, bs []*hub.Broadcast) error {
	var all []*hub.Broadcast
	for _, b := range bs {
		if a.cfg.Publish == nil || isLocal(b) {
			if err := a.srv.Broadcast(ctx, b); err != nil {
				return err
			}
			continue
		}
		all = append(all, b)
	}
	if len(all) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.PublishTimeout)
	defer cancel()
	return a.cfg.Publish(ctx, all)
}

// localOnly queues b for this node's admin sockets only. It is marked by an
// Except room that no socket is in, so the mark changes no delivery.
func (a *Admin) localOnly(b *hub.Broadcast) {
	b.Except = []string{localMark}
	a.send(b)
}

// localMark tags broadcasts that stay on this node (see localOnly).
const localMark = "walcast-admin#local"

func isLocal(b *hub.Broadcast) bool { return len(b.Except) == 1 && b.Except[0] == localMark }

// RequestRoom is the room of the nodes' own requests and answers; no socket
// joins it (the UI cannot: join is not offered), so the hub delivers those
// broadcasts to nobody and the bus hands them to Remote. A cluster transport
// that skips rooms without local members must deliver this one on every
// node (bus.RedisConfig.AlwaysRooms).
const RequestRoom = "walcast-admin#request"

const requestRoom = RequestRoom

// hasPrefixFold is strings.HasPrefix ignoring ASCII case.
func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
