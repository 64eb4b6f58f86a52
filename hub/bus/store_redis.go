package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/hub/packet"
	"github.com/walcast/walcast/internal/backoff"
	"github.com/walcast/walcast/internal/logkey"
)

// Defaults for zero RedisStoreConfig fields.
const (
	DefaultStorePrefix     = "walcast"
	DefaultStoreMaxAge     = 2 * time.Minute
	DefaultStoreMaxPackets = 100_000
)

// RedisStoreConfig configures a RedisStore.
type RedisStoreConfig struct {
	// Client is the Redis connection; required.
	Client redis.UniversalClient
	// Prefix starts every key: <Prefix>:recovery:<nsp> (a stream) and
	// <Prefix>:session:<pid> (a string); "" = "walcast".
	Prefix string
	// MaxAge is how long packets and sessions stay recoverable; set it to the
	// hub's RecoveryConfig.MaxDisconnection. 0 = 2m; negative is invalid.
	MaxAge time.Duration
	// MaxPackets bounds each namespace's stream (approximate MAXLEN trimming,
	// so Redis may keep slightly more). 0 = 100,000 (about 30 MB at 300-byte
	// events; at 5,000 events/s that is 20 s of history); negative is invalid.
	MaxPackets int
	// Refill says that the publishing node refills the streams from a
	// durable source whenever Redis loses them (walcast serve re-reads the
	// replication slot, which it holds back by MaxAge): the bus then keeps the
	// fill key (see refill.go), and Since waits up to FillWait for a refill
	// to end before it answers.
	Refill bool
	// FillWait bounds that wait; 0 = DefaultFillWait.
	FillWait time.Duration
	// SessionsElsewhere: the hub's sessions are kept by another store
	// (walcast serve keeps them in Postgres, so they outlive Redis too).
	// This store then holds only the recovery streams: a bus created with it
	// writes no live-session records.
	SessionsElsewhere bool
	// Node names this node the same way across restarts (e.g. host and
	// listen address), and no other node that runs at the same time: the
	// live sessions that an earlier process of this node left (killed) are
	// then taken at once instead of after its heartbeat expires. "" = none.
	Node string
	// Logger receives the store's logs; nil = slog.Default().
	Logger *slog.Logger
}

// RedisStore is a hub.RecoveryStore shared by every walcast node on one Redis,
// so a client whose node died recovers on another node.
//
// Packets live in one Redis stream per namespace whose entry ids are the
// broadcast offsets (cdc.EventID strings "<lsn>-<index>" are valid stream ids
// and sort in commit order). Each entry holds the same msgpack bytes the bus
// publishes. The stream is capped at MaxPackets entries and expires MaxAge
// after its last append; Since refuses an offset whose entry is older than
// MaxAge. Sessions are strings with a MaxAge expiry, taken with a
// compare-and-delete so only one node can resume a session.
//
// When a Redis bus is created with this store (RedisConfig.Store), the
// publishing node adds each packet to the stream in the same pipeline as its
// PUBLISH, before it, so a packet is in the stream by the time any node
// delivers it; Append is then a no-op. Without a Redis bus, Append adds the
// packet itself.
type RedisStore struct {
	cfg        RedisStoreConfig
	log        *slog.Logger
	fedByBus   atomic.Bool
	m          *Metrics
	uid        string
	sessPrefix string
	live       liveSessions
}

var _ hub.RecoveryStore = (*RedisStore)(nil)

// NewRedisStore returns a store for cfg; it does no I/O.
func NewRedisStore(cfg RedisStoreConfig) (*RedisStore, error) {
	var errs []error
	if cfg.Client == nil {
		errs = append(errs, errors.New("bus: RedisStoreConfig.Client is required"))
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultStorePrefix
	}
	switch {
	case cfg.MaxAge == 0:
		cfg.MaxAge = DefaultStoreMaxAge
	case cfg.MaxAge < 0:
		errs = append(errs, fmt.Errorf("bus: RedisStoreConfig.MaxAge %v is negative", cfg.MaxAge))
	}
	switch {
	case cfg.MaxPackets == 0:
		cfg.MaxPackets = DefaultStoreMaxPackets
	case cfg.MaxPackets < 0:
		errs = append(errs, fmt.Errorf("bus: RedisStoreConfig.MaxPackets %d is negative", cfg.MaxPackets))
	}
	switch {
	case cfg.FillWait == 0:
		cfg.FillWait = DefaultFillWait
	case cfg.FillWait < 0:
		errs = append(errs, fmt.Errorf("bus: RedisStoreConfig.FillWait %v is negative", cfg.FillWait))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &RedisStore{
		live:       liveSessions{added: make(chan struct{}, 1)},
		cfg:        cfg,
		log:        cfg.Logger.With("component", "recovery-store"),
		uid:        randomUID(),
		sessPrefix: cfg.Prefix + ":session:",
	}, nil
}

// streamKey returns the stream holding namespace nsp's packets.
func (s *RedisStore) streamKey(nsp string) string {
	return s.cfg.Prefix + ":recovery:" + packet.Namespace(nsp)
}

// addCmds queues the commands that store one encoded broadcast on p; at is
// the entry's time, from which Since counts MaxAge.
func (s *RedisStore) addCmds(ctx context.Context, p redis.Pipeliner, b *hub.Broadcast, msg []byte, at time.Time) *redis.StringCmd {
	key := s.streamKey(b.Namespace)
	cmd := p.XAdd(ctx, &redis.XAddArgs{
		Stream: key,
		MaxLen: int64(s.cfg.MaxPackets),
		Approx: true,
		ID:     b.Offset,
		Values: []any{"m", msg, "t", at.UnixMilli()},
	})
	p.PExpire(ctx, key, s.cfg.MaxAge)
	return cmd
}

// Append stores b unless a Redis bus already stores what it publishes.
func (s *RedisStore) Append(ctx context.Context, b *hub.Broadcast) error {
	if s.fedByBus.Load() || b.Offset == "" {
		return nil
	}
	if _, ok := parseStreamID(b.Offset); !ok {
		return fmt.Errorf("bus: append offset %q: not a stream id", b.Offset)
	}
	msg, err := appendMessage(nil, s.uid, b)
	if err != nil {
		return err
	}
	p := s.cfg.Client.Pipeline()
	cmd := s.addCmds(ctx, p, b, msg, time.Now())
	_, err = p.Exec(ctx)
	if err != nil && !isStaleID(cmd.Err()) {
		return fmt.Errorf("bus: append offset %s to %s: %w", b.Offset, s.streamKey(b.Namespace), err)
	}
	return nil
}

// Since returns the packets of nsp after offset, in commit order.
func (s *RedisStore) Since(ctx context.Context, nsp, offset string) ([]*hub.Broadcast, bool, error) {
	if _, ok := parseStreamID(offset); !ok {
		return nil, false, nil
	}
	if s.cfg.Refill {
		if ok, err := s.waitFilled(ctx); !ok || err != nil {
			return nil, false, err
		}
	}
	key := s.streamKey(nsp)
	// The stream holds at most about MaxPackets entries; ask for a little more
	// than that so approximate trimming never cuts the answer short.
	msgs, err := s.cfg.Client.XRangeN(ctx, key, offset, "+", int64(s.cfg.MaxPackets)*2+100).Result()
	if err != nil {
		return nil, false, fmt.Errorf("bus: read %s after %s: %w", key, offset, err)
	}
	if len(msgs) == 0 || msgs[0].ID != offset {
		return nil, false, nil
	}
	if t, ok := entryTime(msgs[0]); !ok || time.Since(t) > s.cfg.MaxAge {
		return nil, false, nil
	}
	out := make([]*hub.Broadcast, 0, len(msgs)-1)
	for _, x := range msgs[1:] {
		b, err := entryBroadcast(x)
		if err != nil {
			// Skip what cannot be decoded rather than refuse the recovery.
			s.log.Warn("skip undecodable recovery entry", "key", key, "id", x.ID, logkey.Err, err)
			continue
		}
		out = append(out, b)
	}
	return out, true, nil
}

func entryTime(x redis.XMessage) (time.Time, bool) {
	ts, _ := x.Values["t"].(string)
	ms, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(ms), true
}

func entryBroadcast(x redis.XMessage) (*hub.Broadcast, error) {
	raw, _ := x.Values["m"].(string)
	m, err := decodeMessage([]byte(raw))
	if err != nil {
		return nil, err
	}
	if m.b.Offset == "" {
		m.b.Offset = x.ID
	}
	return m.b, nil
}

// sessionJSON is the stored form of a hub.Session.
type sessionJSON struct {
	SID            string   `json:"sid"`
	PID            string   `json:"pid"`
	Namespace      string   `json:"nsp"`
	User           string   `json:"user,omitempty"`
	Rooms          []string `json:"rooms"`
	DisconnectedAt int64    `json:"at"` // Unix milliseconds
	// Node is the uid of the process where the socket is connected, and
	// Host that node's RedisStoreConfig.Node, in a live record
	// (store_live.go); both "" in a saved session.
	Node string `json:"node,omitempty"`
	Host string `json:"host,omitempty"`
}

// encodeSession encodes sess; node and host are "" for a disconnected
// socket's session, else this process's uid and Node (a live record).
func encodeSession(sess hub.Session, node, host string) []byte {
	data, _ := json.Marshal(sessionJSON{SID: sess.SID, PID: sess.PID, Namespace: sess.Namespace, User: sess.User,
		Rooms: sess.Rooms, DisconnectedAt: sess.DisconnectedAt.UnixMilli(), Node: node, Host: host})
	return data
}

// SaveSession stores sess for MaxAge after its DisconnectedAt, replacing
// its live record.
func (s *RedisStore) SaveSession(ctx context.Context, sess hub.Session) error {
	ttl := s.cfg.MaxAge - time.Since(sess.DisconnectedAt)
	if sess.DisconnectedAt.IsZero() || ttl > s.cfg.MaxAge {
		ttl = s.cfg.MaxAge
	}
	if ttl <= 0 {
		return nil
	}
	s.live.flushMu.RLock()
	defer s.live.flushMu.RUnlock()
	s.live.mu.Lock()
	if e := s.live.byPID[sess.PID]; e != nil {
		s.live.forgetLocked(e) // its next flush must not write a live record again
	}
	s.live.mu.Unlock()
	if err := s.cfg.Client.Set(ctx, s.sessPrefix+sess.PID, encodeSession(sess, "", ""), ttl).Err(); err != nil {
		return fmt.Errorf("bus: save session: %w", err)
	}
	return nil
}

// takeUnchanged deletes KEYS[1] if it still holds ARGV[1]: a session is
// taken once, and only as it was read.
var takeUnchanged = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end return 0`)

// TakeSession returns and deletes the session pid; ok=false when it is
// unknown or expired. The live record of a socket connected on a live node
// is left in place and reported as hub.ErrSessionLive, after waiting up to
// liveWait for a remote node to be seen dead.
func (s *RedisStore) TakeSession(ctx context.Context, pid string) (hub.Session, bool, error) {
	if pid == "" || len(pid) > 256 {
		return hub.Session{}, false, nil
	}
	key := s.sessPrefix + pid
	deadline := time.Now().Add(liveWait)
	for {
		data, err := s.cfg.Client.Get(ctx, key).Bytes()
		if errors.Is(err, redis.Nil) {
			return hub.Session{}, false, nil
		}
		if err != nil {
			return hub.Session{}, false, fmt.Errorf("bus: take session: %w", err)
		}
		var sj sessionJSON
		if err := json.Unmarshal(data, &sj); err != nil {
			_ = s.cfg.Client.Del(ctx, key).Err()
			return hub.Session{}, false, nil
		}
		if sj.Node != "" {
			live, err := s.nodeHolds(ctx, sj, pid)
			if err != nil {
				return hub.Session{}, false, fmt.Errorf("bus: take session: %w", err)
			}
			if live {
				if sj.Node == s.uid || !time.Now().Before(deadline) {
					return hub.Session{}, false, fmt.Errorf("bus: take session on node %s: %w", sj.Node, hub.ErrSessionLive)
				}
				if err := backoff.Sleep(ctx, livePoll); err != nil {
					return hub.Session{}, false, fmt.Errorf("bus: take session: %w", err)
				}
				continue
			}
		}
		n, err := takeUnchanged.Run(ctx, s.cfg.Client, []string{key}, data).Int()
		if err != nil {
			return hub.Session{}, false, fmt.Errorf("bus: take session: %w", err)
		}
		if n == 0 {
			if !time.Now().Before(deadline) {
				return hub.Session{}, false, nil
			}
			continue // it changed since it was read: read it again
		}
		at := time.UnixMilli(sj.DisconnectedAt)
		if time.Since(at) > s.cfg.MaxAge {
			return hub.Session{}, false, nil
		}
		return hub.Session{SID: sj.SID, PID: sj.PID, Namespace: sj.Namespace, User: sj.User, Rooms: sj.Rooms, DisconnectedAt: at}, true, nil
	}
}

// nodeHolds reports whether the socket pid of the live record sj is still
// connected: on this process, whether it is tracked; on an earlier process
// of this node, no; on another node, whether its heartbeat is alive.
func (s *RedisStore) nodeHolds(ctx context.Context, sj sessionJSON, pid string) (bool, error) {
	switch {
	case sj.Node == s.uid:
		return s.live.tracked(pid), nil
	case s.cfg.Node != "" && sj.Host == s.cfg.Node:
		return false, nil
	}
	n, err := s.cfg.Client.Exists(ctx, s.nodeKey(sj.Node)).Result()
	return n == 1, err
}

// streamID is a Redis stream entry id "<ms>-<seq>"; walcast offsets
// "<lsn>-<index>" have the same form.
type streamID struct{ hi, lo uint64 }

func parseStreamID(s string) (streamID, bool) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return streamID{}, false
	}
	hi, err1 := strconv.ParseUint(a, 10, 64)
	lo, err2 := strconv.ParseUint(b, 10, 64)
	if err1 != nil || err2 != nil || (hi == 0 && lo == 0) {
		return streamID{}, false
	}
	return streamID{hi, lo}, true
}

func (a streamID) less(b streamID) bool { return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo) }

func (a streamID) String() string {
	return strconv.FormatUint(a.hi, 10) + "-" + strconv.FormatUint(a.lo, 10)
}

// isStaleID reports the XADD error for an id not above the stream's last id:
// the packet was stored before (a redelivery after a leader change). It must
// be an error reply from Redis (not, say, a network error that quotes one);
// Redis gives that reply no code of its own, so its text is matched.
func isStaleID(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && strings.Contains(rerr.Error(), "equal or smaller than the target stream top item")
}
