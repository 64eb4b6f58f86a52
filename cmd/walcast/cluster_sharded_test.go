package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/walcast/walcast/hub/bus/redistest"
)

// TestClusterSharded: three walcast processes in sharded mode
// (WALCAST_REDIS_MODE=sharded, WALCAST_REDIS_CLUSTER=true) on a Redis Cluster
// of three Redis 7 primaries, one Postgres, and a Node socket.io 4.8 server
// using createShardedAdapter ("dynamic"). First the Node client gets
// walcast's events and Node's emits reach walcast's clients; then, in
// sequence, mid-stream: the leader
// is SIGKILLed (its clients reconnect elsewhere and recover), the primary
// of one user's channel is stopped for 3 s, and another user's slot moves to
// another primary. Every walcast client gets every event of its rooms once,
// in commit order. (Node's side is checked before the faults: node-redis 4's
// cluster client did not always subscribe again after a primary restart.)
func TestClusterSharded(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test is long; skipped with -short")
	}
	rc := redistest.StartCluster(t, 3)
	addrs := rc.Addrs()
	url := "redis://" + addrs[0] + "?addr=" + addrs[1] + "&addr=" + addrs[2]
	c := startCluster(t, 3, false, "WALCAST_REDIS_URL="+url, "WALCAST_REDIS_CLUSTER=true", "WALCAST_REDIS_MODE=sharded")
	probe := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { probe.Close() })
	for _, n := range c.nodes {
		for _, u := range c.users {
			c.connect(u, n)
			c.connect(u, n)
		}
	}
	c.waitSessions(10 * time.Second)
	ns := startShardedNode(t, "REDIS_CLUSTER="+strings.Join(addrs, ","), "ROOMS=user:"+c.users[0]+",user:"+c.users[1])
	c.emit("warmup", 12, nil)
	c.waitAll("warmup", 12, 20*time.Second)
	if t.Failed() {
		t.FailNow()
	}
	slotOwner := func(user string) (int, int) {
		s, err := probe.ClusterKeySlot(t.Context(), "socket.io#/#user:"+user+"#").Result()
		if err != nil {
			t.Fatal(err)
		}
		return int(s), rc.SlotOwner(t, 0, int(s))
	}

	t.Run("Node", func(t *testing.T) {
		c.t = t
		// The Node client is in user 0's and user 1's rooms: it got the
		// warm-up events of each, once, in commit order (the two rooms'
		// channels may live on different primaries, so only the order
		// within a room is kept).
		got := map[int][]int{}
		deadline := time.After(10 * time.Second)
		want := map[int][]int{0: c.expect(c.users[0], 12), 1: c.expect(c.users[1], 12)}
	read:
		for len(got[0])+len(got[1]) < len(want[0])+len(want[1]) {
			select {
			case l := <-ns.lines:
				var ev struct {
					Event string
					Args  []json.RawMessage
				}
				var se seqEvent
				if json.Unmarshal([]byte(l), &ev) == nil && ev.Event == "test:seq" && len(ev.Args) == 2 &&
					json.Unmarshal(ev.Args[0], &se) == nil && se.Phase == "warmup" {
					got[se.Seq%len(c.users)] = append(got[se.Seq%len(c.users)], se.Seq)
				} else if !strings.Contains(l, `"event"`) {
					t.Logf("node: %s", l)
				}
			case <-deadline:
				break read
			}
		}
		for u := range 2 {
			if !slices.Equal(got[u], want[u]) {
				t.Errorf("Node client's warm-up events of user %d = %v, want %v", u, got[u], want[u])
			}
		}
		// Node's emit to user 4's room reaches that user's walcast clients
		// on every node.
		const k = 20
		for i := range k {
			ns.send(t, fmt.Sprintf(`emit user:%s test:node {"phase":"node","seq":%d}`, c.users[4], i))
		}
		deadline2 := time.Now().Add(20 * time.Second)
		for {
			missing := 0
			for _, tc := range c.clients {
				if tc.user == c.users[4] && len(tc.nodeEvents()) < k {
					missing++
				}
			}
			if missing == 0 {
				break
			}
			if time.Now().After(deadline2) {
				t.Fatalf("%d of user 4's walcast clients lack Node's %d emits", missing, k)
			}
			time.Sleep(50 * time.Millisecond)
		}
		for _, tc := range c.clients {
			if tc.user == c.users[4] {
				if s := tc.nodeEvents(); !slices.Equal(s, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}) {
					t.Errorf("walcast client of user 4: Node's emits %v, want 0..19 in order", s)
				}
			}
		}
	})

	t.Run("StandbyMetrics", func(t *testing.T) {
		c.t = t
		standbyMetrics(t, c)
	})

	t.Run("LeaderKill", func(t *testing.T) {
		c.t = t
		const n = 3000
		leader := c.leader()
		var wg sync.WaitGroup
		c.pace = 500 * time.Microsecond
		defer func() { c.pace = 0 }()
		c.emit("leaderkill", n, func(i int) {
			if i != n/2 {
				return
			}
			leader.kill()
			t.Logf("SIGKILLed leader node %d after commit %d", leader.idx, i)
			wg.Go(func() {
				nl := c.waitLeader(15*time.Second, leader)
				t.Logf("node %d is leader", nl.idx)
			})
			wg.Go(func() { c.followNode(leader, 0) })
		})
		wg.Wait()
		c.waitAll("leaderkill", n, 60*time.Second)
		checkRecovered(t, c, leader)
		leader.start(t)
		c.waitReady(leader, 30*time.Second)
	})

	t.Run("PrimaryDown", func(t *testing.T) {
		c.t = t
		const n = 2000
		_, owner := slotOwner(c.users[2])
		stopped := make(chan struct{})
		c.emit("primarydown", n, func(i int) {
			if i == n/2 {
				rc.Nodes[owner].Stop()
				t.Logf("stopped Redis primary %d (user:%s's channel) after commit %d", owner, c.users[2], i)
				go func() {
					time.Sleep(3 * time.Second)
					rc.Nodes[owner].Restart()
					t.Logf("restarted Redis primary %d", owner)
					close(stopped)
				}()
			}
		})
		<-stopped
		rc.WaitOK(t)
		c.waitAll("primarydown", n, 60*time.Second)
	})

	t.Run("SlotMove", func(t *testing.T) {
		c.t = t
		const n = 2000
		slot, owner := slotOwner(c.users[3])
		to := (owner + 1) % 3
		c.pace = 500 * time.Microsecond
		defer func() { c.pace = 0 }()
		c.emit("slotmove", n, func(i int) {
			if i == n/2 {
				rc.MoveSlot(t, slot, owner, to)
				t.Logf("moved slot %d (user:%s's channel) from primary %d to %d after commit %d", slot, c.users[3], owner, to, i)
			}
		})
		c.waitAll("slotmove", n, 60*time.Second)
	})

}

// shardedNode is testdata/cluster/sharded_server.mjs, running until the test ends.
type shardedNodeServer struct {
	stdin io.WriteCloser
	lines chan string
}

func startShardedNode(t *testing.T, env ...string) *shardedNodeServer {
	t.Helper()
	node, err := exec.LookPath("node")
	script, _ := filepath.Abs(filepath.Join("..", "..", "testdata", "cluster", "sharded_server.mjs"))
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("node not found (CI is set): %v", err)
		}
		t.Skipf("node not found: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, node, script)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = t.Output()
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ns := &shardedNodeServer{stdin: stdin, lines: make(chan string, 100_000)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			ns.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		stdin.Close()
		time.AfterFunc(5*time.Second, cancel)
		cmd.Wait()
		cancel()
	})
	deadline := time.After(20 * time.Second)
	for {
		select {
		case l := <-ns.lines:
			if l == "READY" {
				return ns
			}
		case <-deadline:
			t.Fatal("Node sharded server not ready after 20s")
		}
	}
}

func (ns *shardedNodeServer) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(ns.stdin, line+"\n"); err != nil {
		t.Fatalf("write to node: %v", err)
	}
}

func (tc *tclient) nodeEvents() []int {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return slices.Clone(tc.nodeSeqs)
}
