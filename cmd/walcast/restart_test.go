package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"

	"github.com/walcast/walcast/cdc/pgtest"
	"github.com/walcast/walcast/hub/hubtest"
	"github.com/walcast/walcast/internal/testutil"
)

const restartSecret = "test-secret-test-secret-test-secret"

// startServeAt runs `walcast serve` in-process on addr until the returned
// stop is called (a graceful shutdown, as on SIGTERM); it waits for /readyz.
func startServeAt(t *testing.T, env map[string]string, addr string) (stop func()) {
	t.Helper()
	return startServeWant(t, env, addr, `"replication":"streaming"`)
}

// startServeWant is startServeAt waiting for /readyz to contain want instead
// (a second node with Redis stands by).
func startServeWant(t *testing.T, env map[string]string, addr, want string) (stop func()) {
	t.Helper()
	c, err := parseConfig(newFlagSet("serve", io.Discard), optServe|optLog, nil, envMap(env))
	if err != nil {
		t.Fatalf("parseConfig: %v", err)
	}
	svc, err := newService(c, testutil.Logger(t, slog.LevelInfo))
	if err != nil {
		t.Fatalf("newService: %v", err)
	}
	var ln net.Listener
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if ln, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx, ln) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := httpGet(t, "http://"+addr+"/readyz")
		if code == 200 && strings.Contains(body, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz = %d %s after 20s, want 200 with %s", code, body, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

func customerAuth(t *testing.T) json.RawMessage {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": demoUsers["customer"].ID, "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(restartSecret))
	if err != nil {
		t.Fatal(err)
	}
	auth, _ := json.Marshal(map[string]string{"token": tok})
	return auth
}

// stockEvents reads product:stock-updated events until it has n of them (or
// fails after 10 s) and returns their available values.
func stockEvents(t *testing.T, cl *hubtest.Client, n int) []int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var got []int
	for len(got) < n {
		ev, err := cl.Next(ctx)
		if err != nil {
			t.Fatalf("after %v: waiting for %d product:stock-updated events: %v", got, n, err)
		}
		if ev.Name != "product:stock-updated" {
			continue
		}
		var p struct {
			Available int `json:"available"`
		}
		json.Unmarshal(ev.Args[0], &p)
		got = append(got, p.Available)
	}
	return got
}

// TestServe_RecoversAfterRestart: one node, no Redis. A client subscribed to
// a product loses its connection when walcast stops; changes are committed
// while no walcast runs; the client reconnects to the restarted process with
// its pid and offset, is recovered, and gets exactly the missed changes in
// commit order, then live ones, each once.
func TestServe_RecoversAfterRestart(t *testing.T) {
	pg := pgtest.New(t, pgtest.Options{})
	ctx := t.Context()
	dbURL := pg.URL("postgres")
	if out, err := runCapture(t, map[string]string{"DATABASE_URL": dbURL}, "migrate", "-demo"); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	addr := freeAddr(t)
	env := map[string]string{"DATABASE_URL": dbURL, "SUPABASE_JWT_SECRET": restartSecret,
		"WALCAST_SHUTDOWN_TIMEOUT": "3s", "WALCAST_LISTEN": addr}
	stop := startServeAt(t, env, addr)

	cl, err := hubtest.Dial(ctx, "http://"+addr, "/", customerAuth(t))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer cl.Close()
	const product, variant = "10000000-0000-4000-8000-000000000001", "20000000-0000-4000-8000-000000000001"
	if ack, err := cl.EmitWithAck(ctx, "subscribe:product", product); err != nil || !strings.Contains(string(ack[0]), `"ok":true`) {
		t.Fatalf("subscribe:product ack = %s, %v; want ok", ack, err)
	}
	conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	set := func(q int) {
		t.Helper()
		if _, err := conn.Exec(ctx, `UPDATE inventory SET quantity = $1, reserved = 0 WHERE variant_id = $2`, q, variant); err != nil {
			t.Fatal(err)
		}
	}
	skipState(t, cl)
	set(101)
	if got := stockEvents(t, cl, 1); got[0] != 101 {
		t.Fatalf("live event = %v, want 101", got)
	}

	stop() // SIGTERM-like: the hub drains and closes; sessions are written
	select {
	case <-cl.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("client still connected after the shutdown")
	}
	for q := 102; q <= 104; q++ {
		set(q) // committed while no walcast runs
	}
	startServeAt(t, env, addr)
	rc, err := cl.Reconnect(ctx)
	if err != nil {
		t.Fatalf("reconnect: %v", err)
	}
	defer rc.Close()
	if !rc.Recovered() {
		t.Fatal("reconnect after the restart was not recovered")
	}
	set(105)
	if got := stockEvents(t, rc, 4); !equalInts(got, []int{102, 103, 104, 105}) {
		t.Fatalf("after the restart the client got %v, want [102 103 104 105] (missed, in order, then live)", got)
	}
	noMoreStock(t, rc)
}

// skipState drains what a fresh subscribe may send first (the current state).
func skipState(t *testing.T, cl *hubtest.Client) {
	t.Helper()
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		_, err := cl.Next(ctx)
		cancel()
		if err != nil {
			return
		}
	}
}

// noMoreStock fails if another product:stock-updated arrives within 500 ms.
func noMoreStock(t *testing.T, cl *hubtest.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	for {
		ev, err := cl.Next(ctx)
		if err != nil {
			return
		}
		if ev.Name == "product:stock-updated" {
			t.Fatalf("unexpected extra product:stock-updated %s", ev.Args[0])
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
