package bus_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/hub/bus/redistest"
	"github.com/walcast/walcast/internal/testutil"
)

// TestRedis_NodeInterop: a Node socket.io server with @socket.io/redis-adapter
// delivers walcast's broadcasts, and a Node @socket.io/redis-emitter's event
// reaches walcast.
func TestRedis_NodeInterop(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	n := startNode(t, srv)

	t.Run("AdapterDeliversWalcast", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		js := testutil.StartNode(t, testutil.NodeOptions{Module: "@socket.io/redis-adapter", Script: "cluster/adapter_server.mjs",
			Env: []string{"REDIS_URL=" + srv.URL(), "ROOM=product:1", "COUNT=2"}, Timeout: 30 * time.Second})
		defer func() {
			if err := js.Wait(); err != nil {
				t.Errorf("adapter_server.mjs: %v\n%s", err, js.Stderr.String())
			}
		}()
		var fetchLine string
		for b := range js.Lines {
			if l := string(b); l == "READY" {
				break
			} else {
				fetchLine = l
			}
		}
		var fs struct{ FetchSocketsMs int }
		if err := json.Unmarshal([]byte(fetchLine), &fs); err != nil || fs.FetchSocketsMs > 1000 {
			t.Errorf("Node fetchSockets with walcast on the bus: %q, want well under 1s", fetchLine)
		}
		bs := []*hub.Broadcast{
			{Namespace: "/", Rooms: []string{"product:1"}, Event: "product:stock-updated",
				Args:   []json.RawMessage{json.RawMessage(`{"variantId":"v1","available":7,"timestamp":1700000000000}`)},
				Offset: "5000-0", CommitTime: time.Now()},
			{Namespace: "/", Rooms: []string{"product:2"}, Event: "not-for-node", Args: []json.RawMessage{json.RawMessage(`1`)}},
			{Namespace: "/", Rooms: []string{"product:1", "admin:room"}, Event: "bin",
				Args:        []json.RawMessage{json.RawMessage(`{"_placeholder":true,"num":0}`)},
				Attachments: [][]byte{{9, 8, 7}}},
		}
		if err := n.bus.Publish(ctx, bs); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		var got []string
		for b := range js.Lines {
			got = append(got, string(b))
		}
		want := []string{
			`{"event":"product:stock-updated","args":[{"variantId":"v1","available":7,"timestamp":1700000000000},"5000-0"]}`,
			`{"event":"bin","args":[{"binary":[9,8,7]}]}`,
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("Node client received:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})

	t.Run("EmitterReachesWalcast", func(t *testing.T) {
		before := len(n.sink.snapshot())
		js := testutil.StartNode(t, testutil.NodeOptions{Module: "@socket.io/redis-adapter", Script: "cluster/emitter.mjs",
			Env: []string{"REDIS_URL=" + srv.URL(), "ROOM=product:9", "EVENT=emitter:hello"}, Timeout: 30 * time.Second})
		if err := js.Wait(); err != nil {
			t.Fatalf("emitter.mjs: %v\n%s", err, js.Stderr.String())
		}
		got := n.sink.wait(t, before+1, 5*time.Second)[before]
		if got.Event != "emitter:hello" || len(got.Rooms) != 1 || got.Rooms[0] != "product:9" || got.Offset != "" {
			t.Fatalf("received %+v, want emitter:hello to product:9 without offset", got)
		}
		if len(got.Args) != 2 || string(got.Args[0]) != `{"from":"node","n":1}` || string(got.Args[1]) != `{"_placeholder":true,"num":0}` {
			t.Fatalf("args = %s, want the payload and a placeholder", got.Args)
		}
		if len(got.Attachments) != 1 || string(got.Attachments[0]) != "\x01\x02\x03" {
			t.Fatalf("attachments = %v, want [[1 2 3]]", got.Attachments)
		}
	})
}
