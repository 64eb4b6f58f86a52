package bus_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/hub/bus"
	"github.com/walcast/walcast/hub/bus/redistest"
	"github.com/walcast/walcast/hub/hubtest"
	"github.com/walcast/walcast/internal/testutil"
)

// TestRedis_IdleNodeCost measures what a node with no local members pays
// while the leader publishes 10,000 events/s to 1,000 rooms, in classic and
// in sharded mode: its CPU time and the bytes it reads (from Redis) over
// 10 s, in a process of its own (this test binary, as a helper). It is a
// measurement, not a check: it runs only with WALCAST_MEASURE_IDLE=1.
//
//	WALCAST_MEASURE_IDLE=1 go test -count=1 -run TestRedis_IdleNodeCost -v ./hub/bus/
//
// WALCAST_IDLE_BIN=<a bus test binary of another build whose
// TestRedis_IdleNodeCost is the same helper> adds that build's classic node.
func TestRedis_IdleNodeCost(t *testing.T) {
	if os.Getenv("WALCAST_IDLE_HELPER") != "" {
		idleHelper(t)
		return
	}
	if os.Getenv("WALCAST_MEASURE_IDLE") == "" {
		t.Skip("a measurement: set WALCAST_MEASURE_IDLE=1")
	}
	const rate, seconds, nrooms = 10_000, 10, 1000
	payload := json.RawMessage(`{"variantId":"20000000-0000-4000-8000-000000000003","productId":"10000000-0000-4000-8000-000000000001","stock":41,"previousStock":42,"reserved":3,"updatedAt":"2026-12-07T14:00:00.000Z","sku":"TSHIRT-BLK-M"}`)
	modes := []string{"classic", "sharded"}
	if os.Getenv("WALCAST_IDLE_BIN") != "" {
		// The classic node as another build runs it (the before number).
		modes = append([]string{"before"}, modes...)
	}
	for _, mode := range modes {
		rs := redistest.Start(t, redistest.Options{})
		c := newClient(t, rs)
		st, err := bus.NewRedisStore(bus.RedisStoreConfig{Client: c, Logger: testutil.Logger(t, slog.LevelInfo)})
		if err != nil {
			t.Fatal(err)
		}
		b, err := bus.NewRedis(bus.RedisConfig{Client: c, Store: st, Sharded: mode == "sharded", Logger: testutil.Logger(t, slog.LevelInfo)})
		if err != nil {
			t.Fatal(err)
		}
		srv, _ := hubtest.NewServer(t, hub.Config{Logger: testutil.Logger(t, slog.LevelInfo), Adapter: b,
			Recovery: &hub.RecoveryConfig{Store: st, MaxDisconnection: bus.DefaultStoreMaxAge}})
		ctx, cancel := context.WithCancel(t.Context())
		go b.Run(ctx)
		waitHealthy(t, b)

		bin := os.Args[0]
		if mode == "before" {
			bin = os.Getenv("WALCAST_IDLE_BIN")
		}
		cmd := exec.Command(bin, "-test.run=^TestRedis_IdleNodeCost$", "-test.count=1")
		cmd.Env = append(os.Environ(), "WALCAST_IDLE_HELPER=1", "WALCAST_IDLE_MODE="+mode, "WALCAST_IDLE_REDIS="+rs.URL(),
			"WALCAST_IDLE_SECONDS="+strconv.Itoa(seconds))
		out, _ := cmd.StdoutPipe()
		cmd.Stderr = t.Output()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(out)
		for lines.Scan() && lines.Text() != "READY" {
		}
		sent, n := 0, 0
		start := time.Now()
		tick := time.NewTicker(10 * time.Millisecond)
		for time.Since(start) < time.Duration(seconds+1)*time.Second {
			<-tick.C
			due := int(time.Since(start).Seconds()*rate) - sent
			if due <= 0 {
				continue
			}
			bs := make([]*hub.Broadcast, due)
			for i := range bs {
				n++
				bs[i] = &hub.Broadcast{Rooms: []string{"product:" + strconv.Itoa(n%nrooms)}, Event: "product:stock-updated",
					Args: []json.RawMessage{payload}, Offset: strconv.Itoa(1_000_000+n) + "-0"}
			}
			if err := srv.Broadcast(t.Context(), bs...); err != nil {
				t.Fatal(err)
			}
			sent += due
		}
		tick.Stop()
		var res string
		for lines.Scan() {
			if l := lines.Text(); strings.HasPrefix(l, "RESULT ") {
				res = strings.TrimPrefix(l, "RESULT ")
			}
		}
		cmd.Wait()
		cancel()
		load, _ := os.ReadFile("/proc/loadavg")
		t.Logf("%s: leader sent %d events in %.1f s; idle node over %d s: %s; load average %s", mode, sent, time.Since(start).Seconds(), seconds, res, strings.Fields(string(load))[:3])
	}
}

// idleHelper is the idle node: a hub with no sockets on the bus.
func idleHelper(t *testing.T) {
	rs := os.Getenv("WALCAST_IDLE_REDIS")
	secs, _ := strconv.Atoi(os.Getenv("WALCAST_IDLE_SECONDS"))
	c := newClientURL(t, rs)
	b, err := bus.NewRedis(bus.RedisConfig{Client: c, Sharded: os.Getenv("WALCAST_IDLE_MODE") == "sharded", Logger: testutil.Logger(t, slog.LevelInfo)})
	if err != nil {
		t.Fatal(err)
	}
	hubtest.NewServer(t, hub.Config{Logger: testutil.Logger(t, slog.LevelInfo), Adapter: b})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go b.Run(ctx)
	waitHealthy(t, b)
	fmt.Println("READY")
	time.Sleep(500 * time.Millisecond) // the leader starts
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	r0 := readChars()
	time.Sleep(time.Duration(secs) * time.Second)
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	r1 := readChars()
	cpu := time.Duration(ru1.Utime.Nano() - ru0.Utime.Nano() + ru1.Stime.Nano() - ru0.Stime.Nano())
	fmt.Printf("RESULT cpu=%.3fs (%.1f%% of a core) read=%.1f MB (%.0f KB/s)\n", cpu.Seconds(), 100*cpu.Seconds()/float64(secs),
		float64(r1-r0)/1e6, float64(r1-r0)/1e3/float64(secs))
}

// readChars returns the bytes this process has read (/proc/self/io rchar).
func readChars() int64 {
	data, _ := os.ReadFile("/proc/self/io")
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "rchar: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}
