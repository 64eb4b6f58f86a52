package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/walcast/walcast/cdc/pgtest"
	"github.com/walcast/walcast/internal/testutil"
)

// secEnv is a migrated demo database and the environment for serve.
type secEnv struct {
	pg  *pgtest.Cluster
	env map[string]string
}

const secSecret = "security-test-secret-0123456789ab"

// newSecEnv starts Postgres and runs migrate -demo.
func newSecEnv(t *testing.T) *secEnv {
	t.Helper()
	pg := pgtest.New(t, pgtest.Options{})
	env := map[string]string{"DATABASE_URL": pg.URL("postgres"), "WALCAST_JWT_SECRET": secSecret}
	if out, err := runCapture(t, env, "migrate", "-demo"); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	return &secEnv{pg: pg, env: env}
}

// serve runs `walcast serve` in-process with args and the environment until
// the test ends, waits for /readyz and returns the service and its base URL.
func (e *secEnv) serve(t *testing.T, args ...string) (*service, string) {
	t.Helper()
	c, err := parseConfig(newFlagSet("serve", io.Discard), optServe|optLog, args, envMap(e.env))
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
	ctx, stop := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx, ln) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if code, _ := httpGet(t, base+"/readyz"); code == 200 {
			return svc, base
		}
		if time.Now().After(deadline) {
			t.Fatal("/readyz not 200 within 20s")
		}
	}
}

func secToken(t *testing.T, sub string) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": sub, "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(secSecret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// nodeListener is a real socket.io-client socket (testdata/security/listen.mjs).
type nodeListener struct {
	events chan nodeEvent
}

type nodeEvent struct {
	Event string            `json:"event"`
	Args  []json.RawMessage `json:"args"`
	Fatal string            `json:"fatal"`
}

// listenNode connects a socket.io-client socket as user sub and returns once
// it is connected. Its events arrive on events until the test ends.
func listenNode(t *testing.T, base, sub string) *nodeListener {
	t.Helper()
	js := testutil.StartNode(t, testutil.NodeOptions{Script: filepath.Join("security", "listen.mjs"),
		Env: []string{"URL=" + base, "TOKEN=" + secToken(t, sub), "TIMEOUT_MS=180000"}, Timeout: 3 * time.Minute})
	l := &nodeListener{events: make(chan nodeEvent, 1024)}
	ready := make(chan struct{})
	go func() {
		defer close(l.events)
		for b := range js.Lines {
			if string(b) == "READY" {
				close(ready)
				continue
			}
			var ev nodeEvent
			if json.Unmarshal(b, &ev) == nil {
				l.events <- ev
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatal("socket.io-client did not connect within 20 s")
	}
	return l
}

// until collects events up to and including the one named end.
func (l *nodeListener) until(t *testing.T, end string, d time.Duration) []nodeEvent {
	t.Helper()
	var got []nodeEvent
	timeout := time.After(d)
	for {
		select {
		case ev, ok := <-l.events:
			if !ok {
				t.Fatalf("socket.io-client ended before %s; got %d events", end, len(got))
			}
			if ev.Fatal != "" {
				t.Fatalf("socket.io-client: %s", ev.Fatal)
			}
			got = append(got, ev)
			if ev.Event == end {
				return got
			}
		case <-timeout:
			t.Fatalf("no %s within %v; got %d events", end, d, len(got))
		}
	}
}

func connectAs(t *testing.T, ctx context.Context, pg *pgtest.Cluster, role string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, strings.Replace(pg.DSN("postgres"), "user=postgres", "user="+role, 1))
	if err != nil {
		t.Fatalf("connect as %s: %v", role, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// TestServe_ForgedEmit: events can only come from walcast.emit and
// walcast.notify, so only roles with EXECUTE on them can emit. A role with
// no grants, and any other login, writing pg_logical_emit_message(true,
// 'walcast', …) directly, delivers nothing to a real socket.io-client
// socket; the forgeries are counted in walcast_cdc_unverified_messages_total.
func TestServe_ForgedEmit(t *testing.T) {
	e := newSecEnv(t)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	if out, err := e.pg.Psql(ctx, "postgres", `
		REVOKE EXECUTE ON FUNCTION walcast.emit(text, text, jsonb), walcast.notify(text, text, text, text),
			walcast.notify(uuid, text, text, text) FROM PUBLIC;
		CREATE ROLE forger LOGIN;
		CREATE ROLE app LOGIN;
		GRANT EXECUTE ON FUNCTION walcast.emit(text, text, jsonb) TO app;
		GRANT EXECUTE ON FUNCTION walcast.notify(text, text, text, text) TO app;`); err != nil {
		t.Fatalf("roles: %v\n%s", err, out)
	}
	_, base := e.serve(t, "-listen", "127.0.0.1:0")
	customer, admin := demoUsers["customer"].ID, demoUsers["admin"].ID
	cl := listenNode(t, base, customer)
	adm := listenNode(t, base, admin)

	forger := connectAs(t, ctx, e.pg, "forger")
	app := connectAs(t, ctx, e.pg, "app")
	phish := `{"room":"user:` + customer + `","event":"notification","payload":{"title":"Session expired","message":"sign in again at http://evil.example","type":"warning"}}`
	fakeOrder := `{"room":"admin:room","event":"admin:new-order","payload":{"order":{"id":"forged","total":"0.01"}}}`
	forgeries := 0
	for _, c := range []*pgx.Conn{forger, app} {
		for _, content := range []string{phish, fakeOrder,
			// A signature-shaped prefix does not help either.
			strings.Repeat("0", 64) + phish} {
			if _, err := c.Exec(ctx, `SELECT pg_logical_emit_message(true, 'walcast', $1::text)`, content); err != nil {
				t.Fatalf("pg_logical_emit_message as %s: %v", c.Config().User, err)
			}
			forgeries++
		}
	}
	// The role without EXECUTE can neither call the functions nor read the key.
	for _, q := range []string{
		`SELECT walcast.emit('user:` + customer + `', 'notification', '{}')`,
		`SELECT walcast.notify('` + customer + `', 'x', 'y', 'info')`,
		`SELECT key FROM walcast.emit_key`,
	} {
		if _, err := forger.Exec(ctx, q); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("as forger, %s: err = %v, want permission denied", q, err)
		}
	}
	// The application role emits through the functions; the end markers
	// follow every forgery in commit order.
	if _, err := app.Exec(ctx, `SELECT walcast.notify($1, 'Shipped', 'ORD-1 is on its way', 'info')`, customer); err != nil {
		t.Fatal(err)
	}
	for _, room := range []string{"user:" + customer, "admin:room"} {
		if _, err := app.Exec(ctx, `SELECT walcast.emit($1, 'test:end', null)`, room); err != nil {
			t.Fatal(err)
		}
	}

	count := func(evs []nodeEvent, sub string) (n int) {
		for _, ev := range evs {
			if b, _ := json.Marshal(ev); strings.Contains(string(b), sub) {
				n++
			}
		}
		return n
	}
	got := cl.until(t, "test:end", 30*time.Second)
	if n := count(got, "evil.example"); n != 0 {
		t.Errorf("customer received %d forged notifications, want 0 (events: %v)", n, got)
	}
	if n := count(got, "ORD-1 is on its way"); n != 1 {
		t.Errorf("customer received %d walcast.notify notifications, want 1 (events: %v)", n, got)
	}
	gotAdm := adm.until(t, "test:end", 30*time.Second)
	if n := count(gotAdm, `"forged"`); n != 0 {
		t.Errorf("admin received %d forged orders, want 0 (events: %v)", n, gotAdm)
	}
	_, metrics := httpGet(t, base+"/metrics")
	if want := "walcast_cdc_unverified_messages_total " + strconv.Itoa(forgeries); !strings.Contains(metrics, want+"\n") {
		t.Errorf("/metrics lacks %q:\n%s", want, grepLines(metrics, "walcast_cdc_unverified"))
	}
}

// seriesCount counts the samples of metric name in a /metrics body.
func seriesCount(body, name string) int {
	n := 0
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, name+"{") || strings.HasPrefix(l, name+" ") {
			n++
		}
	}
	return n
}

// TestServe_EventLabelsBounded: 5,000 distinct event names from walcast.emit
// are all delivered but add no per-name series: they are counted as
// event="other" in walcast_cdc_events_in_total and
// walcast_hub_events_out_total.
func TestServe_EventLabelsBounded(t *testing.T) {
	e := newSecEnv(t)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	_, base := e.serve(t, "-listen", "127.0.0.1:0")
	customer := demoUsers["customer"].ID
	cl := listenNode(t, base, customer)
	known, err := metricEventNames(config{})
	if err != nil {
		t.Fatal(err)
	}

	db := connectAs(t, ctx, e.pg, "postgres")
	// A warm-up event puts the "other" series in place before the baseline.
	if _, err := db.Exec(ctx, `SELECT walcast.emit($1, 'warm:up', null)`, "user:"+customer); err != nil {
		t.Fatal(err)
	}
	cl.until(t, "warm:up", 30*time.Second)
	_, before := httpGet(t, base+"/metrics")
	// 10 transactions of 500 names, each waited for, so that the client
	// never falls MaxQueueBytes behind (it would be dropped as slow).
	const names, batch = 5000, 500
	received := 0
	for from := 1; from <= names; from += batch {
		if _, err := db.Exec(ctx, `SELECT walcast.emit($1, 'name:' || g, '{"n": 1}') FROM generate_series($2::int, $3::int) g`,
			"user:"+customer, from, from+batch-1); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(ctx, `SELECT walcast.emit($1, 'test:end', null)`, "user:"+customer); err != nil {
			t.Fatal(err)
		}
		received += len(cl.until(t, "test:end", 60*time.Second)) - 1
	}
	if received != names {
		t.Errorf("socket.io-client received %d events, want %d", received, names)
	}
	_, after := httpGet(t, base+"/metrics")
	t.Logf("/metrics: %d bytes before, %d bytes after %d distinct event names", len(before), len(after), names)
	for _, m := range []string{"walcast_cdc_events_in_total", "walcast_hub_events_out_total"} {
		if n := seriesCount(after, m); n > len(known)+1 {
			t.Errorf("%s has %d series after %d names, want at most %d (the known names and other)", m, n, names, len(known)+1)
		}
		if want := m + `{event="other"} ` + strconv.Itoa(names+names/batch+1); !strings.Contains(after, want+"\n") {
			t.Errorf("/metrics lacks %q:\n%s", want, grepLines(after, m))
		}
	}
	if grow := len(after) - len(before); grow > 8<<10 {
		t.Errorf("/metrics grew by %d bytes after %d event names, want at most 8 KiB", grow, names)
	}
}

// getWith GETs url with an optional Authorization header and returns the
// status and body.
func getWith(t *testing.T, url, auth string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServe_MetricsEndpoint: /metrics can leave the public listener
// (WALCAST_METRICS_LISTEN) and can require a bearer token
// (WALCAST_METRICS_TOKEN); the profiler is never on the public listener.
func TestServe_MetricsEndpoint(t *testing.T) {
	e := newSecEnv(t)
	const token = "metrics-token-0123456789"
	ops := freeAddr(t)
	pprofAddr := freeAddr(t)
	_, base := e.serve(t, "-listen", "127.0.0.1:0", "-metrics-listen", ops, "-metrics-token", token, "-pprof-listen", pprofAddr)
	for _, tc := range []struct {
		name, url, auth string
		want            int
	}{
		{"PublicMetrics", base + "/metrics", "Bearer " + token, 404},
		{"PublicPprof", base + "/debug/pprof/cmdline", "", 404},
		{"NoToken", "http://" + ops + "/metrics", "", 401},
		{"WrongToken", "http://" + ops + "/metrics", "Bearer " + token + "x", 401},
		{"NotBearer", "http://" + ops + "/metrics", token, 401},
		{"Token", "http://" + ops + "/metrics", "Bearer " + token, 200},
		{"OpsHasNoSocketIO", "http://" + ops + "/socket.io/?EIO=4&transport=polling", "", 404},
		{"Pprof", "http://" + pprofAddr + "/debug/pprof/cmdline", "", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := getWith(t, tc.url, tc.auth)
			if code != tc.want {
				t.Errorf("GET %s: status %d, want %d", tc.url, code, tc.want)
			}
			if has := strings.Contains(body, "walcast_hub_connections"); has != (tc.want == 200 && tc.name == "Token") {
				t.Errorf("GET %s: body has metrics = %v (%d bytes)", tc.url, has, len(body))
			}
		})
	}
}

// TestServe_MetricsToken: with a token and no own address, /metrics stays
// on the public listener but answers 401 without the token.
func TestServe_MetricsToken(t *testing.T) {
	e := newSecEnv(t)
	const token = "metrics-token-0123456789"
	_, base := e.serve(t, "-listen", "127.0.0.1:0", "-metrics-token", token)
	if code, body := getWith(t, base+"/metrics", ""); code != 401 || strings.Contains(body, "walcast_") {
		t.Errorf("GET /metrics without a token: %d (%d bytes), want 401 without metrics", code, len(body))
	}
	if code, body := getWith(t, base+"/metrics", "Bearer "+token); code != 200 || !strings.Contains(body, "walcast_hub_connections") {
		t.Errorf("GET /metrics with the token: %d (%d bytes), want 200 with metrics", code, len(body))
	}
}
