// Package sessions keeps the Socket.IO sessions of walcast serve in Postgres
// (the walcast.sessions and walcast.nodes tables that `walcast migrate`
// creates), so that connection state recovery survives a restart or a crash
// of the process: a client that reconnects with its pid gets its session
// back from the table, and the events it missed from the recovery buffer,
// which the replication reader rebuilds from the slot's retained WAL.
//
// Store is the hub's RecoveryStore. Sessions live in memory and in the
// table. Broadcasts stay in an in-process hub.MemoryStore on a node without
// Redis, or in the Redis recovery streams shared by a cluster
// (Config.Broadcasts): the sessions then outlive a Redis that restarts
// without its data, and the streams are rebuilt from the slot.
// The hub reports every connect, join, leave and disconnect through
// OnSessionChange; the changes are coalesced per pid and written by Run in
// one statement per flush interval, so a subscribe never waits for the
// database. What a crash loses is at most the last interval's changes.
//
// Until Ready is called (the reader has replayed the retained window into
// the buffer), TakeSession waits: a client that reconnects while the
// restarted node is still catching up is held, not refused.
package sessions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/internal/logkey"
)

// DB is what Store needs of a pgx pool.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Defaults for Config.
const (
	DefaultFlushInterval = 50 * time.Millisecond
	DefaultHeartbeat     = time.Second
	// A node whose heartbeat is older than this is taken as stopped: its
	// sessions still marked connected count as disconnected at that heartbeat.
	nodeDeadAfter = 5 * time.Second
	// liveRetry is how often TakeSession looks again at a session still
	// connected on another live node.
	liveRetry     = 200 * time.Millisecond
	sweepInterval = 30 * time.Second
	// downErrorAfter: writes to walcast.sessions failing this long are
	// logged at Error; shorter outages (a failover, a Postgres restart) at Warn.
	downErrorAfter = 30 * time.Second
	// maxBatch bounds one statement; more pending changes wait for the next.
	maxBatch = 2000
)

// Config configures a Store.
type Config struct {
	DB DB
	// Node identifies this node in walcast.nodes: unique among the nodes
	// running at once, and the same after a restart of the same node (e.g.
	// host and listen address), so that the restarted process knows that
	// the sessions its predecessor left marked connected were cut off.
	Node string
	// Window is the recovery window (hub.RecoveryConfig.MaxDisconnection).
	Window time.Duration
	// Buffer holds the sessions of this process in memory, and the
	// broadcasts unless Broadcasts is set; nil = hub.NewMemoryStore(Window, 0).
	Buffer *hub.MemoryStore
	// Broadcasts, when set, holds the broadcasts instead of Buffer (a
	// cluster's shared Redis streams).
	Broadcasts Broadcasts
	// FlushInterval and Heartbeat: zero = the defaults.
	FlushInterval, Heartbeat time.Duration
	Logger                   *slog.Logger
}

// Broadcasts is the broadcast half of a hub.RecoveryStore.
type Broadcasts interface {
	Append(ctx context.Context, b *hub.Broadcast) error
	Since(ctx context.Context, nsp, offset string) ([]*hub.Broadcast, bool, error)
}

// Store implements hub.RecoveryStore with durable sessions.
type Store struct {
	*hub.MemoryStore
	cfg     Config
	log     *slog.Logger
	ready   chan struct{}
	once    sync.Once
	started chan struct{} // closed once Start ran
	// predecessor: at Start, walcast.sessions or walcast.nodes held rows
	// of an earlier process (written before started is closed).
	predecessor bool
	start       sync.Once
	kick        chan struct{}

	mu      sync.Mutex
	pending map[string]row // by pid, the latest state not yet written
	seq     uint64
	order   []string // pids in first-change order
	// downSince is when writes began to fail (zero: the last write worked);
	// downLogged is how loudly this outage was logged: 0 not yet, 1 Warn,
	// 2 Error.
	downSince  time.Time
	downLogged int
}

// row is one session's state as written.
type row struct {
	PID       string    `json:"pid"`
	SID       string    `json:"sid"`
	Namespace string    `json:"namespace"`
	User      string    `json:"owner"`
	Rooms     []string  `json:"rooms"`
	Connected bool      `json:"connected"`
	At        time.Time `json:"at"`
	del       bool      // not recoverable: delete the row
	seq       uint64    // change number, to tell a written change from a newer one
}

// New returns a Store; it does no I/O until Run.
func New(cfg Config) (*Store, error) {
	if cfg.DB == nil {
		return nil, errors.New("sessions: no database")
	}
	if cfg.Node == "" {
		return nil, errors.New("sessions: no node id")
	}
	if cfg.Window <= 0 {
		cfg.Window = hub.DefaultMaxDisconnection
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = DefaultFlushInterval
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.Buffer == nil {
		cfg.Buffer = hub.NewMemoryStore(cfg.Window, 0)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Store{MemoryStore: cfg.Buffer, cfg: cfg, log: log, ready: make(chan struct{}), started: make(chan struct{}),
		kick: make(chan struct{}, 1), pending: make(map[string]row)}, nil
}

// Ready releases the CONNECTs waiting in TakeSession: the buffer now holds
// the retained window. Safe to call more than once.
func (s *Store) Ready() { s.once.Do(func() { close(s.ready) }) }

// Append implements hub.RecoveryStore: the broadcast goes to Broadcasts,
// or to the in-memory buffer.
func (s *Store) Append(ctx context.Context, b *hub.Broadcast) error {
	if s.cfg.Broadcasts != nil {
		return s.cfg.Broadcasts.Append(ctx, b)
	}
	return s.MemoryStore.Append(ctx, b)
}

// Since implements hub.RecoveryStore, from Broadcasts or the in-memory buffer.
func (s *Store) Since(ctx context.Context, nsp, offset string) ([]*hub.Broadcast, bool, error) {
	if s.cfg.Broadcasts != nil {
		return s.cfg.Broadcasts.Since(ctx, nsp, offset)
	}
	return s.MemoryStore.Since(ctx, nsp, offset)
}

// OnSessionChange is the hub's Config.OnSessionChange: it records the change
// for the next flush and never blocks.
func (s *Store) OnSessionChange(c hub.SessionChange) {
	r := row{PID: c.PID, SID: c.SID, Namespace: c.Namespace, User: c.User, Rooms: append([]string(nil), c.Rooms...),
		Connected: c.Connected, At: c.At, del: !c.Connected && !c.Recoverable}
	if r.PID == "" {
		return
	}
	if r.Rooms == nil {
		r.Rooms = []string{}
	}
	s.mu.Lock()
	s.seq++
	r.seq = s.seq
	if _, ok := s.pending[r.PID]; !ok {
		s.order = append(s.order, r.PID)
	}
	s.pending[r.PID] = r
	full := len(s.order) >= maxBatch
	s.mu.Unlock()
	if full {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// TakeSession implements hub.RecoveryStore. A session of this process is
// taken from memory; else from the table (a session of a previous process,
// or of a node that stopped), atomically, so it is taken once. It waits for
// Ready (bounded by ctx).
func (s *Store) TakeSession(ctx context.Context, pid string) (hub.Session, bool, error) {
	for _, ch := range []chan struct{}{s.started, s.ready} {
		select {
		case <-ch:
		case <-ctx.Done():
			return hub.Session{}, false, fmt.Errorf("sessions: waiting for the recovery buffer to be rebuilt: %w", ctx.Err())
		}
	}
	if sess, ok, err := s.MemoryStore.TakeSession(ctx, pid); ok || err != nil {
		return sess, ok, err
	}
	s.mu.Lock()
	_, queued := s.pending[pid]
	s.mu.Unlock()
	if queued {
		// A change of this process not yet written: the session is live here
		// or was ended here (else memory would have had it).
		return hub.Session{}, false, nil
	}
	var (
		sess  hub.Session
		rooms []byte
	)
	for {
		var taken bool
		err := s.cfg.DB.QueryRow(ctx, takeSQL, pid, s.cfg.Node, s.cfg.Window.Seconds(), nodeDeadAfter.Seconds()).
			Scan(&taken, &sess.SID, &sess.Namespace, &sess.User, &rooms, &sess.DisconnectedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return hub.Session{}, false, nil
		}
		if err != nil {
			return hub.Session{}, false, fmt.Errorf("sessions: take %q: %w", pid, err)
		}
		if taken {
			break
		}
		// Connected on another node that still heartbeats: the client came
		// back before that node wrote the disconnect, or that node died a
		// moment ago. Wait for one or the other (bounded by ctx); a socket
		// that really is live there is never resumed a second time.
		t := time.NewTimer(liveRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return hub.Session{}, false, nil
		case <-t.C:
		}
	}
	if err := json.Unmarshal(rooms, &sess.Rooms); err != nil {
		return hub.Session{}, false, fmt.Errorf("sessions: rooms of %q: %w", pid, err)
	}
	sess.PID = pid
	return sess, true, nil
}

// takeSQL claims a recoverable session for node $2: one that is
// disconnected, or whose node stopped heartbeating, within the window ($3
// seconds). A session connected on another live node is not taken: the row
// comes back with taken = false. No row: no such session in the window, or
// one connected on this node.
const takeSQL = `
WITH cand AS (
  SELECT s.pid, s.sid, s.namespace, s.owner, s.rooms,
         CASE WHEN s.connected THEN coalesce(n.alive_at, s.updated_at) ELSE s.updated_at END AS gone_at,
         s.connected AND (s.node = $2 OR n.alive_at > now() - make_interval(secs => $4)) AS live,
         s.node = $2 AS here
  FROM walcast.sessions s LEFT JOIN walcast.nodes n ON n.node = s.node
  WHERE s.pid = $1
  FOR UPDATE OF s
), took AS (
  UPDATE walcast.sessions s
  SET connected = true, node = $2, updated_at = now()
  FROM cand
  WHERE s.pid = cand.pid AND NOT cand.live AND cand.gone_at > now() - make_interval(secs => $3)
  RETURNING cand.sid, cand.namespace, cand.owner, cand.rooms, cand.gone_at
)
SELECT true, sid, namespace, owner, rooms, gone_at FROM took
UNION ALL
SELECT false, sid, namespace, owner, rooms, gone_at FROM cand
WHERE cand.live AND NOT cand.here AND NOT EXISTS (SELECT 1 FROM took)`

// Start marks the sessions that a previous process of this node left
// connected as disconnected at its last heartbeat (it stopped or crashed),
// and writes this node's heartbeat. TakeSession waits for it; Run calls it
// first. A failure is logged, and sessions stay as they are.
func (s *Store) Start(ctx context.Context) {
	s.start.Do(func() {
		defer close(s.started)
		const q = `UPDATE walcast.sessions s
SET connected = false, updated_at = coalesce((SELECT alive_at FROM walcast.nodes WHERE node = $1), s.updated_at)
WHERE s.node = $1 AND s.connected`
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		// Before this process writes anything: did an earlier one leave
		// sessions or a heartbeat (both expire after the window)?
		const prior = `SELECT EXISTS (SELECT 1 FROM walcast.sessions) OR EXISTS (SELECT 1 FROM walcast.nodes)`
		if err := s.cfg.DB.QueryRow(ctx, prior).Scan(&s.predecessor); err != nil {
			s.log.Warn("sessions: cannot read the sessions of the previous process; they are not recoverable", logkey.Err, err)
			return
		}
		tag, err := s.cfg.DB.Exec(ctx, q, s.cfg.Node)
		if err != nil {
			s.log.Warn("sessions: cannot read the sessions of the previous process; they are not recoverable", logkey.Err, err)
			return
		}
		if n := tag.RowsAffected(); n > 0 {
			s.log.Info("sessions: the previous process of this node left sessions connected; they can resume", "sessions", n)
		}
		s.heartbeat(ctx)
	})
}

// HadPredecessor reports whether, when this Store started, an earlier
// process (of any node) had left sessions or a heartbeat within the
// recovery window: clients may expect to resume from what it delivered. It
// waits for Start (bounded by ctx; false when ctx ends first or Start
// could not read the tables). walcast serve asks it when its replication
// slot is missing at start: with a predecessor, the slot was lost.
func (s *Store) HadPredecessor(ctx context.Context) bool {
	select {
	case <-s.started:
		return s.predecessor
	case <-ctx.Done():
		return false
	}
}

// Run writes the pending changes every flush interval and this node's
// heartbeat, and deletes expired rows, until ctx ends; then it writes what
// is pending one last time (bounded) and returns nil.
func (s *Store) Run(ctx context.Context) error {
	flush := time.NewTicker(s.cfg.FlushInterval)
	defer flush.Stop()
	beat := time.NewTicker(s.cfg.Heartbeat)
	defer beat.Stop()
	sweep := time.NewTicker(sweepInterval)
	defer sweep.Stop()
	s.Start(ctx)
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
			defer cancel()
			if err := s.Flush(fctx); err != nil {
				s.log.Warn("sessions: last write before stopping failed; sessions changed in the last moments may not be recoverable", logkey.Err, err)
			}
			s.heartbeat(fctx)
			return nil
		case <-flush.C:
			s.flushLogged(ctx)
		case <-s.kick:
			s.flushLogged(ctx)
		case <-beat.C:
			s.heartbeat(ctx)
		case <-sweep.C:
			s.sweep(ctx)
		}
	}
}

// flushLogged flushes and logs an outage of walcast.sessions: at Warn when
// writes begin to fail (a failover or a restart of Postgres: the pool
// reconnects and the next flush usually works), at Error once it has lasted
// downErrorAfter (an operator must act), and at Info when writes work again.
func (s *Store) flushLogged(ctx context.Context) {
	err := s.Flush(ctx)
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err != nil && ctx.Err() == nil:
		if s.downSince.IsZero() {
			s.downSince = now
		}
		if s.downLogged == 0 {
			s.downLogged = 1
			s.log.Warn("sessions: cannot write walcast.sessions; retrying (sessions changed meanwhile are not recoverable after a restart of walcast)", logkey.Err, err)
		} else if s.downLogged == 1 && now.Sub(s.downSince) >= downErrorAfter {
			s.downLogged = 2
			s.log.Error("sessions: cannot write walcast.sessions; sessions changed meanwhile are not recoverable after a restart of walcast (retrying)",
				logkey.Err, err, "failing_for", now.Sub(s.downSince).Round(time.Second))
		}
	case err == nil && !s.downSince.IsZero():
		s.log.Info("sessions: writing walcast.sessions again", "failed_for", now.Sub(s.downSince).Round(time.Millisecond))
		s.downSince, s.downLogged = time.Time{}, 0
	}
}

// Flush writes the pending changes now. Changes that fail stay pending
// unless newer ones replace them.
func (s *Store) Flush(ctx context.Context) error {
	for {
		s.mu.Lock()
		n := min(len(s.order), maxBatch)
		if n == 0 {
			s.mu.Unlock()
			return nil
		}
		pids := s.order[:n:n]
		batch := make([]row, 0, n)
		for _, pid := range pids {
			batch = append(batch, s.pending[pid])
		}
		s.mu.Unlock()

		err := s.write(ctx, batch)

		s.mu.Lock()
		if err == nil {
			for _, r := range batch {
				if cur, ok := s.pending[r.PID]; ok && cur.seq == r.seq {
					delete(s.pending, r.PID)
				}
			}
		}
		// Keep order consistent with pending (new changes may have arrived).
		order := s.order[:0:0]
		for _, pid := range s.order {
			if _, ok := s.pending[pid]; ok {
				order = append(order, pid)
			}
		}
		s.order = order
		more := err == nil && len(s.order) > 0 && n == maxBatch
		s.mu.Unlock()
		if err != nil {
			return err
		}
		if !more {
			return nil
		}
	}
}

// write upserts the live and recoverable sessions of batch and deletes the
// ended ones, in one round trip.
func (s *Store) write(ctx context.Context, batch []row) error {
	var ups []row
	var dels []string
	for _, r := range batch {
		if r.del {
			dels = append(dels, r.PID)
		} else {
			ups = append(ups, r)
		}
	}
	if ups == nil {
		ups = []row{}
	}
	if dels == nil {
		dels = []string{}
	}
	js, err := json.Marshal(ups)
	if err != nil {
		return fmt.Errorf("sessions: encode: %w", err)
	}
	if _, err := s.cfg.DB.Exec(ctx, writeSQL, js, dels, s.cfg.Node); err != nil {
		return fmt.Errorf("sessions: write %d sessions: %w", len(batch), err)
	}
	return nil
}

const writeSQL = `
WITH del AS (
  DELETE FROM walcast.sessions WHERE pid = ANY($2::text[])
)
INSERT INTO walcast.sessions (pid, sid, namespace, owner, rooms, node, connected, updated_at)
SELECT x.pid, x.sid, x.namespace, coalesce(x.owner, ''), coalesce(x.rooms, '[]'), $3, x.connected, x.at
FROM jsonb_to_recordset($1::jsonb) AS x(pid text, sid text, namespace text, owner text, rooms jsonb, connected boolean, at timestamptz)
ON CONFLICT (pid) DO UPDATE SET sid = EXCLUDED.sid, namespace = EXCLUDED.namespace, owner = EXCLUDED.owner, rooms = EXCLUDED.rooms,
  node = EXCLUDED.node, connected = EXCLUDED.connected, updated_at = EXCLUDED.updated_at`

func (s *Store) heartbeat(ctx context.Context) {
	const q = `INSERT INTO walcast.nodes (node, alive_at) VALUES ($1, now())
ON CONFLICT (node) DO UPDATE SET alive_at = now()`
	if _, err := s.cfg.DB.Exec(ctx, q, s.cfg.Node); err != nil && ctx.Err() == nil {
		s.log.Debug("sessions: heartbeat", logkey.Err, err)
	}
}

// sweep deletes sessions and nodes past the window.
func (s *Store) sweep(ctx context.Context) {
	const q = `
WITH gone AS (
  DELETE FROM walcast.sessions s USING (
    SELECT s2.pid FROM walcast.sessions s2 LEFT JOIN walcast.nodes n ON n.node = s2.node
    WHERE CASE WHEN s2.connected THEN coalesce(n.alive_at, s2.updated_at) ELSE s2.updated_at END < now() - make_interval(secs => $1)
  ) old WHERE s.pid = old.pid
)
DELETE FROM walcast.nodes WHERE alive_at < now() - make_interval(secs => $1) - interval '1 minute'`
	if _, err := s.cfg.DB.Exec(ctx, q, s.cfg.Window.Seconds()); err != nil && ctx.Err() == nil {
		s.log.Debug("sessions: sweep", logkey.Err, err)
	}
}
