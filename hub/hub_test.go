package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/hub/hubtest"
	"github.com/walcast/walcast/internal/testutil"
)

func hubLogger(t *testing.T) *slog.Logger { return testutil.Logger(t, slog.LevelDebug) }

func raw(s string) json.RawMessage { return json.RawMessage(s) }

func next(t *testing.T, c *hubtest.Client) hubtest.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	e, err := c.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return e
}

func dial(t *testing.T, url, nsp, auth string) *hubtest.Client {
	t.Helper()
	var a json.RawMessage
	if auth != "" {
		a = raw(auth)
	}
	c, err := hubtest.Dial(t.Context(), url, nsp, a)
	if err != nil {
		t.Fatalf("Dial %s: %v", nsp, err)
	}
	t.Cleanup(func() { c.Drop() })
	return c
}

func TestServer_EventsAndAcks(t *testing.T) {
	srv, ts := hubtest.NewServer(t, hub.Config{Logger: hubLogger(t)})
	srv.Of("/").OnConnect(func(s *hub.Socket) {
		s.Emit("auth", s.Handshake().Auth)
		s.On("echo", func(s *hub.Socket, m *hub.Message) { s.EmitRaw("echo-back", m.Args, m.Attachments) })
		s.On("ack", func(s *hub.Socket, m *hub.Message) {
			if err := m.AckRaw(m.Args, m.Attachments); err != nil {
				t.Errorf("AckRaw: %v", err)
			}
			if err := m.Ack(); !errors.Is(err, hub.ErrNoAck) {
				t.Errorf("second Ack: got %v, want ErrNoAck", err)
			}
		})
		s.On("ask", func(s *hub.Socket, m *hub.Message) {
			go func() {
				got, err := s.EmitWithAck(s.Context(), "question", 7)
				if err != nil {
					t.Errorf("EmitWithAck: %v", err)
					return
				}
				s.Emit("answer", got[0])
			}()
		})
	})
	c := dial(t, ts.URL, "/", `{"token":"t<&>"}`)
	if e := next(t, c); e.Name != "auth" || string(e.Args[0]) != `{"token":"t<&>"}` {
		t.Fatalf("auth event: got %s %s", e.Name, e.Args)
	}
	c.Emit("echo", 1, "2", raw(`{"3":[true]}`), []byte{1, 2, 3})
	e := next(t, c)
	if e.Name != "echo-back" || len(e.Args) != 4 || string(e.Args[3]) != `{"_placeholder":true,"num":0}` ||
		len(e.Attachments) != 1 || string(e.Attachments[0]) != "\x01\x02\x03" {
		t.Fatalf("echo-back: got %+v", e)
	}
	got, err := c.EmitWithAck(t.Context(), "ack", "x", []byte{9})
	if err != nil || len(got) != 2 || string(got[0]) != `"x"` {
		t.Fatalf("ack: got %s, %v", got, err)
	}
	c.Emit("ask")
	q := next(t, c)
	if q.Name != "question" || q.Ack == nil {
		t.Fatalf("question: got %+v", q)
	}
	q.Ack("yes")
	if e := next(t, c); e.Name != "answer" || string(e.Args[0]) != `"yes"` {
		t.Fatalf("answer: got %+v", e)
	}
}

func TestServer_ConnectErrors(t *testing.T) {
	srv, ts := hubtest.NewServer(t, hub.Config{Logger: hubLogger(t)})
	srv.Of("/admin").Use(func(ctx context.Context, h *hub.Handshake) error {
		var a struct{ Token string }
		json.Unmarshal(h.Auth, &a)
		if a.Token != "ok" {
			return &hub.ConnectError{Message: "not authorized", Data: map[string]string{"reason": "bad token"}}
		}
		h.Data = "admin-user"
		return nil
	})
	connected := make(chan any, 1)
	srv.Of("/admin").OnConnect(func(s *hub.Socket) { connected <- s.Data() })

	_, err := hubtest.Dial(t.Context(), ts.URL, "/admin", raw(`{"token":"no"}`))
	var ce *hubtest.ConnectError
	if !errors.As(err, &ce) || ce.Message != "not authorized" || string(ce.Data) != `{"reason":"bad token"}` {
		t.Fatalf("refused: got %v", err)
	}
	_, err = hubtest.Dial(t.Context(), ts.URL, "/nope", nil)
	if !errors.As(err, &ce) || ce.Message != "Invalid namespace" || ce.Data != nil {
		t.Fatalf("unknown namespace: got %v", err)
	}
	dial(t, ts.URL, "/admin", `{"token":"ok"}`)
	if d := <-connected; d != "admin-user" {
		t.Fatalf("Data: got %v", d)
	}
}

func TestServer_BroadcastRooms(t *testing.T) {
	srv, ts := hubtest.NewServer(t, hub.Config{Logger: hubLogger(t)})
	socks := make(chan *hub.Socket, 3)
	srv.Of("/").OnConnect(func(s *hub.Socket) { socks <- s })
	a, b, c := dial(t, ts.URL, "/", ""), dial(t, ts.URL, "/", ""), dial(t, ts.URL, "/", "")
	sa, sb, sc := <-socks, <-socks, <-socks
	_ = sc
	sa.Join("shop:1", "x")
	sb.Join("shop:1")
	if got := srv.Stats(); got.Connections != 3 || got.Sockets != 3 || got.Rooms != 2 {
		t.Fatalf("Stats: got %+v", got)
	}
	srv.Broadcast(context.Background(), &hub.Broadcast{Rooms: []string{"shop:1"}, Except: []string{sb.ID()}, Event: "order", Args: []json.RawMessage{raw(`{"id":1}`)}})
	srv.Broadcast(context.Background(), &hub.Broadcast{Event: "all", Args: []json.RawMessage{raw(`2`)}})
	srv.Broadcast(context.Background(), &hub.Broadcast{Rooms: []string{"shop:1", "x"}, Event: "multi", Attachments: [][]byte{{7}},
		Args: []json.RawMessage{raw(`{"_placeholder":true,"num":0}`)}})
	for _, w := range []struct {
		c     *hubtest.Client
		names []string
	}{{a, []string{"order", "all", "multi"}}, {b, []string{"all", "multi"}}, {c, []string{"all"}}} {
		var got []string
		for range w.names {
			e := next(t, w.c)
			got = append(got, e.Name)
			if e.Name == "multi" && (len(e.Attachments) != 1 || e.Attachments[0][0] != 7) {
				t.Errorf("multi attachments: got %v", e.Attachments)
			}
		}
		if !slices.Equal(got, w.names) {
			t.Errorf("events: got %v, want %v", got, w.names)
		}
	}
	sa.Leave("x")
	if got := sa.Rooms(); !slices.Contains(got, sa.ID()) || !slices.Contains(got, "shop:1") || len(got) != 2 {
		t.Errorf("Rooms: got %v", got)
	}
}

func TestServer_Recovery(t *testing.T) {
	srv, ts := hubtest.NewServer(t, hub.Config{Logger: hubLogger(t), Recovery: &hub.RecoveryConfig{}})
	socks := make(chan *hub.Socket, 2)
	srv.Of("/").OnConnect(func(s *hub.Socket) {
		if !s.Recovered() {
			s.Join("r")
		}
		socks <- s
	})
	c := dial(t, ts.URL, "/", `{"token":"a"}`)
	s1 := <-socks
	if c.PID() == "" {
		t.Fatal("no pid in CONNECT reply")
	}
	srv.Broadcast(context.Background(), &hub.Broadcast{Rooms: []string{"r"}, Event: "e", Args: []json.RawMessage{raw(`1`)}, Offset: "100-0"})
	if e := next(t, c); string(e.Args[len(e.Args)-1]) != `"100-0"` || c.LastOffset() != "100-0" {
		t.Fatalf("offset: got %s / %q", e.Args, c.LastOffset())
	}
	c.Drop()
	time.Sleep(50 * time.Millisecond)
	srv.Broadcast(context.Background(), &hub.Broadcast{Rooms: []string{"r"}, Event: "e", Args: []json.RawMessage{raw(`2`)}, Offset: "101-0"})
	srv.Broadcast(context.Background(), &hub.Broadcast{Rooms: []string{"other"}, Event: "e", Args: []json.RawMessage{raw(`3`)}, Offset: "101-1"})
	srv.Broadcast(context.Background(), &hub.Broadcast{Event: "e", Args: []json.RawMessage{raw(`4`)}, Offset: "102-0"})
	c2, err := c.Reconnect(t.Context())
	if err != nil {
		t.Fatalf("Reconnect: %v", err)
	}
	defer c2.Drop()
	s2 := <-socks
	if !c2.Recovered() || !s2.Recovered() || c2.ID() != s1.ID() {
		t.Fatalf("recovered: client %v server %v id %s vs %s", c2.Recovered(), s2.Recovered(), c2.ID(), s1.ID())
	}
	for _, want := range []string{`2`, `4`} {
		if e := next(t, c2); string(e.Args[0]) != want {
			t.Fatalf("replay: got %s, want %s first", e.Args, want)
		}
	}
	if !slices.Contains(s2.Rooms(), "r") {
		t.Fatalf("rooms not restored: %v", s2.Rooms())
	}
}

// TestServer_RecoverFilter: the OnRecover filter sees the middlewares' Data
// and the session's rooms, and runs before the replay: a room it drops is
// not rejoined and none of its missed broadcasts is replayed.
func TestServer_RecoverFilter(t *testing.T) {
	srv, ts := hubtest.NewServer(t, hub.Config{Logger: hubLogger(t), Recovery: &hub.RecoveryConfig{}})
	nsp := srv.Of("/")
	nsp.Use(func(_ context.Context, h *hub.Handshake) error { h.Data = "verified"; return nil })
	var seen []string
	var data any
	nsp.OnRecover(func(h *hub.Handshake, rooms []string) []string {
		data, seen = h.Data, slices.Clone(rooms)
		return slices.DeleteFunc(rooms, func(r string) bool { return r == "secret" })
	})
	socks := make(chan *hub.Socket, 2)
	nsp.OnConnect(func(s *hub.Socket) {
		if !s.Recovered() {
			s.Join("open", "secret")
		}
		socks <- s
	})
	c := dial(t, ts.URL, "/", `{"token":"a"}`)
	<-socks
	srv.Broadcast(context.Background(), &hub.Broadcast{Rooms: []string{"open"}, Event: "e", Args: []json.RawMessage{raw(`1`)}, Offset: "100-0"})
	next(t, c)
	c.Drop()
	time.Sleep(50 * time.Millisecond)
	srv.Broadcast(context.Background(), &hub.Broadcast{Rooms: []string{"secret"}, Event: "e", Args: []json.RawMessage{raw(`2`)}, Offset: "101-0"})
	srv.Broadcast(context.Background(), &hub.Broadcast{Rooms: []string{"open"}, Event: "e", Args: []json.RawMessage{raw(`3`)}, Offset: "102-0"})
	c2, err := c.Reconnect(t.Context())
	if err != nil {
		t.Fatalf("Reconnect: %v", err)
	}
	defer c2.Drop()
	s2 := <-socks
	if !c2.Recovered() {
		t.Fatal("not recovered")
	}
	slices.Sort(seen)
	if data != "verified" || !slices.Equal(seen, []string{"open", "secret"}) {
		t.Errorf("filter got Data %v rooms %v, want verified [open secret]", data, seen)
	}
	if e := next(t, c2); string(e.Args[0]) != `3` {
		t.Errorf("first replayed = %s, want 3 (2 was sent to the dropped room)", e.Args)
	}
	if slices.Contains(s2.Rooms(), "secret") || !slices.Contains(s2.Rooms(), "open") {
		t.Errorf("rooms after recovery = %v, want open without secret", s2.Rooms())
	}
}

// TestServer_RecoveryUnderLoad drops and recovers a client while broadcasts
// keep flowing: every offset must arrive exactly once, in order, across the
// two connections.
func TestServer_RecoveryUnderLoad(t *testing.T) {
	srv, ts := hubtest.NewServer(t, hub.Config{Logger: hubLogger(t), Recovery: &hub.RecoveryConfig{}})
	srv.Of("/").OnConnect(func(s *hub.Socket) {
		if !s.Recovered() {
			s.Join("r")
		}
	})
	c := dial(t, ts.URL, "/", "")
	const n = 3000
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range n {
			srv.Broadcast(context.Background(), &hub.Broadcast{Rooms: []string{"r"}, Event: "e", Args: []json.RawMessage{raw(fmt.Sprint(i))},
				Offset: fmt.Sprintf("%d-0", i)})
			if i%20 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		close(stop)
	})
	var got []int
	take := func(c *hubtest.Client, until func() bool) {
		for !until() {
			e := next(t, c)
			var i int
			json.Unmarshal(e.Args[0], &i)
			got = append(got, i)
		}
	}
	take(c, func() bool { return len(got) >= 500 })
	c.Drop()
	for e := range c.Events() { // received before the drop, not yet read
		var i int
		json.Unmarshal(e.Args[0], &i)
		got = append(got, i)
	}
	time.Sleep(20 * time.Millisecond)
	c2, err := c.Reconnect(t.Context())
	if err != nil {
		t.Fatalf("Reconnect: %v", err)
	}
	defer c2.Drop()
	if !c2.Recovered() {
		t.Fatal("not recovered")
	}
	take(c2, func() bool { return len(got) > 0 && got[len(got)-1] == n-1 })
	wg.Wait()
	for i, v := range got {
		if v != i {
			t.Fatalf("event %d: got %d (dup or gap); around: %v", i, v, got[max(0, i-3):min(len(got), i+3)])
		}
	}
}

// TestServer_EndAllSessions: after EndAllSessions neither a connected client
// nor one that had dropped before is recovered on reconnect; both start a
// new session.
func TestServer_EndAllSessions(t *testing.T) {
	srv, ts := hubtest.NewServer(t, hub.Config{Logger: hubLogger(t), Recovery: &hub.RecoveryConfig{}})
	socks := make(chan *hub.Socket, 4)
	srv.Of("/").OnConnect(func(s *hub.Socket) { s.Join("r"); socks <- s })
	a, d := dial(t, ts.URL, "/", `{"token":"a"}`), dial(t, ts.URL, "/", `{"token":"d"}`)
	<-socks
	<-socks
	srv.Broadcast(context.Background(), &hub.Broadcast{Rooms: []string{"r"}, Event: "e", Args: []json.RawMessage{raw(`1`)}, Offset: "100-0"})
	next(t, a)
	next(t, d)
	d.Drop() // its session is saved for recovery
	deadline := time.Now().Add(10 * time.Second)
	for srv.Stats().Connections != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("dropped client still counted: %+v", srv.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	srv.EndAllSessions("test")
	for srv.Stats().Connections != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("connections left after EndAllSessions: %+v", srv.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	for name, c := range map[string]*hubtest.Client{"connected": a, "dropped": d} {
		c2, err := c.Reconnect(t.Context())
		if err != nil {
			t.Fatalf("%s: Reconnect: %v", name, err)
		}
		s2 := <-socks
		if c2.Recovered() || s2.Recovered() {
			t.Errorf("%s client recovered after EndAllSessions (client %v, server %v)", name, c2.Recovered(), s2.Recovered())
		}
		c2.Drop()
	}
}

// TestServer_SessionChange: OnSessionChange follows a socket through connect,
// join, leave, a recoverable disconnect and its recovery under the same pid.
func TestServer_SessionChange(t *testing.T) {
	var mu sync.Mutex
	var got []string
	cfg := hub.Config{Logger: hubLogger(t), Recovery: &hub.RecoveryConfig{}, OnSessionChange: func(c hub.SessionChange) {
		rooms := slices.Clone(c.Rooms)
		slices.Sort(rooms)
		mu.Lock()
		defer mu.Unlock()
		got = append(got, fmt.Sprintf("%s %s %v connected=%v recoverable=%v", c.PID, c.Namespace, rooms, c.Connected, c.Recoverable))
	}}
	srv, ts := hubtest.NewServer(t, cfg)
	socks := make(chan *hub.Socket, 2)
	srv.Of("/").OnConnect(func(s *hub.Socket) {
		if !s.Recovered() {
			s.Join("r", "q")
			s.Join("r") // no change, no call
			s.Leave("q")
		}
		socks <- s
	})
	c := dial(t, ts.URL, "/", "")
	<-socks
	srv.Broadcast(context.Background(), &hub.Broadcast{Rooms: []string{"r"}, Event: "e", Args: []json.RawMessage{raw(`1`)}, Offset: "100-0"})
	next(t, c)
	pid := c.PID()
	c.Drop()
	wait := func(n int) []string {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			mu.Lock()
			out := slices.Clone(got)
			mu.Unlock()
			if len(out) >= n {
				return out
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d session changes, want %d: %q", len(out), n, out)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	wait(4)
	c2, err := c.Reconnect(t.Context())
	if err != nil {
		t.Fatalf("Reconnect: %v", err)
	}
	defer c2.Drop()
	<-socks
	out := wait(6)
	want := []string{
		pid + " / [] connected=true recoverable=false",
		pid + " / [q r] connected=true recoverable=false",
		pid + " / [r] connected=true recoverable=false",
		pid + " / [r] connected=false recoverable=true",
		pid + " / [] connected=true recoverable=false",
		pid + " / [r] connected=true recoverable=false",
	}
	if !c2.Recovered() || !slices.Equal(out, want) {
		t.Fatalf("recovered %v, session changes:\n%s\nwant:\n%s", c2.Recovered(), strings.Join(out, "\n"), strings.Join(want, "\n"))
	}
}

// A broadcast can reach the recovery store before a recovering client's
// replay reads it, and the client's queue only after the replay ended (the
// fan-out of a bus delivery runs apart from the store's append): the replay
// has sent it, so the live copy must be dropped.
func TestServer_RecoveryLateFanOut(t *testing.T) {
	store := hub.NewMemoryStore(time.Minute, 1000)
	srv, ts := hubtest.NewServer(t, hub.Config{Logger: hubLogger(t), Recovery: &hub.RecoveryConfig{Store: store}})
	srv.Of("/").OnConnect(func(s *hub.Socket) {
		if !s.Recovered() {
			s.Join("r")
		}
	})
	c := dial(t, ts.URL, "/", `{"token":"a"}`)
	srv.Broadcast(context.Background(), &hub.Broadcast{Rooms: []string{"r"}, Event: "e", Args: []json.RawMessage{raw(`1`)}, Offset: "100-0"})
	if e := next(t, c); string(e.Args[0]) != `1` {
		t.Fatalf("got %s", e.Args)
	}
	c.Drop()
	time.Sleep(50 * time.Millisecond)
	late := &hub.Broadcast{Rooms: []string{"r"}, Event: "e", Args: []json.RawMessage{raw(`2`)}, Offset: "101-0"}
	if err := store.Append(t.Context(), late); err != nil { // stored, not yet fanned out
		t.Fatal(err)
	}
	c2, err := c.Reconnect(t.Context())
	if err != nil {
		t.Fatalf("Reconnect: %v", err)
	}
	defer c2.Drop()
	if e := next(t, c2); string(e.Args[0]) != `2` || !c2.Recovered() {
		t.Fatalf("replay: got %s recovered=%v", e.Args, c2.Recovered())
	}
	srv.Broadcast(context.Background(), late) // its fan-out, after the replay
	srv.Broadcast(context.Background(), &hub.Broadcast{Rooms: []string{"r"}, Event: "e", Args: []json.RawMessage{raw(`3`)}, Offset: "102-0"})
	srv.Broadcast(context.Background(), &hub.Broadcast{Rooms: []string{"r"}, Event: "e", Args: []json.RawMessage{raw(`4`)}, Offset: "103-0"})
	for _, want := range []string{`3`, `4`} {
		if e := next(t, c2); string(e.Args[0]) != want {
			t.Fatalf("live: got %s, want %s (the late fan-out of 2 must not arrive again)", e.Args, want)
		}
	}
}
