package bus

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/hub/packet"
	"github.com/walcast/walcast/internal/backoff"
	"github.com/walcast/walcast/internal/logkey"
)

// Defaults for zero RedisConfig fields.
const (
	DefaultPrefix         = "socket.io"
	DefaultBatchSize      = 256
	DefaultRetryMin       = 50 * time.Millisecond
	DefaultRetryMax       = 1 * time.Second
	DefaultHealthInterval = 2 * time.Second
)

// RedisConfig configures a Redis bus.
type RedisConfig struct {
	// Client is the Redis connection (redis.NewClient(redis.ParseURL(url)));
	// required. The bus takes one extra connection from it for PSUBSCRIBE.
	Client redis.UniversalClient
	// Prefix is the adapter key prefix (Node's createAdapter "key" option,
	// createShardedAdapter's "channelPrefix"); "" = "socket.io".
	Prefix string
	// Sharded selects Redis 7 sharded pub/sub in the format of
	// @socket.io/redis-adapter's createShardedAdapter in "dynamic"
	// subscription mode: SPUBLISH of ClusterAdapter messages, one channel
	// per room, and each node SSUBSCRIBEs only to the rooms it has members
	// in (see hub.RoomObserver), so it receives nothing for the others.
	// false = classic pub/sub (createAdapter: PUBLISH, PSUBSCRIBE to every
	// channel of a namespace).
	Sharded bool
	// Namespaces are the namespaces this node serves and subscribes to;
	// nil/empty = ["/"].
	Namespaces []string
	// UID identifies this node's messages (they are not delivered twice);
	// "" = a random 6-character id, like the Node adapter's.
	UID string
	// Store, when set, receives each broadcast that carries an offset in the
	// same pipeline as its PUBLISH (see RedisStore), and lets a node that
	// lost its subscription for a while replay what it missed. nil = none.
	Store *RedisStore
	// Floor, when set, returns the offset up to which broadcasts count as
	// published by a predecessor when a namespace's recovery stream holds
	// none (a Redis that restarted without its data while the publishing
	// node restarted too). walcast serve gives the WAL position read at its
	// start: the slot re-sends the window its predecessor published, and
	// those events are stored again, not delivered (the clients that had
	// them reconnect, and recover them from the stream). "" = none.
	Floor func() string
	// BatchSize is the number of broadcasts per pipeline; 0 = 256.
	BatchSize int
	// RetryMin and RetryMax set the delay between publish attempts and
	// resubscribe attempts while Redis is unreachable: before attempt n,
	// d = RetryMin·2ⁿ capped at RetryMax, jittered over [d/2, d]; 0 = 50ms
	// and 1s.
	RetryMin, RetryMax time.Duration
	// HealthInterval is how long the subscription may stay silent before the
	// bus pings Redis to check it; 0 = 2s.
	HealthInterval time.Duration
	// AlwaysRooms are rooms this node receives whether or not it has
	// members in them (in sharded mode it subscribes to their channels from
	// the start): rooms whose broadcasts OnRemote or a hub mark handler
	// reads. nil = none.
	AlwaysRooms []string
	// Metrics are optional collectors from NewMetrics; nil = none.
	Metrics *Metrics
	// OnRemote, when set, is called with each broadcast received from another
	// node (or a Node emitter) right after it was delivered to the local hub,
	// on the bus's receive goroutine: it must not block, and must copy what it
	// keeps. walcast uses it to remember the leader's latest metrics. nil = none.
	OnRemote func(b *hub.Broadcast)
	// Logger receives the bus's logs; nil = slog.Default().
	Logger *slog.Logger
}

// Redis is the bus of a cluster of walcast nodes sharing one Redis.
//
// It does not subscribe to the adapter's request channel
// (<prefix>-request#<nsp>#): PUBSUB NUMSUB there does not count walcast nodes,
// so a Node server's fetchSockets(), allRooms() and serverCount() see only the
// Node servers, and answer at once instead of waiting for walcast. The
// consequence is that walcast's sockets are invisible to those calls, and
// socketsJoin/socketsLeave/disconnectSockets/serverSideEmit sent by Node
// (or by the emitter) do not reach walcast's sockets; broadcasts do.
type Redis struct {
	cfg      RedisConfig
	log      *slog.Logger
	local    hub.Local // set by Attach
	m        *Metrics
	patterns []string
	nsps     map[string]bool
	always   map[string]bool // RedisConfig.AlwaysRooms

	pubMu sync.Mutex // serializes Publish calls, so their order is kept
	buf   []byte     // encode buffer, guarded by pubMu

	pubOK atomic.Bool // the last publish attempt succeeded
	subOK atomic.Bool // subscribed

	lastMu sync.Mutex
	// recv is, per mark key (markKey: the namespace in classic mode, the
	// channel in sharded mode, where channels arrive on separate
	// connections), the highest offset delivered locally; pub is, per
	// namespace, the highest offset published or delivered, and floor the
	// newest stored offset read by prime: nothing at or below
	// max(pub) is published again, nothing at or below floor is delivered.
	recv  map[string]streamID
	pub   map[string]streamID
	floor map[string]streamID

	shard *shardSubs // sharded mode's subscriptions; nil in classic mode

	// On a cluster, where the streams are written a round trip before the
	// SPUBLISHes, sent is per namespace the highest offset whose SPUBLISH
	// Redis confirmed, and sentWritten the value last stored in Redis (see
	// RedisStore.publishedKey); guarded by pubMu.
	sent, sentWritten map[string]streamID
	twoPhase          bool // the client is a *redis.ClusterClient

	// primed is set once Publish has read each namespace's newest stored
	// offset into last (see prime); guarded by pubMu.
	primed bool
	// fillGen is the refill this node runs (see refill.go), 0 = none;
	// guarded by pubMu.
	fillGen uint64
}

var _ Bus = (*Redis)(nil)
var _ hub.Adapter = (*Redis)(nil)

// NewRedis returns a Redis bus for cfg; it does no I/O. Pass it to the hub
// as hub.Config.Adapter (hub.New attaches it) and call Run.
func NewRedis(cfg RedisConfig) (*Redis, error) { return newRedis(cfg) }

// Attach implements hub.Adapter: local receives every broadcast.
func (r *Redis) Attach(local hub.Local) { r.local = local }

// newRedis builds the bus.
func newRedis(cfg RedisConfig) (*Redis, error) {
	var errs []error
	if cfg.Client == nil {
		errs = append(errs, errors.New("bus: RedisConfig.Client is required"))
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if len(cfg.Namespaces) == 0 {
		cfg.Namespaces = []string{"/"}
	}
	if cfg.UID == "" {
		cfg.UID = randomUID()
	}
	if cfg.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("bus: RedisConfig.BatchSize %d is negative", cfg.BatchSize))
	} else if cfg.BatchSize == 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	for _, d := range []struct {
		name string
		p    *time.Duration
		def  time.Duration
	}{{"RetryMin", &cfg.RetryMin, DefaultRetryMin}, {"RetryMax", &cfg.RetryMax, DefaultRetryMax},
		{"HealthInterval", &cfg.HealthInterval, DefaultHealthInterval}} {
		if *d.p < 0 {
			errs = append(errs, fmt.Errorf("bus: RedisConfig.%s %v is negative", d.name, *d.p))
		} else if *d.p == 0 {
			*d.p = d.def
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	r := &Redis{
		cfg:    cfg,
		log:    cfg.Logger.With(logkey.Component, "bus"),
		m:      cfg.Metrics,
		nsps:   make(map[string]bool),
		always: make(map[string]bool),
		recv:   make(map[string]streamID),
		pub:    make(map[string]streamID),
		floor:  make(map[string]streamID),
		sent:   make(map[string]streamID),

		sentWritten: make(map[string]streamID),
	}
	for _, n := range cfg.Namespaces {
		n = packet.Namespace(n)
		if n[0] != '/' {
			n = "/" + n
		}
		r.nsps[n] = true
		r.patterns = append(r.patterns, cfg.Prefix+"#"+n+"#*")
	}
	for _, room := range cfg.AlwaysRooms {
		r.always[room] = true
	}
	if cfg.Sharded {
		r.shard = newShardSubs(r)
	}
	_, r.twoPhase = cfg.Client.(*redis.ClusterClient)
	r.pubOK.Store(true)
	if cfg.Store != nil {
		cfg.Store.fedByBus.Store(true)
		cfg.Store.m = cfg.Metrics
	}
	return r, nil
}

// UID returns the id this node puts in its messages.
func (r *Redis) UID() string { return r.cfg.UID }

// Healthy reports whether the bus is subscribed and the last publish
// succeeded; for /readyz.
func (r *Redis) Healthy() bool { return r.subOK.Load() && r.pubOK.Load() }

// Publish sends bs to every node, then delivers them locally. It returns nil
// once Redis accepted every PUBLISH; while Redis is unreachable it retries
// with backoff until ctx ends. A retry after a partial failure can send a
// broadcast twice; receivers drop a repeated offset.
func (r *Redis) Publish(ctx context.Context, bs []*hub.Broadcast) error {
	if len(bs) == 0 {
		return nil
	}
	start := time.Now()
	r.pubMu.Lock()
	defer r.pubMu.Unlock()
	if err := r.primeRetry(ctx); err != nil {
		return err
	}

	// A broadcast whose offset is not above what this node has delivered
	// was published before: by this node's predecessor (the slot re-sends
	// what it had not confirmed when a leader stopped) or by another node.
	// It is stored again (a no-op when the stream still holds it, and the
	// rebuild when Redis lost it) but neither published nor delivered.
	old := r.published(bs)

	// Encode everything once, up front: retries resend the same bytes.
	r.buf = r.buf[:0]
	ends := make([]int, len(bs))
	for i, b := range bs {
		var err error
		if r.buf, err = r.encode(r.buf, b); err != nil {
			return err
		}
		ends[i] = len(r.buf)
	}
	msgs := make([][]byte, len(bs))
	prev := 0
	for i, end := range ends {
		msgs[i] = r.buf[prev:end:end]
		prev = end
	}

	for lo := 0; lo < len(bs); lo += r.cfg.BatchSize {
		hi := min(lo+r.cfg.BatchSize, len(bs))
		var oldBatch []bool
		if old != nil {
			oldBatch = old[lo:hi]
		}
		err := r.publishBatch(ctx, bs[lo:hi], msgs[lo:hi], oldBatch)
		var lost *StreamsLost
		if err != nil && (!errors.As(err, &lost) || !lost.published) {
			return err
		}
		// Deliver locally only what Redis accepted, so a retry never delivers
		// twice here. That includes a batch published in the pipeline that
		// found the streams lost: delivered here too, it counts as published
		// (the refill stores it only), so this node's clients are not the
		// only ones without it should another node take over before this
		// one publishes the window again.
		for i, b := range bs[lo:hi] {
			if oldBatch != nil && oldBatch[i] {
				r.m.drop("republished")
				continue
			}
			r.deliver(b, false)
		}
		if err != nil {
			return err
		}
	}
	r.m.observePublish(time.Since(start), len(bs))
	return nil
}

// publishBatch pipelines one batch, retrying until Redis accepts it or ctx ends.
func (r *Redis) publishBatch(ctx context.Context, bs []*hub.Broadcast, msgs [][]byte, old []bool) error {
	var lastLog time.Time
	for attempt := 0; ; attempt++ {
		err := r.publishOnce(ctx, bs, msgs, old)
		var lost *StreamsLost
		if errors.As(err, &lost) {
			return err // not retried: the caller publishes the window again
		}
		if err == nil {
			if !r.pubOK.Swap(true) {
				r.log.Info("redis publish recovered", "attempts", attempt+1)
				r.updateUp()
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("bus: publish %d broadcasts: %w (last error: %v)", len(bs), ctx.Err(), err)
		}
		if r.pubOK.Swap(false) {
			r.updateUp()
		}
		r.m.retry()
		if time.Since(lastLog) > 10*time.Second {
			r.log.Warn("redis publish failed, retrying", logkey.Err, err, logkey.Attempt, attempt+1)
			lastLog = time.Now()
		}
		if serr := backoff.Sleep(ctx, backoff.Delay(r.cfg.RetryMin, r.cfg.RetryMax, attempt)); serr != nil {
			return fmt.Errorf("bus: publish %d broadcasts: %w (last error: %v)", len(bs), serr, err)
		}
	}
}

// old[i] (when old is not nil) marks a broadcast that is stored only.
func (r *Redis) publishOnce(ctx context.Context, bs []*hub.Broadcast, msgs [][]byte, old []bool) error {
	p := r.cfg.Client.Pipeline()
	// On one Redis the pipeline keeps each XADD before its PUBLISH. On a
	// cluster the stream and the channel may live on different primaries,
	// so the streams are written first, in a round trip of their own: a
	// node replaying a channel it resubscribed finds every packet that was
	// published on it.
	pp := p
	twoPhase := r.twoPhase
	if twoPhase {
		pp = r.cfg.Client.Pipeline()
	}
	now := time.Now()
	// Read the fill key before anything this pipeline stores: a value other
	// than the expected one means the streams lost what they held.
	var fill *redis.StringCmd
	if r.refillsStreams(bs) {
		fill = p.Get(ctx, r.cfg.Store.fillKey())
	}
	adds := make([]*redis.StringCmd, len(bs))
	pubs := make([]*redis.IntCmd, 0, len(bs))
	for i, b := range bs {
		if r.cfg.Store != nil && b.Offset != "" {
			if _, ok := parseStreamID(b.Offset); ok {
				at := now
				if old != nil && old[i] && !b.CommitTime.IsZero() {
					at = b.CommitTime // a refill: the entry ages from its commit
				}
				adds[i] = r.cfg.Store.addCmds(ctx, p, b, msgs[i], at)
			}
		}
		if old == nil || !old[i] {
			if r.cfg.Sharded {
				pubs = append(pubs, pp.SPublish(ctx, shardedChannel(r.cfg.Prefix, b), msgs[i]))
			} else {
				pubs = append(pubs, pp.Publish(ctx, channelFor(r.cfg.Prefix, b), msgs[i]))
			}
		}
	}
	if twoPhase {
		// With the streams, record what the previous batches published: a
		// new leader must not take a packet that was stored but never
		// published (its predecessor died in between) for one that was.
		written := make(map[string]streamID)
		if r.cfg.Store != nil {
			for nsp, id := range r.sent {
				if r.sentWritten[nsp] != id {
					p.Set(ctx, r.cfg.Store.publishedKey(nsp), id.String(), r.cfg.Store.cfg.MaxAge)
					written[nsp] = id
				}
			}
		}
		if err := r.checkAdds(ctx, p, bs, adds); err != nil {
			return err
		}
		// The fill key was read in the streams' round trip: on a mismatch
		// nothing of this batch is published.
		if fill != nil {
			if err := r.checkFill(ctx, fill); err != nil {
				return err
			}
		}
		for nsp, id := range written {
			r.sentWritten[nsp] = id
		}
	}
	_, _ = pp.Exec(ctx)
	if !twoPhase && fill != nil {
		if err := r.checkFill(ctx, fill); err != nil {
			// On one Redis the PUBLISHes ran in the same pipeline as the
			// read of the fill key: when they all succeeded, every other
			// node has this batch now, and Publish delivers it here too.
			var lost *StreamsLost
			if errors.As(err, &lost) {
				lost.published = !slices.ContainsFunc(pubs, func(c *redis.IntCmd) bool { return c.Err() != nil })
			}
			return err
		}
	}
	for _, c := range pubs {
		if err := c.Err(); err != nil {
			return fmt.Errorf("publish to %s: %w", c.Args()[1], err)
		}
	}
	if twoPhase {
		for _, b := range bs {
			if id, ok := parseStreamID(b.Offset); ok {
				raise(r.sent, packet.Namespace(b.Namespace), id)
			}
		}
		return nil
	}
	return r.checkAdds(ctx, nil, bs, adds)
}

// checkAdds runs p (when not nil), then checks the XADD replies.
func (r *Redis) checkAdds(ctx context.Context, p redis.Pipeliner, bs []*hub.Broadcast, adds []*redis.StringCmd) error {
	if p != nil {
		_, _ = p.Exec(ctx)
	}
	for i, c := range adds {
		if c == nil {
			continue
		}
		if err := c.Err(); err != nil && !isStaleID(err) {
			// PUBLISH can succeed where XADD fails (Redis accepts pub/sub
			// while it is still LOADING its dataset after a restart). A
			// packet published but not stored could not be replayed to a node
			// that was not subscribed yet, so retry the batch: receivers drop
			// the repeated offsets.
			r.m.storeFail()
			return fmt.Errorf("add offset %s to the recovery stream: %w", bs[i].Offset, err)
		}
	}
	return nil
}

// primeRetry runs prime until it succeeds or ctx ends, with the publish
// backoff; the caller holds pubMu.
func (r *Redis) primeRetry(ctx context.Context) error {
	var lastLog time.Time
	for attempt := 0; !r.primed; attempt++ {
		err := r.prime(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("bus: read the newest stored offsets: %w (last error: %v)", ctx.Err(), err)
		}
		if r.pubOK.Swap(false) {
			r.updateUp()
		}
		if time.Since(lastLog) > 10*time.Second {
			r.log.Warn("redis: reading the newest stored offsets failed, retrying", logkey.Err, err, logkey.Attempt, attempt+1)
			lastLog = time.Now()
		}
		if serr := backoff.Sleep(ctx, backoff.Delay(r.cfg.RetryMin, r.cfg.RetryMax, attempt)); serr != nil {
			return fmt.Errorf("bus: read the newest stored offsets: %w (last error: %v)", serr, err)
		}
	}
	return nil
}

// prime raises each namespace's de-duplication mark to the newest offset in
// its recovery stream (or to the Floor when the stream is empty), once per
// bus, before this node publishes anything. A
// node that starts empty would otherwise deliver again, to clients that had
// just recovered up to that offset, what the replication slot re-sends after
// its predecessor stopped. Without a Store there is no stream and no mark.
func (r *Redis) prime(ctx context.Context) error {
	if r.cfg.Store == nil {
		r.primed = true
		return nil
	}
	twoPhase := r.twoPhase
	for nsp := range r.nsps {
		id, ok, err := r.cfg.Store.newest(ctx, nsp)
		if err != nil {
			return err
		}
		if twoPhase {
			// The newest stored packet may not have been published: take the
			// newest one known published instead, when recorded.
			v, err := r.cfg.Client.Get(ctx, r.cfg.Store.publishedKey(nsp)).Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				return fmt.Errorf("read %s: %w", r.cfg.Store.publishedKey(nsp), err)
			}
			if p, pok := parseStreamID(v); pok {
				id, ok = p, true
			}
		}
		if !ok && r.cfg.Floor != nil {
			id, ok = parseStreamID(r.cfg.Floor())
		}
		if !ok {
			continue
		}
		r.lastMu.Lock()
		raise(r.pub, nsp, id)
		raise(r.floor, nsp, id)
		if !r.cfg.Sharded {
			raise(r.recv, nsp, id)
		}
		r.lastMu.Unlock()
	}
	r.primed = true
	return nil
}

// published marks the broadcasts of bs whose offset is not above their
// namespace's mark; nil when there is none.
func (r *Redis) published(bs []*hub.Broadcast) []bool {
	var old []bool
	r.lastMu.Lock()
	defer r.lastMu.Unlock()
	for i, b := range bs {
		if b.Offset == "" {
			continue
		}
		id, ok := parseStreamID(b.Offset)
		if !ok {
			continue
		}
		if last, seen := r.pub[packet.Namespace(b.Namespace)]; seen && !last.less(id) {
			if old == nil {
				old = make([]bool, len(bs))
			}
			old[i] = true
		}
	}
	return old
}

// raise sets m[k] to id unless it holds a higher one.
func raise(m map[string]streamID, k string, id streamID) {
	if last, seen := m[k]; !seen || last.less(id) {
		m[k] = id
	}
}

// markKey is the de-duplication key of b (see Redis.recv).
func (r *Redis) markKey(b *hub.Broadcast) string {
	if r.cfg.Sharded {
		return shardedChannel(r.cfg.Prefix, b)
	}
	return packet.Namespace(b.Namespace)
}

// deliver hands b to the local hub unless its offset was delivered already.
func (r *Redis) deliver(b *hub.Broadcast, remote bool) bool {
	nsp := packet.Namespace(b.Namespace)
	if b.Offset != "" {
		if id, ok := parseStreamID(b.Offset); ok {
			key := r.markKey(b)
			r.lastMu.Lock()
			last, seen := r.recv[key]
			floor, floored := r.floor[nsp]
			if r.cfg.Sharded && seen {
				// The floor is for channels this node has no mark of; on
				// the others the mark says what was delivered here.
				floored = false
			}
			if (seen && !last.less(id)) || (floored && !floor.less(id)) {
				r.lastMu.Unlock()
				r.m.drop("duplicate")
				if r.log.Enabled(context.Background(), slog.LevelDebug) {
					r.log.Debug("drop duplicate broadcast", "offset", b.Offset, "last", last.String(), "from_other_node", remote)
				}
				return false
			}
			r.recv[key] = id
			if !remote || !r.twoPhase {
				// On a cluster the channels of one batch live on different
				// primaries: that a later offset arrived does not mean that
				// every earlier one was published (see sent).
				raise(r.pub, nsp, id)
			}
			r.lastMu.Unlock()
		}
	}
	r.local.Deliver(b)
	if remote {
		r.m.observeIn(b.CommitTime)
		if r.cfg.OnRemote != nil {
			r.cfg.OnRemote(b)
		}
	}
	return true
}

// Run subscribes to every namespace's broadcasts and delivers them to the
// local hub until ctx ends. It resubscribes when Redis returns and, with a
// Store, first delivers what it missed meanwhile. It returns nil when ctx
// ends.
func (r *Redis) Run(ctx context.Context) error {
	if r.cfg.Store != nil && !r.cfg.Store.cfg.SessionsElsewhere {
		var wg sync.WaitGroup
		defer wg.Wait()
		lctx, stop := context.WithCancel(ctx)
		defer stop()
		wg.Go(func() { r.cfg.Store.RunLive(lctx) })
	}
	if r.shard != nil {
		return r.shard.run(ctx)
	}
	ps := r.cfg.Client.PSubscribe(ctx, r.patterns...)
	defer func() { ps.Close() }()
	r.updateUp()
	defer func() { r.subOK.Store(false); r.updateUp() }()

	var (
		failures  int
		lastLog   time.Time
		wasDown   bool // a replay is due at the next subscription confirmation
		idleSince = time.Now()
		pinged    bool
	)
	for ctx.Err() == nil {
		msg, err := ps.ReceiveTimeout(ctx, 500*time.Millisecond)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if time.Since(idleSince) < r.cfg.HealthInterval {
					continue
				}
				if pinged {
					// No pong within a health interval: the connection is dead.
					err = errors.New("no reply to ping")
				} else {
					pinged = true
					if perr := ps.Ping(ctx); perr == nil {
						idleSince = time.Now()
						continue
					} else {
						err = perr
					}
				}
			}
			if r.subOK.Swap(false) {
				r.updateUp()
			}
			wasDown = true
			if time.Since(lastLog) > 10*time.Second {
				r.log.Warn("redis subscription lost, resubscribing", logkey.Err, err)
				lastLog = time.Now()
			}
			// A fresh PubSub reconnects and resubscribes cleanly.
			ps.Close()
			ps = r.cfg.Client.PSubscribe(ctx, r.patterns...)
			if err := backoff.Sleep(ctx, backoff.Delay(r.cfg.RetryMin, r.cfg.RetryMax, failures)); err != nil {
				break
			}
			failures++
			idleSince, pinged = time.Now(), false
			continue
		}
		idleSince, pinged = time.Now(), false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "psubscribe" && m.Count == len(r.patterns) && !r.subOK.Load() {
				r.subOK.Store(true)
				r.updateUp()
				if failures > 0 || wasDown {
					r.log.Info("redis subscription restored")
				}
				failures = 0
				if wasDown {
					// Deliver nothing live before the replay succeeded: a live
					// message would move the de-duplication mark past the gap.
					for attempt := 0; ctx.Err() == nil; attempt++ {
						err := r.replayMissed(ctx)
						if err == nil {
							break
						}
						r.log.Warn("replay after resubscribe failed, retrying", logkey.Err, err, logkey.Attempt, attempt+1)
						_ = backoff.Sleep(ctx, backoff.Delay(r.cfg.RetryMin, r.cfg.RetryMax, attempt))
					}
					wasDown = false
				}
			}
		case *redis.Pong:
		case *redis.Message:
			r.receive(m)
		}
	}
	return nil
}

// receive decodes one bus message and delivers it locally. A message on a
// room's channel (<prefix>#<nsp>#<room>#) for a room without members here is
// dropped before it is decoded.
func (r *Redis) receive(m *redis.Message) {
	if nsp, room, ok := r.splitChannel(m.Channel); ok && room != "" && !r.always[room] && !r.local.HasRoom(nsp, room) {
		r.m.drop("no_members")
		return
	}
	dm, err := decodeMessage([]byte(m.Payload))
	if err != nil {
		r.m.drop("decode")
		if r.log.Enabled(context.Background(), slog.LevelDebug) {
			r.log.Debug("drop undecodable bus message", "channel", m.Channel, logkey.Err, err)
		}
		return
	}
	if dm.uid == r.cfg.UID {
		return // published (and delivered) by this node
	}
	if !r.nsps[dm.b.Namespace] || !strings.HasPrefix(m.Channel, r.cfg.Prefix+"#"+dm.b.Namespace+"#") {
		r.m.drop("namespace")
		return
	}
	r.deliver(dm.b, true)
}

// replayMissed delivers, after a resubscribe, the stored packets this node
// missed while it was not subscribed.
func (r *Redis) replayMissed(ctx context.Context) error {
	if r.cfg.Store == nil {
		return nil
	}
	if r.cfg.Store.cfg.Refill {
		// A Redis that came back empty is being refilled by the leader: what
		// this node missed is in the streams only once that ends.
		if _, err := r.cfg.Store.waitFilled(ctx); err != nil {
			return err
		}
	}
	for nsp := range r.nsps {
		r.lastMu.Lock()
		last, ok := r.recv[nsp]
		r.lastMu.Unlock()
		if !ok {
			continue
		}
		msgs, err := r.cfg.Store.after(ctx, nsp, last)
		if err != nil {
			return err
		}
		r.log.Debug("replay after resubscribe", logkey.Namespace, nsp, "after", last.String(), "entries", len(msgs))
		n := 0
		for _, x := range msgs {
			b, err := entryBroadcast(x)
			if err != nil {
				continue
			}
			if r.deliver(b, true) {
				n++
			}
		}
		if n > 0 {
			r.m.replay(n)
			r.log.Info("replayed broadcasts missed while unsubscribed", logkey.Namespace, nsp, logkey.Count, n)
		}
	}
	return nil
}

// splitChannel splits <prefix>#<nsp>#[<room>#] into its namespace and room
// ("" for the namespace's own channel); ok=false for another channel.
func (r *Redis) splitChannel(ch string) (nsp, room string, ok bool) {
	rest, ok := strings.CutPrefix(ch, r.cfg.Prefix+"#")
	if !ok {
		return "", "", false
	}
	nsp, rest, ok = strings.Cut(rest, "#")
	if !ok || !r.nsps[nsp] {
		return "", "", false
	}
	if rest == "" {
		return nsp, "", true
	}
	room, ok = strings.CutSuffix(rest, "#")
	return nsp, room, ok
}

func (r *Redis) updateUp() { r.m.setUp(r.Healthy()) }

// randomUID returns a 6-character id like the Node adapter's uid2(6).
func randomUID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	var b [6]byte
	_, _ = crand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:])
}
