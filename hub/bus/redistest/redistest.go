// Package redistest runs a throwaway redis-server on a loopback port for tests
// (the bus, the recovery store, the cluster test).
//
// Start looks for redis-server on PATH and in /usr/bin. When it is missing the
// test is skipped, unless CI is set, in which case it fails. The server keeps
// no data on disk unless Options.AppendOnly is set (then in t.TempDir()), and
// is stopped by t.Cleanup. Methods are safe for concurrent use.
package redistest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options configure Start.
type Options struct {
	// AppendOnly keeps an append-only file (fsync always) so data survives Restart.
	AppendOnly bool
	// Cluster starts the server with cluster mode enabled (see StartCluster).
	Cluster bool
}

// Server is a running redis-server.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	opts Options
	Port int

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Start starts a redis-server on a free loopback port.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if _, serr := os.Stat("/usr/bin/redis-server"); serr == nil {
			bin = "/usr/bin/redis-server"
		} else if os.Getenv("CI") != "" {
			t.Fatalf("redistest: redis-server not found (CI is set): %v", err)
		} else {
			t.Skipf("redistest: redis-server not found: %v", err)
		}
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir(), opts: opts}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: find a free port: %v", err)
	}
	s.Port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Addr returns host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// URL returns a redis:// URL for the server.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

func (s *Server) start() error {
	args := []string{"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1", "--save", "",
		"--dir", s.dir, "--protected-mode", "no", "--loglevel", "warning",
		"--logfile", filepath.Join(s.dir, "redis.log")}
	if s.opts.AppendOnly {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	if s.opts.Cluster {
		// A stopped primary leaves its slots uncovered (no replicas here): the
		// other shards keep serving theirs.
		args = append(args, "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(s.dir, "nodes.conf"),
			"--cluster-node-timeout", "1000", "--cluster-require-full-coverage", "no")
	}
	cmd := exec.Command(s.bin, args...)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("redistest: start redis-server: %w", err)
	}
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", s.Addr(), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Stop()
	log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	return fmt.Errorf("redistest: redis-server did not listen on %s within 10s; log:\n%s", s.Addr(), log)
}

// Stop kills the server (SIGKILL) and waits for it; it is a no-op when stopped.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
}

// Restart starts the server again on the same port after Stop.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		s.t.Fatal(err)
	}
}

// RestartEmpty stops the server, deletes its data files (as a Redis without
// persistence, or with a lost disk, comes back) and starts it again on the
// same port.
func (s *Server) RestartEmpty() {
	s.t.Helper()
	s.Stop()
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		s.t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == "redis.log" {
			continue
		}
		if err := os.RemoveAll(filepath.Join(s.dir, e.Name())); err != nil {
			s.t.Fatal(err)
		}
	}
	if err := s.start(); err != nil {
		s.t.Fatal(err)
	}
}

// Cluster is a Redis Cluster of primaries without replicas.
type Cluster struct {
	Nodes []*Server
}

// StartCluster starts n cluster-enabled servers (AppendOnly, so a restarted
// primary keeps its keys) and joins them with redis-cli --cluster create,
// the slots split evenly. It waits until every node reports cluster_state:ok.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redistest: redis-cli not found (CI is set): %v", err)
		}
		t.Skipf("redistest: redis-cli not found: %v", err)
	}
	c := &Cluster{}
	args := []string{"--cluster", "create"}
	for range n {
		s := Start(t, Options{Cluster: true, AppendOnly: true})
		c.Nodes = append(c.Nodes, s)
		args = append(args, s.Addr())
	}
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitOK(t)
	return c
}

// Addrs returns the nodes' host:port addresses.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		out[i] = s.Addr()
	}
	return out
}

// CLI runs redis-cli with args against node i and returns its output.
func (c *Cluster) CLI(t testing.TB, i int, args ...string) string {
	t.Helper()
	out, err := exec.Command("redis-cli", append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(c.Nodes[i].Port)}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("redistest: redis-cli %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// WaitOK waits (up to 30 s) until every running node reports cluster_state:ok.
func (c *Cluster) WaitOK(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok := true
		for i, s := range c.Nodes {
			s.mu.Lock()
			up := s.cmd != nil
			s.mu.Unlock()
			if up {
				out, _ := exec.Command("redis-cli", "-p", strconv.Itoa(c.Nodes[i].Port), "cluster", "info").Output()
				ok = ok && strings.Contains(string(out), "cluster_state:ok")
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: cluster not ok after 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// NodeID returns node i's cluster id.
func (c *Cluster) NodeID(t testing.TB, i int) string {
	t.Helper()
	return strings.TrimSpace(c.CLI(t, i, "cluster", "myid"))
}

// MoveSlot migrates slot from node src to node dst with its keys, as
// redis-cli --cluster reshard does: SETSLOT IMPORTING/MIGRATING, MIGRATE
// the keys, SETSLOT NODE on both.
func (c *Cluster) MoveSlot(t testing.TB, slot, src, dst int) {
	t.Helper()
	sl := strconv.Itoa(slot)
	srcID, dstID := c.NodeID(t, src), c.NodeID(t, dst)
	c.CLI(t, dst, "cluster", "setslot", sl, "importing", srcID)
	c.CLI(t, src, "cluster", "setslot", sl, "migrating", dstID)
	for range 1000 {
		keys := strings.Fields(c.CLI(t, src, "cluster", "getkeysinslot", sl, "100"))
		if len(keys) == 0 {
			break
		}
		args := append([]string{"migrate", "127.0.0.1", strconv.Itoa(c.Nodes[dst].Port), "", "0", "5000", "keys"}, keys...)
		c.CLI(t, src, args...)
	}
	c.CLI(t, dst, "cluster", "setslot", sl, "node", dstID)
	c.CLI(t, src, "cluster", "setslot", sl, "node", dstID)
	for i := range c.Nodes {
		if i != src && i != dst {
			c.CLI(t, i, "cluster", "setslot", sl, "node", dstID)
		}
	}
}

// SlotOwner returns the index of the node that owns slot, as node i sees it.
func (c *Cluster) SlotOwner(t testing.TB, i, slot int) int {
	t.Helper()
	for _, line := range strings.Split(c.CLI(t, i, "cluster", "nodes"), "\n") {
		f := strings.Fields(line)
		if len(f) < 9 {
			continue
		}
		for _, r := range f[8:] {
			lo, hi, found := strings.Cut(r, "-")
			if !found {
				hi = lo
			}
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if err1 == nil && err2 == nil && a <= slot && slot <= b {
				for j, s := range c.Nodes {
					if strings.HasPrefix(f[1], s.Addr()) {
						return j
					}
				}
			}
		}
	}
	return -1
}
