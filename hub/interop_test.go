package hub_test

// Interop tests: the real socket.io-client 4.8 (Node, from testdata/node_modules) against a
// hub.Server on a loopback port. Each test runs `node testdata/interop/<script>.mjs <url>`
// and reads the script's JSON lines (one object per line, {"ev": ...}); scripts that need
// the test to act in between (restart, recovery) take commands as lines on stdin.
// Nothing here sleeps to wait for an event: every step waits for a line, a channel or a
// marker event, with a deadline (the only sleep is the retry while a restarted server's port
// is still busy).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/hub/bus"
	"github.com/walcast/walcast/hub/bus/redistest"
	"github.com/walcast/walcast/internal/testutil"
)

// interopWait bounds every wait for a line from a Node script.
const interopWait = 15 * time.Second

// testServer is a hub.Server behind an http.Server on a loopback port.
type testServer struct {
	logf func(format string, args ...any)
	Hub  *hub.Server
	Addr string // host:port
	URL  string // http://host:port
	http *http.Server
	done chan struct{}
}

// startServer listens on addr ("127.0.0.1:0" for a fresh port), mounts a new hub.Server
// configured by cfg at cfg.Path, and calls setup before serving. The server is stopped
// at the end of the test unless stopped before.
func startServer(t *testing.T, addr string, cfg hub.Config, setup func(*hub.Server)) *testServer {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = hubLogger(t)
	}
	srv, err := hub.New(cfg)
	if err != nil {
		t.Fatalf("hub.New: %v", err)
	}
	if setup != nil {
		setup(srv)
	}
	var ln net.Listener
	// The port of a stopped server can stay busy for a moment (a restart test reuses it).
	for deadline := time.Now().Add(5 * time.Second); ; {
		ln, err = net.Listen("tcp", addr)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	path := cfg.Path
	if path == "" {
		path = "/socket.io/"
	}
	mux := http.NewServeMux()
	mux.Handle(path, srv)
	ts := &testServer{
		logf: t.Logf,
		Hub:  srv,
		Addr: ln.Addr().String(),
		URL:  "http://" + ln.Addr().String(),
		http: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second},
		done: make(chan struct{}),
	}
	go func() {
		defer close(ts.done)
		if err := ts.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	}()
	t.Cleanup(ts.Stop)
	return ts
}

// Stop shuts the hub down (its connections are closed so that clients reconnect) and
// closes the listener. It is idempotent.
func (ts *testServer) Stop() {
	select {
	case <-ts.done:
		return
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	defer func() {
		if d := time.Since(start); d > time.Second {
			ts.logf("Stop took %v", d)
		}
	}()
	// The hub first (it answers held polling GETs and closes its WebSockets), then the
	// listener and whatever HTTP connections are left. http.Server.Shutdown would wait
	// for held polling GETs.
	_ = ts.Hub.Shutdown(ctx)
	_ = ts.http.Close()
	<-ts.done
}

// nodeProc is a running interop script.
type nodeProc struct {
	t    *testing.T
	name string
	*testutil.Node
}

// runNode starts `node testdata/interop/<script> <url> args...`. The process is killed at
// the end of the test (scripts also exit on their own deadline).
func runNode(t *testing.T, script, url string, args ...string) *nodeProc {
	t.Helper()
	n := testutil.StartNode(t, testutil.NodeOptions{Script: filepath.Join("interop", script),
		Args: append([]string{url}, args...), Env: []string{"INTEROP_DEADLINE_MS=40000"}})
	return &nodeProc{t: t, name: script, Node: n}
}

// line is one JSON line of a script; Ev is its "ev" field.
type line struct {
	Ev  string
	Raw json.RawMessage
}

func (l line) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(l.Raw, v); err != nil {
		t.Fatalf("decode %s: %v", l.Raw, err)
	}
}

// next returns the script's next line, failing the test on a timeout, an exit or a
// {"ev":"fatal"} line.
func (p *nodeProc) next() line {
	p.t.Helper()
	select {
	case b, ok := <-p.Lines:
		if !ok {
			p.t.Fatalf("%s exited before the next line; stderr:\n%s", p.name, p.Stderr.String())
		}
		var head struct {
			Ev    string `json:"ev"`
			Error string `json:"error"`
		}
		if err := json.Unmarshal(b, &head); err != nil {
			p.t.Fatalf("%s printed a non-JSON line %q: %v", p.name, b, err)
		}
		if head.Ev == "fatal" {
			p.t.Fatalf("%s failed: %s", p.name, head.Error)
		}
		return line{Ev: head.Ev, Raw: b}
	case <-time.After(interopWait):
		p.t.Fatalf("%s: no line within %v; stderr:\n%s", p.name, interopWait, p.Stderr.String())
	}
	return line{}
}

// expect returns the next line, which must have ev == want.
func (p *nodeProc) expect(want string) line {
	p.t.Helper()
	l := p.next()
	if l.Ev != want {
		p.t.Fatalf("%s: got line %s, want ev %q", p.name, l.Raw, want)
	}
	return l
}

// skipUntil returns the first line with ev == want, dropping the others (logged).
func (p *nodeProc) skipUntil(want string) line {
	p.t.Helper()
	for {
		l := p.next()
		if l.Ev == want {
			return l
		}
		p.t.Logf("%s: %s", p.name, l.Raw)
	}
}

// send writes one command line to the script's stdin.
func (p *nodeProc) send(cmd string) {
	p.t.Helper()
	if _, err := io.WriteString(p.Stdin, cmd+"\n"); err != nil {
		p.t.Fatalf("send %q to %s: %v", cmd, p.name, err)
	}
}

// recv waits for a value on ch.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(interopWait):
		t.Fatalf("timeout waiting for %s", what)
	}
	var zero T
	return zero
}

// jsonEqual reports whether a and b hold the same JSON value.
func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("unmarshal %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

func checkJSON(t *testing.T, what string, got json.RawMessage, want string) {
	t.Helper()
	if !jsonEqual(t, got, []byte(want)) {
		t.Errorf("%s: got %s, want %s", what, got, want)
	}
}

// interopEvents is what the interop handlers observed on the server side.
type interopEvents struct {
	auth     chan json.RawMessage   // every auth object a middleware saw
	answers  chan []json.RawMessage // results of the server's EmitWithAck("question")
	binMsgs  chan *hub.Message      // "bin" messages received
	binAcks  chan *hub.Message      // the client's binary ack to "bin-question"
	connects chan *hub.Socket       // every connected socket
	discs    chan string            // disconnect reasons
}

func newInteropEvents() *interopEvents {
	return &interopEvents{
		auth:     make(chan json.RawMessage, 64),
		answers:  make(chan []json.RawMessage, 8),
		binMsgs:  make(chan *hub.Message, 8),
		binAcks:  make(chan *hub.Message, 8),
		connects: make(chan *hub.Socket, 64),
		discs:    make(chan string, 64),
	}
}

// authMiddleware accepts tokens starting with "good", refusing a missing or other token
// the way walcast's rooms package does ({message, data}).
func authMiddleware(ev *interopEvents) hub.Middleware {
	return func(_ context.Context, h *hub.Handshake) error {
		select {
		case ev.auth <- h.Auth:
		default:
		}
		var a struct {
			Token *string `json:"token"`
		}
		if err := json.Unmarshal(h.Auth, &a); err != nil {
			return &hub.ConnectError{Message: "Invalid auth payload"}
		}
		switch {
		case a.Token == nil:
			return &hub.ConnectError{Message: "Authentication token required"}
		case !strings.HasPrefix(*a.Token, "good"):
			return &hub.ConnectError{Message: "Invalid authentication token", Data: map[string]string{"code": "bad_token"}}
		}
		h.Data = h.Auth
		return nil
	}
}

// installInterop declares the handlers the interop scripts expect on namespace "/".
// welcome=false skips the welcome emit (with recovery on, a plain Emit carries no offset).
func installInterop(srv *hub.Server, ev *interopEvents, welcome bool, onConnect func(*hub.Socket)) {
	nsp := srv.Of("/")
	nsp.Use(authMiddleware(ev))
	nsp.OnConnect(func(s *hub.Socket) {
		s.OnDisconnect(func(_ *hub.Socket, reason hub.Reason) {
			select {
			case ev.discs <- reason.String():
			default:
			}
		})
		s.On("echo", func(s *hub.Socket, m *hub.Message) {
			args := make([]any, len(m.Args))
			for i, a := range m.Args {
				args[i] = a
			}
			_ = m.Ack(args...)
		})
		s.On("ask", func(s *hub.Socket, m *hub.Message) {
			// EmitWithAck blocks until the client answers, and answers are read by this
			// socket's reader goroutine: wait elsewhere.
			go func() {
				ctx, cancel := context.WithTimeout(s.Context(), 5*time.Second)
				defer cancel()
				res, err := s.EmitWithAck(ctx, "question", 41)
				if err != nil {
					_ = s.Emit("answered", "error: "+err.Error())
					return
				}
				ev.answers <- res
				_ = s.Emit("answered", res)
			}()
		})
		s.On("bin", func(s *hub.Socket, m *hub.Message) {
			ev.binMsgs <- m
			if len(m.Attachments) != 2 {
				_ = m.Ack(fmt.Sprintf("got %d attachments, want 2", len(m.Attachments)))
				return
			}
			_ = m.Ack(m.Attachments[1], m.Attachments[0], len(m.Attachments))
			_ = s.Emit("bin-back", m.Attachments[0], "mid", m.Attachments[1])
		})
		s.On("bin-ask", func(s *hub.Socket, m *hub.Message) {
			go func() {
				ctx, cancel := context.WithTimeout(s.Context(), 5*time.Second)
				defer cancel()
				ack, err := s.EmitWithAckRaw(ctx, "bin-question",
					[]json.RawMessage{json.RawMessage(`{"_placeholder":true,"num":0}`)}, [][]byte{{7, 8, 9}})
				if err != nil {
					_ = s.Emit("bin-answered", "error: "+err.Error())
					return
				}
				ev.binAcks <- ack
				_ = s.EmitRaw("bin-answered", ack.Args, ack.Attachments)
			}()
		})
		s.On("kick", func(s *hub.Socket, m *hub.Message) {
			var how string
			if len(m.Args) > 0 {
				_ = json.Unmarshal(m.Args[0], &how)
			}
			switch how {
			case "disconnect":
				s.Disconnect()
			case "close-transport":
				s.CloseTransport("kicked by test")
			}
		})
		s.On("join", func(s *hub.Socket, m *hub.Message) {
			var room string
			if len(m.Args) > 0 && json.Unmarshal(m.Args[0], &room) == nil {
				s.Join(room)
			}
			_ = m.Ack(true)
		})
		s.On("leave", func(s *hub.Socket, m *hub.Message) {
			var room string
			if len(m.Args) > 0 && json.Unmarshal(m.Args[0], &room) == nil {
				s.Leave(room)
			}
			_ = m.Ack(true)
		})
		s.On("rooms", func(s *hub.Socket, m *hub.Message) {
			rooms := []string{}
			for _, r := range s.Rooms() {
				if r != s.ID() {
					rooms = append(rooms, r)
				}
			}
			_ = m.Ack(rooms)
		})
		s.On("broadcast", func(s *hub.Socket, m *hub.Message) {
			var req struct {
				Rooms  []string          `json:"rooms"`
				Except []string          `json:"except"`
				Event  string            `json:"event"`
				Args   []json.RawMessage `json:"args"`
				Binary bool              `json:"binary"`
			}
			if len(m.Args) == 0 || json.Unmarshal(m.Args[0], &req) != nil {
				_ = m.Ack("bad broadcast request")
				return
			}
			b := &hub.Broadcast{Rooms: req.Rooms, Except: req.Except, Event: req.Event, Args: req.Args}
			if req.Binary {
				b.Args = append(b.Args, json.RawMessage(`{"_placeholder":true,"num":0}`))
				b.Attachments = [][]byte{{1, 2}}
			}
			srv.Broadcast(context.Background(), b)
			_ = m.Ack(true)
		})
		if welcome {
			hs := s.Handshake()
			_ = s.Emit("welcome", map[string]any{"id": s.ID(), "auth": hs.Auth, "recovered": s.Recovered(),
				"query": hs.Query.Get("shop"), "header": hs.Header.Get("X-Interop"), "nsp": hs.Namespace})
		}
		if onConnect != nil {
			onConnect(s)
		}
		select {
		case ev.connects <- s:
		default:
		}
	})
}

// interopConfig lifts the per-IP caps: every client of these tests dials
// from 127.0.0.1 (the caps have their own tests, TestIPCaps_*).
func interopConfig() hub.Config {
	return hub.Config{PingInterval: 2 * time.Second, PingTimeout: 2 * time.Second,
		MaxHandshakesPerIP: -1, MaxConnsPerIP: -1, MaxUnauthenticatedPerIP: -1}
}

func TestInterop_Basic(t *testing.T) {
	testutil.Testdata(t, "socket.io-client")
	for _, name := range []string{"default", "websocket", "polling", "seed", "default-custompath"} {
		t.Run(name, func(t *testing.T) {
			mode, custom, _ := strings.Cut(name, "-")
			ev := newInteropEvents()
			cfg := interopConfig()
			var args []string
			if custom != "" {
				cfg.Path = "/rt/v1/"
				args = append(args, "/rt/v1/")
			}
			ts := startServer(t, "127.0.0.1:0", cfg, func(srv *hub.Server) { installInterop(srv, ev, true, nil) })
			p := runNode(t, "basic.mjs", ts.URL, append([]string{mode}, args...)...)
			l := p.expect("done")
			var got struct {
				InitialTransport string          `json:"initialTransport"`
				Upgraded         bool            `json:"upgraded"`
				Transport        string          `json:"transport"`
				ID               string          `json:"id"`
				Welcome          json.RawMessage `json:"welcome"`
				Echo             json.RawMessage `json:"echo"`
				Answer           json.RawMessage `json:"answer"`
				BinAck           json.RawMessage `json:"binAck"`
				BinBack          json.RawMessage `json:"binBack"`
				BinAnswer        json.RawMessage `json:"binAnswer"`
			}
			l.decode(t, &got)

			wantInitial, wantFinal := mode, mode
			if mode == "seed" { // transports: ['websocket', 'polling']
				wantInitial, wantFinal = "websocket", "websocket"
			}
			if mode == "default" {
				wantInitial, wantFinal = "polling", "websocket"
				if !got.Upgraded {
					t.Errorf("default options: upgraded = false, want true")
				}
			}
			if got.InitialTransport != wantInitial || got.Transport != wantFinal {
				t.Errorf("transport: got %s then %s, want %s then %s", got.InitialTransport, got.Transport, wantInitial, wantFinal)
			}

			const auth = `{"token":"good","extra":[1,"x",{"y":null}]}`
			if a := recv(t, ev.auth, "middleware auth"); string(a) != auth {
				t.Errorf("middleware saw auth %s, want %s (byte for byte)", a, auth)
			}
			checkJSON(t, "welcome", got.Welcome, fmt.Sprintf(`{"id":%q,"auth":%s,"recovered":false,"query":"demo shop","header":"yes","nsp":"/"}`, got.ID, auth))
			checkJSON(t, "client->server ack", got.Echo, `[1,"two",{"three":[true]},"<&>"]`)

			// Server -> client ack: the client answers ("answer", n+1).
			res := recv(t, ev.answers, "EmitWithAck result")
			if len(res) != 2 || string(res[0]) != `"answer"` || string(res[1]) != `42` {
				t.Errorf("EmitWithAck(question, 41): got %s, want [\"answer\" 42]", res)
			}
			checkJSON(t, "answered", got.Answer, `["answer",42]`)

			// Client -> server binary event with an ack; binary ack and binary event back.
			m := recv(t, ev.binMsgs, "bin message")
			if len(m.Args) != 3 {
				t.Fatalf("bin args: got %d (%s), want 3", len(m.Args), m.Args)
			}
			checkJSON(t, "bin arg 0", m.Args[0], `{"_placeholder":true,"num":0}`)
			checkJSON(t, "bin arg 1", m.Args[1], `{"nested":{"_placeholder":true,"num":1}}`)
			checkJSON(t, "bin arg 2", m.Args[2], `"txt"`)
			if want := [][]byte{{1, 2, 3}, {4}}; !reflect.DeepEqual(m.Attachments, want) {
				t.Errorf("bin attachments: got %v, want %v", m.Attachments, want)
			}
			checkJSON(t, "binary ack (server->client)", got.BinAck, `[{"bin":[4]},{"bin":[1,2,3]},2]`)
			checkJSON(t, "binary event (server->client)", got.BinBack, `[{"bin":[1,2,3]},"mid",{"bin":[4]}]`)
			// Server -> client binary event with an ack; the client acks with binary
			// ("got", 3, Buffer 9 8 7), which the server echoes back with EmitRaw.
			ack := recv(t, ev.binAcks, "binary ack")
			if len(ack.Args) != 3 {
				t.Fatalf("binary ack args: got %s, want 3", ack.Args)
			}
			checkJSON(t, "binary ack args (client->server)", json.RawMessage(fmt.Sprintf("[%s,%s,%s]", ack.Args[0], ack.Args[1], ack.Args[2])),
				`["got",3,{"_placeholder":true,"num":0}]`)
			if want := [][]byte{{9, 8, 7}}; !reflect.DeepEqual(ack.Attachments, want) {
				t.Errorf("binary ack attachments (client->server): got %v, want %v", ack.Attachments, want)
			}
			checkJSON(t, "binary ack echoed back", got.BinAnswer, `["got",3,{"bin":[9,8,7]}]`)
		})
	}
}

func TestInterop_ConnectError(t *testing.T) {
	testutil.Testdata(t, "socket.io-client")
	ev := newInteropEvents()
	ts := startServer(t, "127.0.0.1:0", interopConfig(), func(srv *hub.Server) { installInterop(srv, ev, true, nil) })
	p := runNode(t, "auth_error.mjs", ts.URL)
	l := p.expect("done")
	var got struct {
		NoToken, BadToken, UnknownNamespace json.RawMessage
	}
	l.decode(t, &got)
	checkJSON(t, "no token", got.NoToken, `{"message":"Authentication token required","data":null,"active":false}`)
	checkJSON(t, "bad token", got.BadToken, `{"message":"Invalid authentication token","data":{"code":"bad_token"},"active":false}`)
	checkJSON(t, "unknown namespace", got.UnknownNamespace, `{"message":"Invalid namespace","data":null,"active":false}`)
	// The middleware saw the bad token's auth object.
	seen := []string{}
	for len(ev.auth) > 0 {
		seen = append(seen, string(<-ev.auth))
	}
	if !slices.Contains(seen, `{"token":"bad"}`) || !slices.Contains(seen, `{}`) {
		t.Errorf("middleware saw auth %q, want {} and {\"token\":\"bad\"} among them", seen)
	}
}

func TestInterop_Rooms(t *testing.T) {
	testutil.Testdata(t, "socket.io-client")
	ev := newInteropEvents()
	ts := startServer(t, "127.0.0.1:0", interopConfig(), func(srv *hub.Server) { installInterop(srv, ev, false, nil) })
	p := runNode(t, "rooms.mjs", ts.URL)
	l := p.expect("done")
	var got struct {
		IDs   map[string]string                       `json:"ids"`
		Rooms map[string][]string                     `json:"rooms"`
		Cases map[string]map[string][]json.RawMessage `json:"cases"`
	}
	l.decode(t, &got)
	wantRooms := map[string][]string{"a": {"r1"}, "b": {"r1", "r2"}, "c": {"r2"}}
	if !reflect.DeepEqual(got.Rooms, wantRooms) {
		t.Errorf("rooms after join: got %v, want %v", got.Rooms, wantRooms)
	}
	// who receives each case exactly once ("" = nobody)
	want := map[string]string{
		"all":               "abc",
		"r1":                "ab",
		"r1+r2":             "abc",
		"r1-except-r2":      "a",
		"all-except-a":      "bc",
		"to-socket-b":       "b",
		"binary-r2":         "bc",
		"r1-after-b-leaves": "a",
	}
	for name, who := range want {
		c, ok := got.Cases[name]
		if !ok {
			t.Errorf("case %s missing from the script's output", name)
			continue
		}
		for _, n := range []string{"a", "b", "c"} {
			msgs := c[n]
			wantN := 0
			if strings.Contains(who, n) {
				wantN = 1
			}
			if len(msgs) != wantN {
				t.Errorf("case %s: client %s got %d events %s, want %d", name, n, len(msgs), msgs, wantN)
				continue
			}
			if wantN == 1 {
				wantArgs := fmt.Sprintf(`[%q]`, name)
				if name == "binary-r2" {
					wantArgs = `["binary-r2",{"bin":[1,2]}]`
				}
				checkJSON(t, "case "+name+" client "+n, msgs[0], wantArgs)
			}
		}
	}
}

func TestInterop_Reconnect(t *testing.T) {
	testutil.Testdata(t, "socket.io-client")
	for _, mode := range []string{"default", "websocket", "polling"} {
		t.Run(mode, func(t *testing.T) {
			ev := newInteropEvents()
			setup := func(srv *hub.Server) { installInterop(srv, ev, false, nil) }
			ts := startServer(t, "127.0.0.1:0", interopConfig(), setup)
			p := runNode(t, "reconnect.mjs", ts.URL, mode)
			var first struct {
				ID string `json:"id"`
			}
			p.expect("connect").decode(t, &first)

			// Shutdown flushes what is queued before it closes the connections.
			const byes = 200
			for i := range byes {
				ts.Hub.Broadcast(context.Background(), &hub.Broadcast{Event: "bye", Args: []json.RawMessage{json.RawMessage(fmt.Sprint(i))}})
			}
			ts.Stop()
			var d struct {
				Reason      string `json:"reason"`
				Active      bool   `json:"active"`
				Byes        int    `json:"byes"`
				ByesInOrder bool   `json:"byesInOrder"`
			}
			p.expect("disconnect").decode(t, &d)
			if !d.Active {
				t.Errorf("after server stop: disconnect reason %q with socket.active=false: the client will not reconnect on its own", d.Reason)
			}
			if d.Byes != byes || !d.ByesInOrder {
				t.Errorf("events broadcast just before Shutdown: client got %d (in order %v) before the disconnect, want all %d in order", d.Byes, d.ByesInOrder, byes)
			}
			// A new server on the same port; the client reconnects on its own.
			ts2 := startServer(t, ts.Addr, interopConfig(), setup)
			_ = ts2
			var second struct {
				ID string `json:"id"`
				N  int    `json:"n"`
			}
			p.skipUntil("connect").decode(t, &second)
			if second.N != 2 || second.ID == "" || second.ID == first.ID {
				t.Errorf("reconnect: got connect #%d id %q (first id %q), want #2 with a new id", second.N, second.ID, first.ID)
			}
			p.send("exit")
			var done struct {
				Echo json.RawMessage `json:"echo"`
			}
			p.skipUntil("done").decode(t, &done)
			checkJSON(t, "ack after reconnect", done.Echo, `["after-restart"]`)
		})
	}
}

// savingStore signals every session the hub saves, so the recovery test knows when the
// dropped client can reconnect, and holds TakeSession (the reconnecting client's CONNECT)
// until gate is closed, so the test can broadcast what the client misses first.
type savingStore struct {
	hub.RecoveryStore
	saved chan hub.Session
	gate  chan struct{}
}

func (s *savingStore) TakeSession(ctx context.Context, pid string) (hub.Session, bool, error) {
	select {
	case <-s.gate:
	case <-ctx.Done():
		return hub.Session{}, false, ctx.Err()
	case <-time.After(interopWait):
		return hub.Session{}, false, errors.New("test gate not opened")
	}
	return s.RecoveryStore.TakeSession(ctx, pid)
}

func (s *savingStore) SaveSession(ctx context.Context, sess hub.Session) error {
	err := s.RecoveryStore.SaveSession(ctx, sess)
	select {
	case s.saved <- sess:
	default:
	}
	return err
}

func TestInterop_Recovery(t *testing.T) {
	testutil.Testdata(t, "socket.io-client")
	for _, tc := range []struct{ mode, how string }{
		{"default", "manual"}, {"websocket", "manual"}, {"polling", "manual"},
		{"default", "auto"}, {"polling", "auto"},
	} {
		t.Run(tc.mode+"/"+tc.how, func(t *testing.T) { testRecovery(t, tc.mode, tc.how) })
	}
}

// testRecovery: the client gets "before-1", loses its transport (dropped by itself with
// how="manual", by the server with how="auto"), misses four broadcasts (one of them not for
// its rooms), reconnects, and must report recovered=true with the same id, the three missed
// events once and in order (replayed before the CONNECT reply), then "last".
func testRecovery(t *testing.T, mode, how string) {
	ev := newInteropEvents()
	store := &savingStore{RecoveryStore: hub.NewMemoryStore(time.Minute, 0), saved: make(chan hub.Session, 8), gate: make(chan struct{})}
	cfg := interopConfig()
	cfg.Recovery = &hub.RecoveryConfig{Store: store, MaxDisconnection: time.Minute}
	ts := startServer(t, "127.0.0.1:0", cfg, func(srv *hub.Server) {
		installInterop(srv, ev, false, func(s *hub.Socket) {
			if !s.Recovered() {
				s.Join("news")
			}
			// A direct emit whose last argument is a string: with recovery on, the hub must
			// still end it with an offset, or the client would take "not-an-offset" as its
			// position and the next recovery would fail.
			_ = s.Emit("greet", "not-an-offset")
		})
	})
	news := func(arg, offset string, rooms, except []string) {
		ts.Hub.Broadcast(context.Background(), &hub.Broadcast{Rooms: rooms, Except: except, Event: "news",
			Args: []json.RawMessage{json.RawMessage(fmt.Sprintf("%q", arg))}, Offset: offset})
	}
	p := runNode(t, "recovery.mjs", ts.URL, mode, how)
	var c1 struct {
		ID        string `json:"id"`
		Recovered bool   `json:"recovered"`
	}
	p.expect("connect").decode(t, &c1)
	if c1.Recovered {
		t.Errorf("first connect: recovered = true, want false")
	}
	first := recv(t, ev.connects, "server connect")
	if first.Recovered() {
		t.Errorf("first connect: server Socket.Recovered() = true")
	}
	p.expect("ready")

	news("before-1", "100-0", []string{"news"}, nil)
	p.expect("news") // the client now holds offset 100-0

	if how == "manual" {
		p.send("drop")
	} else {
		first.CloseTransport("test drop")
	}
	var d struct {
		Reason string `json:"reason"`
		Active bool   `json:"active"`
	}
	p.expect("disconnect").decode(t, &d)
	if how == "auto" && !d.Active {
		t.Fatalf("server dropped the transport: client reason %q with active=false, want automatic reconnection", d.Reason)
	}
	sess := recv(t, store.saved, "SaveSession")
	if sess.SID != c1.ID || !slices.Contains(sess.Rooms, "news") {
		t.Errorf("saved session: got sid %q rooms %v, want sid %q with room news", sess.SID, sess.Rooms, c1.ID)
	}

	news("missed-1", "101-0", []string{"news"}, nil)
	news("missed-2", "101-1", []string{"news"}, nil)
	news("skipped", "102-0", nil, []string{"news"}) // not for this client
	news("missed-3", "103-0", nil, nil)
	close(store.gate)
	if how == "manual" {
		p.send("reconnect")
	}

	var c2 struct {
		ID        string `json:"id"`
		Recovered bool   `json:"recovered"`
	}
	// The replayed events come before the connect line.
	for {
		l := p.next()
		if l.Ev == "connect" {
			l.decode(t, &c2)
			break
		}
		if l.Ev != "news" {
			t.Fatalf("while reconnecting: got %s", l.Raw)
		}
	}
	if !c2.Recovered || c2.ID != c1.ID {
		t.Errorf("reconnect: got recovered=%v id %q, want recovered=true and the old id %q", c2.Recovered, c2.ID, c1.ID)
	}
	if s := recv(t, ev.connects, "server connect after recovery"); !s.Recovered() {
		t.Errorf("reconnect: server Socket.Recovered() = false, want true")
	} else if !slices.Contains(s.Rooms(), "news") {
		t.Errorf("recovered socket rooms %v, want news restored", s.Rooms())
	}
	news("last", "104-0", []string{"news"}, nil)
	var done struct {
		Events    [][]string `json:"events"`
		Recovered bool       `json:"recovered"`
	}
	p.skipUntil("done").decode(t, &done)
	want := [][]string{
		{"before-1", "100-0"},
		{"missed-1", "101-0"},
		{"missed-2", "101-1"},
		{"missed-3", "103-0"},
		{"last", "104-0"},
	}
	if !reflect.DeepEqual(done.Events, want) {
		t.Errorf("events seen by the client (args with the offset last):\n got %v\nwant %v", done.Events, want)
	}
}

func TestInterop_ServerDisconnect(t *testing.T) {
	testutil.Testdata(t, "socket.io-client")
	for _, mode := range []string{"default", "default-nowait", "websocket", "polling"} {
		t.Run(mode, func(t *testing.T) {
			ev := newInteropEvents()
			ts := startServer(t, "127.0.0.1:0", interopConfig(), func(srv *hub.Server) { installInterop(srv, ev, false, nil) })
			transport, wait, _ := strings.Cut(mode, "-")
			p := runNode(t, "server_disconnect.mjs", ts.URL, transport, wait)
			var got struct {
				Disconnect     json.RawMessage `json:"disconnect"`
				CloseTransport struct {
					Reason string `json:"reason"`
					Active bool   `json:"active"`
				} `json:"closeTransport"`
				Reconnected bool `json:"reconnected"`
			}
			p.expect("done").decode(t, &got)
			checkJSON(t, "Socket.Disconnect seen by the client", got.Disconnect, `{"reason":"io server disconnect","active":false}`)
			if r := got.CloseTransport.Reason; (r != "transport close" && r != "transport error") || !got.CloseTransport.Active || !got.Reconnected {
				t.Errorf("Socket.CloseTransport seen by the client: got reason %q active=%v reconnected=%v, want transport close/error, active, reconnected",
					r, got.CloseTransport.Active, got.Reconnected)
			}
			reasons := []string{recv(t, ev.discs, "server disconnect 1"), recv(t, ev.discs, "server disconnect 2")}
			if reasons[0] != "server namespace disconnect" {
				t.Errorf("server-side reason after Disconnect: got %q, want %q", reasons[0], "server namespace disconnect")
			}
			t.Logf("server-side reason after CloseTransport: %q", reasons[1])
		})
	}
}

func TestInterop_AllowedOrigins(t *testing.T) {
	testutil.Testdata(t, "socket.io-client")
	ev := newInteropEvents()
	cfg := interopConfig()
	cfg.AllowedOrigins = []string{"https://shop.example"}
	ts := startServer(t, "127.0.0.1:0", cfg, func(srv *hub.Server) { installInterop(srv, ev, false, nil) })
	for _, tc := range []struct {
		origin string
		ok     bool
	}{{"https://shop.example", true}, {"https://evil.example", false}} {
		t.Run(tc.origin, func(t *testing.T) {
			p := runNode(t, "origin.mjs", ts.URL, tc.origin)
			var got struct {
				Polling, WebSocket struct {
					Connected bool   `json:"connected"`
					Error     string `json:"error"`
				}
			}
			p.expect("done").decode(t, &got)
			if got.Polling.Connected != tc.ok || got.WebSocket.Connected != tc.ok {
				t.Errorf("Origin %s: polling connected=%v (%s), websocket connected=%v (%s); want %v for both",
					tc.origin, got.Polling.Connected, got.Polling.Error, got.WebSocket.Connected, got.WebSocket.Error, tc.ok)
			}
		})
	}
}

func TestInterop_Namespaces(t *testing.T) {
	testutil.Testdata(t, "socket.io-client")
	for _, mode := range []string{"default", "websocket", "polling"} {
		t.Run(mode, func(t *testing.T) {
			ev := newInteropEvents()
			ts := startServer(t, "127.0.0.1:0", interopConfig(), func(srv *hub.Server) {
				installInterop(srv, ev, false, nil)
				admin := srv.Of("/admin")
				admin.Use(func(_ context.Context, h *hub.Handshake) error {
					var a struct {
						Token string `json:"token"`
					}
					if json.Unmarshal(h.Auth, &a) != nil || a.Token != "good-admin" {
						return &hub.ConnectError{Message: "Admins only", Data: map[string]any{"nsp": h.Namespace}}
					}
					return nil
				})
				admin.OnConnect(func(s *hub.Socket) {
					s.On("broadcast", func(s *hub.Socket, m *hub.Message) {
						var req struct {
							Event string            `json:"event"`
							Args  []json.RawMessage `json:"args"`
						}
						if len(m.Args) == 0 || json.Unmarshal(m.Args[0], &req) != nil {
							_ = m.Ack("bad broadcast request")
							return
						}
						srv.Broadcast(context.Background(), &hub.Broadcast{Namespace: "/admin", Event: req.Event, Args: req.Args})
						_ = m.Ack(true)
					})
				})
			})
			p := runNode(t, "namespaces.mjs", ts.URL, mode)
			var got struct {
				SameEngine bool            `json:"sameEngine"`
				Got        json.RawMessage `json:"got"`
				Refused    json.RawMessage `json:"refused"`
				Echo       json.RawMessage `json:"echo"`
			}
			p.expect("done").decode(t, &got)
			if !got.SameEngine {
				t.Errorf("the two namespaces did not share one Manager/Engine.IO connection")
			}
			checkJSON(t, "events per namespace", got.Got, `{"main":[["to-main"]],"admin":[["to-admin"]]}`)
			checkJSON(t, "/admin without admin token", got.Refused, `{"message":"Admins only","data":{"nsp":"/admin"}}`)
			checkJSON(t, "/ after leaving /admin", got.Echo, `["still-here"]`)
		})
	}
}

// TestInterop_Payload: many large events in both directions. Over polling the client packs
// its POSTs up to the advertised maxPayload (64 KB here), so the hub must accept batches
// right at the limit; the hub's GET answers carry many packets at once.
func TestInterop_Payload(t *testing.T) {
	testutil.Testdata(t, "socket.io-client")
	const count, size = 40, 20000
	for _, mode := range []string{"polling", "websocket", "default"} {
		t.Run(mode, func(t *testing.T) {
			ev := newInteropEvents()
			cfg := interopConfig()
			cfg.MaxPayload = 64 << 10
			ts := startServer(t, "127.0.0.1:0", cfg, func(srv *hub.Server) {
				installInterop(srv, ev, false, func(s *hub.Socket) {
					var n, bytes int // handlers of one socket run one at a time
					next := 0
					inOrder := true
					s.On("bulk", func(s *hub.Socket, m *hub.Message) {
						var i int
						var str string
						if len(m.Args) == 2 && json.Unmarshal(m.Args[0], &i) == nil && json.Unmarshal(m.Args[1], &str) == nil {
							if i != next {
								inOrder = false
							}
							next++
							n++
							bytes += len(str)
						}
					})
					s.On("tally", func(s *hub.Socket, m *hub.Message) {
						_ = m.Ack(map[string]any{"n": n, "bytes": bytes, "inOrder": inOrder})
					})
					s.On("flood", func(s *hub.Socket, m *hub.Message) {
						chunk := strings.Repeat("y", size)
						for i := range count {
							if err := s.Emit("bulk-back", i, chunk); err != nil {
								t.Errorf("emit bulk-back %d: %v", i, err)
								return
							}
						}
					})
				})
			})
			p := runNode(t, "payload.mjs", ts.URL, mode, fmt.Sprint(count), fmt.Sprint(size))
			var got struct {
				Tally       json.RawMessage `json:"tally"`
				Received    int             `json:"received"`
				Bytes       int             `json:"bytes"`
				InOrder     bool            `json:"inOrder"`
				Disconnects []string        `json:"disconnects"`
			}
			p.expect("done").decode(t, &got)
			checkJSON(t, "server tally of client events", got.Tally, fmt.Sprintf(`{"n":%d,"bytes":%d,"inOrder":true}`, count, count*size))
			if got.Received != count || got.Bytes != count*size || !got.InOrder {
				t.Errorf("client received %d events (%d bytes, in order %v), want %d (%d bytes, in order)", got.Received, got.Bytes, got.InOrder, count, count*size)
			}
			if len(got.Disconnects) > 1 || (len(got.Disconnects) == 1 && got.Disconnects[0] != "io client disconnect") {
				t.Errorf("disconnects: %v", got.Disconnects)
			}
		})
	}
}

// TestInterop_StreamDuringUpgrade: events flow both ways, without pauses, while the client
// upgrades from polling to WebSocket; none may be lost, duplicated or reordered.
func TestInterop_StreamDuringUpgrade(t *testing.T) {
	testutil.Testdata(t, "socket.io-client")
	const count = 2000
	ev := newInteropEvents()
	ts := startServer(t, "127.0.0.1:0", interopConfig(), func(srv *hub.Server) {
		installInterop(srv, ev, false, func(s *hub.Socket) {
			n, inOrder := 0, true // handlers of one socket run one at a time
			s.On("seq", func(s *hub.Socket, m *hub.Message) {
				var i int
				if len(m.Args) != 1 || json.Unmarshal(m.Args[0], &i) != nil || i != n {
					inOrder = false
				}
				n++
			})
			s.On("seq-tally", func(s *hub.Socket, m *hub.Message) {
				_ = m.Ack(map[string]any{"n": n, "inOrder": inOrder})
			})
			go func() {
				for i := range count {
					if err := s.Emit("seq", i); err != nil {
						t.Errorf("emit seq %d: %v", i, err)
						return
					}
				}
			}()
		})
	})
	p := runNode(t, "stream.mjs", ts.URL, fmt.Sprint(count))
	var got struct {
		Received   int             `json:"received"`
		InOrder    bool            `json:"inOrder"`
		UpgradedAt int             `json:"upgradedAt"`
		Transport  string          `json:"transport"`
		Tally      json.RawMessage `json:"tally"`
	}
	p.expect("done").decode(t, &got)
	if got.Received != count || !got.InOrder {
		t.Errorf("client received %d events (in order %v), want %d in order", got.Received, got.InOrder, count)
	}
	if got.Transport != "websocket" {
		t.Errorf("transport at the end: %s, want websocket", got.Transport)
	}
	checkJSON(t, "server tally of the client's events", got.Tally, fmt.Sprintf(`{"n":%d,"inOrder":true}`, count))
	t.Logf("upgrade completed after %d of %d server events", got.UpgradedAt, count)
}

// TestInterop_IdleThenBroadcast: a client that has been idle for longer than WriteTimeout
// (and through several pings) still gets broadcasts. Time must pass here, so this test
// sleeps on purpose: it checks nothing about speed.
func TestInterop_IdleThenBroadcast(t *testing.T) {
	testutil.Testdata(t, "socket.io-client")
	for _, mode := range []string{"default", "websocket", "polling"} {
		t.Run(mode, func(t *testing.T) {
			ev := newInteropEvents()
			cfg := interopConfig()
			cfg.PingInterval, cfg.PingTimeout = 100*time.Millisecond, time.Second
			cfg.WriteTimeout = 50 * time.Millisecond
			ts := startServer(t, "127.0.0.1:0", cfg, func(srv *hub.Server) { installInterop(srv, ev, true, nil) })
			p := runNode(t, "idle.mjs", ts.URL, mode)
			p.expect("ready")
			recv(t, ev.connects, "server connect")
			time.Sleep(400 * time.Millisecond) // idle: > WriteTimeout, several pings
			for _, arg := range []string{"first", "last"} {
				ts.Hub.Broadcast(context.Background(), &hub.Broadcast{Event: "news", Args: []json.RawMessage{json.RawMessage(fmt.Sprintf("%q", arg))}})
			}
			var got struct {
				Got json.RawMessage `json:"got"`
			}
			p.expect("done").decode(t, &got)
			checkJSON(t, "events after idling", got.Got, `[["first"],["last"]]`)
		})
	}
}

// TestInterop_RecoveryAcrossRestart: the rolling-restart story. Two hub servers share one
// RecoveryStore (Redis in production). The first is shut down (it saves the session), the
// second starts on the same port and broadcasts what the client misses; the client reconnects
// on its own and recovers its session there.
func TestInterop_RecoveryAcrossRestart(t *testing.T) {
	testutil.Testdata(t, "socket.io-client")
	for _, mode := range []string{"default", "websocket"} {
		t.Run(mode, func(t *testing.T) {
			testRecoveryAcrossRestart(t, mode, hub.NewMemoryStore(time.Minute, 0))
		})
	}
	// The production setup: the Redis recovery store of hub/bus on a real redis-server.
	t.Run("redis", func(t *testing.T) {
		rs := redistest.Start(t, redistest.Options{})
		opt, err := redis.ParseURL(rs.URL())
		if err != nil {
			t.Fatalf("parse redis url: %v", err)
		}
		client := redis.NewClient(opt)
		t.Cleanup(func() { client.Close() })
		store, err := bus.NewRedisStore(bus.RedisStoreConfig{Client: client, MaxAge: time.Minute, Logger: hubLogger(t)})
		if err != nil {
			t.Fatalf("NewRedisStore: %v", err)
		}
		testRecoveryAcrossRestart(t, "default", store)
	})
}

func testRecoveryAcrossRestart(t *testing.T, mode string, base hub.RecoveryStore) {
	ev := newInteropEvents()
	store := &savingStore{RecoveryStore: base, saved: make(chan hub.Session, 8), gate: make(chan struct{})}
	cfg := interopConfig()
	cfg.Recovery = &hub.RecoveryConfig{Store: store, MaxDisconnection: time.Minute}
	setup := func(srv *hub.Server) {
		installInterop(srv, ev, false, func(s *hub.Socket) {
			if !s.Recovered() {
				s.Join("news")
			}
		})
	}
	news := func(ts *testServer, arg, offset string) {
		ts.Hub.Broadcast(context.Background(), &hub.Broadcast{Rooms: []string{"news"}, Event: "news",
			Args: []json.RawMessage{json.RawMessage(fmt.Sprintf("%q", arg))}, Offset: offset})
	}
	ts1 := startServer(t, "127.0.0.1:0", cfg, setup)
	p := runNode(t, "recovery.mjs", ts1.URL, mode, "auto")
	var c1 struct {
		ID string `json:"id"`
	}
	p.expect("connect").decode(t, &c1)
	recv(t, ev.connects, "server connect")
	p.expect("ready")
	news(ts1, "before-1", "200-0")
	p.expect("news")

	ts1.Stop()
	var d struct {
		Reason string `json:"reason"`
		Active bool   `json:"active"`
	}
	p.expect("disconnect").decode(t, &d)
	if !d.Active {
		t.Fatalf("after Shutdown: client reason %q with active=false, want automatic reconnection", d.Reason)
	}
	if sess := recv(t, store.saved, "SaveSession at Shutdown"); sess.SID != c1.ID {
		t.Errorf("saved session sid %q, want %q", sess.SID, c1.ID)
	}

	ts2 := startServer(t, ts1.Addr, cfg, setup)
	news(ts2, "missed-1", "201-0")
	news(ts2, "missed-2", "202-0")
	close(store.gate)

	var c2 struct {
		ID        string `json:"id"`
		Recovered bool   `json:"recovered"`
	}
	for {
		l := p.next()
		if l.Ev == "connect" {
			l.decode(t, &c2)
			break
		}
		if l.Ev != "news" && l.Ev != "connect_error" {
			t.Fatalf("while reconnecting: got %s", l.Raw)
		}
	}
	if !c2.Recovered || c2.ID != c1.ID {
		t.Errorf("reconnect to the new server: got recovered=%v id %q, want recovered=true and id %q", c2.Recovered, c2.ID, c1.ID)
	}
	news(ts2, "last", "203-0")
	var done struct {
		Events [][]string `json:"events"`
	}
	p.skipUntil("done").decode(t, &done)
	want := [][]string{{"before-1", "200-0"}, {"missed-1", "201-0"}, {"missed-2", "202-0"}, {"last", "203-0"}}
	if !reflect.DeepEqual(done.Events, want) {
		t.Errorf("events seen by the client:\n got %v\nwant %v", done.Events, want)
	}
}

// TestInterop_ManyClients: 100 clients with default options connect and upgrade at the same
// time; each then gets a broadcast sequence exactly once, in order.
func TestInterop_ManyClients(t *testing.T) {
	testutil.Testdata(t, "socket.io-client")
	const n = 100
	ev := newInteropEvents()
	ts := startServer(t, "127.0.0.1:0", interopConfig(), func(srv *hub.Server) { installInterop(srv, ev, false, nil) })
	p := runNode(t, "many.mjs", ts.URL, fmt.Sprint(n))
	p.expect("ready")
	if st := ts.Hub.Stats(); st.Sockets != n || st.Connections != n {
		t.Errorf("Stats after %d clients connected: %+v", n, st)
	}
	for i := 1; i <= 3; i++ {
		ts.Hub.Broadcast(context.Background(), &hub.Broadcast{Event: "news", Args: []json.RawMessage{json.RawMessage(fmt.Sprint(i))}})
	}
	var got struct {
		Bad        []json.RawMessage `json:"bad"`
		Transports map[string]int    `json:"transports"`
	}
	p.expect("done").decode(t, &got)
	if len(got.Bad) > 0 {
		t.Errorf("%d clients did not get [1,2,3] exactly: %s", len(got.Bad), got.Bad)
	}
	if got.Transports["websocket"] != n {
		t.Errorf("transports at the end: %v, want all %d on websocket", got.Transports, n)
	}
}
