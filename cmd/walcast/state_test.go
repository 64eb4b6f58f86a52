package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/walcast/walcast/cdc/pgtest"
	"github.com/walcast/walcast/hub/bus/redistest"
	"github.com/walcast/walcast/hub/hubtest"
)

// TestServe_StateOnSubscribeRace: while one variant's stock changes as fast
// as one connection can commit (each change its own transaction, +1 each),
// sockets subscribe to its product over and over. Every socket must see the
// variant's available value as the state first, then each later value once:
// consecutive integers, no repeat, no gap, nothing older than the state.
// With Redis, the sockets are on a second node, which is not the one reading
// the stream: the state marks reach it through Redis.
func TestServe_StateOnSubscribeRace(t *testing.T) {
	for _, withRedis := range []bool{false, true} {
		name := "local"
		if withRedis {
			name = "redis"
		}
		t.Run(name, func(t *testing.T) { stateRace(t, withRedis) })
	}
}

func stateRace(t *testing.T, withRedis bool) {
	pg := pgtest.New(t, pgtest.Options{})
	ctx := t.Context()
	dbURL := pg.URL("postgres")
	if out, err := runCapture(t, map[string]string{"DATABASE_URL": dbURL}, "migrate", "-demo"); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	env := map[string]string{"DATABASE_URL": dbURL, "SUPABASE_JWT_SECRET": restartSecret,
		"WALCAST_LOG_LEVEL": "warn", "WALCAST_RATE_LIMIT": "0",
		// 170 sockets from one address within seconds: lift the per-IP caps.
		"WALCAST_MAX_HANDSHAKES_PER_IP": "0", "WALCAST_MAX_CONNS_PER_IP": "0", "WALCAST_MAX_UNAUTHENTICATED_PER_IP": "0"}
	addr := freeAddr(t)
	if withRedis {
		env["WALCAST_REDIS_URL"] = redistest.Start(t, redistest.Options{}).URL()
		startServeAt(t, env, freeAddr(t))
		startServeWant(t, env, addr, `"role":"standby"`)
	} else {
		startServeAt(t, env, addr)
	}
	const product, variant = "10000000-0000-4000-8000-000000000001", "20000000-0000-4000-8000-000000000001"
	conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `UPDATE inventory SET quantity = 1000, reserved = 0 WHERE variant_id = $1`, variant); err != nil {
		t.Fatal(err)
	}

	const changes, workers, socketsPerWorker = 3000, 6, 20
	writeCtx, stopWrites := context.WithTimeout(ctx, 60*time.Second)
	defer stopWrites()
	wrote := make(chan int, 1)
	go func() {
		n := 0
		for ; n < changes && writeCtx.Err() == nil; n++ {
			if _, err := conn.Exec(writeCtx, `UPDATE inventory SET quantity = quantity + 1 WHERE variant_id = $1`, variant); err != nil {
				break
			}
		}
		wrote <- n
	}()

	auth := customerAuth(t)
	var mu sync.Mutex
	var bad []string
	sockets, events := 0, 0
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range socketsPerWorker {
				if writeCtx.Err() != nil {
					return
				}
				got, err := subscribeAndRead(ctx, "http://"+addr, auth, product, variant, time.Duration(20+(w*7+i*13)%60)*time.Millisecond)
				mu.Lock()
				sockets++
				events += len(got)
				switch {
				case err != nil:
					bad = append(bad, fmt.Sprintf("worker %d socket %d: %v", w, i, err))
				case len(got) == 0:
					bad = append(bad, fmt.Sprintf("worker %d socket %d: no state before the ack", w, i))
				default:
					for k := 1; k < len(got); k++ {
						if got[k] != got[k-1]+1 {
							lo, hi := max(0, k-3), min(len(got), k+3)
							bad = append(bad, fmt.Sprintf("worker %d socket %d: state %d, values %d-%d of %d: %v", w, i, got[0], lo, hi-1, len(got), got[lo:hi]))
							break
						}
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	n := <-wrote
	t.Logf("%d changes committed; %d sockets subscribed while they were, %d stock events received; %d sockets saw a repeat, gap or stale value", n, sockets, events, len(bad))
	for i, b := range bad {
		if i == 5 {
			break
		}
		t.Errorf("not the state then each later change once: %s", b)
	}

	// What a subscribe costs the database, with nothing else writing: the
	// state mark's transaction, plus the session rows walcast.sessions keeps
	// for recovery (connect, join, disconnect), plus the node heartbeat.
	var before, after string
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	const quiet = 50
	start := time.Now()
	var ackTotal time.Duration
	for range quiet {
		t0 := time.Now()
		got, err := subscribeAndRead(ctx, "http://"+addr, auth, product, variant, 20*time.Millisecond)
		ackTotal += time.Since(t0) - 20*time.Millisecond
		if err != nil || len(got) != 1 {
			t.Fatalf("quiet subscribe: %v %v, want the state only", got, err)
		}
	}
	elapsed := time.Since(start)
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&after); err != nil {
		t.Fatal(err)
	}
	var wal int64
	if err := conn.QueryRow(ctx, `SELECT pg_wal_lsn_diff($1, $2)::bigint`, after, before).Scan(&wal); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d quiet connect+subscribe+close: %d bytes of WAL each (state mark, sessions, heartbeats over %v), %v from dial to the ack (state included) each",
		quiet, wal/quiet, elapsed.Round(time.Millisecond), (ackTotal / quiet).Round(10*time.Microsecond))
}

// subscribeAndRead connects, subscribes to product and returns the available
// values of variant it gets from the state on (those before the ack first),
// for d after the ack.
func subscribeAndRead(ctx context.Context, base string, auth json.RawMessage, product, variant string, d time.Duration) ([]int, error) {
	cl, err := hubtest.Dial(ctx, base, "/", auth)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	defer cl.Close()
	ack, err := cl.EmitWithAck(ctx, "subscribe:product", product)
	if err != nil || len(ack) == 0 || !strings.Contains(string(ack[0]), `"ok":true`) {
		return nil, fmt.Errorf("subscribe:product ack = %s, %v", ack, err)
	}
	rctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var got []int
	for {
		ev, err := cl.Next(rctx)
		if err != nil {
			return got, nil
		}
		if ev.Name != "product:stock-updated" || len(ev.Args) == 0 {
			continue
		}
		var p struct {
			VariantID string `json:"variantId"`
			Available int    `json:"available"`
		}
		if json.Unmarshal(ev.Args[0], &p) == nil && p.VariantID == variant {
			got = append(got, p.Available)
		}
	}
}
