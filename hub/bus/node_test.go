package bus_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/hub/bus/redistest"
)

// nodeScript returns the path of a testdata/cluster script, skipping (failing
// under CI) when node or the npm packages are missing.
func nodeScript(t *testing.T, name string) (node, script string) {
	t.Helper()
	node, err := exec.LookPath("node")
	script, _ = filepath.Abs(filepath.Join("..", "..", "testdata", "cluster", name))
	_, serr := os.Stat(filepath.Join("..", "..", "testdata", "node_modules", "@socket.io", "redis-adapter"))
	if err != nil || serr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("node or testdata/node_modules missing (CI is set): %v %v", err, serr)
		}
		t.Skipf("node or testdata/node_modules missing: %v %v", err, serr)
	}
	return node, script
}

// TestRedis_NodeInterop: a Node socket.io server with @socket.io/redis-adapter
// delivers walcast's broadcasts, and a Node @socket.io/redis-emitter's event
// reaches walcast.
func TestRedis_NodeInterop(t *testing.T) {
	node, script := nodeScript(t, "adapter_server.mjs")
	srv := redistest.Start(t, redistest.Options{})
	n := startNode(t, srv)

	t.Run("AdapterDeliversWalcast", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, node, script)
		cmd.Env = append(os.Environ(), "REDIS_URL="+srv.URL(), "ROOM=product:1", "COUNT=2")
		cmd.Stderr = t.Output()
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Wait()
		lines := bufio.NewScanner(out)
		var fetchLine string
		for lines.Scan() {
			if l := lines.Text(); l == "READY" {
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
		for lines.Scan() {
			got = append(got, lines.Text())
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
		node, script := nodeScript(t, "emitter.mjs")
		before := len(n.sink.snapshot())
		cmd := exec.CommandContext(t.Context(), node, script)
		cmd.Env = append(os.Environ(), "REDIS_URL="+srv.URL(), "ROOM=product:9", "EVENT=emitter:hello")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("emitter.mjs: %v\n%s", err, out)
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
