package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/hub/bus"
	"github.com/walcast/walcast/internal/adminui"
	"github.com/walcast/walcast/internal/logkey"
	"github.com/walcast/walcast/internal/redact"
	"github.com/walcast/walcast/internal/sessions"
	"github.com/walcast/walcast/rooms"
)

func runServe(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	c, err := parseConfig(fs, optServe|optLog, args, getenv)
	if err != nil {
		return err
	}
	log := newLogger(c, stderr)
	slog.SetDefault(log)
	for _, w := range c.Warnings {
		log.Warn(w)
	}
	svc, err := newService(c, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.Listen, err)
	}
	return svc.Run(ctx, ln)
}

// service is `walcast serve`: the CDC pipeline feeding the bus feeding the hub,
// behind one HTTP server. `walcast demo` runs it in-process.
type service struct {
	cfg config
	log *slog.Logger
	reg *prometheus.Registry
	hub *hub.Server
	bus bus.Bus
	cdc *pipeline
	mux *http.ServeMux
	// opsMux serves /metrics on its own listener (WALCAST_METRICS_LISTEN); nil = on mux.
	opsMux *http.ServeMux
	busUp  func() bool
	db     *pgxpool.Pool // profile/order-owner lookups (rooms) and the mapper's lookups
	rooms  *rooms.Policy

	cluster *cluster       // Redis client, bus and recovery streams; nil for one node
	admin   *adminui.Admin // the Socket.IO Admin UI's namespace; nil when off
	lag     *lagTracker    // walcast_cdc_slot_lag_seconds' source
	// sessions keeps the sessions in walcast.sessions; nil without recovery.
	sessions *sessions.Store
	// refill refills the Redis recovery streams from the slot; nil without Redis.
	refill *streamRefill
}

// newDBPool opens (lazily) the pool for the profile, order-owner, mapper and
// session queries.
func newDBPool(c config) (*pgxpool.Pool, error) {
	pcfg, err := pgxpool.ParseConfig(c.DatabaseURL.Reveal())
	if err != nil {
		return nil, fmt.Errorf("database url: %s", redact.Error(err, c.DatabaseURL.Reveal()))
	}
	pcfg.MaxConns = 8 // zero DBPoolSize (a config built in code) keeps the default
	if c.DBPoolSize > 0 {
		pcfg.MaxConns = int32(c.DBPoolSize)
	}
	db, err := pgxpool.NewWithConfig(context.Background(), pcfg)
	if err != nil {
		return nil, fmt.Errorf("database pool: %s", redact.Error(err, c.DatabaseURL.Reveal()))
	}
	return db, nil
}

// nodeID names this node in walcast.nodes: host and listen address, the same
// after a restart (see sessions.Config.Node).
func nodeID(listen string) string {
	host, _ := os.Hostname()
	if len(host) > 64 {
		host = host[:64]
	}
	return host + " " + listen
}

// newService builds every component from c without I/O.
func newService(c config, log *slog.Logger) (*service, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	known, err := metricEventNames(c)
	if err != nil {
		return nil, err
	}
	hm := hub.NewMetrics(reg, known...)
	hcfg := hub.Config{
		PingInterval:   c.PingInterval,
		PingTimeout:    c.PingTimeout,
		MaxPayload:     c.MaxPayload,
		AllowedOrigins: c.AllowedOrigins,
		MaxQueueBytes:  c.MaxQueueBytes,
		Metrics:        hm,

		MaxHandshakesPerIP:      c.MaxHandshakesPerIP,
		MaxConnsPerIP:           c.MaxConnsPerIP,
		MaxUnauthenticatedPerIP: c.MaxUnauthenticatedPerIP,
		ClientIP:                clientIPFunc(c.TrustedProxies),
		Logger:                  log,
	}
	if c.RecoveryWindow > 0 {
		hcfg.Recovery = &hub.RecoveryConfig{MaxDisconnection: c.RecoveryWindow}
	}
	db, err := newDBPool(c)
	if err != nil {
		return nil, err
	}
	// The bus is the hub's adapter: every hub broadcast reaches every node.
	// With Redis, newCluster also makes the store of the recovery streams,
	// which the session store below uses for its broadcasts.
	cl, err := newCluster(c, &hcfg, reg, log) // nil without Redis
	if err != nil {
		return nil, err
	}
	var b bus.Bus
	local := bus.NewLocal()
	if cl != nil {
		b = cl.bus
	} else {
		b = local
	}
	hcfg.Adapter = b
	var hold *ackHold
	var sess *sessions.Store
	var window *windowTracker
	if hcfg.Recovery != nil {
		// Sessions go to walcast.sessions, and the slot keeps the WAL of the
		// recovery window, so a restart (and with Redis, a Redis that lost its
		// data) rebuilds the broadcasts from it. They stay in memory on one
		// node; with Redis they are in its recovery streams.
		scfg := sessions.Config{DB: db, Node: nodeID(c.Listen), Window: hcfg.Recovery.MaxDisconnection, Logger: log}
		if cl != nil {
			scfg.Broadcasts = cl.store
		}
		sess, err = sessions.New(scfg)
		if err != nil {
			return nil, err
		}
		hcfg.OnSessionChange = sess.OnSessionChange
		hold = &ackHold{store: sess, oldest: bufferOldest(sess)}
		if cl != nil {
			window = &windowTracker{window: hcfg.Recovery.MaxDisconnection, now: time.Now}
			hold.oldest = window.oldest
			cl.floor = hold.floor
			sess.Ready() // the streams are shared; a refill is gated in the store
		}
		hcfg.Recovery.Store = sess
	}
	srv, err := hub.New(hcfg)
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	s := &service{cfg: c, log: log, reg: reg, hub: srv, bus: b, mux: http.NewServeMux(), busUp: func() bool { return true }, db: db, sessions: sess}
	if cl != nil {
		s.cluster, s.busUp = cl, cl.bus.Healthy
	}
	m := newCDCMetrics(reg, hm.EventLabel)
	s.lag = &m.lag
	// A lost slot means changes that no client will ever get: end every
	// session without recovery so clients resubscribe and get the current
	// state on subscribe.
	sink := &busSink{hub: srv, m: m, window: window}
	if cl == nil && hold != nil {
		sink.restore, sink.hold = local, hold
	}
	if cl != nil && window != nil {
		s.refill = newStreamRefill(cl.bus, db, log)
		sink.refill = s.refill
	}
	// A slot missing at start is lost, not new, when the sessions of an
	// earlier process are still in walcast.sessions (a promotion on
	// Postgres 15/16 while walcast was stopped): their clients must not
	// resume as if nothing was missed.
	var slotExpected func(context.Context) bool
	if sess != nil {
		slotExpected = sess.HadPredecessor
	}
	s.cdc, err = newPipeline(c, log, s.db, sink, m, hold, func(cdc.SlotLoss) { srv.EndAllSessions("replication slot lost") }, slotExpected)
	if err != nil {
		return nil, err
	}
	if cl != nil {
		s.cdc.remote = cl.remoteMetrics
	}
	if s.refill != nil {
		s.refill.stats, s.refill.rewind = s.cdc.p.Stats, s.cdc.p.Reader().Rewind
	}
	if s.rooms, err = newRooms(c, srv, s.db, s.cdc, reg, log); err != nil {
		return nil, err
	}
	// State on subscribe: the marks the state reads commit come back here
	// through the stream and the bus, in commit order.
	srv.OnMark(cdc.MarkRoom, s.rooms.OnMark)
	// Role and owner changes read from the stream re-check connected sockets
	// (on the other nodes of a cluster through the bus).
	s.cdc.access.policy = s.rooms
	if cl != nil {
		cl.access = s.rooms
	}
	if s.admin, err = newAdminUI(c, s); err != nil {
		return nil, err
	}
	newRoleGauge(reg, func() cdc.ReaderState { return s.cdc.p.Stats().State })
	s.mux.Handle("/socket.io/", srv)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	metrics := metricsHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}), c.MetricsToken)
	if c.MetricsListen != "" {
		s.opsMux = http.NewServeMux()
		s.opsMux.Handle("GET /metrics", metrics)
	} else {
		s.mux.Handle("GET /metrics", metrics)
	}
	return s, nil
}

func (s *service) readyz(w http.ResponseWriter, r *http.Request) {
	state, ok := s.cdc.ready()
	bus := "up"
	if !s.busUp() {
		bus, ok = "down", false
	}
	w.Header().Set("Content-Type", "application/json")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	role := "standby"
	if state == cdc.StateStreaming.String() {
		role = "leader"
	}
	json.NewEncoder(w).Encode(map[string]any{"ready": ok, "replication": state, "role": role, "bus": bus, "slot_lost": s.cdc.p.Stats().SlotsLost})
}

// Run serves on ln until ctx ends or a component fails, then shuts down in
// order: stop accepting, stop CDC intake (the reader acknowledges the last
// delivered position), drain the hub's queues until ShutdownTimeout, close the
// connections so clients reconnect, stop the bus.
func (s *service) Run(ctx context.Context, ln net.Listener) error {
	log := s.log
	httpSrv := newHTTPServer(s.mux, log, defaultHTTPTimeouts)
	if s.cfg.PprofListen != "" {
		pln, err := net.Listen("tcp", s.cfg.PprofListen)
		if err != nil {
			return fmt.Errorf("profiler listen %s: %w", s.cfg.PprofListen, err)
		}
		pmux := http.NewServeMux()
		mountPprof(pmux)
		psrv := newHTTPServer(pmux, log, httpTimeouts{header: 10 * time.Second, idle: 30 * time.Second})
		go psrv.Serve(pln)
		defer psrv.Close()
		log.Info("profiler serving", logkey.Addr, pln.Addr().String())
	}
	if s.opsMux != nil {
		mln, err := net.Listen("tcp", s.cfg.MetricsListen)
		if err != nil {
			return fmt.Errorf("metrics listen %s: %w", s.cfg.MetricsListen, err)
		}
		msrv := newHTTPServer(s.opsMux, log, httpTimeouts{header: 10 * time.Second, idle: 30 * time.Second})
		go msrv.Serve(mln)
		defer msrv.Close()
		log.Info("metrics serving", logkey.Addr, mln.Addr().String())
	}
	fatal := make(chan error, 4)
	busCtx, stopBus := context.WithCancel(context.WithoutCancel(ctx))
	cdcCtx, stopCDC := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBus()
	defer stopCDC()
	var wg, cdcWG sync.WaitGroup
	wg.Go(func() {
		if err := httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fatal <- fmt.Errorf("http: %w", err)
		}
	})
	wg.Go(func() {
		if err := s.bus.Run(busCtx); err != nil && busCtx.Err() == nil {
			fatal <- fmt.Errorf("bus: %w", err)
		}
	})
	if s.sessions != nil {
		wg.Go(func() { _ = s.sessions.Run(busCtx) }) // stops after the hub closed every socket
	}
	wg.Go(func() {
		if err := s.rooms.Run(busCtx); err != nil && busCtx.Err() == nil {
			log.Warn("rooms policy stopped", logkey.Err, err)
		}
	})
	if s.refill != nil {
		cdcWG.Go(func() { s.refill.run(cdcCtx) })
	}
	if s.admin != nil {
		wg.Go(func() { _ = s.admin.Run(busCtx) }) // returns nil when busCtx ends
	}
	cdcWG.Go(func() {
		if err := s.cdc.run(cdcCtx); err != nil && cdcCtx.Err() == nil {
			fatal <- fmt.Errorf("cdc: %w", err)
		}
	})
	log.Info("walcast serving", logkey.Addr, ln.Addr().String(), "version", versionString(),
		logkey.Slot, s.cfg.Slot, "publication", s.cfg.Publication, "redis", s.cfg.RedisURL != "")

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "timeout", s.cfg.ShutdownTimeout)
	case runErr = <-fatal:
		log.Error("stopping after a fatal error", logkey.Err, runErr)
	}
	timeout := s.cfg.ShutdownTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	shCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	// 1. Stop accepting: close the listener (long-polls end with hub.Shutdown).
	httpDone := make(chan struct{})
	go func() {
		defer close(httpDone)
		if err := httpSrv.Shutdown(shCtx); err != nil {
			httpSrv.Close()
		}
	}()
	// 2. Stop CDC intake; the reader sends its last standby status on the way out.
	stopCDC()
	cdcWG.Wait()
	// 3+4. Drain the queues, then close every connection so clients reconnect.
	if err := s.hub.Shutdown(shCtx); err != nil {
		log.Warn("hub queues not drained before the shutdown deadline", logkey.Err, err)
	}
	<-httpDone
	stopBus()
	wg.Wait()
	s.cluster.close()
	s.db.Close()
	log.Info("stopped")
	return runErr
}

// busSink adapts the hub to the CDC side's cdc.Sink: one hub.Broadcast per
// event, to the event's room, with the event id as recovery offset, through
// hub.Server.Broadcast (and so the bus: nil only once every node's bus
// accepted it).
//
// With a hold (a node without Redis), events of the window re-read after a
// start go to the recovery buffer only (see ackHold).
//
// With Redis, each published event's commit is noted in window (where the
// slot is held), and a bus that lost its recovery streams makes the reader
// re-read the window (see streamRefill).
type busSink struct {
	hub     *hub.Server
	m       *cdcMetrics
	restore *bus.Local
	hold    *ackHold
	window  *windowTracker
	refill  *streamRefill
}

func (s *busSink) Publish(ctx context.Context, events []cdc.Event) error {
	s.m.lag.received(events)
	bs := make([]*hub.Broadcast, len(events))
	for i := range events {
		bs[i] = toBroadcast(&events[i])
	}
	live := bs
	if s.hold != nil && !s.hold.caught.Load() {
		// Only while the window is replayed after a start: once caught up,
		// every later event is past the start position.
		live = live[:0:0]
		for i, b := range bs {
			if id := events[i].ID; !id.IsZero() && s.hold.replayed(id.LSN) {
				s.restore.Restore([]*hub.Broadcast{b})
				continue
			}
			live = append(live, b)
		}
	}
	if err := s.hub.Broadcast(ctx, live...); err != nil {
		if s.refill != nil {
			return s.refill.lost(ctx, err)
		}
		return err
	}
	if s.window != nil {
		for i := range events {
			if id := events[i].ID; !id.IsZero() {
				s.window.note(id.LSN, events[i].CommitTime)
			}
		}
	}
	for i := range events {
		s.m.eventsIn.WithLabelValues(s.m.label(events[i].Name)).Inc()
	}
	return nil
}

func toBroadcast(e *cdc.Event) *hub.Broadcast {
	b := &hub.Broadcast{
		Rooms:      []string{e.Room},
		Event:      e.Name,
		Args:       []json.RawMessage{e.Payload},
		CommitTime: e.CommitTime,
	}
	if !e.ID.IsZero() {
		b.Offset = e.ID.String()
	}
	return b
}

// cdcMetrics are the CDC side's Prometheus collectors.
type cdcMetrics struct {
	eventsIn *prometheus.CounterVec
	label    func(event string) string // bounds the event label (hub.Metrics.EventLabel)
	reg      prometheus.Registerer
	lag      lagTracker // walcast_cdc_slot_lag_seconds (serve_lag.go)
}

func newCDCMetrics(reg prometheus.Registerer, label func(string) string) *cdcMetrics {
	m := &cdcMetrics{
		eventsIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "walcast_cdc_events_in_total", Help: "Events mapped from the database and accepted by the bus, by event name when it is a known one, else other."}, []string{"event"}),
		label: label,
		reg:   reg,
	}
	reg.MustRegister(m.eventsIn)
	return m
}

// register adds the collectors that read the pipeline's counters.
func (m *cdcMetrics) register(p *pipeline) {
	stats := p.p.Stats
	registerLag(m.reg, &m.lag, func() (cdc.LSN, bool) {
		st := stats()
		return max(st.HandledLSN, st.AckedLSN), st.State == cdc.StateStreaming
	})
	lag := func() float64 {
		s := stats()
		if s.ServerWALEnd <= s.AckedLSN {
			return 0
		}
		return float64(s.ServerWALEnd - s.AckedLSN)
	}
	cs := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "walcast_cdc_slot_lag_bytes",
			Help: "WAL between the server's end and the position walcast acknowledged: what the slot retains (on a node without Redis this includes the recovery window)."}, lag),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "walcast_cdc_handled_lag_bytes",
			Help: "WAL between the server's end and the position walcast has handled (delivery lag)."}, func() float64 {
			s := stats()
			if s.ServerWALEnd <= s.HandledLSN {
				return 0
			}
			return float64(s.ServerWALEnd - s.HandledLSN)
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "walcast_cdc_acked_lsn",
			Help: "Last LSN acknowledged to Postgres (as a number)."}, func() float64 { return float64(stats().AckedLSN) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "walcast_cdc_transactions_total",
			Help: "Committed transactions received."}, func() float64 { return float64(stats().Transactions) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "walcast_cdc_changes_total",
			Help: "Row changes and messages received."}, func() float64 { return float64(stats().Changes) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "walcast_cdc_slot_lost_total",
			Help: "Replication slots found lost (invalidated or gone) and recreated; their changes were not delivered."}, func() float64 { return float64(stats().SlotsLost) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "walcast_cdc_reconnects_total",
			Help: "Replication reconnects."}, func() float64 { return float64(stats().Reconnects) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "walcast_cdc_map_errors_total",
			Help: "Changes the mapper rejected (skipped)."}, func() float64 { return float64(p.p.MapErrors()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "walcast_cdc_bad_messages_total",
			Help: "Invalid walcast.emit messages (dropped)."}, func() float64 { return float64(p.stats().BadMessages) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "walcast_cdc_unverified_messages_total",
			Help: "Messages with prefix walcast whose signature did not verify (forged with pg_logical_emit_message, or the key is missing); dropped."}, func() float64 { return float64(p.stats().Unverified) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "walcast_cdc_lookup_misses_total",
			Help: "Inventory rows whose variant or product was unknown."}, func() float64 { return float64(p.stats().LookupMisses) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "walcast_cdc_missing_old_image_total",
			Help: "Updates without the old row image the mapper needed (REPLICA IDENTITY not FULL)."}, func() float64 { return float64(p.stats().MissingOldImage) }),
	}
	for _, st := range []cdc.ReaderState{cdc.StateStopped, cdc.StateConnecting, cdc.StateStreaming, cdc.StateStandingBy, cdc.StateReconnecting} {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "walcast_cdc_reader_state",
			Help: "1 for the replication reader's current state.", ConstLabels: prometheus.Labels{"state": st.String()}},
			func() float64 {
				if stats().State == st {
					return 1
				}
				return 0
			}))
	}
	m.reg.MustRegister(cs...)
}

// httpTimeouts bound how long one HTTP connection may hold a file descriptor
// and memory without making progress.
type httpTimeouts struct {
	header time.Duration // request line and headers
	idle   time.Duration // a keep-alive connection between requests
	body   time.Duration // a POST body (a polling client's packets), from its headers on
}

// defaultHTTPTimeouts: a polling POST carries at most a few MB and is sent in
// one go; a client that stalls mid-body is gone or hostile. Browsers reopen an
// idle keep-alive connection when they need one.
var defaultHTTPTimeouts = httpTimeouts{header: 10 * time.Second, idle: 30 * time.Second, body: 30 * time.Second}

// newHTTPServer returns the public listener's server. http.Server.ReadTimeout
// is not used for the body limit: it would also cut long-poll GETs (the server's
// background read fails and cancels the request) and the read deadline outlives
// a WebSocket hijack. So only POST requests get a read deadline, set per request.
func newHTTPServer(h http.Handler, log *slog.Logger, t httpTimeouts) *http.Server {
	if t.body > 0 {
		next := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost {
				// An error means the writer cannot set deadlines (not a net/http
				// connection); then there is nothing to bound.
				_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(t.body))
			}
			next.ServeHTTP(w, r)
		})
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.header,
		IdleTimeout:       t.idle,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// mountPprof serves Go's profiler under /debug/pprof/ (WALCAST_PPROF_LISTEN, its
// own listener; never the public one, as cmdline shows the secrets): heap and
// CPU profiles of a running node, e.g. to see where idle per-socket memory goes.
func mountPprof(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}
