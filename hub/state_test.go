package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/hub/hubtest"
)

func stateBroadcast(room, key string, v int) *hub.Broadcast {
	return &hub.Broadcast{Rooms: []string{room}, Event: "stock", StateKey: key,
		Args: []json.RawMessage{raw(fmt.Sprintf(`{"k":%q,"v":%d}`, key, v))}}
}

type kv struct {
	K string `json:"k"`
	V int    `json:"v"`
}

func nextKV(t *testing.T, c *hubtest.Client) kv {
	t.Helper()
	e := next(t, c)
	var got kv
	if e.Name != "stock" || len(e.Args) == 0 || json.Unmarshal(e.Args[0], &got) != nil {
		t.Fatalf("got event %s %s, want stock", e.Name, e.Args)
	}
	return got
}

// A joiner of a warm room gets the last state of each key, in the order the
// keys first appeared, then the live stream; a cold room says so.
func TestJoinWithState(t *testing.T) {
	srv, ts := hubtest.NewServer(t, hub.Config{Logger: hubLogger(t)})
	socks := make(chan *hub.Socket, 2)
	srv.Of("/").OnConnect(func(s *hub.Socket) { socks <- s })
	a := dial(t, ts.URL, "/", "")
	sa := <-socks
	if sa.JoinWithState("p:1") {
		t.Fatal("JoinWithState of a room never broadcast to: warm")
	}
	srv.Broadcast(context.Background(), stateBroadcast("p:1", "v1", 1))
	srv.Broadcast(context.Background(), stateBroadcast("p:1", "v2", 2))
	srv.Broadcast(context.Background(), stateBroadcast("p:1", "v1", 3))
	srv.Broadcast(context.Background(), stateBroadcast("p:2", "v9", 9)) // no members: not cached
	for _, want := range []kv{{"v1", 1}, {"v2", 2}, {"v1", 3}} {
		if got := nextKV(t, a); got != want {
			t.Fatalf("a: got %+v, want %+v", got, want)
		}
	}
	if r, st := srv.StateCacheSize(); r != 1 || st != 2 {
		t.Fatalf("StateCacheSize: got %d rooms %d states, want 1, 2", r, st)
	}
	b := dial(t, ts.URL, "/", "")
	sb := <-socks
	if !sb.JoinWithState("p:1") {
		t.Fatal("JoinWithState of a warm room: cold")
	}
	srv.Broadcast(context.Background(), stateBroadcast("p:1", "v2", 4))
	for _, want := range []kv{{"v1", 3}, {"v2", 2}, {"v2", 4}} {
		if got := nextKV(t, b); got != want {
			t.Fatalf("b: got %+v, want %+v", got, want)
		}
	}
	sa.Leave("p:1")
	sb.Leave("p:1")
	srv.Broadcast(context.Background(), stateBroadcast("p:1", "v2", 5)) // room empty now: dropped
	if r, st := srv.StateCacheSize(); r != 0 || st != 0 {
		t.Fatalf("StateCacheSize after the room emptied: got %d rooms %d states, want 0", r, st)
	}
}

// Joins racing a stream of state broadcasts: every joiner sees the key's
// values consecutively, each once, from its state to the last one.
func TestJoinWithState_RacingBroadcasts(t *testing.T) {
	const joiners, updates = 8, 2000
	srv, ts := hubtest.NewServer(t, hub.Config{Logger: hubLogger(t)})
	socks := make(chan *hub.Socket, joiners+1)
	srv.Of("/").OnConnect(func(s *hub.Socket) { socks <- s })
	dial(t, ts.URL, "/", "")
	(<-socks).Join("p:1") // keeps the room warm
	clients := make([]*hubtest.Client, joiners)
	ss := make([]*hub.Socket, joiners)
	for i := range clients {
		clients[i] = dial(t, ts.URL, "/", "")
		ss[i] = <-socks
	}
	var wg sync.WaitGroup
	var sent atomic.Int64
	wg.Go(func() {
		for v := range updates {
			srv.Broadcast(context.Background(), stateBroadcast("p:1", "k", v))
			sent.Add(1)
		}
	})
	for i := range ss {
		wg.Go(func() {
			// Join while the stream runs, each joiner at another point of it.
			for sent.Load() < int64(i*updates/(2*joiners)) {
				runtime.Gosched()
			}
			srv.Broadcast(context.Background(), &hub.Broadcast{Event: "noise", Args: []json.RawMessage{raw(strconv.Itoa(i))}})
			ss[i].JoinWithState("p:1")
		})
	}
	wg.Wait()
	for i, c := range clients {
		prev := -1
		for prev < updates-1 {
			e := next(t, c)
			if e.Name == "noise" {
				continue
			}
			var got kv
			if err := json.Unmarshal(e.Args[0], &got); err != nil {
				t.Fatalf("joiner %d: %s: %v", i, e.Args[0], err)
			}
			if prev >= 0 && got.V != prev+1 {
				t.Fatalf("joiner %d: got %d after %d (gap or duplicate)", i, got.V, prev)
			}
			prev = got.V
		}
	}
}
