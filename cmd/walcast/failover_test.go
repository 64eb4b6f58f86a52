package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"

	"github.com/walcast/walcast/cdc/pgtest"
)

// TestFailover_SocketIOClient: Postgres 17+. A primary and a streaming
// standby that synchronises walcast's failover slot; one walcast serve
// process (no Redis) on a multi-host DATABASE_URL (target_session_attrs=
// read-write); real socket.io-client sockets subscribed to every demo
// product while inventory changes are committed. The primary is stopped
// hard (pg_ctl -m immediate) and the standby promoted; the writes go on
// there. Every client must get every committed change once, in commit
// order, every reconnect must have been recovered, and walcast logs no
// Error line. It logs the time from the primary's death to the first event
// from the new primary.
func TestFailover_SocketIOClient(t *testing.T) {
	needTool(t, "node")
	f := startRig(t, rigOptions{standby: true, syncSlots: true})
	if f.major < 17 {
		// The Debian 15 pass of CI has no failover slots; make test-pg runs
		// this test again with PG_BIN at a 17 build. A CI run that chose its
		// server (PG_BIN) must not skip it silently.
		if os.Getenv("CI") != "" && os.Getenv("PG_BIN") != "" {
			t.Fatalf("server %d (PG_BIN=%s) has no failover slots; the failover test needs Postgres 17+", f.major, os.Getenv("PG_BIN"))
		}
		t.Skipf("server %d has no failover slots (Postgres 17+); make test-pg runs this on 17", f.major)
	}
	f.serve()
	cl := f.clients()

	// Changes stream all along: the primary dies right after a commit, once
	// the standby has a persistent synced slot, while the last transactions
	// are still on their way to the clients.
	const perTx, before, after = 5, 200, 200
	var died time.Time
	firstNew := 0
	for tx, killAt := 0, -1; killAt < 0 || tx < killAt+after; tx++ {
		if killAt < 0 && tx >= before && f.standbyReady(tx == before) {
			killAt, died = tx, f.failover()
			firstNew = f.seq + 1
			t.Logf("primary killed after %d transactions", tx)
		}
		f.commit(tx, perTx)
		time.Sleep(2 * time.Millisecond)
	}
	txs := (f.seq) / perTx
	got, recon := cl.collect(txs * perTx)
	for c, g := range got {
		if d := firstDiffSeq(g); d >= 0 || len(g) != txs*perTx {
			t.Errorf("client %d: %d events, first wrong at index %d (want 1..%d once, in order); around it: %v",
				c, len(g), d, txs*perTx, g[max(d-12, 0):min(d+12, len(g))])
		}
	}
	for _, r := range recon {
		if !*r.Recovered {
			t.Errorf("client %d (%s) reconnect %d not recovered", r.C, r.Set, r.Reconnect)
		}
	}
	if seen, ok := cl.firstSeen(firstNew); ok {
		t.Logf("takeover: primary killed -> first event from the promoted standby at a socket.io client in %v (%d clients, %d reconnects)",
			seen.Sub(died).Round(time.Millisecond), len(got), len(recon))
	} else {
		t.Errorf("no client got change %d (the first on the new primary)", firstNew)
	}
	if n := f.errorLines(); n != 0 {
		t.Errorf("%d Error lines in walcast's log, want 0 (nothing was lost):\n%s", n, grepLines(f.log(), "level=ERROR"))
	}
	if m := f.metric("walcast_cdc_slot_lost_total"); m != "0" {
		t.Errorf("walcast_cdc_slot_lost_total = %s, want 0", m)
	}
	if m, _ := strconv.Atoi(f.metric("walcast_cdc_reconnects_total")); m < 1 {
		t.Errorf("walcast_cdc_reconnects_total = %d, want >= 1 (the reader reconnected to the new primary)", m)
	}
	if l := f.log(); !strings.Contains(l, `msg="server timeline changed: connected to a promoted standby" component=cdc.reader slot=walcast timeline=2 previous_timeline=1`) {
		t.Errorf("walcast's log lacks the Info line on the timeline change:\n%s", grepLines(l, "timeline"))
	}
	if t.Failed() {
		t.Logf("walcast log (last lines):\n%s", lastLines(f.log(), 60))
	}
}

// TestFailover_SlotLost: any version. The standby does not synchronise the
// slot (on 15 and 16 it cannot), so after the primary dies and the standby
// is promoted, walcast's slot does not exist on the new primary. walcast
// must say so once at Error, count it (walcast_cdc_slot_lost_total 1 and
// /readyz slot_lost 1), recreate the slot and end every session without
// recovery; the socket.io clients subscribe again and end with the current
// state of every variant, and the changes committed later reach them live.
func TestFailover_SlotLost(t *testing.T) {
	needTool(t, "node")
	f := startRig(t, rigOptions{standby: true})
	f.serve()
	cl := f.clients()

	for tx := range 100 {
		f.commit(tx, 5)
		time.Sleep(2 * time.Millisecond)
	}
	f.waitStandbyCaughtUp()
	f.failover()
	// Committed at once on the new primary, before walcast has its new
	// slot: no client gets these changes live, only in the state on
	// subscribe.
	f.commit(100, 50)
	cl.checkStateOnSubscribe(f.currentState())
	for tx := 101; tx < 150; tx++ {
		f.commit(tx, 5)
		time.Sleep(2 * time.Millisecond)
	}
	f.checkResynced(cl)
}

// TestFailover_SlotLostWhileStopped: like TestFailover_SlotLost, but walcast
// serve is not running when the primary dies: it starts again on the
// promoted standby, where its slot does not exist. A new process has no
// position of its own, so it must learn from the sessions its predecessor
// left in walcast.sessions that the slot existed: one Error line, the
// metric, and every client resynchronises.
func TestFailover_SlotLostWhileStopped(t *testing.T) {
	needTool(t, "node")
	f := startRig(t, rigOptions{standby: true})
	stop := f.serve()
	cl := f.clients()
	for tx := range 50 {
		f.commit(tx, 5)
		time.Sleep(2 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // let them reach the clients and walcast.sessions
	stop()
	f.commit(50, 5) // no client gets this one live
	f.waitStandbyCaughtUp()
	f.failover()
	f.commit(51, 5)
	f.serve()
	cl.checkStateOnSubscribe(f.currentState())
	for tx := 52; tx < 100; tx++ {
		f.commit(tx, 5)
		time.Sleep(2 * time.Millisecond)
	}
	f.checkResynced(cl)
}

// TestServe_SlotInvalidated: walcast serve (no Redis) with socket.io-client
// sockets subscribed is stopped; while it is down the database writes far
// past a tiny max_slot_wal_keep_size and checkpoints, so Postgres
// invalidates the slot. The next serve must log exactly one Error line,
// count it (walcast_cdc_slot_lost_total 1, /readyz slot_lost 1), recreate
// the slot, and refuse to recover the sessions: the clients reconnect
// unrecovered, subscribe again and end with every variant's current state.
func TestServe_SlotInvalidated(t *testing.T) {
	needTool(t, "node")
	f := startRig(t, rigOptions{settings: []string{"max_slot_wal_keep_size = '1MB'"}})
	stop := f.serve()
	cl := f.clients()
	for tx := range 50 {
		f.commit(tx, 5)
	}
	time.Sleep(500 * time.Millisecond) // let them reach the clients and walcast.sessions
	stop()
	if _, err := f.db.Exec(f.ctx, `CREATE TABLE pad (id int, pad text)`); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		f.commit(50+i, 5) // changes no client will get
		for _, q := range []string{`INSERT INTO pad SELECT g, repeat('x', 200) FROM generate_series(1, 100000) g`, `SELECT pg_switch_wal()`, `CHECKPOINT`} {
			if _, err := f.db.Exec(f.ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	var st string
	if err := f.db.QueryRow(f.ctx, `SELECT coalesce(wal_status, '') FROM pg_replication_slots WHERE slot_name = 'walcast'`).Scan(&st); err != nil || st != "lost" {
		t.Fatalf("slot wal_status = %q (%v), want lost (test setup)", st, err)
	}
	f.serve()
	cl.checkStateOnSubscribe(f.currentState())
	for tx := 53; tx < 80; tx++ {
		f.commit(tx, 5)
		time.Sleep(5 * time.Millisecond)
	}
	f.checkResynced(cl)
}

// checkResynced ends the clients once each has every variant's current
// state, and checks that each reconnected unrecovered, and that walcast
// logged one Error line and counted one lost slot.
func (f *failoverRig) checkResynced(cl *sioClients) {
	t := f.t
	t.Helper()
	want := f.currentState()
	last, recon := cl.collectState(want)
	perClient := make(map[int]int)
	for _, r := range recon {
		if *r.Recovered {
			t.Errorf("client %d (%s) reconnect %d recovered after the slot was lost; want a new session", r.C, r.Set, r.Reconnect)
		}
		perClient[r.C]++
	}
	for c := range last {
		if perClient[c] == 0 {
			t.Errorf("client %d never reconnected; its session should have been ended", c)
		}
		for v, a := range want {
			if last[c][v] != a {
				t.Errorf("client %d: variant %s ends at available %d, want the current %d", c, v, last[c][v], a)
			}
		}
	}
	if n := f.errorLines(); n != 1 {
		t.Errorf("%d Error lines in walcast's log, want exactly 1:\n%s", n, grepLines(f.log(), "level=ERROR"))
	}
	if l := f.log(); !strings.Contains(l, `level=ERROR msg="replication slot lost and recreated`) {
		t.Errorf("no slot-lost Error line in walcast's log")
	}
	if m := f.metric("walcast_cdc_slot_lost_total"); m != "1" {
		t.Errorf("walcast_cdc_slot_lost_total = %s, want 1", m)
	}
	if _, body := httpGet(t, f.base+"/readyz"); !strings.Contains(body, `"slot_lost":1`) {
		t.Errorf("/readyz = %s, want slot_lost 1", body)
	}
	if t.Failed() {
		t.Logf("walcast log (last lines):\n%s", lastLines(f.log(), 60))
	}
}

// failoverRig is a primary, its streaming standby and one walcast serve
// process pointed at both.
type failoverRig struct {
	t                *testing.T
	ctx              context.Context
	bin              string
	primary, standby *pgtest.Cluster
	major            int
	dsn              string // multi-host, read-write
	addr, base       string
	logPath          string
	sync             bool

	db                 *pgx.Conn // the writer, on the current primary
	syncDeadline       time.Time
	variants, products []string
	seq                int
}

type rigOptions struct {
	standby   bool     // build a streaming standby (before migrate)
	syncSlots bool     // on 17+, the standby synchronises walcast's failover slot
	settings  []string // postgresql.conf lines for the primary
}

// startRig builds the clusters and the demo schema.
func startRig(t *testing.T, o rigOptions) *failoverRig {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	t.Cleanup(cancel)
	f := &failoverRig{t: t, ctx: ctx}
	f.primary = pgtest.New(t, pgtest.Options{TCPPort: -1, Settings: o.settings})
	var err error
	if f.db, err = pgx.Connect(ctx, f.primary.DSN("postgres")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.db.Close(context.Background()) })
	var num string
	if err := f.db.QueryRow(ctx, `SELECT current_setting('server_version_num')`).Scan(&num); err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(num)
	f.major = n / 10000
	f.sync = o.syncSlots && f.major >= 17
	if o.syncSlots && !f.sync {
		return f // the caller skips
	}
	f.dsn = f.primary.DSN("postgres")
	// The standby comes first, so the slot that migrate makes starts after
	// its base backup. Even so the standby synchronises the slot only once
	// walcast has advanced it (its catalog xmin) past what the standby can
	// guarantee; on a node without Redis walcast holds the slot at the
	// oldest event of the recovery window, so serve runs with a 10 s window.
	if o.standby {
		f.startStandby()
	}
	if f.sync {
		if _, err := f.db.Exec(ctx, `ALTER SYSTEM SET synchronized_standby_slots = 'standby1'`); err != nil {
			t.Fatal(err)
		}
		if _, err := f.db.Exec(ctx, `SELECT pg_reload_conf()`); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := runCapture(t, map[string]string{"DATABASE_URL": f.primary.URL("postgres")}, "migrate", "-demo"); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	if _, err := f.db.Exec(ctx, `UPDATE inventory SET reserved = 0`); err != nil {
		t.Fatal(err)
	}
	f.variants = queryStrings(t, f.db, `SELECT v.id::text FROM variants v JOIN inventory i ON i.variant_id = v.id ORDER BY 1`)
	f.products = queryStrings(t, f.db, `SELECT DISTINCT product_id::text FROM variants ORDER BY 1`)
	if len(f.variants) == 0 || len(f.products) == 0 {
		t.Fatalf("demo variants %v products %v", f.variants, f.products)
	}
	f.bin = buildWalcast(t)
	f.addr = freeAddr(t)
	f.base = "http://" + f.addr
	f.logPath = filepath.Join(t.TempDir(), "walcast.log")
	return f
}

// startStandby builds the standby and points walcast's DSN at both servers.
func (f *failoverRig) startStandby() {
	opts := pgtest.StandbyOptions{Slot: "standby1", DB: "postgres"}
	if f.sync {
		opts.Settings = []string{"sync_replication_slots = on", "hot_standby_feedback = on"}
	}
	var err error
	if f.standby, err = f.primary.StartStandby(f.ctx, opts); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { f.standby.Stop() })
	f.dsn = fmt.Sprintf("host=127.0.0.1,127.0.0.1 port=%d,%d user=postgres dbname=postgres sslmode=disable target_session_attrs=read-write connect_timeout=2",
		f.primary.Port, f.standby.Port)
}

func queryStrings(t *testing.T, db *pgx.Conn, q string) []string {
	t.Helper()
	rows, err := db.Query(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// serve starts walcast serve on the rig's DSN (appending to one log file),
// waits until it streams, and returns a func that stops it with SIGTERM.
func (f *failoverRig) serve() (stop func()) {
	t := f.t
	lf, err := os.OpenFile(f.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	proc := exec.Command(f.bin, "serve")
	proc.Env = append(os.Environ(), "DATABASE_URL="+f.dsn, "SUPABASE_JWT_SECRET="+clusterSecret,
		"WALCAST_LISTEN="+f.addr, "WALCAST_SHUTDOWN_TIMEOUT=3s", "WALCAST_RECOVERY_WINDOW=10s", "WALCAST_LOG_LEVEL=info", "WALCAST_LOG_FORMAT=text")
	proc.Stdout, proc.Stderr = lf, lf
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { proc.Wait(); lf.Close(); close(exited) }()
	t.Cleanup(func() { proc.Process.Kill(); <-exited })
	f.waitReady(20 * time.Second)
	return func() {
		proc.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			t.Fatal("walcast did not exit 15 s after SIGTERM")
		}
	}
}

func (f *failoverRig) log() string {
	b, _ := os.ReadFile(f.logPath)
	return string(b)
}

func (f *failoverRig) errorLines() int {
	return strings.Count(f.log(), "level=ERROR")
}

// waitReady waits until /readyz reports streaming.
func (f *failoverRig) waitReady(d time.Duration) {
	t := f.t
	t.Helper()
	for deadline := time.Now().Add(d); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := readyClient.Get(f.base + "/readyz"); err == nil {
			var r readiness
			json.NewDecoder(resp.Body).Decode(&r)
			resp.Body.Close()
			if r.Ready && r.Replication == "streaming" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("walcast not ready after %v:\n%s", d, lastLines(f.log(), 30))
		}
	}
}

// metric returns the value of an unlabelled metric from /metrics.
func (f *failoverRig) metric(name string) string {
	resp, err := http.Get(f.base + "/metrics")
	if err != nil {
		f.t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			return v
		}
	}
	return "(absent)"
}

// commit writes transaction tx: perTx inventory updates whose quantities
// continue the sequence 1, 2, 3, …
func (f *failoverRig) commit(tx, perTx int) {
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	for k := 0; k < perTx; k++ {
		f.seq++
		b.Queue(`UPDATE inventory SET quantity = $1 WHERE variant_id = $2`, f.seq, f.variants[f.seq%len(f.variants)])
	}
	b.Queue("COMMIT")
	if err := f.db.SendBatch(f.ctx, b).Close(); err != nil {
		f.t.Fatalf("tx %d: %v", tx, err)
	}
}

// currentState is every variant's available quantity on the current primary.
func (f *failoverRig) currentState() map[string]int {
	rows, err := f.db.Query(f.ctx, `SELECT variant_id::text, quantity - reserved FROM inventory`)
	if err != nil {
		f.t.Fatal(err)
	}
	m := make(map[string]int)
	for rows.Next() {
		var v string
		var a int
		rows.Scan(&v, &a)
		m[v] = a
	}
	if rows.Err() != nil {
		f.t.Fatal(rows.Err())
	}
	return m
}

// waitStandbyCaughtUp waits until the standby has replayed every committed
// transaction and, with slot synchronisation, until its synced slot has
// caught up with the primary's. Changes may still be on their way to the
// clients.
func (f *failoverRig) waitStandbyCaughtUp() {
	defer func(t0 time.Time) { f.t.Logf("standby caught up in %v", time.Since(t0)) }(time.Now())
	t := f.t
	t.Helper()
	sb, err := pgx.Connect(f.ctx, f.standby.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close(context.Background())
	var lsn string
	if err := f.db.QueryRow(f.ctx, `SELECT pg_current_wal_flush_lsn()::text`).Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ok := false
		if err := sb.QueryRow(f.ctx, `SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn`, lsn).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		if ok && f.sync {
			var confirmed string
			if err := f.db.QueryRow(f.ctx, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'walcast'`).Scan(&confirmed); err != nil {
				t.Fatal(err)
			}
			if err := sb.QueryRow(f.ctx, `SELECT coalesce(bool_or(confirmed_flush_lsn >= $1::pg_lsn AND synced AND NOT temporary), false) FROM pg_replication_slots WHERE slot_name = 'walcast'`, confirmed).Scan(&ok); err != nil {
				t.Fatal(err)
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			var ps, ss string
			f.db.QueryRow(f.ctx, `SELECT string_agg(format('%s %s %s %s', slot_name, confirmed_flush_lsn, restart_lsn, failover), '; ') FROM pg_replication_slots`).Scan(&ps)
			sb.QueryRow(f.ctx, `SELECT string_agg(format('%s %s %s %s', slot_name, confirmed_flush_lsn, restart_lsn, synced), '; ') FROM pg_replication_slots`).Scan(&ss)
			t.Fatalf("standby did not catch up with the primary (%s) in 60s: primary slots %s; standby slots %s\n%s\nwalcast:\n%s", lsn, ps, ss, f.standby.LogTail(6), lastLines(f.log(), 30))
		}
	}
}

// standbyReady reports whether the standby has a persistent synced copy of
// walcast's slot; then it waits (briefly) until the standby has replayed the
// last commit, so that every committed change survives the failover. It
// fails the test when the slot is not synchronised 90 s after the first call.
func (f *failoverRig) standbyReady(first bool) bool {
	t := f.t
	t.Helper()
	if first {
		f.syncDeadline = time.Now().Add(90 * time.Second)
	}
	sb, err := pgx.Connect(f.ctx, f.standby.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close(context.Background())
	ok := false
	if err := sb.QueryRow(f.ctx, `SELECT coalesce(bool_or(synced AND NOT temporary AND confirmed_flush_lsn IS NOT NULL), false) FROM pg_replication_slots WHERE slot_name = 'walcast'`).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	if !ok {
		if time.Now().After(f.syncDeadline) {
			var ss string
			sb.QueryRow(f.ctx, `SELECT string_agg(format('%s %s %s %s %s', slot_name, confirmed_flush_lsn, restart_lsn, synced, temporary), '; ') FROM pg_replication_slots`).Scan(&ss)
			t.Fatalf("the standby has not synchronised walcast's slot after 90 s (standby slots: %s):\n%s", ss, f.standby.LogTail(6))
		}
		return false
	}
	var lsn string
	if err := f.db.QueryRow(f.ctx, `SELECT pg_current_wal_flush_lsn()::text`).Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if err := sb.QueryRow(f.ctx, `SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn`, lsn).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		if ok {
			return true
		}
		if time.Now().After(deadline) {
			t.Fatalf("the standby has not replayed %s after 10 s", lsn)
		}
	}
}

// failover stops the primary hard, promotes the standby and moves the
// writer there. It returns when the primary died.
func (f *failoverRig) failover() time.Time {
	t := f.t
	t.Helper()
	if err := f.primary.Kill(f.ctx); err != nil {
		t.Fatal(err)
	}
	died := time.Now()
	if err := f.standby.Promote(f.ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("primary killed, standby promoted in %v", time.Since(died).Round(time.Millisecond))
	f.db.Close(context.Background())
	var err error
	if f.db, err = pgx.Connect(f.ctx, f.standby.DSN("postgres")); err != nil {
		t.Fatal(err)
	}
	return died
}

// clientLine is one JSON line of testdata/crash/clients.mjs.
type clientLine struct {
	C            int    `json:"c"`
	V            string `json:"v"`
	A            int    `json:"a"`
	Ready        int    `json:"ready"`
	Reconnect    int    `json:"reconnect"`
	Resubscribed int    `json:"resubscribed"`
	Set          string `json:"set"`
	Recovered    *bool  `json:"recovered"`
	Error        string `json:"error"`
	Fatal        string `json:"fatal"`
	Done         bool   `json:"done"`
}

// sioClients runs testdata/crash/clients.mjs against the rig's walcast and
// records what each socket receives, with the time each line was read.
type sioClients struct {
	t     *testing.T
	stdin io.WriteCloser
	n     int
	done  chan struct{}

	mu    sync.Mutex
	got   [][]int
	state []map[string]int // last available per variant, per client
	recon []clientLine
	resub map[int]int       // per client, subscriptions again after an unrecovered reconnect
	seen  map[int]time.Time // first time any client got available = key
	errs  []string
}

func (f *failoverRig) clients() *sioClients {
	t := f.t
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": demoUsers["customer"].ID, "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(clusterSecret))
	if err != nil {
		t.Fatal(err)
	}
	script, _ := filepath.Abs(filepath.Join("..", "..", "testdata", "crash", "clients.mjs"))
	node := exec.CommandContext(f.ctx, "node", script)
	node.Env = append(os.Environ(), "URL="+f.base, "TOKEN="+tok, "PRODUCTS="+strings.Join(f.products, ","), "PER=2", "TIMEOUT_MS=200000")
	node.Stderr = t.Output()
	stdin, _ := node.StdinPipe()
	stdout, _ := node.StdoutPipe()
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	c := &sioClients{t: t, stdin: stdin, done: make(chan struct{}), seen: make(map[int]time.Time), resub: make(map[int]int)}
	t.Cleanup(func() { stdin.Close(); node.Wait() })
	lines := make(chan clientLine, 1<<16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var l clientLine
			if json.Unmarshal(sc.Bytes(), &l) == nil {
				lines <- l
			}
		}
	}()
	for l := range lines {
		if l.Fatal != "" || l.Error != "" {
			t.Fatalf("clients.mjs: %s%s", l.Fatal, l.Error)
		}
		if l.Ready > 0 {
			c.n = l.Ready
			break
		}
	}
	if c.n == 0 {
		t.Fatal("clients.mjs ended before READY")
	}
	c.got = make([][]int, c.n)
	c.state = make([]map[string]int, c.n)
	for i := range c.state {
		c.state[i] = make(map[string]int)
	}
	go func() {
		defer close(c.done)
		for l := range lines {
			now := time.Now()
			c.mu.Lock()
			switch {
			case l.Fatal != "" || l.Error != "":
				c.errs = append(c.errs, l.Fatal+l.Error)
			case l.Recovered != nil:
				c.recon = append(c.recon, l)
			case l.Resubscribed > 0:
				c.resub[l.C]++
			case l.V != "" && l.C < c.n:
				c.got[l.C] = append(c.got[l.C], l.A)
				c.state[l.C][l.V] = l.A
				if _, ok := c.seen[l.A]; !ok {
					c.seen[l.A] = now
				}
			}
			c.mu.Unlock()
		}
	}()
	return c
}

// wait polls until cond holds (under the lock) or 30 s pass, then ends the
// script and waits for its last lines.
func (c *sioClients) wait(cond func() bool) {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		c.mu.Lock()
		ok := cond()
		c.mu.Unlock()
		if ok {
			break
		}
	}
	fmt.Fprintln(c.stdin, "DONE")
	select {
	case <-c.done:
	case <-time.After(15 * time.Second):
		c.t.Error("clients.mjs did not end 15s after DONE")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.errs {
		c.t.Errorf("clients.mjs: %s", e)
	}
}

// checkStateOnSubscribe waits (30 s at most) until every client has
// subscribed again after an unrecovered reconnect, then checks that each
// holds want for every variant: the state on subscribe brought it the
// changes it never got live. Nothing may be committed meanwhile.
func (c *sioClients) checkStateOnSubscribe(want map[string]int) {
	t := c.t
	t.Helper()
	resubscribed := func() bool {
		for i := range c.n {
			if c.resub[i] == 0 {
				return false
			}
		}
		return true
	}
	holds := func() bool {
		for _, s := range c.state {
			for v, a := range want {
				if s[v] != a {
					return false
				}
			}
		}
		return true
	}
	if !c.waitFor(30*time.Second, resubscribed) {
		c.mu.Lock()
		t.Fatalf("not every client subscribed again 30 s after the slot was lost: %v of %d", c.resub, c.n)
	}
	if !c.waitFor(5*time.Second, holds) {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, s := range c.state {
			for v, a := range want {
				if s[v] != a {
					t.Errorf("client %d after subscribing again: variant %s at available %d, want the current %d", i, v, s[v], a)
				}
			}
		}
	}
}

// waitFor polls cond (under the lock) until it holds or d passes.
func (c *sioClients) waitFor(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(20 * time.Millisecond) {
		c.mu.Lock()
		ok := cond()
		c.mu.Unlock()
		if ok {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// collect waits until every client has n events and returns them and the reconnects.
func (c *sioClients) collect(n int) ([][]int, []clientLine) {
	c.wait(func() bool {
		for _, g := range c.got {
			if len(g) < n {
				return false
			}
		}
		return true
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got, c.recon
}

// collectState waits until every client's last value per variant is want's.
func (c *sioClients) collectState(want map[string]int) ([]map[string]int, []clientLine) {
	c.wait(func() bool {
		for _, s := range c.state {
			for v, a := range want {
				if s[v] != a {
					return false
				}
			}
		}
		return true
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state, c.recon
}

func (c *sioClients) firstSeen(a int) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	at, ok := c.seen[a]
	return at, ok
}
