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

// TestServe_SlotLost: the slot disappears under a running serve (as after a
// promotion without failover slots). serve recreates it, logs exactly one
// Error line, counts it in walcast_cdc_slot_lost_total and /readyz, and ends
// the client's session: it reconnects unrecovered and subscribes again.
func TestServe_SlotLost(t *testing.T) {
	pg := pgtest.New(t, pgtest.Options{})
	ctx := t.Context()
	dbURL := pg.URL("postgres")
	if out, err := runCapture(t, map[string]string{"DATABASE_URL": dbURL}, "migrate", "-demo"); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	const secretKey = "test-secret-test-secret-test-secret"
	c, err := parseConfig(newFlagSet("serve", io.Discard), optServe|optLog, []string{"-listen", "127.0.0.1:0"},
		envMap(map[string]string{"DATABASE_URL": dbURL, "SUPABASE_JWT_SECRET": secretKey, "WALCAST_SHUTDOWN_TIMEOUT": "3s"}))
	if err != nil {
		t.Fatalf("parseConfig: %v", err)
	}
	var logBuf testutil.Buffer
	svc, err := newService(c, slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if err != nil {
		t.Fatalf("newService: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx, ln) }()
	defer func() {
		stop()
		<-done
		if t.Failed() {
			t.Logf("serve log:\n%s", logBuf.String())
		}
	}()
	waitReady := func() string {
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, body := httpGet(t, base+"/readyz")
			if code == 200 && strings.Contains(body, `"replication":"streaming"`) {
				return body
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz = %d %s after 30s, want 200 streaming", code, body)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitReady()

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
	const product = "10000000-0000-4000-8000-000000000001"
	if ack, err := cl.EmitWithAck(ctx, "subscribe:product", product); err != nil || !strings.Contains(string(ack[0]), `"ok":true`) {
		t.Fatalf("subscribe:product = %s, %v", ack, err)
	}

	conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE FUNCTION pg_temp.try_drop(s text) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = s AND active_pid IS NOT NULL;
  PERFORM pg_sleep(0.02);
  PERFORM pg_drop_replication_slot(s);
  RETURN true;
EXCEPTION WHEN object_in_use THEN RETURN false;
END $$`); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT pg_temp.try_drop('walcast')`).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("could not drop the slot under serve")
		}
	}

	select {
	case <-cl.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the client's session was not ended 30s after the slot was lost")
	}
	body := waitReady()
	if !strings.Contains(body, `"slot_lost":1`) {
		t.Errorf("/readyz = %s, want slot_lost 1", body)
	}
	if _, metrics := httpGet(t, base+"/metrics"); !strings.Contains(metrics, "walcast_cdc_slot_lost_total 1") {
		t.Errorf("/metrics lacks walcast_cdc_slot_lost_total 1")
	}
	cl2, err := cl.Reconnect(ctx)
	if err != nil {
		t.Fatalf("reconnect: %v", err)
	}
	defer cl2.Close()
	if cl2.Recovered() {
		t.Errorf("client recovered after a lost slot; want a new session")
	}
	if ack, err := cl2.EmitWithAck(ctx, "subscribe:product", product); err != nil || !strings.Contains(string(ack[0]), `"ok":true`) {
		t.Fatalf("subscribe:product after the loss = %s, %v", ack, err)
	}
	log := logBuf.String()
	if n := strings.Count(log, "level=ERROR"); n != 1 {
		t.Errorf("%d Error lines, want exactly 1:\n%s", n, log)
	}
	if !strings.Contains(log, `level=ERROR msg="replication slot lost and recreated`) || !strings.Contains(log, "cause=missing") {
		t.Errorf("no slot-lost Error line:\n%s", log)
	}
}
