package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/hub/packet"
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
	// Shards splits each namespace's stream into this many streams, so that
	// on a Redis Cluster they spread over the shards: a broadcast goes to the
	// stream <Prefix>:recovery:<nsp>:{<i>} where i is a hash of its room
	// (its sharded pub/sub channel), and reads merge them by offset. Each
	// holds up to MaxPackets/Shards entries. 0 or 1 = one stream
	// <Prefix>:recovery:<nsp>; negative is invalid.
	Shards int
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
	switch {
	case cfg.Shards == 0:
		cfg.Shards = 1
	case cfg.Shards < 0:
		errs = append(errs, fmt.Errorf("bus: RedisStoreConfig.Shards %d is negative", cfg.Shards))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &RedisStore{
		live: liveSessions{entries: make(map[string]hub.Session), dirty: make(map[string]struct{}),
			changed: make(chan struct{}, 1)},
		cfg:        cfg,
		log:        cfg.Logger.With(logkey.Component, "recovery-store"),
		uid:        randomUID(),
		sessPrefix: cfg.Prefix + ":session:",
	}, nil
}

// streamKeys returns the streams holding namespace nsp's packets.
func (s *RedisStore) streamKeys(nsp string) []string {
	base := s.cfg.Prefix + ":recovery:" + packet.Namespace(nsp)
	if s.cfg.Shards == 1 {
		return []string{base}
	}
	keys := make([]string, s.cfg.Shards)
	for i := range keys {
		keys[i] = base + ":{" + strconv.Itoa(i) + "}"
	}
	return keys
}

// publishedKey holds, on a Redis Cluster, the newest offset of nsp whose
// publish Redis confirmed (see Redis.sent).
func (s *RedisStore) publishedKey(nsp string) string {
	return s.cfg.Prefix + ":published:" + packet.Namespace(nsp)
}

// streamKeyFor returns the stream that holds b.
func (s *RedisStore) streamKeyFor(b *hub.Broadcast) string {
	base := s.cfg.Prefix + ":recovery:" + packet.Namespace(b.Namespace)
	if s.cfg.Shards == 1 {
		return base
	}
	room := ""
	if len(b.Rooms) == 1 {
		room = b.Rooms[0]
	}
	h := fnv.New32a()
	h.Write([]byte(room))
	return base + ":{" + strconv.Itoa(int(h.Sum32()%uint32(s.cfg.Shards))) + "}"
}

// maxLen is each stream's cap.
func (s *RedisStore) maxLen() int64 { return int64(max(1, s.cfg.MaxPackets/s.cfg.Shards)) }

// addCmds queues the commands that store one encoded broadcast on p; at is
// the entry's time, from which Since counts MaxAge.
func (s *RedisStore) addCmds(ctx context.Context, p redis.Pipeliner, b *hub.Broadcast, msg []byte, at time.Time) *redis.StringCmd {
	key := s.streamKeyFor(b)
	cmd := p.XAdd(ctx, &redis.XAddArgs{
		Stream: key,
		MaxLen: s.maxLen(),
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
		return fmt.Errorf("bus: append offset %s to %s: %w", b.Offset, s.streamKeyFor(b), err)
	}
	return nil
}

// Since returns the packets of nsp after offset, in commit order.
func (s *RedisStore) Since(ctx context.Context, nsp, offset string) ([]*hub.Broadcast, bool, error) {
	id, ok := parseStreamID(offset)
	if !ok {
		return nil, false, nil
	}
	if s.cfg.Refill {
		if ok, err := s.waitFilled(ctx); !ok || err != nil {
			return nil, false, err
		}
	}
	keys := s.streamKeys(nsp)
	// Each stream holds at most about MaxPackets/Shards entries; ask for a
	// little more than that so approximate trimming never cuts the answer
	// short.
	per := s.maxLen()*2 + 100
	p := s.cfg.Client.Pipeline()
	ranges := make([]*redis.XMessageSliceCmd, len(keys))
	infos := make([]*redis.XInfoStreamCmd, len(keys))
	for i, key := range keys {
		ranges[i] = p.XRangeN(ctx, key, offset, "+", per)
		if len(keys) > 1 {
			infos[i] = p.XInfoStream(ctx, key)
		}
	}
	_, _ = p.Exec(ctx)
	found := false
	var lists [][]redis.XMessage
	for i, c := range ranges {
		msgs, err := c.Result()
		if err != nil {
			return nil, false, fmt.Errorf("bus: read %s after %s: %w", keys[i], offset, err)
		}
		if len(msgs) > 0 && msgs[0].ID == offset {
			if t, ok := entryTime(msgs[0]); !ok || time.Since(t) > s.cfg.MaxAge {
				return nil, false, nil
			}
			found = true
			msgs = msgs[1:]
		}
		if infos[i] != nil {
			// A stream trimmed past offset lost packets the client needs.
			if info, err := infos[i].Result(); err == nil {
				if del, ok := parseStreamID(info.MaxDeletedEntryID); ok && !del.less(id) {
					return nil, false, nil
				}
			}
		}
		lists = append(lists, msgs)
	}
	if !found {
		return nil, false, nil
	}
	msgs := mergeByID(lists)
	out := make([]*hub.Broadcast, 0, len(msgs))
	for _, x := range msgs {
		b, err := entryBroadcast(x)
		if err != nil {
			// Skip what cannot be decoded rather than refuse the recovery.
			s.log.Warn("skip undecodable recovery entry", logkey.Namespace, nsp, "id", x.ID, logkey.Err, err)
			continue
		}
		out = append(out, b)
	}
	return out, true, nil
}

// mergeByID merges stream entry lists, each sorted by id, into one.
func mergeByID(lists [][]redis.XMessage) []redis.XMessage {
	if len(lists) == 1 {
		return lists[0]
	}
	var out []redis.XMessage
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.SortStableFunc(out, func(a, b redis.XMessage) int {
		x, _ := parseStreamID(a.ID)
		y, _ := parseStreamID(b.ID)
		switch {
		case x.less(y):
			return -1
		case y.less(x):
			return 1
		}
		return 0
	})
	return out
}

// after returns the entries of nsp's streams after id, merged in order.
func (s *RedisStore) after(ctx context.Context, nsp string, id streamID) ([]redis.XMessage, error) {
	keys := s.streamKeys(nsp)
	p := s.cfg.Client.Pipeline()
	cmds := make([]*redis.XMessageSliceCmd, len(keys))
	for i, key := range keys {
		cmds[i] = p.XRangeN(ctx, key, "("+id.String(), "+", s.maxLen()*2+100)
	}
	_, _ = p.Exec(ctx)
	lists := make([][]redis.XMessage, len(keys))
	for i, c := range cmds {
		msgs, err := c.Result()
		if err != nil {
			return nil, fmt.Errorf("read %s after %s: %w", keys[i], id, err)
		}
		lists[i] = msgs
	}
	return mergeByID(lists), nil
}

// newest returns the newest offset stored for nsp; ok=false when none.
func (s *RedisStore) newest(ctx context.Context, nsp string) (streamID, bool, error) {
	var best streamID
	found := false
	for _, key := range s.streamKeys(nsp) {
		msgs, err := s.cfg.Client.XRevRangeN(ctx, key, "+", "-", 1).Result()
		if err != nil {
			return streamID{}, false, fmt.Errorf("read the newest entry of %s: %w", key, err)
		}
		if len(msgs) == 0 {
			continue
		}
		if id, ok := parseStreamID(msgs[0].ID); ok && (!found || best.less(id)) {
			best, found = id, true
		}
	}
	return best, found, nil
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
}

func encodeSession(sess hub.Session) []byte {
	data, _ := json.Marshal(sessionJSON{SID: sess.SID, PID: sess.PID, Namespace: sess.Namespace, User: sess.User,
		Rooms: sess.Rooms, DisconnectedAt: sess.DisconnectedAt.UnixMilli()})
	return data
}

// SaveSession stores sess for MaxAge after its DisconnectedAt.
func (s *RedisStore) SaveSession(ctx context.Context, sess hub.Session) error {
	ttl := s.cfg.MaxAge - time.Since(sess.DisconnectedAt)
	if sess.DisconnectedAt.IsZero() || ttl > s.cfg.MaxAge {
		ttl = s.cfg.MaxAge
	}
	if ttl <= 0 {
		return nil
	}
	if err := s.cfg.Client.Set(ctx, s.sessPrefix+sess.PID, encodeSession(sess), ttl).Err(); err != nil {
		return fmt.Errorf("bus: save session: %w", err)
	}
	return nil
}

// TakeSession returns and deletes the session pid; ok=false when it is
// unknown or expired.
func (s *RedisStore) TakeSession(ctx context.Context, pid string) (hub.Session, bool, error) {
	if pid == "" || len(pid) > 256 {
		return hub.Session{}, false, nil
	}
	data, err := s.cfg.Client.GetDel(ctx, s.sessPrefix+pid).Bytes()
	if errors.Is(err, redis.Nil) {
		return hub.Session{}, false, nil
	}
	if err != nil {
		return hub.Session{}, false, fmt.Errorf("bus: take session: %w", err)
	}
	var sj sessionJSON
	if err := json.Unmarshal(data, &sj); err != nil {
		return hub.Session{}, false, nil
	}
	at := time.UnixMilli(sj.DisconnectedAt)
	if time.Since(at) > s.cfg.MaxAge {
		return hub.Session{}, false, nil
	}
	return hub.Session{SID: sj.SID, PID: sj.PID, Namespace: sj.Namespace, User: sj.User, Rooms: sj.Rooms, DisconnectedAt: at}, true, nil
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
