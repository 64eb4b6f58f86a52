package main

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/walcast/walcast/cdc/pgtest"
)

// TestMain lets the test binary act as a load worker: Run starts workers as
// `<own executable> worker`.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "worker" {
		if err := workerMain(context.Background()); err != nil {
			os.Stderr.WriteString("worker: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestBench_Quick runs a small fan-out and a small spread scenario against
// walcast and the Node baseline, and checks counts, never speed: every client
// connects and subscribes, every expected event arrives exactly once, in order.
func TestBench_Quick(t *testing.T) {
	if _, err := pgtest.FindBin(); err != nil && os.Getenv("CI") == "" {
		t.Skipf("no PostgreSQL server: %v", err)
	}
	if _, err := exec.LookPath("node"); err != nil && os.Getenv("CI") == "" {
		t.Skip("node not installed")
	}
	root, err := findRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root + "/testdata/node_modules/socket.io"); err != nil {
		t.Fatalf("testdata/node_modules/socket.io missing (run make deps): %v", err)
	}
	cfg := BenchConfig{Root: root, Quick: true, Only: []string{"fanout-latency", "spread"}, Log: t.Output()}
	start := time.Now()
	out, err := Bench(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Bench: %v", err)
	}
	t.Logf("bench took %s", time.Since(start))
	printTable(t.Output(), cfg, out)
	for _, sc := range cfg.Only {
		for _, srv := range []string{"walcast", "node"} {
			if err := out.Errors[sc][srv]; err != nil {
				t.Errorf("%s/%s: %v", sc, srv, err)
				continue
			}
			r := out.Results[sc][srv]
			if r == nil {
				t.Errorf("%s/%s: no result", sc, srv)
				continue
			}
			if r.Connected != r.Clients || r.ConnectFailed != 0 {
				t.Errorf("%s/%s: connected %d of %d (%v)", sc, srv, r.Connected, r.Clients, r.ConnectErrors)
			}
			if r.Changes == 0 || r.Expected == 0 {
				t.Errorf("%s/%s: changes %d expected %d, want > 0", sc, srv, r.Changes, r.Expected)
			}
			if r.Lost != 0 || r.Received != r.Expected {
				t.Errorf("%s/%s: received %d of %d (lost %d), want all", sc, srv, r.Received, r.Expected, r.Lost)
			}
			if r.Dups != 0 || r.Closed != 0 || r.Unmatched != 0 {
				t.Errorf("%s/%s: dups %d closed %d unmatched %d, want 0", sc, srv, r.Dups, r.Closed, r.Unmatched)
			}
		}
	}
}

func TestHist(t *testing.T) {
	h := NewHist()
	for v := int64(1); v <= 1_000_000; v++ {
		h.Record(v * 1000) // 1µs .. 1s
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {1, time.Second}} {
		got := h.Quantile(c.q)
		if d := float64(got-c.want) / float64(c.want); d < -0.02 || d > 0.02 {
			t.Errorf("Quantile(%v) = %v, want %v ±2%%", c.q, got, c.want)
		}
	}
	for i := range histBuckets - 1 {
		if histValue(i) >= histValue(i+1) {
			t.Fatalf("bucket bounds not increasing at %d", i)
		}
		if j := histIndex(uint64(histValue(i))); j != i {
			t.Fatalf("histIndex(histValue(%d)) = %d", i, j)
		}
	}
}

func TestParseStockEvent(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{`42["product:stock-updated",{"variantId":"x","available":123,"timestamp":1}]`, 123, true},
		{`42["product:stock-updated",{"available": -5},"1-0"]`, -5, true},
		{`42["other",{"available":1}]`, 0, false},
		{`42["product:stock-updated",{"available":"x"}]`, 0, false},
		{`42["product:stock-updated",`, 0, false},
	} {
		got, ok := parseStockEvent([]byte(c.in))
		if got != c.want || ok != c.ok {
			t.Errorf("parseStockEvent(%s) = %d, %v; want %d, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

// TestBench_QuickOneRowTx runs the small tx1 scenario (one-row transactions
// committed while walcast is stopped, then drained; Postgres's own decode of
// the same WAL as the baseline) and checks counts, never speed.
func TestBench_QuickOneRowTx(t *testing.T) {
	if _, err := pgtest.FindBin(); err != nil && os.Getenv("CI") == "" {
		t.Skipf("no PostgreSQL server: %v", err)
	}
	root, err := findRoot()
	if err != nil {
		t.Fatal(err)
	}
	cfg := BenchConfig{Root: root, Quick: true, Servers: []string{"walcast"}, Only: []string{"tx1"}, Log: t.Output()}
	out, err := Bench(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Bench: %v", err)
	}
	if err := out.Errors["tx1"]["walcast"]; err != nil {
		t.Fatalf("tx1: %v", err)
	}
	b := out.OneRowTx
	if b == nil || !b.Received {
		t.Fatalf("tx1: marker after the backlog not received (%+v)", b)
	}
	// pgoutput sends Begin, Update and Commit for each one-row transaction.
	if want := int64(3 * b.Rows); b.PGChanges < want {
		t.Errorf("tx1: Postgres decoded %d messages, want >= %d (3 per transaction)", b.PGChanges, want)
	}
	if b.CPU <= 0 || b.PGDecode <= 0 {
		t.Errorf("tx1: CPU %v, Postgres decode %v, want both measured", b.CPU, b.PGDecode)
	}
	printTable(t.Output(), cfg, out)
}
