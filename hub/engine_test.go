package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/hub/hubtest"
)

// fastConfig mirrors the conformance suites' settings.
func fastConfig(t *testing.T) hub.Config {
	return hub.Config{PingInterval: 300 * time.Millisecond, PingTimeout: 200 * time.Millisecond,
		ConnectTimeout: time.Second, Logger: hubLogger(t)}
}

func eioURL(ts *httptest.Server, q string) string { return ts.URL + "/socket.io/?EIO=4&" + q }

func wsURL(ts *httptest.Server, q string) string {
	return "ws" + strings.TrimPrefix(ts.URL, "http") + "/socket.io/?EIO=4&" + q
}

func httpDo(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type openPacket struct {
	SID          string   `json:"sid"`
	Upgrades     []string `json:"upgrades"`
	PingInterval int      `json:"pingInterval"`
	PingTimeout  int      `json:"pingTimeout"`
	MaxPayload   int      `json:"maxPayload"`
}

func parseOpen(t *testing.T, body string) openPacket {
	t.Helper()
	if !strings.HasPrefix(body, "0{") {
		t.Fatalf("open packet: got %q", body)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body[1:]), &keys); err != nil {
		t.Fatalf("open packet JSON: %v", err)
	}
	if len(keys) != 5 {
		t.Fatalf("open packet has %d fields, want 5: %s", len(keys), body)
	}
	if string(keys["upgrades"]) == "null" {
		t.Fatalf("upgrades is null: %s", body)
	}
	var o openPacket
	json.Unmarshal([]byte(body[1:]), &o)
	return o
}

func pollOpen(t *testing.T, ts *httptest.Server) string {
	t.Helper()
	code, body := httpDo(t, "GET", eioURL(ts, "transport=polling"), "")
	if code != 200 {
		t.Fatalf("handshake: %d %s", code, body)
	}
	return parseOpen(t, body).SID
}

func TestEngine_Handshake(t *testing.T) {
	_, ts := hubtest.NewServer(t, fastConfig(t))
	_, body := httpDo(t, "GET", eioURL(ts, "transport=polling"), "")
	o := parseOpen(t, body)
	if len(o.SID) != 20 || len(o.Upgrades) != 1 || o.Upgrades[0] != "websocket" || o.PingInterval != 300 ||
		o.PingTimeout != 200 || o.MaxPayload != 1000000 {
		t.Errorf("polling open: got %+v", o)
	}
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(ts, "transport=websocket"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_, msg, _ := ws.ReadMessage()
	if o := parseOpen(t, string(msg)); o.Upgrades == nil || len(o.Upgrades) != 0 {
		t.Errorf("websocket open: got %+v", o)
	}

	for _, c := range []struct {
		name, method, q string
		code            int
		body            string
	}{
		{"NoEIO", "GET", "transport=polling", 400, `{"code":5,"message":"Unsupported protocol version"}`},
		{"EIO3", "GET", "transport=polling&EIO=3", 400, `{"code":5,"message":"Unsupported protocol version"}`},
		{"BadTransport", "GET", "EIO=4&transport=foo", 400, `{"code":0,"message":"Transport unknown"}`},
		{"PostHandshake", "POST", "EIO=4&transport=polling", 400, `{"code":2,"message":"Bad handshake method"}`},
		{"UnknownSID", "GET", "EIO=4&transport=polling&sid=nope", 400, `{"code":1,"message":"Session ID unknown"}`},
		{"WSWithoutUpgrade", "GET", "EIO=4&transport=websocket", 400, `{"code":3,"message":"Bad request"}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, body := httpDo(t, c.method, ts.URL+"/socket.io/?"+c.q, "")
			if code != c.code || body != c.body {
				t.Errorf("got %d %s, want %d %s", code, body, c.code, c.body)
			}
		})
	}
}

func TestEngine_PollingMessagesAndPing(t *testing.T) {
	srv, ts := hubtest.NewServer(t, fastConfig(t))
	srv.Of("/").OnConnect(func(s *hub.Socket) {
		s.On("m", func(s *hub.Socket, m *hub.Message) { s.EmitRaw("back", m.Args, m.Attachments) })
	})
	sid := pollOpen(t, ts)
	u := eioURL(ts, "transport=polling&sid="+sid)
	if code, body := httpDo(t, "POST", u, "40"); code != 200 || body != "ok" {
		t.Fatalf("POST CONNECT: %d %q", code, body)
	}
	_, body := httpDo(t, "GET", u, "")
	if !strings.HasPrefix(body, `40{"sid":"`) {
		t.Fatalf("CONNECT reply: %q", body)
	}
	httpDo(t, "POST", u, "451-[\"m\",{\"_placeholder\":true,\"num\":0}]\x1ebAQIDBA==")
	_, body = httpDo(t, "GET", u, "")
	if want := "451-[\"back\",{\"_placeholder\":true,\"num\":0}]\x1ebAQIDBA=="; body != want {
		t.Fatalf("binary echo: got %q, want %q", body, want)
	}
	for range 3 {
		if _, body := httpDo(t, "GET", u, ""); body != "2" {
			t.Fatalf("ping: got %q", body)
		}
		httpDo(t, "POST", u, "3")
	}
	// no pong: the session ends
	httpDo(t, "GET", u, "")
	time.Sleep(600 * time.Millisecond)
	if code, _ := httpDo(t, "GET", u, ""); code != 400 {
		t.Fatalf("after ping timeout: got %d, want 400", code)
	}
}

func TestEngine_PollingConcurrency(t *testing.T) {
	// default ping interval: no ping may interleave under a loaded machine
	_, ts := hubtest.NewServer(t, hub.Config{Logger: hubLogger(t)})
	t.Run("TwoGETs", func(t *testing.T) {
		sid := pollOpen(t, ts)
		u := eioURL(ts, "transport=polling&sid="+sid)
		var wg sync.WaitGroup
		var first string
		wg.Go(func() { _, first = httpDo(t, "GET", u, "") })
		time.Sleep(50 * time.Millisecond)
		if code, _ := httpDo(t, "GET", u, ""); code != 400 {
			t.Errorf("second GET: got %d, want 400", code)
		}
		wg.Wait()
		if first != "1" {
			t.Errorf("first GET: got %q, want close packet", first)
		}
		if code, _ := httpDo(t, "GET", u, ""); code != 400 {
			t.Errorf("GET after close: got %d, want 400", code)
		}
	})
	t.Run("ClientClose", func(t *testing.T) {
		sid := pollOpen(t, ts)
		u := eioURL(ts, "transport=polling&sid="+sid)
		var wg sync.WaitGroup
		var first string
		wg.Go(func() { _, first = httpDo(t, "GET", u, "") })
		time.Sleep(50 * time.Millisecond)
		httpDo(t, "POST", u, "1")
		wg.Wait()
		if first != "6" {
			t.Errorf("pending GET after client close: got %q, want noop", first)
		}
		if code, _ := httpDo(t, "GET", u, ""); code != 400 {
			t.Errorf("GET after close: got %d, want 400", code)
		}
	})
	t.Run("BadPayload", func(t *testing.T) {
		sid := pollOpen(t, ts)
		u := eioURL(ts, "transport=polling&sid="+sid)
		if code, _ := httpDo(t, "POST", u, "abc"); code != 400 {
			t.Errorf("POST abc: got %d, want 400", code)
		}
		if code, _ := httpDo(t, "GET", u, ""); code != 400 {
			t.Errorf("GET after bad payload: got %d, want 400", code)
		}
	})
	t.Run("OversizeBody", func(t *testing.T) {
		_, ts := hubtest.NewServer(t, hub.Config{MaxPayload: 100, Logger: hubLogger(t)})
		sid := pollOpen(t, ts)
		u := eioURL(ts, "transport=polling&sid="+sid)
		if code, _ := httpDo(t, "POST", u, "4"+strings.Repeat("x", 200)); code != 413 {
			t.Errorf("oversize POST: got %d, want 413", code)
		}
	})
}

func readWS(t *testing.T, ws *websocket.Conn) (int, string) {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(3 * time.Second))
	mt, b, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return mt, string(b)
}

func TestEngine_Upgrade(t *testing.T) {
	srv, ts := hubtest.NewServer(t, hub.Config{Logger: hubLogger(t)})
	srv.Of("/").OnConnect(func(s *hub.Socket) {
		s.On("m", func(s *hub.Socket, m *hub.Message) { s.EmitRaw("back", m.Args, m.Attachments) })
	})
	sid := pollOpen(t, ts)
	u := eioURL(ts, "transport=polling&sid="+sid)
	httpDo(t, "POST", u, "40")
	httpDo(t, "GET", u, "") // CONNECT reply
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(ts, "transport=websocket&sid="+sid), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.WriteMessage(websocket.TextMessage, []byte("2probe"))
	if _, m := readWS(t, ws); m != "3probe" {
		t.Fatalf("probe: got %q", m)
	}
	if _, body := httpDo(t, "GET", u, ""); body != "6" {
		t.Fatalf("GET during upgrade: got %q, want noop", body)
	}
	ws.WriteMessage(websocket.TextMessage, []byte("5"))
	ws.WriteMessage(websocket.TextMessage, []byte(`42["m","over ws"]`))
	if _, m := readWS(t, ws); m != `42["back","over ws"]` {
		t.Fatalf("after upgrade: got %q", m)
	}
	if code, _ := httpDo(t, "GET", u, ""); code != 400 {
		t.Fatalf("polling after upgrade: got %d, want 400", code)
	}
	ws2, _, err := websocket.DefaultDialer.Dial(wsURL(ts, "transport=websocket&sid="+sid), nil)
	if err != nil {
		t.Fatalf("second WebSocket with the same sid: handshake must succeed, got %v", err)
	}
	ws2.SetReadDeadline(time.Now().Add(time.Second))
	if _, _, err := ws2.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Fatalf("second WebSocket with the same sid: got %v, want a close", err)
	}
	ws2.Close()
}

func TestEngine_UpgradeRaceWithGET(t *testing.T) {
	_, ts := hubtest.NewServer(t, hub.Config{Logger: hubLogger(t)})
	for range 5 {
		sid := pollOpen(t, ts)
		u := eioURL(ts, "transport=polling&sid="+sid)
		ws, _, err := websocket.DefaultDialer.Dial(wsURL(ts, "transport=websocket&sid="+sid), nil)
		if err != nil {
			t.Fatal(err)
		}
		ws.WriteMessage(websocket.TextMessage, []byte("2probe"))
		ws.WriteMessage(websocket.TextMessage, []byte("5"))
		readWS(t, ws)
		if code, body := httpDo(t, "GET", u, ""); code != 400 {
			t.Fatalf("GET after 5: got %d %q, want 400", code, body)
		}
		ws.Close()
	}
}

func TestEngine_PollingCloseRace(t *testing.T) {
	_, ts := hubtest.NewServer(t, hub.Config{Logger: hubLogger(t)})
	for _, getFirst := range []bool{true, false} {
		sid := pollOpen(t, ts)
		u := eioURL(ts, "transport=polling&sid="+sid)
		var wg sync.WaitGroup
		var code int
		var body string
		if !getFirst {
			httpDo(t, "POST", u, "1")
		}
		wg.Go(func() { code, body = httpDo(t, "GET", u, "") })
		if getFirst {
			time.Sleep(30 * time.Millisecond)
			httpDo(t, "POST", u, "1")
		}
		wg.Wait()
		if code != 200 || body != "6" {
			t.Errorf("getFirst=%v: GET got %d %q, want 200 noop", getFirst, code, body)
		}
		if code, _ := httpDo(t, "GET", u, ""); code != 400 {
			t.Errorf("getFirst=%v: later GET got %d, want 400", getFirst, code)
		}
	}
}

// wsSession opens a WebSocket session and CONNECTs to "/".
func wsSession(t *testing.T, ts *httptest.Server) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(ts, "transport=websocket"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	readWS(t, ws) // open
	ws.WriteMessage(websocket.TextMessage, []byte("40"))
	if _, m := readWS(t, ws); !strings.HasPrefix(m, `40{"sid":`) {
		t.Fatalf("CONNECT reply: %q", m)
	}
	return ws
}

func expectClosed(t *testing.T, ws *websocket.Conn) error {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(3 * time.Second))
	for {
		_, m, err := ws.ReadMessage()
		if err != nil {
			if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
				t.Fatal("connection not closed")
			}
			return err
		}
		if string(m) != "2" {
			t.Fatalf("got %q before close", m)
		}
	}
}

func TestSocket_BadPackets(t *testing.T) {
	// default pings: the raw clients here never answer them
	srv, ts := hubtest.NewServer(t, hub.Config{Logger: hubLogger(t)})
	srv.Of("/").OnConnect(func(s *hub.Socket) {
		s.On("m", func(s *hub.Socket, m *hub.Message) { s.EmitRaw("back", m.Args, m.Attachments) })
	})
	healthy := wsSession(t, ts)
	for _, c := range []struct {
		name  string
		frame string
		bin   bool
	}{
		{"UnknownEngineType", "9", false},
		{"UnknownSocketType", "4abc", false},
		{"EventNotArray", "42{}", false},
		{"EventBadJSON", `42abc["x"]`, false},
		{"EventEmpty", `42[]`, false},
		{"ReservedEvent", `42["connect"]`, false},
		{"ClientPing", "2", false},
		{"UnexpectedBinary", "\x01\x02", true},
		{"TooManyAttachments", `4511-["m"]`, false},
		{"SecondConnect", "40", false},
		{"NotConnectedNamespace", `42/other,["m"]`, false},
		{"DisconnectWithPayload", `41{}`, false},
		{"PlaceholderOutOfRange", `451-["m",{"_placeholder":true,"num":5}]`, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ws := wsSession(t, ts)
			mt := websocket.TextMessage
			if c.bin {
				mt = websocket.BinaryMessage
			}
			ws.WriteMessage(mt, []byte(c.frame))
			if strings.HasPrefix(c.frame, "451-") {
				ws.WriteMessage(websocket.BinaryMessage, []byte{1})
			}
			err := expectClosed(t, ws)
			if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != websocket.CloseProtocolError || ce.Text == "" {
				t.Errorf("close: got %v, want 1002 with the reason", err)
			}
		})
	}
	t.Run("OversizeFrame", func(t *testing.T) {
		_, ts := hubtest.NewServer(t, hub.Config{MaxPayload: 1000, Logger: hubLogger(t)})
		ws := wsSession(t, ts)
		ws.WriteMessage(websocket.TextMessage, []byte(`42["m","`+strings.Repeat("x", 2000)+`"]`))
		ws.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, _, err := ws.ReadMessage()
		if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
			t.Fatalf("got %v, want close 1009", err)
		}
	})
	healthy.WriteMessage(websocket.TextMessage, []byte(`42["m",1]`))
	for {
		if _, m := readWS(t, healthy); m != "2" {
			if m != `42["back",1]` {
				t.Fatalf("healthy client: got %q", m)
			}
			break
		}
	}
}

func TestSocket_NamespaceDisconnectKeepsEngine(t *testing.T) {
	// pings every second, answered in time by nobody: the test ends before
	cfg := fastConfig(t)
	cfg.PingInterval, cfg.PingTimeout = time.Second, time.Second
	srv, ts := hubtest.NewServer(t, cfg)
	srv.Of("/custom")
	gone := make(chan string, 1)
	srv.Of("/custom").OnConnect(func(s *hub.Socket) {
		s.OnDisconnect(func(s *hub.Socket, reason hub.Reason) { gone <- reason.String() })
	})
	srv.Of("/").OnConnect(func(s *hub.Socket) {
		s.On("m", func(s *hub.Socket, m *hub.Message) { s.EmitRaw("back", m.Args, nil) })
	})
	ws := wsSession(t, ts)
	ws.WriteMessage(websocket.TextMessage, []byte("40/custom,"))
	if _, m := readWS(t, ws); !strings.HasPrefix(m, `40/custom,{"sid":"`) {
		t.Fatalf("custom CONNECT: %q", m)
	}
	ws.WriteMessage(websocket.TextMessage, []byte("41/custom,"))
	if r := <-gone; r != "client namespace disconnect" {
		t.Fatalf("reason: got %q", r)
	}
	ws.WriteMessage(websocket.TextMessage, []byte(`42["m",2]`))
	if _, m := readWS(t, ws); m != `42["back",2]` {
		t.Fatalf("after 41/custom: got %q", m)
	}
	ws.WriteMessage(websocket.TextMessage, []byte("41"))
	if _, m := readWS(t, ws); m != "2" {
		t.Fatalf("after 41: got %q, want ping", m)
	}
}

func TestEngine_Timeouts(t *testing.T) {
	_, ts := hubtest.NewServer(t, fastConfig(t))
	t.Run("ConnectTimeout", func(t *testing.T) {
		ws, _, err := websocket.DefaultDialer.Dial(wsURL(ts, "transport=websocket"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		readWS(t, ws)
		start := time.Now()
		for {
			ws.SetReadDeadline(time.Now().Add(3 * time.Second))
			_, m, err := ws.ReadMessage()
			if err != nil {
				break
			}
			if string(m) == "2" {
				ws.WriteMessage(websocket.TextMessage, []byte("3"))
			}
		}
		if d := time.Since(start); d < 900*time.Millisecond || d > 2*time.Second {
			t.Fatalf("closed after %v, want ~1s", d)
		}
	})
	t.Run("PingTimeout", func(t *testing.T) {
		ws := wsSession(t, ts)
		if _, m := readWS(t, ws); m != "2" {
			t.Fatalf("got %q, want ping", m)
		}
		start := time.Now()
		expectClosed(t, ws)
		if d := time.Since(start); d < 150*time.Millisecond || d > time.Second {
			t.Fatalf("closed %v after the ping, want ~200ms", d)
		}
	})
}

func TestEngine_Origin(t *testing.T) {
	_, ts := hubtest.NewServer(t, hub.Config{AllowedOrigins: []string{"https://shop.example"}, Logger: hubLogger(t)})
	h := http.Header{"Origin": {"https://evil.example"}}
	if _, resp, err := websocket.DefaultDialer.Dial(wsURL(ts, "transport=websocket"), h); err == nil || resp.StatusCode != 403 {
		t.Fatalf("bad origin WebSocket: got %v", err)
	}
	h.Set("Origin", "https://shop.example")
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(ts, "transport=websocket"), h)
	if err != nil {
		t.Fatalf("good origin WebSocket: %v", err)
	}
	ws.Close()
	req, _ := http.NewRequest("OPTIONS", eioURL(ts, "transport=polling"), nil)
	req.Header.Set("Origin", "https://shop.example")
	req.Header.Set("Access-Control-Request-Headers", "content-type")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://shop.example" ||
		resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	req, _ = http.NewRequest("GET", eioURL(ts, "transport=polling"), nil)
	req.Header.Set("Origin", "https://evil.example")
	resp, _ = http.DefaultClient.Do(req)
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("bad origin polling: got %d", resp.StatusCode)
	}
}

func TestBroadcast_SlowClientDisconnected(t *testing.T) {
	srv, ts := hubtest.NewServer(t, hub.Config{MaxQueueBytes: 256 << 10, WriteTimeout: 30 * time.Second, Logger: hubLogger(t)})
	reasons := make(chan string, 2)
	srv.Of("/").OnConnect(func(s *hub.Socket) {
		s.OnDisconnect(func(s *hub.Socket, r hub.Reason) { reasons <- r.String() })
	})
	fast := dial(t, ts.URL, "/", "")
	// the slow client never reads after CONNECT
	slow := wsSession(t, ts)
	_ = slow
	// 20 events of 4 KB per batch: the fast client keeps up (it reads each
	// batch before the next), the slow one overflows its 256 KiB budget once
	// the kernel buffers are full.
	payload := json.RawMessage(`"` + strings.Repeat("x", 4000) + `"`)
	var worst time.Duration
	for range 300 {
		start := time.Now()
		for range 20 {
			srv.Broadcast(context.Background(), &hub.Broadcast{Event: "big", Args: []json.RawMessage{payload}})
		}
		worst = max(worst, time.Since(start))
		for range 20 {
			if e := next(t, fast); e.Name != "big" {
				t.Fatalf("fast client: got %q", e.Name)
			}
		}
	}
	if worst > 2*time.Second {
		t.Errorf("a batch of broadcasts took %v: blocked by the slow client?", worst)
	}
	select {
	case r := <-reasons:
		if r != "slow" && r != "write timeout" {
			t.Fatalf("slow client reason: got %q", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("slow client not disconnected")
	}
}

func TestSocket_FloodClosesOnlyThatClient(t *testing.T) {
	cfg := fastConfig(t)
	cfg.MaxInboundRate = 20 // burst 100
	srv, ts := hubtest.NewServer(t, cfg)
	srv.Of("/").OnConnect(func(s *hub.Socket) {
		s.On("m", func(s *hub.Socket, m *hub.Message) { s.EmitRaw("back", m.Args, nil) })
	})
	calm := dial(t, ts.URL, "/", "")
	flood := wsSession(t, ts)
	for range 500 {
		if flood.WriteMessage(websocket.TextMessage, []byte(`42["m",0]`)) != nil {
			break
		}
	}
	expectClosedAfterEchoes(t, flood)
	calm.Emit("m", 1)
	if e := next(t, calm); e.Name != "back" {
		t.Fatalf("calm client: got %q", e.Name)
	}
}

// expectClosedAfterEchoes reads until the connection closes.
func expectClosedAfterEchoes(t *testing.T, ws *websocket.Conn) {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
				t.Fatal("flooding client not closed")
			}
			return
		}
	}
}

// A connection whose last queued write is older than WriteTimeout still gets
// broadcasts (regression: a stale write deadline failed inline writes).
func TestBroadcast_AfterWriteTimeoutAge(t *testing.T) {
	srv, ts := hubtest.NewServer(t, hub.Config{WriteTimeout: 100 * time.Millisecond, Logger: hubLogger(t)})
	socks := make(chan *hub.Socket, 1)
	srv.Of("/").OnConnect(func(s *hub.Socket) { socks <- s })
	c := dial(t, ts.URL, "/", "")
	s := <-socks
	s.Emit("queued") // written by the writer goroutine, which sets a deadline
	next(t, c)
	time.Sleep(300 * time.Millisecond)
	for i := range 3 {
		srv.Broadcast(context.Background(), &hub.Broadcast{Event: "b", Args: []json.RawMessage{raw(fmt.Sprint(i))}})
		if e := next(t, c); e.Name != "b" {
			t.Fatalf("broadcast %d: got %q", i, e.Name)
		}
	}
}

// A server-initiated close of a polling session between two GETs: the next
// GET still collects the queued packets and the close packet.
func TestEngine_PollingServerCloseDelivers(t *testing.T) {
	srv, ts := hubtest.NewServer(t, hub.Config{Logger: hubLogger(t)})
	socks := make(chan *hub.Socket, 1)
	srv.Of("/").OnConnect(func(s *hub.Socket) { socks <- s })
	sid := pollOpen(t, ts)
	u := eioURL(ts, "transport=polling&sid="+sid)
	httpDo(t, "POST", u, "40")
	httpDo(t, "GET", u, "") // CONNECT reply
	s := <-socks
	s.Emit("a", 1)
	s.Emit("b", 2)
	s.CloseTransport("kicked")
	if code, body := httpDo(t, "GET", u, ""); code != 200 || body != "42[\"a\",1]\x1e42[\"b\",2]\x1e1" {
		t.Fatalf("GET after close: %d %q", code, body)
	}
	if code, _ := httpDo(t, "GET", u, ""); code != 400 {
		t.Fatalf("second GET after close: got %d, want 400", code)
	}
}

// TestSocket_ConnectReplyAfterHandlers: a client receives its CONNECT reply
// only once the namespace's OnConnect handlers have run, so a broadcast sent
// after the client saw "connect" reaches the rooms they joined. Before, the
// reply was sent first: a broadcast in that gap found the room empty and
// the client never got it.
func TestSocket_ConnectReplyAfterHandlers(t *testing.T) {
	srv, ts := hubtest.NewServer(t, fastConfig(t))
	srv.Of("/").OnConnect(func(s *hub.Socket) {
		time.Sleep(200 * time.Millisecond) // a handler that takes its time
		s.Join("r")
		s.Emit("hello", 1)
	})
	c := dial(t, ts.URL, "/", "")
	srv.Broadcast(t.Context(), &hub.Broadcast{Rooms: []string{"r"}, Event: "after-connect"})
	for _, want := range []string{"hello", "after-connect"} {
		if e := next(t, c); e.Name != want {
			t.Fatalf("over WebSocket: got %q, want %q", e.Name, want)
		}
	}

	// Over polling: the reply and the handler's emit come in one GET.
	sid := pollOpen(t, ts)
	u := eioURL(ts, "transport=polling&sid="+sid)
	if code, body := httpDo(t, "POST", u, "40"); code != 200 || body != "ok" {
		t.Fatalf("POST CONNECT: %d %q", code, body)
	}
	_, body := httpDo(t, "GET", u, "")
	if !strings.HasPrefix(body, `40{"sid":"`) || !strings.HasSuffix(body, "\x1e42[\"hello\",1]") {
		t.Fatalf("over polling: first GET %q, want the CONNECT reply then the handler's emit", body)
	}
}
