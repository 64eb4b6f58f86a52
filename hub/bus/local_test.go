package bus_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/hub/bus"
	"github.com/walcast/walcast/hub/hubtest"
	"github.com/walcast/walcast/internal/testutil"
)

func TestLocal(t *testing.T) {
	b := bus.NewLocal()
	srv, ts := hubtest.NewServer(t, hub.Config{Logger: testutil.Logger(t, slog.LevelInfo), Adapter: b})
	srv.Of("/").OnConnect(func(s *hub.Socket) { s.Join("room1") })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()

	cl, err := hubtest.Dial(t.Context(), ts.URL, "/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	err = b.Publish(t.Context(), []*hub.Broadcast{
		{Rooms: []string{"room2"}, Event: "other", Args: []json.RawMessage{json.RawMessage(`0`)}},
		{Rooms: []string{"room1"}, Event: "tick", Args: []json.RawMessage{json.RawMessage(`1`)}},
	})
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if ev := next(t, cl); ev.Name != "tick" || string(ev.Args[0]) != "1" {
		t.Fatalf("got %s %s, want tick 1", ev.Name, ev.Args)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
	if err := b.Publish(ctx, nil); err == nil {
		t.Fatalf("Publish with an ended ctx = nil, want an error")
	}
}

// TestLocal_DropsRepeatedOffsets: a window sent again (a replication reader
// re-reading retained WAL) reaches the client once; offsets compare as
// numbers ("10-0" is above "9-1"), not as text; broadcasts without an offset
// always pass.
func TestLocal_DropsRepeatedOffsets(t *testing.T) {
	b := bus.NewLocal()
	srv, ts := hubtest.NewServer(t, hub.Config{Logger: testutil.Logger(t, slog.LevelInfo), Adapter: b})
	srv.Of("/").OnConnect(func(s *hub.Socket) { s.Join("room1") })
	cl, err := hubtest.Dial(t.Context(), ts.URL, "/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ev := func(off, arg string) *hub.Broadcast {
		return &hub.Broadcast{Rooms: []string{"room1"}, Event: "tick", Args: []json.RawMessage{json.RawMessage(arg)}, Offset: off}
	}
	batches := [][]*hub.Broadcast{
		{ev("9-0", `1`), ev("9-1", `2`)},
		{ev("9-1", `2`), ev("10-0", `3`)}, // the window again, then one new
		{ev("9-0", `1`), ev("", `4`), ev("10-0", `3`), ev("11-0", `5`)},
	}
	for _, bs := range batches {
		if err := b.Publish(t.Context(), bs); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	var got []string
	for range 5 {
		got = append(got, string(next(t, cl).Args[0]))
	}
	if s := strings.Join(got, " "); s != "1 2 3 4 5" {
		t.Fatalf("client got %s, want 1 2 3 4 5", s)
	}
	// Nothing else is queued: a sentinel comes next.
	if err := b.Publish(t.Context(), []*hub.Broadcast{ev("12-0", `6`)}); err != nil {
		t.Fatal(err)
	}
	if e := next(t, cl); string(e.Args[0]) != "6" {
		t.Fatalf("after the window got %s, want 6", e.Args[0])
	}
}

// TestLocal_Restore: restored broadcasts reach the recovery buffer and no
// client; a later Publish of the same offsets is dropped, a new one delivered.
func TestLocal_Restore(t *testing.T) {
	mem := hub.NewMemoryStore(0, 0)
	b := bus.NewLocal()
	srv, ts := hubtest.NewServer(t, hub.Config{Logger: testutil.Logger(t, slog.LevelInfo), Adapter: b, Recovery: &hub.RecoveryConfig{Store: mem}})
	srv.Of("/").OnConnect(func(s *hub.Socket) { s.Join("room1") })
	cl, err := hubtest.Dial(t.Context(), ts.URL, "/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ev := func(off, arg string) *hub.Broadcast {
		return &hub.Broadcast{Rooms: []string{"room1"}, Event: "tick", Args: []json.RawMessage{json.RawMessage(arg)}, Offset: off}
	}
	b.Restore([]*hub.Broadcast{ev("9-0", `1`), ev("9-1", `2`), ev("9-1", `2`), ev("10-0", `3`)})
	if err := b.Publish(t.Context(), []*hub.Broadcast{ev("10-0", `3`), ev("11-0", `4`)}); err != nil {
		t.Fatal(err)
	}
	if e := next(t, cl); string(e.Args[0]) != "4" {
		t.Fatalf("client got %s first, want 4 (restored events are not delivered)", e.Args[0])
	}
	got, ok, err := mem.Since(t.Context(), "/", "9-0")
	if err != nil || !ok {
		t.Fatalf("Since(9-0) = %v, %v", ok, err)
	}
	var offs []string
	for _, g := range got {
		offs = append(offs, g.Offset)
	}
	if s := strings.Join(offs, " "); s != "9-1 10-0 11-0" {
		t.Fatalf("buffer after 9-0 = %s, want 9-1 10-0 11-0", s)
	}
}
