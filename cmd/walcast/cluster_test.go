package main

// The cluster test: three walcast processes on one redis-server and one
// throwaway Postgres, all on loopback, with Go Socket.IO clients spread over
// the nodes. It kills the leader mid-stream, stops Redis for 10 s, kills a
// standby, and checks interop with a Node socket.io server using
// @socket.io/redis-adapter and with the Node redis-emitter.

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/walcast/walcast/cdc/pgtest"
	"github.com/walcast/walcast/hub/bus/redistest"
	"github.com/walcast/walcast/hub/hubtest"
)

const clusterSecret = "cluster-test-secret-0123456789abcdef"

// buildWalcast builds the binary into a temporary directory.
func buildWalcast(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "walcast")
	if out, err := exec.Command("go", "build", "-o", path, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build walcast: %v\n%s", err, out)
	}
	return path
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// wnode is one walcast serve process.
type wnode struct {
	idx  int
	addr string
	env  []string
	bin  string
	log  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	dead bool
}

func (n *wnode) url() string { return "http://" + n.addr }

func (n *wnode) start(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile(n.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(n.bin, "serve")
	cmd.Env = n.env
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node %d: %v", n.idx, err)
	}
	n.mu.Lock()
	n.cmd, n.dead = cmd, false
	n.mu.Unlock()
	go func() { cmd.Wait(); f.Close() }()
}

// kill sends SIGKILL.
func (n *wnode) kill() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil && !n.dead {
		n.cmd.Process.Signal(syscall.SIGKILL)
		n.dead = true
	}
}

func (n *wnode) alive() bool { n.mu.Lock(); defer n.mu.Unlock(); return !n.dead }

type readiness struct {
	Ready       bool   `json:"ready"`
	Replication string `json:"replication"`
	Role        string `json:"role"`
	Bus         string `json:"bus"`
}

var readyClient = &http.Client{Timeout: time.Second}

func (n *wnode) readyz() (readiness, error) {
	var r readiness
	resp, err := readyClient.Get(n.url() + "/readyz")
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&r)
	return r, err
}

// metrics returns the node's walcast_bus, walcast_cdc and connection series.
func (n *wnode) metrics() string {
	resp, err := readyClient.Get(n.url() + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var out []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if (strings.HasPrefix(l, "walcast_bus") || strings.HasPrefix(l, "walcast_cdc") || strings.HasPrefix(l, "walcast_hub_connections") ||
			strings.HasPrefix(l, "walcast_hub_sockets") || strings.HasPrefix(l, "walcast_hub_rooms") ||
			strings.HasPrefix(l, "walcast_hub_recoveries") || strings.HasPrefix(l, "walcast_hub_disconnects") ||
			strings.HasPrefix(l, "walcast_role") || strings.HasPrefix(l, "walcast_hub_events")) && !strings.Contains(l, "_bucket") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func (n *wnode) logTail(lines int) string {
	b, _ := os.ReadFile(n.log)
	l := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// cluster is the whole test setup.
type wcluster struct {
	t     testing.TB
	pg    *pgtest.Cluster
	dbURL string
	redis *redistest.Server
	nodes []*wnode
	db    *pgx.Conn
	users []string
	pace  time.Duration // sleep after each emitted commit

	mu      sync.Mutex
	clients []*tclient
}

func (c *wcluster) waitReady(n *wnode, d time.Duration) readiness {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		r, err := n.readyz()
		if err == nil && r.Ready {
			return r
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("node %d not ready after %v: %+v %v\n%s", n.idx, d, r, err, n.logTail(30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// leader returns the node that reports role leader, or nil.
func (c *wcluster) leader() *wnode {
	for _, n := range c.nodes {
		if !n.alive() {
			continue
		}
		if r, err := n.readyz(); err == nil && r.Role == "leader" {
			return n
		}
	}
	return nil
}

func (c *wcluster) waitLeader(d time.Duration, not *wnode) *wnode {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if l := c.leader(); l != nil && l != not {
			return l
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("no leader after %v", d)
	return nil
}

func (c *wcluster) token(user string) json.RawMessage {
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": user, "exp": time.Now().Add(time.Hour).Unix(), "role": "authenticated"})
	s, err := tok.SignedString([]byte(clusterSecret))
	if err != nil {
		c.t.Fatal(err)
	}
	return json.RawMessage(fmt.Sprintf(`{"token":%q}`, s))
}

// tclient is one Socket.IO client that follows its session across nodes.
type tclient struct {
	user string
	auth json.RawMessage

	mu        sync.Mutex
	c         *hubtest.Client
	node      *wnode
	connects  int
	recovered []bool // one per reconnect
	seen      map[string]bool
	got       []seqEvent // de-duplicated by offset, in arrival order
	nodeSeqs  []int      // seq of each test:node event (sent by a Node server, no offset of its own)
	lost      chan struct{}
	lastErr   error // why the last connection ended
}

type seqEvent struct {
	Phase string `json:"phase"`
	Seq   int    `json:"seq"`
	at    time.Time
}

func (c *wcluster) connect(user string, n *wnode) *tclient {
	c.t.Helper()
	tc := &tclient{user: user, auth: c.token(user), seen: map[string]bool{}}
	cl, err := hubtest.Dial(c.t.Context(), n.url(), "/", tc.auth)
	if err != nil {
		c.t.Fatalf("dial node %d: %v", n.idx, err)
	}
	tc.attach(cl, n)
	c.mu.Lock()
	c.clients = append(c.clients, tc)
	c.mu.Unlock()
	return tc
}

func (tc *tclient) attach(cl *hubtest.Client, n *wnode) {
	tc.mu.Lock()
	tc.c, tc.node = cl, n
	tc.connects++
	tc.lost = make(chan struct{})
	lost := tc.lost
	tc.mu.Unlock()
	go func() {
		// Events is closed when the connection ends.
		for ev := range cl.Events() {
			tc.onEvent(ev)
		}
		tc.mu.Lock()
		tc.lastErr = cl.Err()
		tc.mu.Unlock()
		close(lost)
	}()
}

func (tc *tclient) onEvent(ev hubtest.Event) {
	if ev.Name == "test:node" && len(ev.Args) > 0 {
		var se seqEvent
		if json.Unmarshal(ev.Args[0], &se) == nil {
			tc.mu.Lock()
			tc.nodeSeqs = append(tc.nodeSeqs, se.Seq)
			tc.mu.Unlock()
		}
		return
	}
	if ev.Name != "test:seq" || len(ev.Args) < 2 {
		return
	}
	var off string
	if json.Unmarshal(ev.Args[len(ev.Args)-1], &off) != nil {
		return
	}
	var se seqEvent
	if json.Unmarshal(ev.Args[0], &se) != nil {
		return
	}
	se.at = time.Now()
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.seen[off] {
		return
	}
	tc.seen[off] = true
	tc.got = append(tc.got, se)
}

// reconnect dials another live node asking for recovery.
func (c *wcluster) reconnect(tc *tclient) error {
	tc.mu.Lock()
	oldNode := tc.node
	tc.mu.Unlock()
	return c.reconnectFrom(tc, oldNode.idx+1)
}

// reconnectFrom dials the live nodes from index first on (wrapping), asking
// for recovery.
func (c *wcluster) reconnectFrom(tc *tclient, first int) error {
	tc.mu.Lock()
	old := tc.c
	tc.mu.Unlock()
	var lastErr error
	for i := range len(c.nodes) * 3 {
		n := c.nodes[(first+i)%len(c.nodes)]
		if !n.alive() {
			continue
		}
		ctx, cancel := context.WithTimeout(c.t.Context(), 5*time.Second)
		cl, err := hubtest.DialOptions(ctx, n.url(), "/", tc.auth, hubtest.Options{PID: old.PID(), Offset: old.LastOffset()})
		cancel()
		if err != nil {
			lastErr = err
			time.Sleep(100 * time.Millisecond)
			continue
		}
		tc.mu.Lock()
		tc.recovered = append(tc.recovered, cl.Recovered())
		tc.mu.Unlock()
		tc.attach(cl, n)
		return nil
	}
	return fmt.Errorf("reconnect %s: %w", tc.user, lastErr)
}

// emptiest returns the live node with the fewest clients.
func (c *wcluster) emptiest() *wnode {
	count := map[*wnode]int{}
	c.mu.Lock()
	for _, tc := range c.clients {
		tc.mu.Lock()
		count[tc.node]++
		tc.mu.Unlock()
	}
	c.mu.Unlock()
	var best *wnode
	for _, n := range c.nodes {
		if n.alive() && (best == nil || count[n] < count[best]) {
			best = n
		}
	}
	return best
}

// followNode reconnects every client of n once its connection dropped.
func (c *wcluster) followNode(n *wnode, delay time.Duration) []*tclient {
	c.t.Helper()
	var moved []*tclient
	c.mu.Lock()
	for _, tc := range c.clients {
		tc.mu.Lock()
		if tc.node == n {
			moved = append(moved, tc)
		}
		tc.mu.Unlock()
	}
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, tc := range moved {
		wg.Go(func() {
			tc.mu.Lock()
			lost := tc.lost
			tc.mu.Unlock()
			select {
			case <-lost:
			case <-time.After(10 * time.Second):
				c.t.Errorf("client %s on node %d not disconnected 10s after the node died", tc.user, n.idx)
				return
			}
			time.Sleep(delay)
			if err := c.reconnect(tc); err != nil {
				c.t.Errorf("%v", err)
			}
		})
	}
	wg.Wait()
	return moved
}

// emit commits n events, one per transaction, round-robin over the users'
// rooms; onEach runs after commit i.
func (c *wcluster) emit(phase string, n int, onEach func(i int)) {
	c.t.Helper()
	for i := range n {
		user := c.users[i%len(c.users)]
		payload := fmt.Sprintf(`{"phase":%q,"seq":%d}`, phase, i)
		if _, err := c.db.Exec(c.t.Context(), `select walcast.emit($1, 'test:seq', $2::jsonb)`, "user:"+user, payload); err != nil {
			c.t.Fatalf("emit %d: %v", i, err)
		}
		if onEach != nil {
			onEach(i)
		}
		if c.pace > 0 {
			time.Sleep(c.pace)
		}
	}
}

// expect returns the seqs of phase user gets, in commit order.
func (c *wcluster) expect(user string, n int) []int {
	var out []int
	for i := range n {
		if c.users[i%len(c.users)] == user {
			out = append(out, i)
		}
	}
	return out
}

func (tc *tclient) seqs(phase string) []int {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	var out []int
	for _, e := range tc.got {
		if e.Phase == phase {
			out = append(out, e.Seq)
		}
	}
	return out
}

// waitAll waits until every client has its users' n events of phase, then
// checks they came complete and in commit order.
func (c *wcluster) waitAll(phase string, n int, d time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		done := true
		for _, tc := range c.clients {
			if len(tc.seqs(phase)) < len(c.expect(tc.user, n)) {
				done = false
				break
			}
		}
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	bad := 0
	for i, tc := range c.clients {
		got, want := tc.seqs(phase), c.expect(tc.user, n)
		if !slices.Equal(got, want) {
			bad++
			if bad <= 5 {
				tc.mu.Lock()
				lastErr := tc.lastErr
				tc.mu.Unlock()
				c.t.Errorf("%s: client %d (%s, node %d): got %d events, want %d; first difference at %d; connection error: %v",
					phase, i, tc.user, tc.node.idx, len(got), len(want), firstDiff(got, want), lastErr)
			}
		}
	}
	if bad > 0 {
		c.t.Errorf("%s: %d of %d clients did not get exactly their events in commit order", phase, bad, len(c.clients))
		for _, n := range c.nodes {
			c.t.Logf("node %d log tail:\n%s\nmetrics:\n%s", n.idx, n.logTail(25), n.metrics())
		}
	}
}

func firstDiff(a, b []int) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func (c *wcluster) connects() int {
	n := 0
	for _, tc := range c.clients {
		tc.mu.Lock()
		n += tc.connects
		tc.mu.Unlock()
	}
	return n
}

// startCluster starts Postgres, redis-server (when withRedis) and nodes walcast
// processes, and waits until every node is ready and one leads. env is added
// to every node's environment (a later entry wins).
func startCluster(t testing.TB, nodes int, withRedis bool, env ...string) *wcluster {
	t.Helper()
	bin := buildWalcast(t)
	pg := pgtest.New(t, pgtest.Options{})
	ctx := t.Context()
	if err := pg.CreateDatabase(ctx, "cluster"); err != nil {
		t.Fatal(err)
	}
	c := &wcluster{t: t, pg: pg, dbURL: pg.URL("cluster")}
	base := append(os.Environ(), "WALCAST_DATABASE_URL="+c.dbURL, "WALCAST_JWT_SECRET="+clusterSecret)
	if withRedis {
		c.redis = redistest.Start(t, redistest.Options{AppendOnly: true})
		base = append(base, "WALCAST_REDIS_URL="+c.redis.URL())
	}
	base = append(base, env...)
	base = append(base, "LOG_LEVEL="+cmp.Or(os.Getenv("CLUSTER_LOG_LEVEL"), "info"), "WALCAST_ALLOWED_ORIGINS=http://localhost")
	// Every client dials from 127.0.0.1, standing for many users: lift the
	// per-IP caps (TestServe_PerIPCaps tests them).
	base = append(base, "WALCAST_MAX_HANDSHAKES_PER_IP=0", "WALCAST_MAX_CONNS_PER_IP=0", "WALCAST_MAX_UNAUTHENTICATED_PER_IP=0")
	base = append(base, env...)
	mig := exec.CommandContext(ctx, bin, "migrate", "-demo")
	mig.Env = base
	if out, err := mig.CombinedOutput(); err != nil {
		t.Fatalf("walcast migrate: %v\n%s", err, out)
	}
	dir := t.TempDir()
	if d := os.Getenv("CLUSTER_LOG_DIR"); d != "" {
		dir = d // keep the node logs
	}
	for i := range nodes {
		n := &wnode{idx: i, addr: freeAddr(t), bin: bin, log: filepath.Join(dir, fmt.Sprintf("node%d.log", i))}
		n.env = append(slices.Clone(base), "WALCAST_LISTEN="+n.addr)
		c.nodes = append(c.nodes, n)
		n.start(t)
		t.Cleanup(n.kill)
	}
	for _, n := range c.nodes {
		c.waitReady(n, 30*time.Second)
	}
	c.waitLeader(10*time.Second, nil)
	db, err := pgx.Connect(ctx, c.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	c.db = db
	for i := range 6 {
		c.users = append(c.users, fmt.Sprintf("00000000-0000-4000-9000-%012d", i+1))
	}
	return c
}

// waitSessions waits until every client's session is kept in walcast.sessions.
func (c *wcluster) waitSessions(d time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		var pids []string
		for _, tc := range c.clients {
			tc.mu.Lock()
			pids = append(pids, tc.c.PID())
			tc.mu.Unlock()
		}
		var kept int
		if err := c.db.QueryRow(c.t.Context(), `SELECT count(*) FROM walcast.sessions WHERE pid = ANY($1) AND connected`, pids).Scan(&kept); err != nil {
			c.t.Fatalf("read walcast.sessions: %v", err)
		}
		if kept == len(pids) {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%d of %d client sessions not in walcast.sessions after %v", len(pids)-kept, len(pids), d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestCluster runs the failure scenarios in sequence on one cluster.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test is long; skipped with -short")
	}
	c := startCluster(t, 3, true)
	// 2 clients per user per node: 36 clients, every user on every node.
	for _, n := range c.nodes {
		for _, u := range c.users {
			c.connect(u, n)
			c.connect(u, n)
		}
	}
	// Sessions of connected sockets reach walcast.sessions within about 50 ms;
	// a node killed earlier than that leaves its newest clients unrecoverable.
	c.waitSessions(10 * time.Second)
	// Warm up: make sure the path is live end to end before counting.
	c.emit("warmup", 12, nil)
	c.waitAll("warmup", 12, 20*time.Second)
	if t.Failed() {
		t.FailNow()
	}
	// Every series the shipped dashboard and alert rules query exists on
	// every node (leader and standbys) once events have flowed.
	for _, n := range c.nodes {
		checkDashboardSeries(t, n.idx, n.rawMetrics(t))
	}

	t.Run("LeaderKill", func(t *testing.T) {
		c.t = t
		const n = 5000
		leader := c.leader()
		var killedAt time.Time
		var takeover time.Duration
		var wg sync.WaitGroup
		// Pace the commits (about 5,000 in 5 s) so that the kill lands while
		// events are being delivered, not after.
		c.pace = 500 * time.Microsecond
		defer func() { c.pace = 0 }()
		c.emit("leaderkill", n, func(i int) {
			if i != n/2 {
				return
			}
			leader.kill()
			killedAt = time.Now()
			got := 0
			for _, tc := range c.clients {
				got += len(tc.seqs("leaderkill"))
			}
			t.Logf("SIGKILLed leader node %d after commit %d; clients had %d of %d deliveries so far",
				leader.idx, i, got, len(c.clients)*(i+1)/len(c.users))
			wg.Go(func() {
				nl := c.waitLeader(15*time.Second, leader)
				takeover = time.Since(killedAt)
				t.Logf("takeover: node %d is leader %v after the kill", nl.idx, takeover.Round(time.Millisecond))
			})
			wg.Go(func() { c.followNode(leader, 0) })
		})
		wg.Wait()
		c.waitAll("leaderkill", n, 60*time.Second)
		if takeover > 5*time.Second {
			t.Errorf("takeover took %v, want < 5s", takeover)
		}
		checkRecovered(t, c, leader)
		// Bring the node back as a standby for the next scenarios.
		leader.start(t)
		c.waitReady(leader, 30*time.Second)
	})

	t.Run("RedisDown", func(t *testing.T) {
		c.t = t
		const n = 2000
		before := c.connects()
		stopped := make(chan struct{})
		c.emit("redisdown", n, func(i int) {
			if i == n/2 {
				c.redis.Stop()
				t.Logf("redis stopped after commit %d", i)
				go func() {
					time.Sleep(10 * time.Second)
					c.redis.Restart()
					t.Logf("redis restarted")
					close(stopped)
				}()
			}
		})
		<-stopped
		c.waitAll("redisdown", n, 60*time.Second)
		if after := c.connects(); after != before {
			t.Errorf("client connects went from %d to %d across the Redis outage, want no reconnect", before, after)
		}
		for _, nd := range c.nodes {
			if r := c.waitReady(nd, 20*time.Second); r.Bus != "up" {
				t.Errorf("node %d bus %q after Redis returned, want up", nd.idx, r.Bus)
			}
		}
	})

	// Redis comes back without its data (no persistence, or a lost disk)
	// while a client is offline: the leader refills the recovery streams
	// from the slot, the client recovers from them, and the connected ones
	// miss nothing.
	t.Run("RedisEmpty", func(t *testing.T) {
		c.t = t
		const n = 2000
		before := c.connects()
		stopped := make(chan struct{})
		offline := c.clients[len(c.clients)-1]
		c.emit("redisempty", n, func(i int) {
			switch i {
			case n / 4:
				offline.mu.Lock()
				cl, lost := offline.c, offline.lost
				offline.mu.Unlock()
				cl.Drop()
				<-lost
				t.Logf("client %s offline after commit %d", offline.user, i)
			case n / 2:
				c.redis.Stop()
				t.Logf("redis stopped after commit %d", i)
				go func() {
					time.Sleep(3 * time.Second)
					c.redis.RestartEmpty()
					t.Logf("redis restarted without its data")
					close(stopped)
				}()
			}
		})
		<-stopped
		// Onto the node with the fewest clients (the leader killed above,
		// restarted with none): the recovered session is then that node's
		// only member of its rooms, so live events reach it only if the
		// rejoin made the node take its rooms' messages again.
		if err := c.reconnectFrom(offline, c.emptiest().idx); err != nil {
			t.Fatal(err)
		}
		c.waitAll("redisempty", n, 60*time.Second)
		if after := c.connects(); after != before+1 {
			t.Errorf("client connects went from %d to %d across the Redis loss, want the offline client's reconnect only", before, after)
		}
		offline.mu.Lock()
		rec := offline.recovered
		offline.mu.Unlock()
		if len(rec) == 0 || !rec[len(rec)-1] {
			t.Errorf("the client offline while Redis lost its data reconnected with recovered=false")
		}
	})

	// The same on a quiet database: nothing is published, so the leader's
	// periodic check finds the loss, and the offline client still recovers.
	t.Run("RedisEmptyQuiet", func(t *testing.T) {
		c.t = t
		c.emit("quiet", 60, nil)
		c.waitAll("quiet", 60, 30*time.Second)
		offline := c.clients[0]
		offline.mu.Lock()
		cl, lost := offline.c, offline.lost
		offline.mu.Unlock()
		cl.Drop()
		<-lost
		c.redis.RestartEmpty()
		t0 := time.Now()
		if err := c.reconnect(offline); err != nil {
			t.Fatal(err)
		}
		offline.mu.Lock()
		rec := offline.recovered
		offline.mu.Unlock()
		if len(rec) == 0 || !rec[len(rec)-1] {
			t.Fatalf("client offline while a quiet Redis lost its data reconnected with recovered=false")
		}
		t.Logf("Redis restarted empty on a quiet database: the offline client recovered %v later", time.Since(t0).Round(time.Millisecond))
		c.emit("quiet2", 12, nil)
		c.waitAll("quiet2", 12, 30*time.Second)
	})

	t.Run("StandbyKill", func(t *testing.T) {
		c.t = t
		const n = 1000
		leader := c.leader()
		var standby *wnode
		for _, nd := range c.nodes {
			if nd != leader && nd.alive() {
				standby = nd
				break
			}
		}
		var wg sync.WaitGroup
		c.emit("standbykill", n, func(i int) {
			if i == n/4 {
				standby.kill()
				t.Logf("SIGKILLed standby node %d after commit %d", standby.idx, i)
				// Reconnect only after some events were committed meanwhile.
				wg.Go(func() { c.followNode(standby, 300*time.Millisecond) })
			}
		})
		wg.Wait()
		c.waitAll("standbykill", n, 60*time.Second)
		checkRecovered(t, c, standby)
	})

	t.Run("StandbyMetrics", func(t *testing.T) {
		c.t = t
		standbyMetrics(t, c)
	})

	t.Run("Interop", func(t *testing.T) {
		c.t = t
		clusterInterop(t, c)
	})

	t.Run("NodeClientRecovery", func(t *testing.T) {
		c.t = t
		nodeClientRecovery(t, c)
	})
}

// proxy forwards TCP connections to a target that can be switched, standing in
// for a load balancer in front of the nodes.
type proxy struct {
	ln     net.Listener
	mu     sync.Mutex
	target string
}

func startProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			cn, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			target := p.target
			p.mu.Unlock()
			go func() {
				defer cn.Close()
				up, err := net.DialTimeout("tcp", target, time.Second)
				if err != nil {
					return
				}
				defer up.Close()
				done := make(chan struct{}, 2)
				go func() { io.Copy(up, cn); done <- struct{}{} }()
				go func() { io.Copy(cn, up); done <- struct{}{} }()
				<-done
			}()
		}
	}()
	return p
}

func (p *proxy) switchTo(target string) { p.mu.Lock(); p.target = target; p.mu.Unlock() }

// nodeClientRecovery: a real socket.io-client behind a proxy is on a node that
// is SIGKILLed; it reconnects through the proxy to another node and gets the
// events it missed, with socket.recovered === true.
func nodeClientRecovery(t *testing.T, c *wcluster) {
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("node not found (CI is set): %v", err)
		}
		t.Skipf("node not found: %v", err)
	}
	// Use a standby as the victim; bring back any node killed before.
	for _, n := range c.nodes {
		if !n.alive() {
			n.start(t)
			c.waitReady(n, 30*time.Second)
		}
	}
	leader := c.waitLeader(10*time.Second, nil)
	var victim, other *wnode
	for _, n := range c.nodes {
		switch {
		case n == leader:
		case victim == nil:
			victim = n
		default:
			other = n
		}
	}
	px := startProxy(t, victim.addr)
	user := c.users[0]
	tok := c.token(user)
	var auth struct{ Token string }
	json.Unmarshal(tok, &auth)

	const before, after = 50, 50
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	script, _ := filepath.Abs(filepath.Join("..", "..", "testdata", "cluster", "recovering_client.mjs"))
	cmd := exec.CommandContext(ctx, node, script)
	cmd.Env = append(os.Environ(), "URL=http://"+px.ln.Addr().String(), "TOKEN="+auth.Token,
		"PHASE=nodeclient", fmt.Sprintf("COUNT=%d", before+after), "TIMEOUT_MS=40000")
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
	for lines.Scan() && lines.Text() != "READY" {
	}
	c.waitSessionsPID(time.Second) // the live session reaches Redis within ~100 ms
	emitTo := func(from, to int) {
		for i := from; i < to; i++ {
			payload := fmt.Sprintf(`{"phase":"nodeclient","seq":%d}`, i)
			if _, err := c.db.Exec(ctx, `select walcast.emit($1, 'test:seq', $2::jsonb)`, "user:"+user, payload); err != nil {
				t.Fatal(err)
			}
		}
	}
	emitTo(0, before)
	var seqs []int
	var connects []string
	for len(seqs) < before && lines.Scan() {
		var l struct {
			Seq     *int
			Connect int
		}
		json.Unmarshal([]byte(lines.Bytes()), &l)
		if l.Seq != nil {
			seqs = append(seqs, *l.Seq)
		}
	}
	victim.kill()
	px.switchTo(other.addr)
	emitTo(before, before+after) // while the client is away
	for lines.Scan() {
		var l struct {
			Seq       *int
			Connect   int
			Recovered bool
			Error     string
		}
		json.Unmarshal(lines.Bytes(), &l)
		switch {
		case l.Seq != nil:
			seqs = append(seqs, *l.Seq)
		case l.Connect > 0:
			connects = append(connects, lines.Text())
		case l.Error != "":
			t.Errorf("recovering_client.mjs: %s", l.Error)
		}
	}
	want := make([]int, before+after)
	for i := range want {
		want[i] = i
	}
	if !slices.Equal(seqs, want) {
		t.Errorf("socket.io-client got %d events (first difference at %d), want 0..%d in order", len(seqs), firstDiff(seqs, want), len(want)-1)
	}
	// The first connect came before READY; connects holds the reconnects.
	if len(connects) != 1 || !strings.Contains(connects[0], `"recovered":true`) {
		t.Errorf("socket.io-client reconnects: %v, want one, with recovered true", connects)
	} else {
		t.Logf("socket.io-client on killed node %d reconnected to node %d: %s", victim.idx, other.idx, connects[0])
	}
}

// waitSessionsPID gives the nodes time to write live sessions of clients the
// test does not hold a pid for (Node clients).
func (c *wcluster) waitSessionsPID(d time.Duration) { time.Sleep(d) }

// checkRecovered asserts every client that left node dead recovered elsewhere.
func checkRecovered(t *testing.T, c *wcluster, dead *wnode) {
	t.Helper()
	n, bad := 0, 0
	for _, tc := range c.clients {
		tc.mu.Lock()
		if len(tc.recovered) > 0 && tc.node != dead {
			n++
			if !tc.recovered[len(tc.recovered)-1] {
				bad++
			}
		}
		tc.mu.Unlock()
	}
	if bad > 0 {
		t.Errorf("%d of %d clients of node %d reconnected with recovered=false", bad, n, dead.idx)
		for _, nd := range c.nodes {
			t.Logf("node %d log tail:\n%s", nd.idx, nd.logTail(20))
		}
	}
}

// clusterInterop: a Node socket.io server with @socket.io/redis-adapter on the
// cluster's Redis delivers walcast's events; a Node redis-emitter event
// reaches a walcast client.
func clusterInterop(t *testing.T, c *wcluster) {
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("node not found (CI is set): %v", err)
		}
		t.Skipf("node not found: %v", err)
	}
	dir, _ := filepath.Abs(filepath.Join("..", "..", "testdata", "cluster"))
	user := c.users[0]
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "adapter_server.mjs"))
	cmd.Env = append(os.Environ(), "REDIS_URL="+c.redis.URL(), "ROOM=user:"+user, "COUNT=1", "TIMEOUT_MS=30000")
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
	for lines.Scan() && lines.Text() != "READY" {
	}
	if _, err := c.db.Exec(ctx, `select walcast.emit($1, 'interop:hello', '{"from":"postgres"}'::jsonb)`, "user:"+user); err != nil {
		t.Fatal(err)
	}
	var got []string
	for lines.Scan() {
		got = append(got, lines.Text())
	}
	if len(got) != 1 || !strings.HasPrefix(got[0], `{"event":"interop:hello","args":[{"from":"postgres"},"`) {
		t.Errorf("Node client behind the redis-adapter got %q, want interop:hello with the payload and an offset", got)
	}

	// Emitter -> walcast client.
	probe, err := hubtest.Dial(ctx, c.waitLeader(10*time.Second, nil).url(), "/", c.token(user))
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	em := exec.CommandContext(ctx, node, filepath.Join(dir, "emitter.mjs"))
	em.Env = append(os.Environ(), "REDIS_URL="+c.redis.URL(), "ROOM=user:"+user, "EVENT=emitter:hello")
	if b, err := em.CombinedOutput(); err != nil {
		t.Fatalf("emitter.mjs: %v\n%s", err, b)
	}
	for {
		ev, err := probe.Next(ctx)
		if err != nil {
			t.Fatalf("walcast client did not receive the emitter's event: %v", err)
		}
		if ev.Name == "emitter:hello" {
			if len(ev.Args) < 2 || string(ev.Args[0]) != `{"from":"node","n":1}` {
				t.Errorf("emitter event args %s, want the payload and the binary placeholder", ev.Args)
			}
			break
		}
	}
}

// BenchmarkCluster measures delivery through walcast processes: one node with
// the in-process bus against three nodes on Redis, same workload. Each round
// commits 5,000 events (100 transactions of 50 walcast.emit calls), each to one
// of 6 user rooms, with 120 clients (20 per user) spread evenly over the nodes,
// and waits until every client has every event of its room. It reports
// deliveries/s and the commit-to-client latency (p50, p99) over all deliveries.
//
//	go test ./cmd/walcast -run '^$' -bench BenchmarkCluster -benchtime 3x
func BenchmarkCluster(b *testing.B) {
	for _, nodes := range []int{1, 3} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			benchCluster(b, nodes)
		})
	}
}

func benchCluster(b *testing.B, nodes int) {
	c := startCluster(b, nodes, nodes > 1)
	const perUser, events, perTx = 20, 5000, 50
	for i := range perUser * len(c.users) {
		c.connect(c.users[i%len(c.users)], c.nodes[i%len(c.nodes)])
	}
	// Warm up (first connections, caches, the first status update) outside
	// the measurement.
	c.emit("benchwarmup", 60, nil)
	c.waitAll("benchwarmup", 60, 60*time.Second)
	var lat []time.Duration
	deliveries, round := 0, 0
	var elapsed time.Duration
	for b.Loop() {
		phase := fmt.Sprintf("bench%d", round)
		round++
		commits := make([]time.Time, events)
		start := time.Now()
		for lo := 0; lo < events; lo += perTx {
			if _, err := c.db.Exec(b.Context(), `select walcast.emit('user:' || ($1::text[])[1 + (g % $2)], 'test:seq',
				jsonb_build_object('phase', $3::text, 'seq', g)) from generate_series($4::int, $5::int) g`,
				c.users, len(c.users), phase, lo, lo+perTx-1); err != nil {
				b.Fatal(err)
			}
			now := time.Now()
			for i := lo; i < lo+perTx; i++ {
				commits[i] = now
			}
		}
		c.waitAll(phase, events, 120*time.Second)
		var last time.Time
		for _, tc := range c.clients {
			tc.mu.Lock()
			for _, e := range tc.got {
				if e.Phase == phase {
					lat = append(lat, e.at.Sub(commits[e.Seq]))
					deliveries++
					if e.at.After(last) {
						last = e.at
					}
				}
			}
			tc.mu.Unlock()
		}
		elapsed += last.Sub(start)
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(deliveries)/elapsed.Seconds(), "deliveries/s")
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
}

// standbyMetrics checks that an admin who subscribes to metrics on a standby
// gets the leader's current figures at once. A standby's own mapper loaded the
// metrics at start and follows no changes, so without the bus-fed value it
// would answer with a stale count.
func standbyMetrics(t *testing.T, c *wcluster) {
	ctx := t.Context()
	if _, err := c.db.Exec(ctx, `INSERT INTO orders (order_number, user_id, seller_id, total)
		VALUES ('ORD-STANDBY-METRICS', '00000000-0000-4000-8000-000000000101', '00000000-0000-4000-8000-000000000011', 12.50)`); err != nil {
		t.Fatalf("insert order: %v", err)
	}
	var want int
	if err := c.db.QueryRow(ctx, `SELECT count(*) FROM orders WHERE status::text NOT IN ('cancelled', 'refunded')`).Scan(&want); err != nil {
		t.Fatalf("count orders: %v", err)
	}
	// The leader coalesces metrics to one event per second; after this the
	// new figure has been published and nothing else will change it.
	time.Sleep(2500 * time.Millisecond)
	leader := c.leader()
	var standby *wnode
	for _, n := range c.nodes {
		if n != leader && n.alive() {
			standby = n
			break
		}
	}
	if standby == nil {
		t.Fatal("no live standby node")
	}
	admin, err := hubtest.Dial(ctx, standby.url(), "/", c.token("00000000-0000-4000-8000-000000000001"))
	if err != nil {
		t.Fatalf("admin dial node %d: %v", standby.idx, err)
	}
	defer admin.Close()
	ack, err := admin.EmitWithAck(ctx, "subscribe:metrics")
	if err != nil || len(ack) == 0 || !strings.Contains(string(ack[0]), `"ok":true`) {
		t.Fatalf("subscribe:metrics on standby node %d: ack %s, err %v", standby.idx, ack, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		ev, err := admin.Next(wctx)
		if err != nil {
			t.Fatalf("no admin:metrics-updated on standby node %d: %v", standby.idx, err)
		}
		if ev.Name != "admin:metrics-updated" {
			continue
		}
		var got struct {
			Metrics struct {
				TotalOrders int `json:"totalOrders"`
			} `json:"metrics"`
		}
		if err := json.Unmarshal(ev.Args[0], &got); err != nil {
			t.Fatalf("metrics payload %s: %v", ev.Args[0], err)
		}
		if got.Metrics.TotalOrders != want {
			t.Fatalf("standby node %d answered subscribe:metrics with totalOrders %d, want %d (the leader's current figure)",
				standby.idx, got.Metrics.TotalOrders, want)
		}
		return
	}
}
