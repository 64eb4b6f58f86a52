package bus_test

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/hub/bus"
	"github.com/walcast/walcast/hub/bus/redistest"
	"github.com/walcast/walcast/hub/hubtest"
	"github.com/walcast/walcast/internal/testutil"
	"log/slog"
)

// shardedNode is a real hub whose adapter is a sharded Redis bus; a client's
// CONNECT auth {"rooms":[...]} picks its rooms.
type shardedNode struct {
	srv *hub.Server
	url string
	bus *bus.Redis
}

func startShardedNode(t *testing.T, c redis.UniversalClient, store bool) *shardedNode {
	t.Helper()
	cfg := bus.RedisConfig{Client: c, Sharded: true, Logger: testutil.Logger(t, slog.LevelInfo), RetryMax: 200 * time.Millisecond}
	hcfg := hub.Config{Logger: testutil.Logger(t, slog.LevelInfo)}
	if store {
		st, err := bus.NewRedisStore(bus.RedisStoreConfig{Client: c, Logger: testutil.Logger(t, slog.LevelInfo), Shards: 4})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Store = st
		hcfg.Recovery = &hub.RecoveryConfig{Store: st, MaxDisconnection: bus.DefaultStoreMaxAge}
		hcfg.OnSessionChange = st.OnSessionChange
	}
	b, err := bus.NewRedis(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hcfg.Adapter = b
	srv, ts := hubtest.NewServer(t, hcfg)
	srv.Of("/").OnConnect(func(s *hub.Socket) {
		var a struct{ Rooms []string }
		_ = json.Unmarshal(s.Handshake().Auth, &a)
		s.Join(a.Rooms...)
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); b.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitHealthy(t, b)
	return &shardedNode{srv: srv, url: ts.URL, bus: b}
}

func (n *shardedNode) dial(t *testing.T, rooms ...string) *hubtest.Client {
	t.Helper()
	auth, _ := json.Marshal(map[string]any{"rooms": rooms})
	cl, err := hubtest.Dial(t.Context(), n.url, "/", auth)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// nodeServer is testdata/cluster/sharded_server.mjs.
type nodeServer struct {
	stdin io.WriteCloser
	lines chan string
}

func startNodeServer(t *testing.T, env ...string) *nodeServer {
	t.Helper()
	js := testutil.StartNode(t, testutil.NodeOptions{Module: "@socket.io/redis-adapter", Script: "cluster/sharded_server.mjs",
		Env: env, Timeout: 5 * time.Minute})
	ns := &nodeServer{stdin: js.Stdin, lines: make(chan string, 100_000)}
	go func() {
		for b := range js.Lines {
			ns.lines <- string(b)
		}
		close(ns.lines)
	}()
	ns.wait(t, 15*time.Second, func(l string) bool { return l == "READY" })
	return ns
}

func (ns *nodeServer) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(ns.stdin, line+"\n"); err != nil {
		t.Fatalf("write to node: %v", err)
	}
}

// wait returns the first line for which ok is true.
func (ns *nodeServer) wait(t *testing.T, d time.Duration, ok func(string) bool) string {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case l, open := <-ns.lines:
			if !open {
				t.Fatalf("node exited")
			}
			if ok(l) {
				return l
			}
		case <-deadline:
			t.Fatalf("node printed no wanted line within %v", d)
		}
	}
}

// TestRedisSharded_NodeInterop: on one Redis 7, walcast's sharded bus and a
// Node socket.io server with createShardedAdapter (dynamic mode) deliver each
// other's broadcasts, Node's fetchSockets() sees walcast's sockets without
// waiting for a timeout, and walcast subscribes only to the rooms it has
// members in.
func TestRedisSharded_NodeInterop(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	c := newClient(t, rs)
	n := startShardedNode(t, c, true)
	cl := n.dial(t, "product:1")
	ns := startNodeServer(t, "REDIS_URL="+rs.URL(), "ROOMS=product:1")

	t.Run("WalcastToNode", func(t *testing.T) {
		err := n.srv.Broadcast(t.Context(), &hub.Broadcast{Rooms: []string{"product:1"}, Event: "product:stock-updated",
			Args: []json.RawMessage{json.RawMessage(`{"variantId":"v1","stock":3,"s":"a\u2028b"}`)}, Offset: "100-0"})
		if err != nil {
			t.Fatal(err)
		}
		l := ns.wait(t, 5*time.Second, func(l string) bool { return strings.Contains(l, "product:stock-updated") })
		var ev struct {
			Event string
			Args  []json.RawMessage
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil || len(ev.Args) != 2 || string(ev.Args[1]) != `"100-0"` {
			t.Fatalf("Node client got %s, want the event with its offset last", l)
		}
		if e := next(t, cl); e.Name != "product:stock-updated" {
			t.Fatalf("walcast client got %s", e.Name)
		}
	})
	t.Run("NodeToWalcast", func(t *testing.T) {
		ns.send(t, `emit product:1 node:hello {"from":"node"}`)
		e := next(t, cl)
		if e.Name != "node:hello" || string(e.Args[0]) != `{"from":"node"}` {
			t.Fatalf("walcast client got %s %s, want node:hello {\"from\":\"node\"}", e.Name, e.Args)
		}
	})
	t.Run("FetchSockets", func(t *testing.T) {
		ns.send(t, "fetch")
		l := ns.wait(t, 10*time.Second, func(l string) bool { return strings.Contains(l, "fetched") })
		var f struct {
			Fetched []string
			MS      int
		}
		if err := json.Unmarshal([]byte(l), &f); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, id := range f.Fetched {
			found = found || id == cl.ID()
		}
		if !found || len(f.Fetched) != 2 || f.MS > 2000 {
			t.Fatalf("fetchSockets = %s, want Node's and walcast's socket (%s) well before the 5 s timeout", l, cl.ID())
		}
	})
	t.Run("OnlyMemberRooms", func(t *testing.T) {
		subs := func(room string) int64 {
			m, err := c.PubSubShardNumSub(t.Context(), "socket.io#/#"+room+"#").Result()
			if err != nil {
				t.Fatal(err)
			}
			return m["socket.io#/#"+room+"#"]
		}
		if got := subs("product:2"); got != 0 {
			t.Fatalf("subscribers of product:2 with no member = %d, want 0", got)
		}
		extra := n.dial(t, "product:2")
		waitFor(t, func() bool { return subs("product:2") == 1 }, "walcast subscribed to product:2")
		if err := n.srv.Broadcast(t.Context(), &hub.Broadcast{Rooms: []string{"product:2"}, Event: "p2",
			Args: []json.RawMessage{json.RawMessage(`1`)}}); err != nil {
			t.Fatal(err)
		}
		if e := next(t, extra); e.Name != "p2" {
			t.Fatalf("got %s, want p2", e.Name)
		}
		extra.Close()
		waitFor(t, func() bool { return subs("product:2") == 0 }, "walcast unsubscribed from product:2")
	})
}

func waitFor(t *testing.T, ok func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func contextWithTimeout(t *testing.T, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(t.Context(), d)
}
