package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/walcast/walcast/hub/hubtest"
)

func newTestServer(t *testing.T) *httptest.Server {
	t.Helper()
	h, sio, err := newHandler(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("newHandler: %v", err)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = sio.Shutdown(ctx)
		ts.Close()
	})
	return ts
}

func next(t *testing.T, c *hubtest.Client, want string) hubtest.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for {
		ev, err := c.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for %q: %v", want, err)
		}
		if ev.Name == want {
			return ev
		}
	}
}

func rawArgs(args []json.RawMessage) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, a := range args {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(a)
	}
	b.WriteByte(']')
	return b.String()
}

// TestSuiteHandlers checks the handlers the socket.io-protocol suite relies on.
func TestSuiteHandlers(t *testing.T) {
	ts := newTestServer(t)
	ctx := t.Context()

	c, err := hubtest.Dial(ctx, ts.URL, "/", json.RawMessage(`{"token":"123"}`))
	if err != nil {
		t.Fatalf("dial /: %v", err)
	}
	defer c.Close()
	if got := rawArgs(next(t, c, "auth").Args); got != `[{"token":"123"}]` {
		t.Errorf("auth on /: got %s, want [{\"token\":\"123\"}]", got)
	}

	if err := c.Emit("message", 1, "2", map[string]any{"3": []bool{true}}, []byte{1, 2, 3}); err != nil {
		t.Fatalf("emit message: %v", err)
	}
	ev := next(t, c, "message-back")
	if got, want := rawArgs(ev.Args), `[1,"2",{"3":[true]},{"_placeholder":true,"num":0}]`; got != want {
		t.Errorf("message-back args: got %s, want %s", got, want)
	}
	if !reflect.DeepEqual(ev.Attachments, [][]byte{{1, 2, 3}}) {
		t.Errorf("message-back attachments: got %v, want [[1 2 3]]", ev.Attachments)
	}

	res, err := c.EmitWithAck(ctx, "message-with-ack", 1, "2")
	if err != nil {
		t.Fatalf("emit message-with-ack: %v", err)
	}
	if got := rawArgs(res); got != `[1,"2"]` {
		t.Errorf("ack: got %s, want [1,\"2\"]", got)
	}

	custom, err := hubtest.Dial(ctx, ts.URL, "/custom", nil)
	if err != nil {
		t.Fatalf("dial /custom: %v", err)
	}
	defer custom.Close()
	if got := rawArgs(next(t, custom, "auth").Args); got != `[{}]` {
		t.Errorf("auth on /custom: got %s, want [{}]", got)
	}

	if _, err := hubtest.Dial(ctx, ts.URL, "/random", nil); err == nil || !strings.Contains(err.Error(), "Invalid namespace") {
		t.Errorf("dial /random: got %v, want Invalid namespace", err)
	}
}

// TestEngineEcho checks the raw Engine.IO echo on /engine.io/ with the suites' settings.
func TestEngineEcho(t *testing.T) {
	ts := newTestServer(t)
	ws, _, err := websocket.DefaultDialer.DialContext(t.Context(), "ws"+strings.TrimPrefix(ts.URL, "http")+"/engine.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer ws.Close()
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, open, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("read open: %v", err)
	}
	var hs map[string]any
	if len(open) == 0 || open[0] != '0' || json.Unmarshal(open[1:], &hs) != nil {
		t.Fatalf("open packet: got %q", open)
	}
	want := map[string]any{"sid": hs["sid"], "upgrades": []any{}, "pingInterval": 300.0, "pingTimeout": 200.0, "maxPayload": 1e6}
	if !reflect.DeepEqual(hs, want) {
		t.Errorf("open packet: got %v, want %v", hs, want)
	}
	for _, m := range []struct {
		typ  int
		data []byte
	}{{websocket.TextMessage, []byte("4hello")}, {websocket.BinaryMessage, []byte{1, 2, 3, 4}}} {
		if err := ws.WriteMessage(m.typ, m.data); err != nil {
			t.Fatalf("write: %v", err)
		}
		for {
			typ, data, err := ws.ReadMessage()
			if err != nil {
				t.Fatalf("read echo of %q: %v", m.data, err)
			}
			if typ == websocket.TextMessage && string(data) == "2" { // ping
				_ = ws.WriteMessage(websocket.TextMessage, []byte("3"))
				continue
			}
			if typ != m.typ || !bytes.Equal(data, m.data) {
				t.Errorf("echo: got type %d %q, want type %d %q", typ, data, m.typ, m.data)
			}
			break
		}
	}
}

func TestRun(t *testing.T) {
	var stderr bytes.Buffer
	if err := run(t.Context(), []string{"-nope"}, &stderr); err == nil {
		t.Errorf("run with an unknown flag: got nil error")
	}
	if err := run(t.Context(), []string{"-log-level", "loud"}, &stderr); err == nil {
		t.Errorf("run with a bad -log-level: got nil error")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // listen, then shut down at once
	if err := run(ctx, []string{"-addr", "127.0.0.1:0"}, &stderr); err != nil {
		t.Errorf("run until cancelled: %v", err)
	}
}
