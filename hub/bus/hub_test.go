package bus_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/hub/bus"
	"github.com/walcast/walcast/hub/bus/redistest"
	"github.com/walcast/walcast/hub/hubtest"
	"github.com/walcast/walcast/internal/jsonw"
	"github.com/walcast/walcast/internal/testutil"
)

// hubNode is a real hub with the Redis bus and the Redis recovery store.
type hubNode struct {
	srv *hub.Server
	url string
	bus *bus.Redis
}

func startHubNode(t *testing.T, rs *redistest.Server) *hubNode {
	t.Helper()
	c := newClient(t, rs)
	st, err := bus.NewRedisStore(bus.RedisStoreConfig{Client: c, Logger: testutil.Logger(t, slog.LevelInfo)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := bus.NewRedis(bus.RedisConfig{Client: c, Store: st, Logger: testutil.Logger(t, slog.LevelInfo)})
	if err != nil {
		t.Fatal(err)
	}
	srv, ts := hubtest.NewServer(t, hub.Config{Logger: testutil.Logger(t, slog.LevelInfo), Adapter: b, OnSessionChange: st.OnSessionChange,
		Recovery: &hub.RecoveryConfig{Store: st, MaxDisconnection: bus.DefaultStoreMaxAge}})
	srv.Of("/").OnConnect(func(s *hub.Socket) { s.Join("room1") })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); b.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitHealthy(t, b)
	return &hubNode{srv: srv, url: ts.URL, bus: b}
}

func next(t *testing.T, c *hubtest.Client) hubtest.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	ev, err := c.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return ev
}

func roomEvent(i int) *hub.Broadcast {
	return &hub.Broadcast{Rooms: []string{"room1"}, Event: "tick",
		Args: []json.RawMessage{json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))}, Offset: fmt.Sprintf("%d-0", 100+i)}
}

// TestRedis_HubAcrossNodes: a client on node B gets what node A publishes,
// with the offset last; after a drop it recovers on node A what it missed.
func TestRedis_HubAcrossNodes(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	a, b := startHubNode(t, rs), startHubNode(t, rs)
	ctx := t.Context()
	cl, err := hubtest.Dial(ctx, b.url, "/", json.RawMessage(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := a.bus.Publish(ctx, []*hub.Broadcast{roomEvent(1)}); err != nil {
		t.Fatal(err)
	}
	ev := next(t, cl)
	if ev.Name != "tick" || len(ev.Args) != 2 || string(ev.Args[0]) != `{"i":1}` || string(ev.Args[1]) != `"101-0"` {
		t.Fatalf("client on B got %s %s, want tick {\"i\":1} \"101-0\"", ev.Name, ev.Args)
	}

	cl.Drop() // B saves the session in Redis
	time.Sleep(100 * time.Millisecond)
	if err := a.bus.Publish(ctx, []*hub.Broadcast{roomEvent(2), roomEvent(3)}); err != nil {
		t.Fatal(err)
	}
	// Reconnect to A, the other node.
	c2, err := hubtest.DialOptions(ctx, a.url, "/", json.RawMessage(`{}`), hubtest.Options{PID: cl.PID(), Offset: cl.LastOffset()})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if !c2.Recovered() || c2.ID() != cl.ID() {
		t.Fatalf("on node A: recovered=%v id=%s, want recovered with id %s", c2.Recovered(), c2.ID(), cl.ID())
	}
	for i := 2; i <= 3; i++ {
		ev := next(t, c2)
		if string(ev.Args[0]) != fmt.Sprintf(`{"i":%d}`, i) {
			t.Fatalf("recovered event: got %s, want i=%d", ev.Args, i)
		}
	}
	if err := b.bus.Publish(ctx, []*hub.Broadcast{roomEvent(4)}); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, c2); string(ev.Args[0]) != `{"i":4}` {
		t.Fatalf("live event after recovery: got %s, want i=4", ev.Args)
	}
}

// TestRedisStore_LiveSessions: the session of a connected socket is in Redis
// (so it survives the node's death), and is taken only once.
func TestRedisStore_LiveSessions(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	a := startHubNode(t, rs)
	ctx := t.Context()
	cl, err := hubtest.Dial(ctx, a.url, "/", json.RawMessage(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rc := newClient(t, rs)
	key := bus.DefaultStorePrefix + ":session:" + cl.PID()
	deadline := time.Now().Add(3 * time.Second)
	for {
		v, err := rc.Get(ctx, key).Result()
		if err == nil {
			if !strings.Contains(v, `"room1"`) || !strings.Contains(v, cl.ID()) {
				t.Fatalf("live session %s = %s, want sid %s and room1", key, v, cl.ID())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no live session %s after 3s: %v", key, err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	t.Run("ExplicitDisconnect", func(t *testing.T) {
		// A client namespace disconnect is not recoverable: the record goes.
		cl.Close()
		deadline := time.Now().Add(3 * time.Second)
		for rc.Exists(ctx, key).Val() == 1 {
			if time.Now().After(deadline) {
				t.Fatalf("live session %s still in Redis 3s after an explicit disconnect", key)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// TestRedis_SameBytesOnEveryNode: one event, published on node A, reaches a
// client on A (local delivery) and a client on B (through Redis: JSON ->
// msgpack -> JSON) as the same bytes, escapes and number digits included.
func TestRedis_SameBytesOnEveryNode(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	a, b := startHubNode(t, rs), startHubNode(t, rs)
	ctx := t.Context()
	var clients []*hubtest.Client
	for _, url := range []string{a.url, b.url} {
		cl, err := hubtest.Dial(ctx, url, "/", json.RawMessage(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		clients = append(clients, cl)
	}
	// The arguments as the leader writes them (jsonw's canonical form, which
	// is JSON.stringify's): \b short form, raw U+2028/U+2029 and DEL, \u00xx
	// for other control characters, no HTML escaping; numbers as JavaScript
	// prints them (0.00001, 1e-7, 1e+21, 123456789012345680000), integers
	// that fit an int64 with every digit.
	args := []json.RawMessage{
		json.RawMessage("{\"s\":\"a\\b\u2028z\\u0001\\f\\\"q\\\" é\",\"n\":[1,2.5,null,true]}"),
		json.RawMessage("[\"<p>&amp;</p>\",\"\\u0000\\u001f\x7f\u2029\",\"\ufffd😀\",\"\\\\/\",\"\\t\\n\\r\"]"),
		json.RawMessage(`{"price":12.5,"one":1,"tiny":0.00001,"tinier":1e-7,"big":1e+21,"bigFixed":123456789012345680000,` +
			`"id":9007199254740993,"min":-9223372036854775808,"beyond":12345678901234567000,"huge":1.5e+300,"neg":-0.5,"pi":3.141592653589793}`),
	}
	for i, arg := range args {
		if c, err := jsonw.AppendCanonical(nil, arg); err != nil || string(c) != string(arg) {
			t.Fatalf("test argument %d is not canonical: %s, %v", i, c, err)
		}
	}
	bc := &hub.Broadcast{Rooms: []string{"room1"}, Event: "tick\u2029", Args: args, Offset: "900-1"}
	if err := a.bus.Publish(ctx, []*hub.Broadcast{bc}); err != nil {
		t.Fatal(err)
	}
	local, remote := next(t, clients[0]), next(t, clients[1])
	if local.Name != remote.Name || len(local.Args) != len(remote.Args) {
		t.Fatalf("local %q %s, remote %q %s", local.Name, local.Args, remote.Name, remote.Args)
	}
	for i := range local.Args {
		if string(local.Args[i]) != string(remote.Args[i]) {
			t.Errorf("arg %d: local %s, remote (through Redis) %s, want the same bytes", i, local.Args[i], remote.Args[i])
		}
	}
	for i, arg := range args {
		if string(local.Args[i]) != string(arg) {
			t.Errorf("local arg %d = %s, want %s unchanged", i, local.Args[i], arg)
		}
	}
}
