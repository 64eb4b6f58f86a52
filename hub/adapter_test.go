package hub_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/hub/hubtest"
)

// observingAdapter is a one-node hub.Adapter that records RoomChanged calls.
type observingAdapter struct {
	local hub.Local
	mu    sync.Mutex
	calls []string
}

func (a *observingAdapter) Attach(l hub.Local) { a.local = l }

func (a *observingAdapter) Publish(ctx context.Context, bs []*hub.Broadcast) error {
	for _, b := range bs {
		a.local.Deliver(b)
	}
	return ctx.Err()
}

func (a *observingAdapter) RoomChanged(nsp, room string, members bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	op := "-"
	if members {
		op = "+"
	}
	a.calls = append(a.calls, op+nsp+" "+room)
}

func (a *observingAdapter) snapshot() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.calls)
}

// TestAdapter_RoomObserver: the adapter hears a room's first join and last
// leave on this node (not the socket-id rooms), and Server.Broadcast goes
// through it; Local reports the rooms, socket ids and sockets.
func TestAdapter_RoomObserver(t *testing.T) {
	ad := &observingAdapter{}
	srv, ts := hubtest.NewServer(t, hub.Config{Adapter: ad})
	srv.Of("/").OnConnect(func(s *hub.Socket) { s.Join("a", "b") })
	c1, err := hubtest.Dial(t.Context(), ts.URL, "/", nil)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := hubtest.Dial(t.Context(), ts.URL, "/", nil)
	if err != nil {
		t.Fatal(err)
	}
	waitCalls := func(want []string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			got := ad.snapshot()
			slices.Sort(got)
			if slices.Equal(got, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("RoomChanged calls = %v, want %v", got, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitCalls([]string{"+/ a", "+/ b"})
	if rooms := ad.local.Rooms("/"); len(rooms) != 2 {
		t.Errorf("Local.Rooms = %v, want a and b", rooms)
	}
	if !ad.local.HasRoom("/", c1.ID()) || !ad.local.HasRoom("/", "a") || ad.local.HasRoom("/", "c") {
		t.Errorf("Local.HasRoom: want true for a socket id and a, false for c")
	}
	if socks := ad.local.Sockets("/", []string{"a"}, []string{c2.ID()}); len(socks) != 1 || socks[0].ID != c1.ID() || socks[0].Rooms[0] != c1.ID() {
		t.Errorf("Local.Sockets(a except c2) = %+v, want c1 with its id first", socks)
	}
	if err := srv.Broadcast(t.Context(), &hub.Broadcast{Rooms: []string{"a"}, Event: "e", Args: []json.RawMessage{json.RawMessage(`1`)}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if ev, err := c1.Next(ctx); err != nil || ev.Name != "e" {
		t.Fatalf("c1 got %v %v, want e", ev, err)
	}
	c1.Close()
	c2.Close()
	waitCalls([]string{"+/ a", "+/ b", "-/ a", "-/ b"})
}
