package bus_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/hub/bus"
	"github.com/walcast/walcast/hub/hubtest"
)

func TestLocal(t *testing.T) {
	srv, ts := hubtest.NewServer(t, hub.Config{Logger: testLogger(t)})
	srv.Of("/").OnConnect(func(s *hub.Socket) { s.Join("room1") })
	b := bus.NewLocal(srv)
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
