package hub_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/hub/hubtest"
)

// recorder writes every Observer call as one line.
type recorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *recorder) add(format string, a ...any) {
	r.mu.Lock()
	r.lines = append(r.lines, fmt.Sprintf(format, a...))
	r.mu.Unlock()
}

func (r *recorder) wait(t *testing.T, line string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.mu.Lock()
		ok := slices.Contains(r.lines, line)
		lines := slices.Clone(r.lines)
		r.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("observer never reported %q; got %q", line, lines)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestServer_Observe: every hook reports, in the order the hub documents,
// and the introspection calls list the sockets.
func TestServer_Observe(t *testing.T) {
	srv, ts := hubtest.NewServer(t, hub.Config{})
	r := &recorder{}
	srv.Observe(&hub.Observer{
		ConnOpen:  func() { r.add("open") },
		ConnClose: func(reason string) { r.add("close %s", reason) },
		Connect:   func(s *hub.Socket) { r.add("connect %s %s %v", s.Namespace(), s.Transport(), s.Rooms()[1:]) },
		Disconnect: func(s *hub.Socket, reason string, rooms []string) {
			r.add("disconnect %s %v %v", reason, rooms[0] == s.ID(), rooms[1:])
		},
		Join:      func(s *hub.Socket, room string) { r.add("join %s", room) },
		Leave:     func(s *hub.Socket, room string) { r.add("leave %s", room) },
		EventIn:   func(s *hub.Socket, ev string, args []json.RawMessage) { r.add("in %s %s", ev, args[0]) },
		EventOut:  func(s *hub.Socket, ev string, args []json.RawMessage) { r.add("out %s %s", ev, args[0]) },
		Broadcast: func(b *hub.Broadcast, n int) { r.add("broadcast %s %d", b.Event, n) },
	})
	srv.Of("/").OnConnect(func(s *hub.Socket) {
		s.Join("a", "b")
		s.On("hello", func(s *hub.Socket, m *hub.Message) {
			s.Leave("b")
			s.Emit("reply", 1)
		})
	})
	c, err := hubtest.Dial(t.Context(), ts.URL, "/", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.wait(t, "open")
	r.wait(t, "connect / websocket []")
	r.wait(t, "join b")
	if err := c.Emit("hello", "x"); err != nil {
		t.Fatal(err)
	}
	r.wait(t, `in hello "x"`)
	r.wait(t, "leave b")
	r.wait(t, "out reply 1")
	srv.Broadcast(t.Context(), &hub.Broadcast{Rooms: []string{"a"}, Event: "news", Args: []json.RawMessage{json.RawMessage(`2`)}})
	r.wait(t, "broadcast news 1")

	nsps := srv.Namespaces()
	if len(nsps) != 1 || nsps[0] != (hub.NamespaceInfo{Name: "/", Sockets: 1}) {
		t.Errorf("Namespaces() = %v, want [{/ 1}]", nsps)
	}
	if got := srv.PollingConnections(); got != 0 {
		t.Errorf("PollingConnections() = %d, want 0 (one WebSocket)", got)
	}
	n := srv.Lookup("/")
	socks := n.Sockets(nil)
	if len(socks) != 1 || socks[0].ID() != c.ID() || n.Socket(c.ID()) != socks[0] {
		t.Fatalf("Sockets() = %v, want the one client %s", socks, c.ID())
	}
	if in := n.InRoom(nil, "a"); len(in) != 1 {
		t.Errorf("InRoom(a) = %d sockets, want 1", len(in))
	}
	if srv.Lookup("/nope") != nil {
		t.Error("Lookup(/nope) declared a namespace")
	}
	if socks[0].ConnID() == "" {
		t.Error("ConnID() is empty")
	}
	c.Close()
	r.wait(t, "disconnect client namespace disconnect true [a]")
}
