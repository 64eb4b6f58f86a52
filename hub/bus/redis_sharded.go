package bus

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/hub/packet"
	"github.com/walcast/walcast/internal/backoff"
	"github.com/walcast/walcast/internal/jsonw"
	"github.com/walcast/walcast/internal/logkey"
)

// Sharded mode (RedisConfig.Sharded). Each node SSUBSCRIBEs to
//
//	<prefix>#<nsp>#           broadcasts to the whole namespace or to several
//	                          rooms, and the requests of Node servers
//	<prefix>#<nsp>#<uid>#     responses to this node (none are expected: walcast
//	                          sends no requests), as createShardedAdapter does
//	<prefix>#<nsp>#<room>#    one per room with members on this node, from the
//	                          hub's RoomObserver calls
//
// On a Redis Cluster a channel lives on the shard that owns its slot, so the
// subscriptions are spread over one connection per primary (shardConn). The
// manager goroutine (shardSubs.run) decides which channel goes where; each
// connection's goroutine only receives. A channel whose connection failed, or
// whose slot moved (Redis sends SUNSUBSCRIBE), is subscribed again on its
// current owner and, once confirmed and before anything live on it is
// delivered, its broadcasts missed meanwhile are replayed from the recovery
// stream.

// shardEvent is what a connection's goroutine reports to the manager.
type shardEvent struct {
	addr    string
	channel string // "" = the whole connection failed
	err     error
}

type shardSubs struct {
	r       *Redis
	fixed   []string // the namespaces' own and response channels
	mu      sync.Mutex
	rooms   map[string]struct{} // channels of rooms with members here
	changed chan struct{}
}

func newShardSubs(r *Redis) *shardSubs {
	s := &shardSubs{r: r, rooms: make(map[string]struct{}), changed: make(chan struct{}, 1)}
	for nsp := range r.nsps {
		s.fixed = append(s.fixed, r.cfg.Prefix+"#"+nsp+"#", r.cfg.Prefix+"#"+nsp+"#"+r.cfg.UID+"#")
		for room := range r.always {
			if len(room) != socketIDLen {
				s.fixed = append(s.fixed, r.cfg.Prefix+"#"+nsp+"#"+room+"#")
			}
		}
	}
	return s
}

// RoomChanged implements hub.RoomObserver: in sharded mode the node
// subscribes to a room's channel while the room has members here. It does
// not block.
func (r *Redis) RoomChanged(nsp, room string, members bool) {
	s := r.shard
	if s == nil || !r.nsps[nsp] || len(room) == socketIDLen || r.always[room] {
		return
	}
	ch := r.cfg.Prefix + "#" + nsp + "#" + room + "#"
	s.mu.Lock()
	if members {
		s.rooms[ch] = struct{}{}
	} else {
		delete(s.rooms, ch)
	}
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

func (s *shardSubs) want() map[string]struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := make(map[string]struct{}, len(s.rooms)+len(s.fixed))
	for ch := range s.rooms {
		w[ch] = struct{}{}
	}
	for _, ch := range s.fixed {
		w[ch] = struct{}{}
	}
	return w
}

// run keeps the subscriptions in step with the rooms until ctx ends.
func (s *shardSubs) run(ctx context.Context) error {
	r := s.r
	var (
		conns    = make(map[string]*shardConn) // by primary address
		where    = make(map[string]string)     // channel -> address subscribed on
		replay   = make(map[string]streamID)   // channels to replay once subscribed: from
		events   = make(chan shardEvent, 64)
		failures int
		lastLog  time.Time
		wg       sync.WaitGroup
	)
	defer func() {
		for _, c := range conns {
			c.close()
		}
		wg.Wait()
		r.subOK.Store(false)
		r.updateUp()
	}()
	cluster, _ := r.cfg.Client.(*redis.ClusterClient)
	owner := func(ch string) (string, redis.UniversalClient, error) {
		if cluster == nil {
			return "", r.cfg.Client, nil
		}
		c, err := cluster.MasterForKey(ctx, ch)
		if err != nil {
			return "", nil, err
		}
		return c.Options().Addr, c, nil
	}
	lost := func(ch string) {
		// Replay from what was delivered on it, or else from everything
		// this node has seen: older broadcasts of ch were delivered or
		// published before it was subscribed.
		r.lastMu.Lock()
		from, ok := r.recv[ch]
		if !ok {
			nsp, _, _ := r.splitChannel(ch)
			from = r.pub[nsp]
		}
		r.lastMu.Unlock()
		replay[ch] = from
		delete(where, ch)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		want := s.want()
		for ch, addr := range where {
			if _, ok := want[ch]; !ok {
				if c := conns[addr]; c != nil {
					c.unsubscribe(ctx, ch)
				}
				delete(where, ch)
				delete(replay, ch)
			}
		}
		var failed error
		for ch := range want {
			if _, ok := where[ch]; ok {
				continue
			}
			addr, client, err := owner(ch)
			if err != nil {
				failed = err
				continue
			}
			c := conns[addr]
			if c == nil {
				c = newShardConn(r, addr, client, events)
				conns[addr] = c
				wg.Go(func() { c.receive(ctx) })
			}
			from, again := replay[ch]
			delete(replay, ch)
			if err := c.subscribe(ctx, ch, from, again); err != nil {
				failed = err
				replay[ch] = from
				continue
			}
			where[ch] = addr
		}
		ok := failed == nil && len(where) == len(want)
		for _, c := range conns {
			ok = ok && c.confirmedAll()
		}
		if r.subOK.Swap(ok) != ok {
			r.updateUp()
			if ok && failures > 0 {
				r.log.Info("redis sharded subscriptions restored", "channels", len(where))
			}
		}
		if ok {
			failures = 0
		} else if failed != nil && time.Since(lastLog) > 10*time.Second {
			r.log.Warn("redis sharded subscribe failed, retrying", logkey.Err, failed)
			lastLog = time.Now()
		}

		select {
		case <-ctx.Done():
			return nil
		case <-s.changed:
		case <-tick.C:
		case ev := <-events:
			if cluster != nil {
				cluster.ReloadState(ctx)
			}
			if ev.channel != "" {
				// The slot moved (or the owner refused it): subscribe again
				// where it lives now.
				if where[ev.channel] == ev.addr {
					lost(ev.channel)
				}
				continue
			}
			c := conns[ev.addr]
			if c == nil {
				continue
			}
			c.close()
			delete(conns, ev.addr)
			for ch, addr := range where {
				if addr == ev.addr {
					lost(ch)
				}
			}
			if r.subOK.Swap(false) {
				r.updateUp()
			}
			if time.Since(lastLog) > 10*time.Second {
				r.log.Warn("redis shard subscription lost, resubscribing", logkey.Addr, ev.addr, logkey.Err, ev.err)
				lastLog = time.Now()
			}
			if backoff.Sleep(ctx, backoff.Delay(r.cfg.RetryMin, r.cfg.RetryMax, failures)) != nil {
				return nil
			}
			failures++
		}
	}
}

// shardConn is one subscription connection, to one primary.
type shardConn struct {
	r      *Redis
	addr   string
	ps     *redis.PubSub
	events chan<- shardEvent
	stop   context.CancelFunc

	mu     sync.Mutex
	subs   map[string]bool     // requested channels: confirmed
	replay map[string]streamID // requested channels to replay when confirmed
}

func newShardConn(r *Redis, addr string, client redis.UniversalClient, events chan<- shardEvent) *shardConn {
	return &shardConn{r: r, addr: addr, ps: client.SSubscribe(context.Background()), events: events,
		subs: make(map[string]bool), replay: make(map[string]streamID)}
}

func (c *shardConn) subscribe(ctx context.Context, ch string, from streamID, replay bool) error {
	c.mu.Lock()
	c.subs[ch] = false
	if replay {
		c.replay[ch] = from
	}
	c.mu.Unlock()
	// One channel per command: on a cluster the channels of one SSUBSCRIBE
	// must share a slot.
	if err := c.ps.SSubscribe(ctx, ch); err != nil {
		c.mu.Lock()
		delete(c.subs, ch)
		delete(c.replay, ch)
		c.mu.Unlock()
		return err
	}
	return nil
}

func (c *shardConn) unsubscribe(ctx context.Context, ch string) {
	c.mu.Lock()
	delete(c.subs, ch)
	delete(c.replay, ch)
	c.mu.Unlock()
	_ = c.ps.SUnsubscribe(ctx, ch)
}

func (c *shardConn) confirmedAll() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ok := range c.subs {
		if !ok {
			return false
		}
	}
	return true
}

func (c *shardConn) close() { _ = c.ps.Close() }

func (c *shardConn) report(ctx context.Context, ch string, err error) {
	select {
	case c.events <- shardEvent{addr: c.addr, channel: ch, err: err}:
	case <-ctx.Done():
	}
}

// receive delivers what arrives on the connection until it fails or ctx ends.
func (c *shardConn) receive(ctx context.Context) {
	r := c.r
	idleSince, pinged := time.Now(), false
	for ctx.Err() == nil {
		msg, err := c.ps.ReceiveTimeout(ctx, 500*time.Millisecond)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, redis.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if time.Since(idleSince) < r.cfg.HealthInterval {
					continue
				}
				if !pinged {
					pinged = true
					if perr := c.ps.Ping(ctx); perr == nil {
						continue
					} else {
						err = perr
					}
				} else {
					err = errors.New("no reply to ping")
				}
			}
			var rerr redis.Error
			if errors.As(err, &rerr) && (strings.HasPrefix(rerr.Error(), "MOVED") || strings.HasPrefix(rerr.Error(), "ASK")) {
				// A channel requested here belongs to another primary now.
				for _, ch := range c.unconfirmed() {
					c.report(ctx, ch, err)
				}
				continue
			}
			c.report(ctx, "", err)
			return
		}
		idleSince, pinged = time.Now(), false
		switch m := msg.(type) {
		case *redis.Subscription:
			c.mu.Lock()
			_, requested := c.subs[m.Channel]
			switch m.Kind {
			case "ssubscribe":
				if requested {
					c.subs[m.Channel] = true
				}
			case "sunsubscribe":
				if requested {
					// Not asked for: the slot migrated to another primary.
					delete(c.subs, m.Channel)
					c.mu.Unlock()
					c.report(ctx, m.Channel, nil)
					continue
				}
			}
			var due map[string]streamID
			if m.Kind == "ssubscribe" && len(c.replay) > 0 {
				// Nothing live of these channels has been read yet: it
				// comes after their confirmations on this connection.
				due, c.replay = c.replay, make(map[string]streamID)
			}
			c.mu.Unlock()
			if due != nil {
				r.replayChannels(ctx, due)
			}
		case *redis.Message:
			r.receiveSharded(ctx, m)
		}
	}
}

func (c *shardConn) unconfirmed() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for ch, ok := range c.subs {
		if !ok {
			out = append(out, ch)
			delete(c.subs, ch)
		}
	}
	return out
}

// replayChannels delivers the stored broadcasts of channels (each after its
// own mark, or after from when it has none) that this node missed.
func (r *Redis) replayChannels(ctx context.Context, channels map[string]streamID) {
	if r.cfg.Store == nil {
		return
	}
	byNsp := make(map[string]streamID)
	for ch, from := range channels {
		nsp, _, ok := r.splitChannel(ch)
		if !ok {
			continue
		}
		r.lastMu.Lock()
		if m, seen := r.recv[ch]; seen && from.less(m) {
			from = m
		}
		r.lastMu.Unlock()
		if lo, seen := byNsp[nsp]; !seen || from.less(lo) {
			byNsp[nsp] = from
		}
	}
	for nsp, from := range byNsp {
		var msgs []redis.XMessage
		var err error
		for attempt := 0; ctx.Err() == nil; attempt++ {
			if msgs, err = r.cfg.Store.after(ctx, nsp, from); err == nil {
				break
			}
			r.log.Warn("replay after resubscribe failed, retrying", logkey.Err, err, logkey.Attempt, attempt+1)
			if attempt >= 5 || backoff.Sleep(ctx, backoff.Delay(r.cfg.RetryMin, r.cfg.RetryMax, attempt)) != nil {
				return
			}
		}
		n := 0
		for _, x := range msgs {
			b, err := entryBroadcast(x)
			if err != nil {
				continue
			}
			if _, ok := channels[shardedChannel(r.cfg.Prefix, b)]; !ok {
				continue
			}
			if r.deliver(b, true) {
				n++
			}
		}
		if n > 0 {
			r.m.replay(n)
			r.log.Info("replayed broadcasts missed while unsubscribed", logkey.Namespace, nsp, logkey.Count, n, "channels", len(channels))
		}
	}
}

// receiveSharded handles one message of the sharded adapter's channels.
func (r *Redis) receiveSharded(ctx context.Context, m *redis.Message) {
	nsp, room, ok := r.splitChannel(m.Channel)
	if !ok {
		r.m.drop("namespace")
		return
	}
	if room == r.cfg.UID {
		return // a response; walcast sends no requests
	}
	if room != "" && !r.always[room] && !r.local.HasRoom(nsp, room) {
		// Left since: not decoded.
		r.m.drop("no_members")
		return
	}
	cm, err := packet.ParseClusterMessage([]byte(m.Payload))
	if err != nil {
		r.m.drop("decode")
		if r.log.Enabled(ctx, slog.LevelDebug) {
			r.log.Debug("drop undecodable bus message", "channel", m.Channel, logkey.Err, err)
		}
		return
	}
	if cm.UID == r.cfg.UID {
		return
	}
	if cm.Namespace != nsp {
		r.m.drop("namespace")
		return
	}
	switch cm.Type {
	case packet.ClusterBroadcast:
		if cm.RequestID != "" {
			// A broadcast with acknowledgements: walcast delivers it without
			// asking its clients to acknowledge, and says so (0 clients).
			r.respond(ctx, nsp, cm.UID, appendClientCount(nil, r.cfg.UID, nsp, cm.RequestID))
		}
		r.deliver(fromAdapter(cm.Broadcast).b, true)
	case packet.ClusterFetchSockets:
		socks := r.local.Sockets(nsp, cm.Rooms, cm.Except)
		out := make([]packet.ClusterSocket, len(socks))
		now := time.Now()
		for i, s := range socks {
			out[i] = packet.ClusterSocket{ID: s.ID, Rooms: s.Rooms, Address: s.RemoteAddr, Time: now}
		}
		r.respond(ctx, nsp, cm.UID, packet.AppendFetchSocketsResponse(nil, r.cfg.UID, nsp, cm.RequestID, out))
	case packet.ClusterServerSideEmit:
		if cm.RequestID != "" {
			// walcast has no server-side handlers: it answers null, so that
			// the sender does not wait for its timeout.
			r.respond(ctx, nsp, cm.UID, appendEmitResponse(nil, r.cfg.UID, nsp, cm.RequestID))
		}
	default:
		// socketsJoin, socketsLeave, disconnectSockets and heartbeats are
		// not applied to walcast's sockets.
		r.m.drop("unsupported")
	}
}

// respond publishes a response on the requester's channel, off the receive
// goroutine.
func (r *Redis) respond(ctx context.Context, nsp, requester string, msg []byte) {
	ch := r.cfg.Prefix + "#" + nsp + "#" + requester + "#"
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if err := r.cfg.Client.SPublish(ctx, ch, msg).Err(); err != nil {
			r.log.Debug("publish response", "channel", ch, logkey.Err, err)
		}
	}()
}

func appendClientCount(dst []byte, uid, nsp, requestID string) []byte {
	return appendResponse(dst, uid, nsp, packet.ClusterBroadcastClientCount, requestID, `"clientCount":0`)
}

func appendEmitResponse(dst []byte, uid, nsp, requestID string) []byte {
	return appendResponse(dst, uid, nsp, packet.ClusterServerSideEmitResponse, requestID, `"packet":null`)
}

func appendResponse(dst []byte, uid, nsp string, typ packet.ClusterType, requestID, field string) []byte {
	dst = append(dst, `{"uid":`...)
	dst = jsonw.AppendString(dst, uid)
	dst = append(dst, `,"nsp":`...)
	dst = jsonw.AppendString(dst, nsp)
	dst = append(dst, `,"type":`...)
	dst = strconv.AppendInt(dst, int64(typ), 10)
	dst = append(dst, `,"data":{"requestId":`...)
	dst = jsonw.AppendString(dst, requestID)
	dst = append(dst, ',')
	dst = append(dst, field...)
	return append(dst, "}}"...)
}

var _ hub.RoomObserver = (*Redis)(nil)
