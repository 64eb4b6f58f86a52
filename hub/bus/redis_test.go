package bus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/hub/bus"
	"github.com/walcast/walcast/hub/bus/redistest"
	"github.com/walcast/walcast/internal/testutil"
)

// sink records what a bus delivers.
type sink struct {
	mu  sync.Mutex
	got []*hub.Broadcast
	ch  chan struct{}
}

func newSink() *sink { return &sink{ch: make(chan struct{}, 1)} }

func (s *sink) Restore(*hub.Broadcast)                              {}
func (s *sink) Rooms(string) []string                               { return nil }
func (s *sink) HasRoom(string, string) bool                         { return true }
func (s *sink) Sockets(string, []string, []string) []hub.SocketInfo { return nil }

func (s *sink) Deliver(b *hub.Broadcast) {
	s.mu.Lock()
	s.got = append(s.got, b)
	s.mu.Unlock()
	select {
	case s.ch <- struct{}{}:
	default:
	}
}

func (s *sink) snapshot() []*hub.Broadcast {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*hub.Broadcast(nil), s.got...)
}

// wait waits until the sink holds n broadcasts.
func (s *sink) wait(t *testing.T, n int, d time.Duration) []*hub.Broadcast {
	t.Helper()
	deadline := time.After(d)
	for {
		if got := s.snapshot(); len(got) >= n {
			return got
		}
		select {
		case <-s.ch:
		case <-deadline:
			t.Fatalf("sink has %d broadcasts after %v, want %d", len(s.snapshot()), d, n)
		}
	}
}

func newClient(t *testing.T, srv *redistest.Server) *redis.Client {
	t.Helper()
	return newClientURL(t, srv.URL())
}

func newClientURL(t *testing.T, url string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	opt.MaxRetries = -1
	opt.DialTimeout = 500 * time.Millisecond
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// node is one bus with its recovery store and sink, running until the test ends.
type node struct {
	bus   *bus.Redis
	store *bus.RedisStore
	sink  *sink
	stop  context.CancelFunc
	done  chan error
}

func startNode(t *testing.T, srv *redistest.Server) *node {
	t.Helper()
	return startNodeWith(t, srv, false)
}

func startNodeWith(t *testing.T, srv *redistest.Server, refill bool) *node {
	t.Helper()
	c := newClient(t, srv)
	st, err := bus.NewRedisStore(bus.RedisStoreConfig{Client: c, Logger: testutil.Logger(t, slog.LevelInfo), Refill: refill})
	if err != nil {
		t.Fatal(err)
	}
	sk := newSink()
	b, err := bus.NewRedisTo(bus.RedisConfig{Client: c, Store: st, Logger: testutil.Logger(t, slog.LevelInfo),
		Metrics: bus.NewMetrics(nil), HealthInterval: 500 * time.Millisecond}, sk)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{bus: b, store: st, sink: sk, stop: cancel, done: make(chan error, 1)}
	go func() { n.done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-n.done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	waitHealthy(t, b)
	return n
}

func waitHealthy(t *testing.T, b *bus.Redis) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !b.Healthy() {
		if time.Now().After(deadline) {
			t.Fatalf("bus not healthy after 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func event(i int, room string) *hub.Broadcast {
	return &hub.Broadcast{Namespace: "/", Rooms: []string{room}, Event: "product:stock-updated",
		Args:   []json.RawMessage{json.RawMessage(fmt.Sprintf(`{"variantId":"v%d","available":%d}`, i, i))},
		Offset: fmt.Sprintf("%d-%d", 1000+i/3, i%3), CommitTime: time.Now()}
}

func checkSeq(t *testing.T, got []*hub.Broadcast, want []*hub.Broadcast) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d broadcasts, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Offset != want[i].Offset || string(got[i].Args[0]) != string(want[i].Args[0]) ||
			got[i].Rooms[0] != want[i].Rooms[0] || got[i].Event != want[i].Event {
			t.Fatalf("broadcast %d: got %s %s %v, want %s %s %v", i, got[i].Offset, got[i].Args[0], got[i].Rooms,
				want[i].Offset, want[i].Args[0], want[i].Rooms)
		}
	}
}

func TestRedis_PublishDeliver(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	a, b := startNode(t, srv), startNode(t, srv)
	var want []*hub.Broadcast
	for i := range 1000 {
		want = append(want, event(i, fmt.Sprintf("product:%d", i%7)))
	}
	if err := a.bus.Publish(t.Context(), want); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	checkSeq(t, a.sink.wait(t, len(want), time.Second), want) // local delivery, no echo
	checkSeq(t, b.sink.wait(t, len(want), 5*time.Second), want)
	if !b.sink.snapshot()[0].CommitTime.Equal(time.UnixMicro(want[0].CommitTime.UnixMicro())) {
		t.Errorf("commit time did not survive the bus")
	}

	t.Run("Duplicates", func(t *testing.T) {
		// A new leader re-publishes the tail it read again from the slot.
		c := startNode(t, srv)
		if err := c.bus.Publish(t.Context(), want[900:]); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		next := event(1000, "product:1")
		if err := c.bus.Publish(t.Context(), []*hub.Broadcast{next}); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		got := b.sink.wait(t, len(want)+1, 5*time.Second)
		time.Sleep(100 * time.Millisecond)
		if got = b.sink.snapshot(); len(got) != len(want)+1 || got[len(want)].Offset != next.Offset {
			t.Fatalf("after republish got %d broadcasts, want %d ending with %s", len(got), len(want)+1, next.Offset)
		}
	})
}

func TestRedis_RedisDown(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{AppendOnly: true})
	a, b := startNode(t, srv), startNode(t, srv)
	first := []*hub.Broadcast{event(0, "r"), event(1, "r")}
	if err := a.bus.Publish(t.Context(), first); err != nil {
		t.Fatal(err)
	}
	b.sink.wait(t, 2, 5*time.Second)

	srv.Stop()
	done := make(chan error, 1)
	more := []*hub.Broadcast{event(2, "r"), event(3, "r"), event(4, "r")}
	go func() { done <- a.bus.Publish(t.Context(), more) }()
	select {
	case err := <-done:
		t.Fatalf("Publish with Redis down returned %v, want it to wait", err)
	case <-time.After(1500 * time.Millisecond):
	}
	if a.bus.Healthy() || b.bus.Healthy() {
		t.Errorf("Healthy() = true with Redis down")
	}
	srv.Restart()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Publish after Redis returned: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Publish still blocked 10s after Redis returned")
	}
	checkSeq(t, b.sink.wait(t, 5, 10*time.Second), append(first, more...))
	waitHealthy(t, a.bus)
	waitHealthy(t, b.bus)

	t.Run("CancelWhileDown", func(t *testing.T) {
		srv.Stop()
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		if err := a.bus.Publish(ctx, []*hub.Broadcast{event(5, "r")}); err == nil {
			t.Fatalf("Publish with Redis down and ctx ended = nil, want an error")
		}
		srv.Restart()
	})
}

// TestRedis_Replay: a node whose subscription broke (Redis alive for others)
// replays from the stream what it missed.
func TestRedis_Replay(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	a, b := startNode(t, srv), startNode(t, srv)
	if err := a.bus.Publish(t.Context(), []*hub.Broadcast{event(0, "r")}); err != nil {
		t.Fatal(err)
	}
	b.sink.wait(t, 1, 5*time.Second)
	// Kill b's subscriber connection only, then publish while it is gone.
	admin := newClient(t, srv)
	if err := admin.ClientKillByFilter(t.Context(), "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	var want []*hub.Broadcast
	for i := 1; i < 50; i++ {
		want = append(want, event(i, "r"))
	}
	if err := a.bus.Publish(t.Context(), want); err != nil {
		t.Fatal(err)
	}
	got := b.sink.wait(t, 50, 10*time.Second)
	checkSeq(t, got[1:], want)
}

func TestRedisStore(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	c := newClient(t, srv)
	st, err := bus.NewRedisStore(bus.RedisStoreConfig{Client: c, MaxPackets: 100, MaxAge: time.Second, Prefix: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for i := range 10 {
		if err := st.Append(ctx, event(i, "r")); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
	// Appending an old offset again (redelivery) is fine.
	if err := st.Append(ctx, event(3, "r")); err != nil {
		t.Fatalf("Append(redelivered): %v", err)
	}
	got, ok, err := st.Since(ctx, "/", event(4, "r").Offset)
	if err != nil || !ok || len(got) != 5 || got[0].Offset != event(5, "r").Offset {
		t.Fatalf("Since(4) = %d broadcasts, %v, %v; want 5 from %s", len(got), ok, err, event(5, "r").Offset)
	}
	if string(got[0].Args[0]) != string(event(5, "r").Args[0]) {
		t.Errorf("Since(4)[0].Args = %s, want %s", got[0].Args[0], event(5, "r").Args[0])
	}
	for _, off := range []string{"999-9", "bogus", "", "0-0"} {
		if _, ok, err := st.Since(ctx, "/", off); ok || err != nil {
			t.Errorf("Since(%q) = ok %v err %v, want not ok", off, ok, err)
		}
	}
	if _, ok, _ := st.Since(ctx, "/other", event(4, "r").Offset); ok {
		t.Errorf("Since(other namespace) ok, want not ok")
	}

	sess := hub.Session{SID: "s1", PID: "p1", Namespace: "/", Rooms: []string{"s1", "product:1"}, DisconnectedAt: time.Now()}
	if err := st.SaveSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	got1, ok, err := st.TakeSession(ctx, "p1")
	if err != nil || !ok || got1.SID != "s1" || len(got1.Rooms) != 2 {
		t.Fatalf("TakeSession = %+v %v %v", got1, ok, err)
	}
	if _, ok, _ := st.TakeSession(ctx, "p1"); ok {
		t.Errorf("second TakeSession ok, want taken once")
	}

	t.Run("Expiry", func(t *testing.T) {
		if err := st.SaveSession(ctx, sess); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond)
		if _, ok, _ := st.Since(ctx, "/", event(4, "r").Offset); ok {
			t.Errorf("Since after MaxAge ok, want expired")
		}
		if _, ok, _ := st.TakeSession(ctx, "p1"); ok {
			t.Errorf("TakeSession after MaxAge ok, want expired")
		}
	})
	t.Run("Count", func(t *testing.T) {
		for i := 100; i < 400; i++ {
			if err := st.Append(ctx, event(i, "r")); err != nil {
				t.Fatal(err)
			}
		}
		if n := c.XLen(ctx, t.Name()[:len("TestRedisStore")]+":recovery:/").Val(); n > 200 {
			t.Errorf("stream length %d, want about 100", n)
		}
		if _, ok, _ := st.Since(ctx, "/", event(100, "r").Offset); ok {
			t.Errorf("Since(trimmed offset) ok, want not ok")
		}
	})
}

// TestRedis_StartWithRedisDown: Run keeps trying while Redis is unreachable and
// subscribes once it is up.
func TestRedis_StartWithRedisDown(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	srv.Stop()
	c := newClient(t, srv)
	sk := newSink()
	b, err := bus.NewRedisTo(bus.RedisConfig{Client: c, Logger: testutil.Logger(t, slog.LevelInfo), RetryMax: 200 * time.Millisecond}, sk)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	time.Sleep(500 * time.Millisecond)
	if b.Healthy() {
		t.Fatalf("Healthy() = true with Redis down")
	}
	srv.Restart()
	waitHealthy(t, b)
	other := startNode(t, srv)
	if err := other.bus.Publish(t.Context(), []*hub.Broadcast{event(1, "r")}); err != nil {
		t.Fatal(err)
	}
	sk.wait(t, 1, 5*time.Second)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil after cancel", err)
	}
}

// A leader that restarts re-reads from the replication slot what its
// predecessor had published but not yet confirmed. The new bus must neither
// deliver those broadcasts to its own clients nor publish them again: clients
// that recovered from the stream have them already.
func TestRedis_RestartedLeaderRepublishes(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	a, b := startNode(t, srv), startNode(t, srv)
	var first []*hub.Broadcast
	for i := range 30 {
		first = append(first, event(i, "r"))
	}
	if err := a.bus.Publish(t.Context(), first); err != nil {
		t.Fatal(err)
	}
	b.sink.wait(t, 30, 5*time.Second)
	a.stop() // the leader's process ends

	c := startNode(t, srv) // its successor, with nothing in memory
	var again []*hub.Broadcast
	for i := 20; i < 40; i++ { // 10 re-read, 10 new
		again = append(again, event(i, "r"))
	}
	if err := c.bus.Publish(t.Context(), again); err != nil {
		t.Fatal(err)
	}
	var want []*hub.Broadcast
	for i := range 40 {
		want = append(want, event(i, "r"))
	}
	got := b.sink.wait(t, 40, 5*time.Second)
	// A late duplicate would arrive within the same round trip as the new
	// broadcasts, which came after it on the same connection.
	checkSeq(t, got, want)
	checkSeq(t, c.sink.snapshot(), want[30:])
	// The stream holds each offset once.
	st, ok, err := c.store.Since(t.Context(), "/", want[0].Offset)
	if err != nil || !ok {
		t.Fatalf("Since: ok=%v err=%v", ok, err)
	}
	checkSeq(t, st, want[1:])
}

// startRefillNode is startNode with a store that the publishing node refills
// from its durable source when Redis lost the streams.
func startRefillNode(t *testing.T, srv *redistest.Server) *node {
	t.Helper()
	return startNodeWith(t, srv, true)
}

// On one Redis the fill key is read in the pipeline that publishes, so a
// publish that finds the streams lost has reached every other node already.
// The publishing node delivers it too: before, it did not, and when another
// node took over before this one published the window again, the new leader
// took the broadcast for published (it had received it) and only stored it,
// so this node's clients never got it (TestCluster's warm-up, 1 run in 5).
func TestRedis_StreamsLostPublishedEverywhere(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	a := startRefillNode(t, srv)
	b := startRefillNode(t, srv)
	ev := event(0, "r")
	// A fresh Redis has no fill key: the first publish finds the streams lost.
	err := a.bus.Publish(t.Context(), []*hub.Broadcast{ev})
	var lost *bus.StreamsLost
	if !errors.As(err, &lost) {
		t.Fatalf("first publish on an empty Redis: %v, want a *bus.StreamsLost", err)
	}
	checkSeq(t, b.sink.wait(t, 1, 5*time.Second), []*hub.Broadcast{ev})
	checkSeq(t, a.sink.snapshot(), []*hub.Broadcast{ev})

	// The refill publishes the window again: stored, delivered nowhere twice.
	if err := a.bus.Publish(t.Context(), []*hub.Broadcast{ev}); err != nil {
		t.Fatalf("refill publish: %v", err)
	}
	if marked, err := a.bus.MarkFilled(t.Context(), lost.Gen); err != nil || !marked {
		t.Fatalf("MarkFilled(%d) = %v, %v; want true", lost.Gen, marked, err)
	}
	next := event(1, "r")
	if err := a.bus.Publish(t.Context(), []*hub.Broadcast{next}); err != nil {
		t.Fatalf("publish after the refill: %v", err)
	}
	want := []*hub.Broadcast{ev, next}
	checkSeq(t, b.sink.wait(t, 2, 5*time.Second), want)
	checkSeq(t, a.sink.snapshot(), want)
	time.Sleep(100 * time.Millisecond) // a duplicate would arrive within this
	checkSeq(t, b.sink.snapshot(), want)
	// The refill stored the broadcast again: a client that saw nothing
	// after ev recovers next from any node.
	got, ok, err := b.store.Since(t.Context(), "/", ev.Offset)
	if err != nil || !ok {
		t.Fatalf("Since(%s) after the refill: ok=%v, %v", ev.Offset, ok, err)
	}
	checkSeq(t, got, []*hub.Broadcast{next})
}

// A refill superseded by another loss is not reported as done: MarkFilled
// says false and leaves the fill key to the newer refill. Before, it said
// nothing, and serve logged "the recovery streams hold the window again"
// for a refill that had marked nothing.
func TestRedis_MarkFilledSuperseded(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	a := startRefillNode(t, srv)
	b := startRefillNode(t, srv)
	var lostA, lostB *bus.StreamsLost
	if err := a.bus.Publish(t.Context(), []*hub.Broadcast{event(0, "r")}); !errors.As(err, &lostA) {
		t.Fatalf("first publish on an empty Redis: %v, want a *bus.StreamsLost", err)
	}
	// The streams are lost again (the key goes with them) and b finds it.
	if err := newClient(t, srv).Del(t.Context(), "walcast:recovery:fill").Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.bus.Publish(t.Context(), []*hub.Broadcast{event(1, "r")}); !errors.As(err, &lostB) {
		t.Fatalf("publish after the second loss: %v, want a *bus.StreamsLost", err)
	}
	if marked, err := a.bus.MarkFilled(t.Context(), lostA.Gen); err != nil || marked {
		t.Fatalf("MarkFilled of the superseded refill = %v, %v; want false", marked, err)
	}
	if marked, err := b.bus.MarkFilled(t.Context(), lostB.Gen); err != nil || !marked {
		t.Fatalf("MarkFilled of the newer refill = %v, %v; want true", marked, err)
	}
	if marked, err := b.bus.MarkFilled(t.Context(), lostB.Gen); err != nil || marked {
		t.Fatalf("MarkFilled again = %v, %v; want false (already done)", marked, err)
	}
}
