package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/hub/bus"
	"github.com/walcast/walcast/hub/bus/redistest"
	"github.com/walcast/walcast/hub/hubtest"
)

// TestRedisClient_Sentinel: a WALCAST_REDIS_URL with master_name reaches the
// master through Sentinel, and two hubs on sharded buses over such clients
// deliver each other's broadcasts.
func TestRedisClient_Sentinel(t *testing.T) {
	master := redistest.Start(t, redistest.Options{})
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skipf("redis-server not found: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("port %d\nbind 127.0.0.1\nprotected-mode no\ndir %s\nsentinel monitor mymaster 127.0.0.1 %d 1\n",
		port, dir, master.Port)), 0o644); err != nil {
		t.Fatal(err)
	}
	sen := exec.Command(bin, conf, "--sentinel")
	if err := sen.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sen.Process.Kill(); sen.Wait() })

	c := config{RedisURL: fmt.Sprintf("redis://127.0.0.1:%d?master_name=mymaster", port), RedisMode: "sharded"}
	var urls []string
	var srvs []*hub.Server
	var probe interface {
		PubSubShardNumSub(ctx context.Context, channels ...string) *redis.MapStringIntCmd
	}
	for range 2 {
		client, err := newRedisClient(c)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { client.Close() })
		probe = client
		deadline := time.Now().Add(10 * time.Second)
		for client.Ping(t.Context()).Err() != nil {
			if time.Now().After(deadline) {
				t.Fatalf("no master through Sentinel: %v", client.Ping(t.Context()).Err())
			}
			time.Sleep(50 * time.Millisecond)
		}
		b, err := bus.NewRedis(bus.RedisConfig{Client: client, Sharded: true})
		if err != nil {
			t.Fatal(err)
		}
		srv, ts := hubtest.NewServer(t, hub.Config{Adapter: b})
		srv.Of("/").OnConnect(func(s *hub.Socket) { s.Join("product:1") })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); b.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		for !b.Healthy() {
			if time.Now().After(deadline) {
				t.Fatal("bus not healthy through Sentinel")
			}
			time.Sleep(20 * time.Millisecond)
		}
		urls, srvs = append(urls, ts.URL), append(srvs, srv)
	}
	cl, err := hubtest.Dial(t.Context(), urls[1], "/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const ch = "socket.io#/#product:1#"
	deadline := time.Now().Add(10 * time.Second)
	for probe.PubSubShardNumSub(t.Context(), ch).Val()[ch] < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the other hub did not subscribe to product:1")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := srvs[0].Broadcast(t.Context(), &hub.Broadcast{Rooms: []string{"product:1"}, Event: "via-sentinel",
		Args: []json.RawMessage{json.RawMessage(`1`)}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	ev, err := cl.Next(ctx)
	if err != nil || ev.Name != "via-sentinel" {
		t.Fatalf("client on the other hub got %v %v, want via-sentinel", ev, err)
	}
}
