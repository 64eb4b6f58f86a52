package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/walcast/walcast/cdc/pgtest"
	"github.com/walcast/walcast/hub/hubtest"
	"github.com/walcast/walcast/internal/testutil"
)

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServe runs `walcast serve` in process against a real Postgres: readiness,
// metrics, a database change reaching a Socket.IO client, and a graceful
// shutdown that closes the client and acknowledges the delivered position.
func TestServe(t *testing.T) {
	pg := pgtest.New(t, pgtest.Options{})
	ctx := t.Context()
	dbURL := pg.URL("postgres")
	if out, err := runCapture(t, map[string]string{"DATABASE_URL": dbURL}, "migrate", "-demo"); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	const secretKey = "test-secret-test-secret-test-secret"
	pprofAddr := freeAddr(t)
	c, err := parseConfig(newFlagSet("serve", io.Discard), optServe|optLog, []string{"-listen", "127.0.0.1:0"},
		envMap(map[string]string{"DATABASE_URL": dbURL, "SUPABASE_JWT_SECRET": secretKey, "WALCAST_SHUTDOWN_TIMEOUT": "3s",
			"WALCAST_PPROF_LISTEN": pprofAddr}))
	if err != nil {
		t.Fatalf("parseConfig: %v", err)
	}
	svc, err := newService(c, testutil.Logger(t, slog.LevelInfo))
	if err != nil {
		t.Fatalf("newService: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx, ln) }()

	if code, body := httpGet(t, base+"/healthz"); code != 200 || !strings.Contains(body, "ok") {
		t.Fatalf("/healthz = %d %q, want 200 ok", code, body)
	}
	// The profiler is on its own address only: the public listener never
	// serves it (its cmdline would show the JWT secret and the database URL).
	for _, p := range []string{"/debug/pprof/heap", "/debug/pprof/cmdline"} {
		if code, _ := httpGet(t, base+p); code != http.StatusNotFound {
			t.Fatalf("public %s = %d with WALCAST_PPROF_LISTEN set, want 404", p, code)
		}
	}
	if code, body := httpGet(t, "http://"+pprofAddr+"/debug/pprof/heap?debug=1"); code != 200 || !strings.Contains(body, "heap profile") {
		t.Fatalf("%s/debug/pprof/heap = %d %.80q, want 200 with a heap profile", pprofAddr, code, body)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := httpGet(t, base+"/readyz")
		if code == 200 && strings.Contains(body, `"replication":"streaming"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz = %d %s after 20s, want 200 streaming", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}

	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": demoUsers["customer"].ID, "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(secretKey))
	if err != nil {
		t.Fatal(err)
	}
	auth, _ := json.Marshal(map[string]string{"token": tok})
	cl, err := hubtest.Dial(ctx, base, "/", auth)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer cl.Close()
	const product, variant = "10000000-0000-4000-8000-000000000001", "20000000-0000-4000-8000-000000000001"
	ack, err := cl.EmitWithAck(ctx, "subscribe:product", product)
	if err != nil || len(ack) == 0 || !strings.Contains(string(ack[0]), `"ok":true`) {
		t.Fatalf("subscribe:product ack = %s, %v; want ok", ack, err)
	}
	conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// State on subscribe: before the ack, the current stock of each of the
	// product's variants.
	var nVariants, current int
	if err := conn.QueryRow(ctx, `SELECT count(*), max(CASE WHEN i.variant_id = $2 THEN i.quantity - i.reserved END)
FROM inventory i JOIN variants v ON v.id = i.variant_id WHERE v.product_id = $1`, product, variant).Scan(&nVariants, &current); err != nil {
		t.Fatal(err)
	}
	stateCtx, stateCancel := context.WithTimeout(ctx, 5*time.Second)
	sawCurrent := false
	for i := 0; i < nVariants; i++ {
		ev, err := cl.Next(stateCtx)
		if err != nil || ev.Name != "product:stock-updated" {
			t.Fatalf("state on subscribe: event %d = %v %v, want product:stock-updated", i, ev.Name, err)
		}
		var p struct {
			VariantID string `json:"variantId"`
			ProductID string `json:"productId"`
			Available int    `json:"available"`
		}
		json.Unmarshal(ev.Args[0], &p)
		if p.ProductID != product {
			t.Fatalf("state on subscribe: %s, want product %s", ev.Args[0], product)
		}
		sawCurrent = sawCurrent || (p.VariantID == variant && p.Available == current)
	}
	stateCancel()
	if !sawCurrent {
		t.Fatalf("state on subscribe lacks variant %s with available %d", variant, current)
	}
	var commitLSN string
	if _, err := conn.Exec(ctx, `UPDATE inventory SET quantity = 11, reserved = 1 WHERE variant_id = $1`, variant); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&commitLSN); err != nil {
		t.Fatal(err)
	}
	evCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		ev, err := cl.Next(evCtx)
		if err != nil {
			t.Fatalf("waiting for product:stock-updated: %v", err)
		}
		if ev.Name != "product:stock-updated" {
			continue
		}
		var p struct {
			VariantID string `json:"variantId"`
			Available int    `json:"available"`
		}
		json.Unmarshal(ev.Args[0], &p)
		if p.VariantID != variant || p.Available != 10 {
			t.Fatalf("product:stock-updated = %s, want variant %s available 10", ev.Args[0], variant)
		}
		break
	}
	// cart:update from one device reaches the user's other device (through the
	// bus relay), not the sender.
	other, err := hubtest.Dial(ctx, base, "/", auth)
	if err != nil {
		t.Fatalf("dial second device: %v", err)
	}
	defer other.Close()
	if err := cl.Emit("cart:update", map[string]any{"items": []string{"tee"}}); err != nil {
		t.Fatal(err)
	}
	for {
		ev, err := other.Next(evCtx)
		if err != nil {
			t.Fatalf("waiting for cart:synced on the other device: %v", err)
		}
		if ev.Name == "cart:synced" {
			if !strings.Contains(string(ev.Args[0]), `"tee"`) {
				t.Errorf("cart:synced = %s, want the cart", ev.Args[0])
			}
			break
		}
	}
	other.Close()

	if code, body := httpGet(t, base+"/metrics"); code != 200 ||
		!strings.Contains(body, `walcast_cdc_events_in_total{event="product:stock-updated"} 1`) ||
		!strings.Contains(body, "walcast_cdc_slot_lag_bytes") || !strings.Contains(body, "walcast_hub_connections") ||
		!strings.Contains(body, `walcast_cdc_reader_state{state="streaming"} 1`) || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics = %d, missing expected series:\n%s", code, grepLines(body, "walcast_"))
	}

	// Graceful shutdown: Run returns, the client is closed (so it would
	// reconnect), and the slot acknowledges at least the delivered change.
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel = %v, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return within 15s of cancel")
	}
	select {
	case <-cl.Done():
	case <-time.After(5 * time.Second):
		t.Error("client still connected after shutdown")
	}
	// The walsender may take a moment to exit after the connection closes.
	var acked, active bool
	for deadline := time.Now().Add(5 * time.Second); ; {
		// Held: the delivered change is in the recovery window, which the
		// slot keeps so that a restarted walcast can rebuild its buffer.
		err = conn.QueryRow(ctx, `SELECT confirmed_flush_lsn < $1::pg_lsn, active FROM pg_replication_slots WHERE slot_name = 'walcast'`, commitLSN).Scan(&acked, &active)
		if err != nil {
			t.Fatal(err)
		}
		if (acked && !active) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !acked {
		t.Errorf("slot confirmed_flush_lsn is past the delivered change at %s after shutdown: the recovery window was released", commitLSN)
	}
	if active {
		t.Errorf("slot still active 5s after shutdown")
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestServe_NotLogical: on a Postgres without wal_level=logical, serve stays
// up, /readyz says 503 and the log names the problem with the SQL that fixes it.
func TestServe_NotLogical(t *testing.T) {
	pg := pgtest.New(t, pgtest.Options{WalLevel: "replica"})
	dbURL := pg.URL("postgres")
	// The schema is there (a slot needs wal_level=logical, so none yet): the
	// only problem left is wal_level, which serve must report and wait out. A
	// database without the mapped tables stops serve instead
	// (TestServe_MappingMismatch).
	if out, err := runCapture(t, map[string]string{"DATABASE_URL": dbURL}, "migrate", "-demo", "-no-slot"); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	c, err := parseConfig(newFlagSet("serve", io.Discard), optServe|optLog, nil,
		envMap(map[string]string{"DATABASE_URL": dbURL, "WALCAST_JWT_SECRET": "x", "WALCAST_SHUTDOWN_TIMEOUT": "2s"}))
	if err != nil {
		t.Fatalf("parseConfig: %v", err)
	}
	var logs testutil.Buffer
	svc, err := newService(c, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("newService: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx, ln) }()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(logs.String(), "ALTER SYSTEM SET wal_level = logical") {
		if time.Now().After(deadline) {
			t.Fatalf("log does not name wal_level with its fix after 15s:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, body := httpGet(t, "http://"+ln.Addr().String()+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d %s, want 503", code, body)
	}
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return within 15s of cancel")
	}
}

// TestMountPprof: the profiler answers under /debug/pprof/; WALCAST_PPROF_LISTEN
// selects its address and the old public-listener switch is refused.
func TestMountPprof(t *testing.T) {
	mux := http.NewServeMux()
	mountPprof(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	if code, body := httpGet(t, srv.URL+"/debug/pprof/heap?debug=1"); code != 200 || !strings.Contains(body, "heap profile") {
		t.Fatalf("/debug/pprof/heap = %d %.80q, want 200 with a heap profile", code, body)
	}
	env := map[string]string{"DATABASE_URL": "postgres://x@127.0.0.1/x", "WALCAST_JWT_SECRET": "s", "WALCAST_PPROF_LISTEN": "127.0.0.1:6060"}
	c, err := parseConfig(newFlagSet("serve", io.Discard), optServe|optLog, nil, envMap(env))
	if err != nil || c.PprofListen != "127.0.0.1:6060" {
		t.Fatalf("parseConfig(WALCAST_PPROF_LISTEN=127.0.0.1:6060) = %v, PprofListen %q", err, c.PprofListen)
	}
	// The old switch put the profiler on the public listener; it is refused
	// with the replacement named, not silently ignored.
	delete(env, "WALCAST_PPROF_LISTEN")
	env["WALCAST_PPROF"] = "true"
	if _, err := parseConfig(newFlagSet("serve", io.Discard), optServe|optLog, nil, envMap(env)); err == nil || !strings.Contains(err.Error(), "WALCAST_PPROF_LISTEN") {
		t.Fatalf("parseConfig(WALCAST_PPROF=true) = %v, want an error naming WALCAST_PPROF_LISTEN", err)
	}
}
