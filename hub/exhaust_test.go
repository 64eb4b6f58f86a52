package hub_test

import (
	"errors"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/hub/hubtest"
	"github.com/walcast/walcast/hub/internal/wsframe"
)

// clientFrame is a masked client WebSocket frame (fin set) with payload p.
func clientFrame(op byte, p []byte) []byte {
	return wsframe.AppendMasked(nil, true, op, p, [4]byte{0x11, 0x22, 0x33, 0x44})
}

// liveHeap is the heap in use after a GC.
func liveHeap() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// watchHeap samples the live heap for d (or until it passes limit) and
// returns the largest growth over base seen.
func watchHeap(base, limit int64, d time.Duration) int64 {
	worst := int64(0)
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		worst = max(worst, liveHeap()-base)
		if worst > limit {
			break
		}
	}
	return worst
}

// Connected clients that announce a ~1 MB message and send only its first
// bytes cost the server what arrived, not what was announced; the messages
// still arrive whole once the rest is sent. Before, the reader allocated the
// announced length at once (~1 MB per connection).
func TestWS_AnnouncedLengthNotPreallocated(t *testing.T) {
	const conns, size = 40, 999_000
	srv, ts := hubtest.NewServer(t, hub.Config{Logger: hubLogger(t)})
	var got atomic.Int64
	srv.Of("/").OnConnect(func(s *hub.Socket) {
		s.On("big", func(s *hub.Socket, m *hub.Message) {
			if len(m.Args) == 1 && len(m.Args[0]) == size-len(`42["big",]`) {
				got.Add(1)
			}
		})
	})
	payload := []byte(`42["big","` + strings.Repeat("x", size-len(`42["big",""]`)) + `"]`)
	frame := clientFrame(1, payload)
	wss := make([]*websocket.Conn, conns)
	for i := range wss {
		wss[i] = wsSession(t, ts)
	}
	base := liveHeap()
	for _, ws := range wss {
		if _, err := ws.NetConn().Write(frame[:14+100]); err != nil {
			t.Fatal(err)
		}
	}
	const perConnLimit = 64 << 10
	grew := watchHeap(base, conns*perConnLimit, time.Second)
	t.Logf("live heap grew %d KiB for %d connections each announcing %d bytes (%d B/conn)", grew>>10, conns, size, grew/conns)
	if grew > conns*perConnLimit {
		t.Fatalf("live heap grew %d bytes per connection with %d-byte frames announced; want <= %d", grew/conns, size, perConnLimit)
	}
	for _, ws := range wss {
		if _, err := ws.NetConn().Write(frame[14+100:]); err != nil {
			t.Fatal(err)
		}
	}
	// A liveness bound, not a speed check: under the race detector, with
	// other packages on the same 2 cores, 16 of the 40 1-MB messages had
	// been parsed after 10 s.
	for deadline := time.Now().Add(60 * time.Second); got.Load() < conns && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if n := got.Load(); n != conns {
		t.Fatalf("%d of %d whole messages arrived", n, conns)
	}
}

// A connection that has not CONNECTed may send only MaxPreConnectBytes: one
// announcing a ~1 MB frame is closed at once with 1008, having cost the
// server no buffer.
func TestWS_PreConnectBudget(t *testing.T) {
	const conns = 40
	// 40 unauthenticated connections from one IP: over the per-IP cap (32).
	_, ts := hubtest.NewServer(t, hub.Config{Logger: hubLogger(t), MaxUnauthenticatedPerIP: -1})
	frame := clientFrame(1, make([]byte, 999_000))
	wss := make([]*websocket.Conn, conns)
	for i := range wss {
		ws, _, err := websocket.DefaultDialer.Dial(wsURL(ts, "transport=websocket"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ws.Close() })
		readWS(t, ws) // open; no CONNECT
		wss[i] = ws
	}
	base := liveHeap()
	start := time.Now()
	for _, ws := range wss {
		ws.NetConn().Write(frame[:14+100])
	}
	for i, ws := range wss {
		err := expectClosed(t, ws)
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation {
			t.Fatalf("conn %d: got %v, want close 1008", i, err)
		}
	}
	took := time.Since(start)
	grew := liveHeap() - base
	t.Logf("%d unauthenticated connections announcing 1 MB closed in %v; live heap %+d KiB", conns, took, grew>>10)
	if took > 2*time.Second {
		t.Errorf("closing took %v; want < 2s", took)
	}
	if grew > conns*(64<<10) {
		t.Errorf("live heap grew %d bytes per connection; want <= 64 KiB", grew/conns)
	}
}

// Pings count against MaxInboundRate: a client sending 10,000 empty pings
// at once gets at most the burst (5 × rate) of pongs, then close 1008.
// Before, every ping was answered and the connection stayed open.
func TestWS_PingFloodClosed(t *testing.T) {
	cfg := fastConfig(t)
	cfg.PingInterval = 10 * time.Second
	cfg.MaxInboundRate = 20 // burst 100
	srv, ts := hubtest.NewServer(t, cfg)
	srv.Of("/").OnConnect(func(s *hub.Socket) {
		s.On("m", func(s *hub.Socket, m *hub.Message) { s.EmitRaw("back", m.Args, nil) })
	})
	calm := dial(t, ts.URL, "/", "")
	ws := wsSession(t, ts)
	pongs := 0
	ws.SetPongHandler(func(string) error { pongs++; return nil })
	ping := clientFrame(9, nil)
	flood := make([]byte, 0, 10_000*len(ping))
	for range 10_000 {
		flood = append(flood, ping...)
	}
	ws.NetConn().Write(flood)
	err := expectClosed(t, ws)
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation {
		t.Fatalf("got %v, want close 1008", err)
	}
	t.Logf("10,000 pings: %d pongs, then %v", pongs, err)
	if pongs > 110 {
		t.Fatalf("%d pongs for a burst of 100", pongs)
	}
	calm.Emit("m", 1)
	if e := next(t, calm); e.Name != "back" {
		t.Fatalf("calm client: got %q", e.Name)
	}
}

// An empty pong costs its queue slot: a client that pings (rate unlimited)
// and never reads is closed as slow once its unsent pongs pass
// MaxQueueBytes. Before, empty pongs counted 0 bytes and the queue grew
// without bound (540 MB in 20 s against walcast serve).
func TestWS_EmptyPongsCountAgainstQueue(t *testing.T) {
	const maxPings = 2_000_000
	reasons := make(chan string, 1)
	srv, ts := hubtest.NewServer(t, hub.Config{MaxQueueBytes: 16 << 10, MaxInboundRate: -1,
		WriteTimeout: 30 * time.Second, PingInterval: time.Minute, Logger: hubLogger(t)})
	srv.Of("/").OnConnect(func(s *hub.Socket) {
		s.OnDisconnect(func(s *hub.Socket, r hub.Reason) { reasons <- r.String() })
	})
	d := websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
		nd := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		}}
		return nd.Dial(network, addr)
	}}
	ws, _, err := d.Dial(wsURL(ts, "transport=websocket"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	readWS(t, ws)
	ws.WriteMessage(websocket.TextMessage, []byte("40"))
	readWS(t, ws) // CONNECT reply; the client reads nothing more
	ping := clientFrame(9, nil)
	batch := make([]byte, 0, 1000*len(ping))
	for range 1000 {
		batch = append(batch, ping...)
	}
	base := liveHeap()
	sent := 0
	ws.NetConn().SetWriteDeadline(time.Now().Add(20 * time.Second))
	for sent < maxPings {
		if _, err := ws.NetConn().Write(batch); err != nil {
			break
		}
		sent += 1000
	}
	grew := liveHeap() - base
	t.Logf("empty pings sent before the server closed: %d; live heap %+d KiB", sent, grew>>10)
	select {
	case r := <-reasons:
		if r != "slow" {
			t.Fatalf("reason %q, want slow", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("not closed after %d empty pings never read", sent)
	}
	if sent >= maxPings {
		t.Fatalf("server still reading after %d empty pings", sent)
	}
}

// A polling session that has not CONNECTed may POST only
// MaxPreConnectBytes; after CONNECT the limit is MaxPayload again. Before,
// any body up to MaxPayload (1 MB) was read and buffered without a token.
func TestPolling_PreConnectBudget(t *testing.T) {
	_, ts := hubtest.NewServer(t, hub.Config{Logger: hubLogger(t)})
	big := `42["x","` + strings.Repeat("y", 100_000) + `"]`
	sid := pollOpen(t, ts)
	if code, body := httpDo(t, "POST", eioURL(ts, "transport=polling&sid="+sid), big); code != 413 {
		t.Fatalf("%d-byte POST before CONNECT: got %d %s, want 413", len(big), code, body)
	}
	sid = pollOpen(t, ts)
	if code, body := httpDo(t, "POST", eioURL(ts, "transport=polling&sid="+sid), "40"); code != 200 {
		t.Fatalf("CONNECT: %d %s", code, body)
	}
	if code, _ := httpDo(t, "GET", eioURL(ts, "transport=polling&sid="+sid), ""); code != 200 {
		t.Fatalf("GET after CONNECT: %d", code)
	}
	if code, body := httpDo(t, "POST", eioURL(ts, "transport=polling&sid="+sid), big); code != 200 {
		t.Fatalf("%d-byte POST after CONNECT: got %d %s, want 200", len(big), code, body)
	}
}
