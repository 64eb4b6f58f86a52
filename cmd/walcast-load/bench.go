package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/walcast/walcast/internal/pgserver"
	wsql "github.com/walcast/walcast/sql"
)

// BenchConfig configures the scenario suite (`walcast-load bench`).
type BenchConfig struct {
	Root       string   // repository root (holds go.mod and testdata/bench)
	Quick      bool     // small numbers, seconds instead of minutes (CI and BENCH_QUICK=1)
	Servers    []string // "walcast", "node"; nil = both
	Only       []string // scenario names; nil = all
	ServerCPUs string   // taskset list for the servers; "" = no pinning
	ToolCPUs   string   // taskset list for the load workers
	Profile    string   // when set, perf-record walcast during fanout-cost into this file prefix
	// Binaries, when set, are prebuilt walcast binaries run in turn for each
	// walcast scenario (an A/B in one run, on the same database); nil builds
	// ./cmd/walcast. Repeat runs each scenario that many times (0 = once),
	// alternating the binaries.
	Binaries []string
	Repeat   int
	Log      io.Writer
}

// scenario is one row family of the benchmark table.
type scenario struct {
	Name    string
	Run     RunConfig // server fields filled per server
	Storm   bool      // pgbench writes at the database's maximum rate during the run
	Backlog int       // rows changed while walcast is stopped (walcast only)
	// OneRowTx, with Backlog, commits the backlog as that many one-row
	// transactions (pgbench) instead of 10,000-row ones, and times Postgres's
	// own pgoutput decoding of the same WAL as the baseline.
	OneRowTx bool
}

func scenarios(quick bool) []scenario {
	if quick {
		return []scenario{
			{Name: "idle", Run: RunConfig{Clients: 300, Rooms: 300}},
			{Name: "fanout-cost", Run: RunConfig{Clients: 200, Rooms: 1, Rate: 20, Duration: 3 * time.Second}},
			{Name: "unsaturated", Run: RunConfig{Clients: 200, Rooms: 1, Rate: 10, Duration: 3 * time.Second}},
			// 12 s: longer than the servers' 10 s write timeout, which once closed idle-looking connections.
			{Name: "fanout-latency", Run: RunConfig{Clients: 300, Rooms: 1, Rate: 10, Duration: 12 * time.Second}},
			{Name: "spread", Run: RunConfig{Clients: 300, Rooms: 300, Rate: 100, Duration: 3 * time.Second, DriverConns: 4}},
			{Name: "slow", Run: RunConfig{Clients: 300, Slow: 10, Rooms: 1, Rate: 10, Duration: 3 * time.Second}},
			{Name: "storm", Run: RunConfig{Clients: 20, Rooms: 1, Rate: 20, Duration: 3 * time.Second}, Storm: true},
			{Name: "backlog", Backlog: 10_000},
			{Name: "tx1", Backlog: 18_000, OneRowTx: true},
			{Name: "idle-1user", Run: RunConfig{Clients: 300, Rooms: 300, Users: 1}},
		}
	}
	return []scenario{
		{Name: "idle", Run: RunConfig{Clients: 15000, Rooms: 10000, Settle: 15 * time.Second}},
		{Name: "fanout-cost", Run: RunConfig{Clients: 5000, Rooms: 1, Rate: 50, Duration: 20 * time.Second}},
		// 50,000 deliveries/s: few enough that every delivery is its own
		// write, so the per-write costs (writer hand-off, deadline) show.
		{Name: "unsaturated", Run: RunConfig{Clients: 5000, Rooms: 1, Rate: 10, Duration: 30 * time.Second}},
		{Name: "fanout-latency", Run: RunConfig{Clients: 10000, Rooms: 1, Rate: 10, Duration: 20 * time.Second}},
		{Name: "spread", Run: RunConfig{Clients: 10000, Rooms: 10000, Rate: 1000, Duration: 30 * time.Second, DriverConns: 8}},
		// 50 s: a client that never reads never answers pings either, so both
		// servers should drop it at pingInterval+pingTimeout (45 s) at the latest.
		{Name: "slow", Run: RunConfig{Clients: 10000, Slow: 100, Rooms: 1, Rate: 10, Duration: 50 * time.Second}},
		// pgbench (6 clients) updates random bench rows 2..10000 as fast as the
		// database allows; a probe commits 20 changes/s to room 0, which 100
		// clients follow: its commit→receive latency is the lag events see.
		{Name: "storm", Run: RunConfig{Clients: 100, Rooms: 1, Rate: 20, Duration: 60 * time.Second}, Storm: true},
		{Name: "backlog", Backlog: 1_000_000},
		// A flash sale: every stock change its own transaction.
		{Name: "tx1", Backlog: 300_000, OneRowTx: true},
		// The idle scenario with every connection sharing one user id: the
		// difference to "idle" is what per-user state costs.
		{Name: "idle-1user", Run: RunConfig{Clients: 15000, Rooms: 10000, Users: 1, Settle: 15 * time.Second}},
	}
}

// benchEnv is the shared state of one suite run.
type benchEnv struct {
	cfg     BenchConfig
	pg      *pgserver.Cluster
	dsn     string
	secret  string
	tmp     string
	walcast string // built binary
}

// server is a running server process under test.
type server struct {
	kind   string
	cmd    *exec.Cmd
	addr   string
	logf   string
	exited chan struct{} // closed when the process has been waited for
}

func (s *server) pid() int { return s.cmd.Process.Pid }

func (s *server) stop() {
	if s == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// BenchOutcome holds every run of a suite, keyed by scenario then server.
type BenchOutcome struct {
	Results map[string]map[string]*Result
	Backlog map[string]*BacklogResult
	// OneRowTx is the tx1 scenario (walcast only; Postgres's decode is its baseline).
	OneRowTx *BacklogResult
	Errors   map[string]map[string]error `json:"-"`
	Machine  string
	Commit   string // git HEAD of Root, "+dirty" when the tree has changes
}

func gitCommit(ctx context.Context, root string) string {
	out, err := exec.CommandContext(ctx, "git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "?"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.CommandContext(ctx, "git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		c += "+dirty"
	}
	return c
}

// BacklogResult is the backlog scenario's figure.
type BacklogResult struct {
	Rows     int
	Drain    time.Duration // walcast start -> a change committed after the backlog is received
	PeakRSS  int64
	LoadAvg  string
	Received bool
	// One-row transactions only:
	CPU       time.Duration // walcast's CPU from start to the marker
	PGDecode  time.Duration // pg_logical_slot_get_binary_changes over the same WAL
	PGRecv    time.Duration // pg_recvlogical (Postgres's streaming client) over the same WAL; 0 = not run
	PGChanges int64         // rows that call returned
}

func (e *benchEnv) logf(format string, args ...any) {
	if e.cfg.Log != nil {
		fmt.Fprintf(e.cfg.Log, format+"\n", args...)
	}
}

func benchCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	root, err := findRoot()
	if err != nil {
		return err
	}
	cfg := BenchConfig{Root: root, Quick: getenv("BENCH_QUICK") == "1", Log: stderr,
		ServerCPUs: "0", ToolCPUs: "1", Profile: getenv("BENCH_PROFILE")}
	if v := getenv("BENCH_SERVERS"); v != "" {
		cfg.Servers = strings.Split(v, ",")
	}
	if v := getenv("BENCH_ONLY"); v != "" {
		cfg.Only = strings.Split(v, ",")
	}
	if v := getenv("BENCH_WALCAST"); v != "" {
		cfg.Binaries = strings.Split(v, ",")
	}
	if v := getenv("BENCH_REPEAT"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fmt.Errorf("bench: BENCH_REPEAT %q is not a positive number", v)
		}
		cfg.Repeat = n
	}
	if v, ok := os.LookupEnv("BENCH_PIN"); ok && v == "0" {
		cfg.ServerCPUs, cfg.ToolCPUs = "", ""
	}
	out, err := Bench(ctx, cfg)
	if out != nil {
		printTable(stdout, cfg, out)
		// Keep the raw figures next to the table (artifacts/ is gitignored).
		dir := filepath.Join(root, "artifacts", "bench")
		if merr := os.MkdirAll(dir, 0o755); merr == nil {
			var tb strings.Builder
			printTable(&tb, cfg, out)
			_ = os.WriteFile(filepath.Join(dir, "table.md"), []byte(tb.String()), 0o644)
			if b, jerr := json.MarshalIndent(out, "", "  "); jerr == nil {
				_ = os.WriteFile(filepath.Join(dir, "results.json"), b, 0o644)
			}
			fmt.Fprintf(stderr, "bench: table and raw results in %s\n", dir)
		}
	}
	return err
}

func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "testdata", "bench", "server.mjs")); err == nil {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("bench: run inside the walcast repository (go.mod and testdata/bench not found)")
		}
		dir = parent
	}
}

// Bench runs the scenarios against each server and returns every result.
func Bench(ctx context.Context, cfg BenchConfig) (*BenchOutcome, error) {
	if cfg.Servers == nil {
		cfg.Servers = []string{"walcast", "node"}
	}
	e := &benchEnv{cfg: cfg, secret: "walcast-bench-secret-0123456789abcdef"}
	var err error
	if e.tmp, err = os.MkdirTemp("", "walcast-bench"); err != nil {
		return nil, err
	}
	defer os.RemoveAll(e.tmp)
	out := &BenchOutcome{Results: map[string]map[string]*Result{}, Backlog: map[string]*BacklogResult{},
		Errors: map[string]map[string]error{}, Machine: machine(), Commit: gitCommit(ctx, cfg.Root)}

	if has(cfg.Servers, "walcast") && cfg.Binaries != nil {
		e.walcast = cfg.Binaries[0]
	} else if has(cfg.Servers, "walcast") {
		cfg.Binaries = nil
		e.walcast = filepath.Join(e.tmp, "walcast")
		b := exec.CommandContext(ctx, "go", "build", "-o", e.walcast, "./cmd/walcast")
		b.Dir = cfg.Root
		if o, err := b.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("bench: build walcast: %w\n%s", err, o)
		}
	}
	e.logf("bench: starting Postgres")
	e.pg, err = pgserver.Start(ctx, pgserver.Options{TCPPort: -1, Settings: []string{"max_connections = 300", "max_wal_size = 8GB",
		// synchronous_commit stays on (pgserver leaves it on; this says so
		// where the numbers are made): with it off, WAL is flushed only by the
		// WAL writer every wal_writer_delay (200 ms) and a logical walsender
		// sends nothing before the flush: ~100 ms of latency that no production
		// database (synchronous_commit defaults to on) has. fsync stays off.
		"synchronous_commit = on"}})
	if err != nil {
		return nil, fmt.Errorf("bench: start postgres: %w", err)
	}
	defer e.pg.Stop()
	if err := e.pg.CreateDatabase(ctx, "bench"); err != nil {
		return nil, err
	}
	e.dsn = e.pg.URL("bench")
	if err := e.setupDB(ctx); err != nil {
		return nil, err
	}
	if cfg.ToolCPUs != "" {
		// The driver (this process) counts as the load tool: keep it off the
		// server's CPU. Postgres, started above, stays unpinned.
		if err := pinSelf(cfg.ToolCPUs); err != nil {
			e.logf("bench: pin the driver to CPU %s: %v", cfg.ToolCPUs, err)
		}
	}
	if has(cfg.Servers, "walcast") {
		// Let walcast consume the setup's inserts once, so that no scenario
		// starts with a replay in progress.
		if err := e.warmUp(ctx); err != nil {
			return nil, err
		}
	}

	record := func(sc, srv string, r *Result, err error) {
		if out.Results[sc] == nil {
			out.Results[sc], out.Errors[sc] = map[string]*Result{}, map[string]error{}
		}
		if err != nil {
			out.Errors[sc][srv] = err
			e.logf("bench: %s/%s: %v", sc, srv, err)
			return
		}
		out.Results[sc][srv] = r
		if cfg.Log != nil {
			printResult(cfg.Log, sc+"/"+srv, r)
		}
	}
	for _, kind := range cfg.Servers {
		if err := e.setTrigger(ctx, kind == "node"); err != nil {
			return out, err
		}
		for _, sc := range scenarios(cfg.Quick) {
			if cfg.Only != nil && !has(cfg.Only, sc.Name) {
				continue
			}
			bins := []string{e.walcast}
			if kind == "walcast" && cfg.Binaries != nil {
				bins = cfg.Binaries
			}
			for i := range max(cfg.Repeat, 1) * len(bins) {
				e.walcast = bins[i%len(bins)]
				if len(bins) > 1 || cfg.Repeat > 1 {
					e.logf("bench: %s run %d with %s", sc.Name, i/len(bins)+1, e.walcast)
				}
				if err := e.runScenario(ctx, kind, sc, out, record); err != nil {
					return out, err
				}
			}
		}
	}
	return out, nil
}

// runScenario runs sc once against kind and records the result in out.
func (e *benchEnv) runScenario(ctx context.Context, kind string, sc scenario, out *BenchOutcome, record func(sc, srv string, r *Result, err error)) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if sc.Backlog > 0 {
		if kind != "walcast" {
			return nil
		}
		br, err := e.backlog(ctx, sc.Backlog, sc.OneRowTx)
		if err != nil {
			record(sc.Name, kind, nil, err)
			return nil
		}
		if sc.OneRowTx {
			out.OneRowTx = br
			e.logf("bench: tx1/%s: %d one-row transactions drained in %s (%.0f tx/s, %.2f us CPU/tx, %.2f x Postgres); Postgres decoded them in %s (%.0f tx/s), pg_recvlogical streamed them in %s (%.0f tx/s) (load %s)",
				kind, br.Rows, br.Drain.Round(time.Millisecond), br.TxPerSec(), br.CPUPerTx(), br.TxPerSec()/max(br.PGTxPerSec(), 1), br.PGDecode.Round(time.Millisecond), br.PGTxPerSec(),
				br.PGRecv.Round(time.Millisecond), br.PGRecvTxPerSec(), br.LoadAvg)
			return nil
		}
		out.Backlog[kind] = br
		e.logf("bench: backlog/%s: %d rows drained in %s, peak RSS %s (load %s)", kind, br.Rows, br.Drain.Round(time.Millisecond), fmtBytes(br.PeakRSS), br.LoadAvg)
		return nil
	}
	e.logf("bench: %s/%s (load %s)", sc.Name, kind, loadAvg())
	r, err := e.runOne(ctx, kind, sc)
	record(sc.Name, kind, r, err)
	return nil
}

func has(list []string, s string) bool {
	for _, x := range list {
		if strings.TrimSpace(x) == s {
			return true
		}
	}
	return false
}

func (e *benchEnv) setupDB(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, e.dsn)
	if err != nil {
		return fmt.Errorf("bench: connect: %w", err)
	}
	defer conn.Close(context.Background())
	if err := wsql.Migrate(ctx, conn, wsql.Options{Demo: true, Slot: "walcast"}); err != nil {
		return fmt.Errorf("bench: migrate: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(e.cfg.Root, "testdata", "bench", "bench.sql"))
	if err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, string(b)); err != nil {
		return fmt.Errorf("bench: bench.sql: %w", err)
	}
	return nil
}

// warmUp runs walcast until its slot has confirmed the current WAL position.
func (e *benchEnv) warmUp(ctx context.Context) error {
	s, err := e.start(ctx, "walcast")
	if err != nil {
		return err
	}
	defer s.stop()
	return e.waitCaughtUp(ctx, 60*time.Second)
}

// waitCaughtUp waits until the walcast slot's reader is within 64 KiB of the current
// WAL position (a running walcast has replayed what an earlier run left), so
// that no scenario is measured while a replay is in progress.
func (e *benchEnv) waitCaughtUp(ctx context.Context, limit time.Duration) error {
	conn, err := pgx.Connect(ctx, e.dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		var lag int64
		if err := conn.QueryRow(ctx, slotLagSQL, "walcast").Scan(&lag); err != nil {
			return fmt.Errorf("bench: slot lag: %w", err)
		}
		if lag >= 0 && lag < 1<<16 {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	e.logf("bench: walcast slot still behind after %s", limit)
	return nil
}

func (e *benchEnv) setTrigger(ctx context.Context, on bool) error {
	verb := "DISABLE"
	if on {
		verb = "ENABLE"
	}
	_, err := e.pg.Psql(ctx, "bench", "ALTER TABLE public.inventory "+verb+" TRIGGER bench_notify_stock")
	return err
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (e *benchEnv) pinned(cpus string, name string, args ...string) *exec.Cmd {
	if cpus == "" {
		return exec.Command(name, args...)
	}
	return exec.Command("taskset", append([]string{"-c", cpus, name}, args...)...)
}

// start launches a fresh server of kind and waits until it serves.
func (e *benchEnv) start(ctx context.Context, kind string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	logDir := filepath.Join(e.cfg.Root, "artifacts", "bench")
	_ = os.MkdirAll(logDir, 0o755)
	s := &server{kind: kind, addr: addr, logf: filepath.Join(logDir, kind+".log")}
	logFile, err := os.OpenFile(s.logf, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	switch kind {
	case "walcast":
		s.cmd = e.pinned(e.cfg.ServerCPUs, e.walcast, "serve")
		s.cmd.Env = append(os.Environ(), "WALCAST_DATABASE_URL="+e.dsn, "WALCAST_LISTEN="+addr,
			"WALCAST_JWT_SECRET="+e.secret, "WALCAST_MAX_CONNS_PER_USER=0",
			// Every load client dials from loopback: lift the per-IP caps.
			"WALCAST_MAX_HANDSHAKES_PER_IP=0", "WALCAST_MAX_CONNS_PER_IP=0", "WALCAST_MAX_UNAUTHENTICATED_PER_IP=0",
			"LOG_LEVEL="+cmp.Or(os.Getenv("BENCH_LOG_LEVEL"), "warn"))
	case "node":
		s.cmd = e.pinned(e.cfg.ServerCPUs, "node", filepath.Join(e.cfg.Root, "testdata", "bench", "server.mjs"))
		s.cmd.Env = append(os.Environ(), "DATABASE_URL="+e.dsn, "PORT="+strconv.Itoa(port), "HOST=127.0.0.1", "JWT_SECRET="+e.secret)
	default:
		return nil, fmt.Errorf("unknown server %q", kind)
	}
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", kind, err)
	}
	exited := make(chan error, 1)
	s.exited = make(chan struct{})
	go func() { err := s.cmd.Wait(); exited <- err; close(s.exited) }()
	// Wait until the port accepts connections.
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			<-s.exited
			b, _ := os.ReadFile(s.logf)
			return nil, fmt.Errorf("%s exited at start: %v\n%s", kind, err, lastN(string(b), 2000))
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			s.cmd.Process.Kill()
			<-s.exited
			return nil, fmt.Errorf("%s did not listen on %s within 30s", kind, addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if kind == "walcast" {
		// Wait for replication to stream (readyz) so that the first changes are not
		// measured against a slot that is still being opened.
		for time.Now().Before(deadline) {
			resp, err := httpClient.Get("http://" + addr + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return s, nil
}

var httpClient = &http.Client{Timeout: 2 * time.Second}

func lastN(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (e *benchEnv) runOne(ctx context.Context, kind string, sc scenario) (*Result, error) {
	s, err := e.start(ctx, kind)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	if kind == "walcast" {
		if err := e.waitCaughtUp(ctx, 120*time.Second); err != nil {
			return nil, err
		}
	}
	rc := sc.Run
	rc.Server, rc.DSN, rc.Secret, rc.ServerPID, rc.ToolCPUs, rc.Log = s.addr, e.dsn, e.secret, s.pid(), e.cfg.ToolCPUs, e.cfg.Log
	if kind == "walcast" {
		rc.SlotName = "walcast"
	}
	if kind == "walcast" && sc.Name == "fanout-cost" && e.cfg.Profile != "" {
		stop := e.perfRecord(ctx, s.pid(), rc.Settle+3*time.Second, rc.Duration)
		defer stop()
	}
	fmt.Fprintf(logFileAppend(s.logf), "=== scenario %s (pid %d) %s\n", sc.Name, s.pid(), time.Now().Format(time.RFC3339))
	var storm chan stormResult
	if sc.Storm {
		if rc.Settle == 0 {
			rc.Settle = 3 * time.Second
		}
		storm = make(chan stormResult, 1)
		delay := rc.Settle + time.Second // ~ when the probe starts (connecting 100 clients is quick)
		go func() { storm <- e.pgbench(ctx, delay, rc.Duration) }()
	}
	r, err := Run(ctx, rc)
	if storm != nil {
		sr := <-storm
		if err == nil && sr.err != nil {
			err = sr.err
		}
		if r != nil {
			r.StormTPS = sr.tps
		}
	}
	if kind == "walcast" {
		// Keep walcast's own view (drops, disconnect reasons, latency histogram).
		if resp, herr := httpClient.Get("http://" + s.addr + "/metrics"); herr == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			_ = os.WriteFile(filepath.Join(filepath.Dir(s.logf), "walcast-"+sc.Name+".metrics"), b, 0o644)
		}
	}
	select {
	case <-s.exited:
		e.logf("bench: %s exited during %s; log: %s", kind, sc.Name, s.logf)
	default:
	}
	return r, err
}

// logFileAppend opens path for appending; writes to it are best effort.
func logFileAppend(path string) io.Writer {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return io.Discard
	}
	return closingWriter{f}
}

type closingWriter struct{ f *os.File }

func (w closingWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.f.Close()
	return n, err
}

type stormResult struct {
	tps float64
	err error
}

// pgbenchPath is pgbench from the server's bin directory, else from $PATH
// (server-only builds, like the npm ones the CI matrix uses, ship none).
func pgbenchPath(bin string) string {
	p := filepath.Join(bin, "pgbench")
	if _, err := os.Stat(p); err != nil {
		if lp, lerr := exec.LookPath("pgbench"); lerr == nil {
			return lp
		}
	}
	return p
}

// pgbenchScript updates one random bench row (never row 1, the probe's).
const pgbenchScript = `\set r random(2, 10000)
UPDATE public.inventory SET quantity = quantity + 1
 WHERE variant_id = ('40000000-0000-4000-8000-' || lpad(:r::text, 12, '0'))::uuid;
`

// pgbenchTx commits n one-row transactions with pgbench (6 clients), as fast
// as the database allows; n should be a multiple of 6.
func (e *benchEnv) pgbenchTx(ctx context.Context, n int) error {
	bin, err := pgserver.FindBin()
	if err != nil {
		return err
	}
	script := filepath.Join(e.tmp, "tx1.sql")
	if err := os.WriteFile(script, []byte(pgbenchScript), 0o644); err != nil {
		return err
	}
	const clients = 6
	cmd := e.pinned(e.cfg.ToolCPUs, pgbenchPath(bin), "-n", "-c", strconv.Itoa(clients), "-j", "2",
		"-t", strconv.Itoa((n+clients-1)/clients), "-f", script, e.pg.DSN("bench"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pgbench: %w\n%s", err, lastN(string(out), 1000))
	}
	return nil
}

// pgbench runs pgbench with 6 clients for d after delay (the clients' connect
// and settle time), pinned like the load tool, and returns its tps.
func (e *benchEnv) pgbench(ctx context.Context, delay, d time.Duration) stormResult {
	// Connecting takes a moment; start when the probe's drive starts.
	bin, err := pgserver.FindBin()
	if err != nil {
		return stormResult{err: err}
	}
	script := filepath.Join(e.tmp, "storm.sql")
	if err := os.WriteFile(script, []byte(pgbenchScript), 0o644); err != nil {
		return stormResult{err: err}
	}
	select {
	case <-time.After(delay):
	case <-ctx.Done():
		return stormResult{err: ctx.Err()}
	}
	cmd := e.pinned(e.cfg.ToolCPUs, pgbenchPath(bin), "-n", "-c", "6", "-j", "2",
		"-T", strconv.Itoa(max(int(d.Seconds()), 1)), "-f", script, e.pg.DSN("bench"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return stormResult{err: fmt.Errorf("pgbench: %w\n%s", err, lastN(string(out), 1000))}
	}
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "tps = "); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				tps, _ := strconv.ParseFloat(f[0], 64)
				return stormResult{tps: tps}
			}
		}
	}
	return stormResult{err: fmt.Errorf("pgbench: no tps in output\n%s", lastN(string(out), 1000))}
}

// perfRecord samples the server with perf during the drive window.
func (e *benchEnv) perfRecord(ctx context.Context, pid int, delay, d time.Duration) func() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return
		}
		data := e.cfg.Profile + ".data"
		cmd := exec.CommandContext(ctx, "perf", "record", "-F", "499", "-g", "-o", data, "-p", strconv.Itoa(pid), "--", "sleep", strconv.Itoa(int(d.Seconds())))
		if o, err := cmd.CombinedOutput(); err != nil {
			e.logf("bench: perf record: %v %s", err, o)
			return
		}
		rep := exec.CommandContext(ctx, "perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "symbol", "--percent-limit", "0.7")
		o, err := rep.Output()
		if err != nil {
			e.logf("bench: perf report: %v", err)
			return
		}
		_ = os.WriteFile(e.cfg.Profile+".txt", o, 0o644)
		e.logf("bench: profile written to %s.txt", e.cfg.Profile)
	}()
	return func() { <-done }
}

// TxPerSec is the drain rate in transactions (rows, for one-row transactions) per second.
func (b *BacklogResult) TxPerSec() float64 {
	if b.Drain <= 0 {
		return 0
	}
	return float64(b.Rows) / b.Drain.Seconds()
}

// PGTxPerSec is Postgres's own decode rate of the same transactions.
func (b *BacklogResult) PGTxPerSec() float64 {
	if b.PGDecode <= 0 {
		return 0
	}
	return float64(b.Rows) / b.PGDecode.Seconds()
}

// CPUPerTx is walcast's CPU per transaction in microseconds.
func (b *BacklogResult) CPUPerTx() float64 {
	if b.Rows == 0 {
		return 0
	}
	return float64(b.CPU.Microseconds()) / float64(b.Rows)
}

// PGRecvTxPerSec is the rate of Postgres's own streaming client
// (pg_recvlogical) over the same transactions.
func (b *BacklogResult) PGRecvTxPerSec() float64 {
	if b.PGRecv <= 0 {
		return 0
	}
	return float64(b.Rows) / b.PGRecv.Seconds()
}

// baselineSlot and recvSlot are the extra slots the tx1 scenario decodes
// with Postgres alone: in a backend, and streamed to pg_recvlogical.
const (
	baselineSlot = "walcast_bench_baseline"
	recvSlot     = "walcast_bench_recv"
)

// backlog stops walcast, commits rows row changes, starts walcast, then
// measures the time until a change committed after the backlog reaches a
// subscribed client; the slot delivers in commit order, so that is when the
// backlog has drained. The changes are 10,000-row UPDATE statements, one
// transaction each, or with oneRow one transaction per row (pgbench); then a
// second pgoutput slot created at the same position is decoded by Postgres
// itself (pg_logical_slot_get_binary_changes) as the baseline.
func (e *benchEnv) backlog(ctx context.Context, rows int, oneRow bool) (*BacklogResult, error) {
	conn, err := pgx.Connect(ctx, e.dsn)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	// Start from a slot that has caught up (a storm run may have left walcast behind).
	if err := e.warmUp(ctx); err != nil {
		return nil, err
	}
	res := &BacklogResult{Rows: rows}
	if oneRow {
		for _, slot := range []string{baselineSlot, recvSlot} {
			_, _ = conn.Exec(ctx, `select pg_drop_replication_slot($1) from pg_replication_slots where slot_name = $1`, slot)
			if _, err := conn.Exec(ctx, `select pg_create_logical_replication_slot($1, 'pgoutput')`, slot); err != nil {
				return nil, fmt.Errorf("baseline slot: %w", err)
			}
			defer conn.Exec(context.Background(), `select pg_drop_replication_slot($1) from pg_replication_slots where slot_name = $1`, slot)
		}
	}
	// Only the backlog is to be drained: a start re-reads the recovery
	// window the slot holds, which here would hold the earlier scenarios'
	// changes (another backlog, if it ran less than the window before).
	if _, err := conn.Exec(ctx, `select pg_replication_slot_advance('walcast', pg_current_wal_lsn())`); err != nil {
		return nil, fmt.Errorf("advance the walcast slot: %w", err)
	}
	e.logf("bench: backlog: committing %d row changes while walcast is stopped (one-row transactions: %v)", rows, oneRow)
	t0 := time.Now()
	if oneRow {
		if err := e.pgbenchTx(ctx, rows); err != nil {
			return nil, err
		}
	} else {
		per := min(rows, 10000)
		for done := 0; done < rows; done += per {
			if _, err := conn.Exec(ctx, `update inventory set quantity = quantity + 1 where variant_id in (select id from variants where sku like 'BENCH-%' order by id limit $1)`, per); err != nil {
				return nil, fmt.Errorf("backlog update: %w", err)
			}
		}
	}
	e.logf("bench: backlog committed in %s", time.Since(t0).Round(time.Millisecond))
	if oneRow {
		t1 := time.Now()
		if err := conn.QueryRow(ctx, `select count(*) from pg_logical_slot_get_binary_changes($1, null, null, 'proto_version', '2', 'publication_names', 'walcast')`, baselineSlot).Scan(&res.PGChanges); err != nil {
			return nil, fmt.Errorf("baseline decode: %w", err)
		}
		res.PGDecode = time.Since(t1)
		e.logf("bench: Postgres decoded the backlog (%d messages) in %s", res.PGChanges, res.PGDecode.Round(time.Millisecond))
		// Postgres's own client over the replication protocol walcast uses:
		// the walsender sends each message on its own, which costs more than
		// the decoding.
		if d, err := e.pgRecvlogical(ctx, conn); err != nil {
			e.logf("bench: pg_recvlogical baseline: %v", err)
		} else {
			res.PGRecv = d
			e.logf("bench: pg_recvlogical streamed the backlog in %s", d.Round(time.Millisecond))
		}
	}
	var marker int64
	if err := conn.QueryRow(ctx, `select coalesce(max(quantity), 0) + 1000 from inventory`).Scan(&marker); err != nil {
		return nil, err
	}
	started := time.Now()
	s, err := e.start(ctx, "walcast")
	if err != nil {
		return nil, err
	}
	defer s.stop()
	// The drain ends when walcast has handed on as many transactions (one-row
	// backlog) or row changes as were committed; the marker below then
	// proves that the changes reach a client. (A subscribe waits for its
	// stream mark, which comes after the backlog, so the marker's own
	// arrival would time a subscribe too.)
	counter := "walcast_cdc_changes_total"
	if oneRow {
		counter = "walcast_cdc_transactions_total"
	}
	drained := make(chan time.Duration, 1)
	go func() {
		for time.Since(started) < 180*time.Second && ctx.Err() == nil {
			if v, ok := scrapeCounter(s.addr, counter); ok && v >= float64(rows) {
				d := time.Since(started)
				if ps, err := readProc(s.pid()); err == nil {
					res.CPU = ps.CPU // from process start: the whole drain, start-up included
				}
				drained <- d
				return
			}
			// Each scrape costs walcast CPU (the process collector reads
			// /proc; 10-20 µs/tx at 100 ms on a loaded machine).
			time.Sleep(500 * time.Millisecond)
		}
		drained <- 0
	}()
	// One client in product room 0.
	addr, _ := netip.ParseAddrPort(s.addr)
	r, err := dial(dialOptions{Server: addr, Host: s.addr, Path: "/socket.io/", Token: signHS256([]byte(e.secret), 999999, time.Now(), time.Hour),
		Room: productID(0), Timeout: 120 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("backlog client: %w", err)
	}
	if _, err := conn.Exec(ctx, `update inventory set quantity = $1 where variant_id = $2`, marker, variantID(0)); err != nil {
		return nil, err
	}
	got := make(chan struct{})
	go func() {
		defer close(got)
		buf := r.rest
		for {
			for {
				op, p, n, err := parseFrame(buf, 1<<24)
				if err != nil || n == 0 {
					break
				}
				if op == opText && isPing(p) {
					_ = writeAll(r.fd, pongFrame)
				}
				if v, ok := parseStockEvent(p); ok && v == marker {
					res.Received = true
					return
				}
				buf = buf[:copy(buf, buf[n:])]
			}
			var err error
			if buf, err = readMore(r.fd, buf); err != nil {
				return
			}
		}
	}()
	var peak int64
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(180 * time.Second)
loop:
	for {
		select {
		case <-got:
			break loop
		case <-tick.C:
			if ps, err := readProc(s.pid()); err == nil && ps.HWM > peak {
				peak = ps.HWM
			}
		case <-timeout:
			break loop
		}
	}
	res.Drain = <-drained
	if ps, err := readProc(s.pid()); err == nil {
		peak = max(peak, ps.HWM)
	}
	closeFD(r.fd)
	res.PeakRSS, res.LoadAvg = peak, loadAvg()
	if !res.Received {
		return res, fmt.Errorf("backlog: marker change not received within 180s")
	}
	if res.Drain == 0 {
		return res, fmt.Errorf("backlog: %s did not reach %d within 180s", counter, rows)
	}
	return res, nil
}

// pgRecvlogical streams recvSlot to /dev/null with pg_recvlogical, pinned
// like the load tool, up to the current WAL position, and returns how long
// that took.
func (e *benchEnv) pgRecvlogical(ctx context.Context, conn *pgx.Conn) (time.Duration, error) {
	bin, err := pgserver.FindBin()
	if err != nil {
		return 0, err
	}
	var end string
	if err := conn.QueryRow(ctx, `select pg_current_wal_lsn()::text`).Scan(&end); err != nil {
		return 0, err
	}
	cmd := e.pinned(e.cfg.ToolCPUs, filepath.Join(bin, "pg_recvlogical"), "-d", e.pg.DSN("bench"), "-S", recvSlot, "--start", "--no-loop",
		"--endpos="+end, "-o", "proto_version=2", "-o", "publication_names=walcast", "-f", "/dev/null")
	t0 := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("pg_recvlogical: %w\n%s", err, lastN(string(out), 1000))
	}
	return time.Since(t0), nil
}

// scrapeCounter reads one unlabelled metric from a walcast's /metrics.
func scrapeCounter(addr, name string) (float64, bool) {
	resp, err := httpClient.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

func machine() string {
	model := "?"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	var mem string
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		mem = strings.Join(strings.Fields(line)[1:], " ")
	}
	return fmt.Sprintf("%d vCPU %s, MemTotal %s", numCPU(), model, mem)
}
