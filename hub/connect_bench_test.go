package hub_test

import (
	"testing"

	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/hub/hubtest"
)

// BenchmarkConnect: one WebSocket handshake and namespace CONNECT, to the
// client's CONNECT reply, with an OnConnect handler that joins two rooms (as
// rooms' policy does), over loopback.
func BenchmarkConnect(b *testing.B) {
	srv, ts := hubtest.NewServer(b, hub.Config{MaxHandshakesPerIP: -1, MaxConnsPerIP: -1, MaxUnauthenticatedPerIP: -1})
	srv.Of("/").OnConnect(func(s *hub.Socket) { s.Join("user:1", "cart:1") })
	b.ReportAllocs()
	for b.Loop() {
		c, err := hubtest.Dial(b.Context(), ts.URL, "/", nil)
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}
