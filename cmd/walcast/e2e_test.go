package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/walcast/walcast/cdc/pgtest"
	"github.com/walcast/walcast/hub/hubtest"
	"github.com/walcast/walcast/internal/testutil"
)

// TestE2E_CustomMapping: a schema with other table and column names
// (testdata/e2e) works with a mapping file only, or with a rules file only:
// migrate and check follow it, and serve turns its rows into the
// catalogue's events.
func TestE2E_CustomMapping(t *testing.T) {
	for _, tc := range []struct{ name, key, path string }{
		{"mapping", "WALCAST_MAPPING", "../../testdata/e2e/custom_mapping.json"},
		{"rules", "WALCAST_RULES", "../../testdata/e2e/custom_rules.json"},
	} {
		t.Run(tc.name, func(t *testing.T) { testE2ECustom(t, tc.key, tc.path) })
	}
}

func testE2ECustom(t *testing.T, key, path string) {
	pg := pgtest.New(t, pgtest.Options{Settings: []string{"max_slot_wal_keep_size = 1GB"}})
	ctx := t.Context()
	schema, err := os.ReadFile("../../testdata/e2e/custom_schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := pg.Psql(ctx, "postgres", string(schema)); err != nil {
		t.Fatalf("custom schema: %v\n%s", err, out)
	}
	const secretKey = "e2e-secret-e2e-secret-e2e-secret"
	env := map[string]string{
		"DATABASE_URL":       pg.URL("postgres"),
		key:                  path,
		"WALCAST_JWT_SECRET": secretKey,
		"WALCAST_ROLE_CLAIM": "app_metadata.role",
	}
	if out, err := runCapture(t, env, "migrate"); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	out, err := runCapture(t, env, "check")
	if err != nil || !strings.Contains(out, "table shop.purchase is published") || !strings.Contains(out, "shop.stock has REPLICA IDENTITY FULL") {
		t.Fatalf("check = %v, want ok with the mapped tables:\n%s", err, out)
	}

	c, err := parseConfig(newFlagSet("serve", io.Discard), optServe|optLog, []string{"-listen", "127.0.0.1:0"}, envMap(env))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := newService(c, testutil.Logger(t, slog.LevelWarn))
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
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	for deadline := time.Now().Add(20 * time.Second); ; {
		if code, _ := httpGet(t, base+"/readyz"); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("/readyz not 200 within 20s")
		}
		time.Sleep(100 * time.Millisecond)
	}

	dial := func(sub, role string) *hubtest.Client {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": sub, "exp": time.Now().Add(time.Hour).Unix(), "app_metadata": map[string]any{"role": role},
		}).SignedString([]byte(secretKey))
		if err != nil {
			t.Fatal(err)
		}
		auth, _ := json.Marshal(map[string]string{"token": tok})
		cl, err := hubtest.Dial(ctx, base, "/", auth)
		if err != nil {
			t.Fatalf("dial as %s: %v", role, err)
		}
		t.Cleanup(func() { cl.Close() })
		return cl
	}
	customer := dial("00000000-0000-4000-8000-0000000000bb", "customer")
	admin := dial("00000000-0000-4000-8000-0000000000cc", "admin")
	if ack, err := customer.EmitWithAck(ctx, "subscribe:product", "1"); err != nil || !strings.Contains(string(ack[0]), `"ok":true`) {
		t.Fatalf("subscribe:product 1 = %s, %v", ack, err)
	}

	conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `UPDATE shop.stock SET on_hand = 9 WHERE sku_ref = 10`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO shop.purchase (purchase_id, ref, buyer, merchant, amount) VALUES (501, 'P-501', '00000000-0000-4000-8000-0000000000bb', '00000000-0000-4000-8000-0000000000aa', 55.50)`); err != nil {
		t.Fatal(err)
	}
	want := func(cl *hubtest.Client, event string, check func(payload string) bool) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		var seen []string
		for {
			ev, err := cl.Next(wctx)
			if err != nil {
				t.Fatalf("waiting for %s: %v (seen %v)", event, err, seen)
			}
			seen = append(seen, ev.Name)
			if ev.Name == event && check(string(ev.Args[0])) {
				return
			}
		}
	}
	want(customer, "product:stock-updated", func(p string) bool { return strings.Contains(p, `"available":7`) })
	want(admin, "admin:new-order", func(p string) bool { return strings.Contains(p, `"ref":"P-501"`) })
}

// TestServe_MappingMismatch: a mapping that names a column the database does not
// have stops serve at start with an error naming it, instead of retrying forever.
func TestServe_MappingMismatch(t *testing.T) {
	pg := pgtest.New(t, pgtest.Options{})
	ctx := t.Context()
	schema, err := os.ReadFile("../../testdata/e2e/custom_schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := pg.Psql(ctx, "postgres", string(schema)); err != nil {
		t.Fatalf("custom schema: %v\n%s", err, out)
	}
	mapping, err := os.ReadFile("../../testdata/e2e/custom_mapping.json")
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(mapping), `"parcel"`, `"no_such_column"`, 1)
	path := filepath.Join(t.TempDir(), "bad_mapping.json")
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"DATABASE_URL":       pg.URL("postgres"),
		"WALCAST_MAPPING":    path,
		"WALCAST_JWT_SECRET": "mismatch-secret-mismatch-secret!",
	}
	c, err := parseConfig(newFlagSet("serve", io.Discard), optServe|optLog, []string{"-listen", "127.0.0.1:0"}, envMap(env))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := newService(c, testutil.Logger(t, slog.LevelWarn))
	if err != nil {
		t.Fatalf("newService: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = svc.Run(runCtx, ln)
	if runCtx.Err() != nil {
		t.Fatalf("serve kept running with a mapping naming a missing column (Run returned %v only at the test deadline)", err)
	}
	if err == nil || !strings.Contains(err.Error(), "no_such_column") {
		t.Fatalf("serve = %v, want an error naming no_such_column", err)
	}
}
