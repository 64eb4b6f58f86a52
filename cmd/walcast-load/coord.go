package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// RunConfig describes one load run against one server.
type RunConfig struct {
	Server    string // host:port (IPv4 literal) of the Socket.IO server
	Path      string // "" = "/socket.io/"
	DSN       string // the database the server reads
	Secret    string // HS256 secret
	ServerPID int    // process to read CPU and RSS from; 0 = not measured

	Clients int // reading clients
	Slow    int // extra clients that never read after subscribing
	Rooms   int // clients are spread round-robin over this many bench products; 0 = no subscribe
	// Users is the number of distinct user ids the clients' tokens carry:
	// 0 = one per connection (what real users look like); N > 0 = client i
	// is user i mod N. Each user is auto-joined to user: and cart: rooms, so
	// this moves the server's per-user memory. Servers cap connections per
	// user (walcast: WALCAST_MAX_CONNS_PER_USER).
	Users int

	Rate     float64       // changes per second; 0 with Storm=false = no changes (idle run)
	Duration time.Duration // how long changes are driven
	Storm    bool          // drive as fast as DriverConns connections can commit
	// DriverConns is the number of database connections driving changes;
	// 0 = 1 (or 6 in storm mode). Changes to one room always use the same
	// connection so that their commit order equals their sequence order.
	DriverConns int

	Workers     int           // worker processes; 0 = one per 10,000 clients, at least 2
	ToolCPUs    string        // taskset CPU list for the workers; "" = no pinning
	Settle      time.Duration // wait after connecting before measuring RSS; 0 = 3s
	Drain       time.Duration // max wait for late deliveries after the last change; 0 = 15s
	Concurrency int           // handshakes in flight per worker; 0 = 64

	// SlotName, when set, samples the slot's lag behind pg_current_wal_lsn()
	// during the drive (bytes).
	SlotName string
	Log      io.Writer
}

// Result is what a run measured. Durations marshal as nanoseconds.
type Result struct {
	Clients, Slow int
	Connected     int
	ConnectFailed int
	ConnectErrors []string `json:",omitempty"`
	ConnectTime   time.Duration

	Changes    int     // committed changes
	Rate       float64 // achieved changes/s
	Expected   uint64
	Received   uint64
	Lost       int64
	Dups       uint64
	Stale      uint64
	Unmatched  uint64
	Closed     int // reading clients disconnected during the run
	SlowClosed int

	DeliveriesPerSec   float64
	P50, P90, P99, Max time.Duration
	Mean               time.Duration

	ServerRSSBefore, ServerRSSIdle, ServerRSSAfter, ServerHWM int64
	RSSPerConn                                                float64 // bytes
	ServerCPU                                                 time.Duration
	CPUPerDelivery                                            time.Duration
	ToolCPU                                                   time.Duration // the client workers
	DriverCPU                                                 time.Duration // this process: the database driver
	WalsenderCPU                                              time.Duration // the slot's walsender (walcast runs)
	ToolCPUPerDelivery                                        time.Duration

	StormTPS float64 // pgbench transactions/s during a storm run

	SlotLagMax, SlotLagP99    int64 // bytes; 0 when not sampled
	SlotLagFirst, SlotLagLast float64

	CloseReasons map[string]int `json:",omitempty"` // why reading clients lost their connection
	FirstClose   time.Time
	ConnectedAt  time.Time // when every client was connected

	LoadAvg string
	Hist    *Hist `json:"-"`
}

type workerProc struct {
	cmd   *exec.Cmd
	in    *bufio.Writer
	inMu  sync.Mutex
	stdin io.WriteCloser
	out   *bufio.Reader
	cfg   WorkerConfig
}

func (p *workerProc) send(line string) error {
	p.inMu.Lock()
	defer p.inMu.Unlock()
	if _, err := p.in.WriteString(line); err != nil {
		return err
	}
	return p.in.Flush()
}

// productID and variantID name bench row r (0-based), as testdata/bench/bench.sql creates them.
func productID(r int) string { return fmt.Sprintf("30000000-0000-4000-8000-%012d", r+1) }
func variantID(r int) string { return fmt.Sprintf("40000000-0000-4000-8000-%012d", r+1) }

func (c *RunConfig) logf(format string, args ...any) {
	if c.Log != nil {
		fmt.Fprintf(c.Log, format+"\n", args...)
	}
}

// Run connects the clients, drives the changes and collects the figures.
func Run(ctx context.Context, cfg RunConfig) (*Result, error) {
	if cfg.Path == "" {
		cfg.Path = "/socket.io/"
	}
	if cfg.Settle == 0 {
		cfg.Settle = 3 * time.Second
	}
	if cfg.Drain == 0 {
		cfg.Drain = 15 * time.Second
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 64
	}
	total := cfg.Clients + cfg.Slow
	if cfg.Workers == 0 {
		cfg.Workers = max(2, (total+9999)/10000)
	}
	if total/cfg.Workers > 19000 {
		return nil, fmt.Errorf("%d clients over %d workers exceeds 19,000 sockets per process", total, cfg.Workers)
	}
	res := &Result{Clients: cfg.Clients, Slow: cfg.Slow, Hist: NewHist()}

	db, err := pgx.Connect(ctx, cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	defer db.Close(context.Background())
	var base int64
	if err := db.QueryRow(ctx, `select coalesce(max(quantity), 0) from inventory`).Scan(&base); err != nil {
		return nil, fmt.Errorf("read max inventory quantity: %w", err)
	}
	base += 10
	maxSeq := 1000
	if cfg.Rate > 0 {
		maxSeq += int(cfg.Rate*cfg.Duration.Seconds()*1.2) + 10
	}
	if cfg.Storm {
		maxSeq += 2_000_000
	}

	var before ProcSample
	if cfg.ServerPID > 0 {
		if before, err = readProc(cfg.ServerPID); err != nil {
			return nil, err
		}
	}
	rooms := make([]string, cfg.Rooms)
	for r := range rooms {
		rooms[r] = productID(r)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	// Spread reading clients, then slow ones, over the workers. Client index i
	// (the user id) subscribes to rooms[i % R]; slow clients have indexes after
	// all reading ones, and each worker's slow clients are its last ones.
	procs := make([]*workerProc, cfg.Workers)
	sources := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6", "127.0.0.7", "127.0.0.8", "127.0.0.9"}
	defer func() {
		for _, p := range procs {
			if p != nil && p.cmd.Process != nil {
				p.stdin.Close()
				done := make(chan struct{})
				go func() { p.cmd.Wait(); close(done) }()
				select {
				case <-done:
				case <-time.After(5 * time.Second):
					p.cmd.Process.Kill()
					<-done
				}
			}
		}
	}()
	first := 0
	for k := range procs {
		n := cfg.Clients / cfg.Workers
		if k < cfg.Clients%cfg.Workers {
			n++
		}
		s := cfg.Slow / cfg.Workers
		if k < cfg.Slow%cfg.Workers {
			s++
		}
		wc := WorkerConfig{Server: cfg.Server, Path: cfg.Path, Secret: cfg.Secret, First: first, Count: n + s, Slow: s,
			Rooms: rooms, Sources: sources, PerSource: 10000, Concurrency: cfg.Concurrency, Base: base, MaxSeq: maxSeq, Users: cfg.Users}
		first += n + s
		var cmd *exec.Cmd
		if cfg.ToolCPUs != "" {
			cmd = exec.CommandContext(ctx, "taskset", "-c", cfg.ToolCPUs, exe, "worker")
		} else {
			cmd = exec.CommandContext(ctx, exe, "worker")
		}
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start worker: %w", err)
		}
		p := &workerProc{cmd: cmd, stdin: stdin, in: bufio.NewWriterSize(stdin, 1<<16), out: bufio.NewReader(stdout), cfg: wc}
		procs[k] = p
		b, _ := json.Marshal(wc)
		if err := p.send(string(b) + "\n"); err != nil {
			return nil, fmt.Errorf("configure worker: %w", err)
		}
	}
	// Reading clients: expected subscribers per room.
	subs := make([]int, max(cfg.Rooms, 1))
	for _, p := range procs {
		for i := range p.cfg.Count - p.cfg.Slow {
			if cfg.Rooms > 0 {
				subs[(p.cfg.First+i)%cfg.Rooms]++
			}
		}
	}
	t0 := time.Now()
	for _, p := range procs {
		line, err := p.out.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("worker did not get ready: %w", err)
		}
		var ok, failed int
		if _, err := fmt.Sscanf(line, "ready %d %d", &ok, &failed); err != nil {
			return nil, fmt.Errorf("worker said %q: %w", line, err)
		}
		res.Connected += ok
		res.ConnectFailed += failed
	}
	res.ConnectTime = time.Since(t0)
	res.ConnectedAt = time.Now()
	cfg.logf("  connected %d (failed %d) in %s", res.Connected, res.ConnectFailed, res.ConnectTime.Round(time.Millisecond))

	select {
	case <-time.After(cfg.Settle):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var idle ProcSample
	if cfg.ServerPID > 0 {
		if idle, err = readProc(cfg.ServerPID); err != nil {
			return nil, fmt.Errorf("server process: %w", err)
		}
		res.ServerRSSBefore, res.ServerRSSIdle = before.RSS, idle.RSS
		if res.Connected > 0 {
			res.RSSPerConn = float64(idle.RSS-before.RSS) / float64(res.Connected)
		}
	}
	selfCPU := func() time.Duration {
		s, _ := readProc(0)
		return s.CPU
	}
	toolCPU := func() time.Duration {
		var sum time.Duration
		for _, p := range procs {
			if s, err := readProc(p.cmd.Process.Pid); err == nil {
				sum += s.CPU
			}
		}
		return sum
	}
	tool0, self0 := toolCPU(), selfCPU()

	// Drive changes.
	var changes []int
	var driveTime time.Duration
	if cfg.Rate > 0 || cfg.Storm {
		var lagStop func() []lagSample
		if cfg.SlotName != "" {
			lagStop = sampleSlotLag(ctx, cfg.DSN, cfg.SlotName)
		}
		var wsPID int
		var ws0 ProcSample
		if cfg.SlotName != "" {
			// The slot's walsender decodes WAL for the server; its CPU is
			// part of walcast's cost even though it is a Postgres process.
			_ = db.QueryRow(ctx, `select coalesce(active_pid, 0) from pg_replication_slots where slot_name = $1`, cfg.SlotName).Scan(&wsPID)
			if wsPID > 0 {
				ws0, _ = readProc(wsPID)
			}
		}
		defer func() {
			if wsPID > 0 {
				if ws1, err := readProc(wsPID); err == nil && ws0.Valid {
					res.WalsenderCPU = ws1.CPU - ws0.CPU
				}
			}
		}()
		d := &driver{cfg: cfg, base: base, procs: procs}
		start := time.Now()
		changes, err = d.run(ctx)
		driveTime = time.Since(start)
		if lagStop != nil {
			summarizeLag(res, lagStop())
		}
		if err != nil {
			return nil, err
		}
	}
	for r, n := range changes {
		res.Changes += n
		res.Expected += uint64(n * subs[r%len(subs)])
	}
	if driveTime > 0 {
		res.Rate = float64(res.Changes) / driveTime.Seconds()
	}
	// Wait for the deliveries to arrive (or stop arriving).
	deadline := time.Now().Add(cfg.Drain)
	var last uint64
	lastChange := time.Now()
	for res.Changes > 0 && time.Now().Before(deadline) {
		var got uint64
		for _, p := range procs {
			if err := p.send("stat\n"); err != nil {
				return nil, err
			}
			line, err := p.out.ReadString('\n')
			if err != nil {
				return nil, fmt.Errorf("worker stat: %w", err)
			}
			f := strings.Fields(line)
			if len(f) >= 2 {
				n, _ := strconv.ParseUint(f[1], 10, 64)
				got += n
			}
		}
		if got >= res.Expected {
			break
		}
		if got != last {
			last, lastChange = got, time.Now()
		} else if time.Since(lastChange) > 3*time.Second {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	res.ToolCPU = toolCPU() - tool0
	res.DriverCPU = selfCPU() - self0
	if cfg.ServerPID > 0 {
		after, err := readProc(cfg.ServerPID)
		if err != nil {
			return nil, fmt.Errorf("server process: %w", err)
		}
		res.ServerCPU = after.CPU - idle.CPU
		res.ServerRSSAfter, res.ServerHWM = after.RSS, after.HWM
	}
	res.LoadAvg = loadAvg()
	for _, p := range procs {
		if err := p.send("end\n"); err != nil {
			return nil, err
		}
	}
	for _, p := range procs {
		line, err := p.out.ReadBytes('\n')
		if err != nil {
			return nil, fmt.Errorf("worker result: %w", err)
		}
		var wr WorkerResult
		if err := json.Unmarshal(line, &wr); err != nil {
			return nil, fmt.Errorf("worker result %.100q: %w", line, err)
		}
		res.Received += wr.Received
		res.Dups += wr.Duplicates
		res.Stale += wr.Stale
		res.Unmatched += wr.Unmatched
		res.Closed += wr.Closed
		res.SlowClosed += wr.SlowClosed
		if len(res.ConnectErrors) < 5 {
			res.ConnectErrors = append(res.ConnectErrors, wr.ConnectErrors...)
		}
		res.Hist.Merge(wr.Hist)
		for k, v := range wr.CloseReasons {
			if res.CloseReasons == nil {
				res.CloseReasons = map[string]int{}
			}
			res.CloseReasons[k] += v
		}
		if !wr.FirstClose.IsZero() && (res.FirstClose.IsZero() || wr.FirstClose.Before(res.FirstClose)) {
			res.FirstClose = wr.FirstClose
		}
	}
	res.Lost = int64(res.Expected) - int64(res.Received)
	if driveTime > 0 {
		res.DeliveriesPerSec = float64(res.Received) / driveTime.Seconds()
	}
	if res.Received > 0 {
		res.CPUPerDelivery = res.ServerCPU / time.Duration(res.Received)
		res.ToolCPUPerDelivery = res.ToolCPU / time.Duration(res.Received)
	}
	h := res.Hist
	res.P50, res.P90, res.P99, res.Max = h.Quantile(0.50), h.Quantile(0.90), h.Quantile(0.99), time.Duration(h.Max)
	if h.N > 0 {
		res.Mean = time.Duration(h.Sum / float64(h.N))
	}
	return res, nil
}

// driver commits the changes. Each change sets inventory.quantity of one bench
// variant to the next sequence number (reserved stays 0, so available == seq),
// and the wall time is taken just before COMMIT and sent to every worker.
type driver struct {
	cfg   RunConfig
	base  int64
	procs []*workerProc

	mu  sync.Mutex
	seq int64

	bufMu sync.Mutex
	buf   []byte // pending commit records
	spare []byte // owned by flush
}

func (d *driver) next() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.seq++
	return d.seq
}

// record queues a commit record for every worker; flushLoop sends them in
// batches (every 10 ms) so that a storm of small commits does not
// cost a pipe write and a worker wake-up each.
func (d *driver) record(seq, t int64) {
	d.bufMu.Lock()
	d.buf = append(d.buf, 'c', ' ')
	d.buf = strconv.AppendInt(d.buf, seq, 10)
	d.buf = append(d.buf, ' ')
	d.buf = strconv.AppendInt(d.buf, t, 10)
	d.buf = append(d.buf, '\n')
	d.bufMu.Unlock()
}

func (d *driver) flush() {
	d.bufMu.Lock()
	b := d.buf
	d.buf = d.spare[:0]
	d.bufMu.Unlock()
	if len(b) > 0 {
		for _, p := range d.procs {
			_ = p.send(string(b))
		}
	}
	d.spare = b
}

func (d *driver) flushLoop(stop <-chan struct{}) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			d.flush()
			return
		case <-t.C:
			d.flush()
		}
	}
}

func (d *driver) run(ctx context.Context) ([]int, error) {
	nconn := d.cfg.DriverConns
	if nconn == 0 {
		nconn = 1
		if d.cfg.Storm {
			nconn = 6
		}
	}
	rooms := max(d.cfg.Rooms, 1)
	nconn = min(nconn, rooms)
	counts := make([][]int, nconn)
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Duration)
	defer cancel()
	type job struct {
		room int
	}
	queues := make([]chan job, nconn)
	for k := range queues {
		queues[k] = make(chan job, 4096)
		counts[k] = make([]int, rooms)
	}
	errc := make(chan error, nconn)
	stopFlush := make(chan struct{})
	flushDone := make(chan struct{})
	go func() { defer close(flushDone); d.flushLoop(stopFlush) }()
	defer func() { close(stopFlush); <-flushDone }()
	var wg sync.WaitGroup
	for k := range nconn {
		conn, err := pgx.Connect(ctx, d.cfg.DSN)
		if err != nil {
			return nil, fmt.Errorf("driver connect: %w", err)
		}
		defer conn.Close(context.Background())
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(k), 7))
			commit := func(room int) error {
				seq := d.next()
				tx, err := conn.Begin(ctx)
				if err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, `update inventory set quantity = $1 where variant_id = $2`, d.base+seq, variantID(room)); err != nil {
					tx.Rollback(context.Background())
					return err
				}
				t := time.Now().UnixNano()
				// Not cancellable: a COMMIT that the deadline interrupted may
				// still have committed, and its events would then be unexpected.
				if err := tx.Commit(context.WithoutCancel(ctx)); err != nil {
					return err
				}
				counts[k][room]++
				d.record(seq, t)
				return nil
			}
			if d.cfg.Storm {
				mine := (rooms - k + nconn - 1) / nconn
				for ctx.Err() == nil {
					room := k + nconn*rng.IntN(mine)
					if err := commit(room); err != nil && ctx.Err() == nil {
						errc <- fmt.Errorf("driver commit: %w", err)
						return
					}
				}
				return
			}
			for j := range queues[k] {
				if err := commit(j.room); err != nil {
					if ctx.Err() != nil {
						return
					}
					errc <- fmt.Errorf("driver commit: %w", err)
					return
				}
			}
		})
	}
	if !d.cfg.Storm {
		// Schedule changes at fixed times; rooms in round-robin order.
		interval := time.Duration(float64(time.Second) / d.cfg.Rate)
		start := time.Now()
		room := 0
	loop:
		for i := 0; ; i++ {
			at := start.Add(time.Duration(i) * interval)
			if wait := time.Until(at); wait > 0 {
				select {
				case <-time.After(wait):
				case <-ctx.Done():
					break loop
				}
			}
			if ctx.Err() != nil {
				break
			}
			select {
			case queues[room%nconn] <- job{room: room}:
			default: // the database cannot keep up: the change is skipped and not expected
			}
			room = (room + 1) % rooms
		}
		for _, q := range queues {
			close(q)
		}
	}
	wg.Wait()
	close(errc)
	out := make([]int, rooms)
	for k := range counts {
		for r, n := range counts[k] {
			out[r] += n
		}
	}
	if err := <-errc; err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		return out, err
	}
	return out, nil
}

// slotLagSQL is the WAL between the server's position and what the reader of
// slot $1 has handled: the written position it reports (pg_stat_replication
// .write_lsn), not the slot's confirmed position, which walcast keeps behind
// by its recovery window. -1 when no reader is connected.
const slotLagSQL = `select coalesce((select pg_wal_lsn_diff(pg_current_wal_lsn(), r.write_lsn)
  from pg_replication_slots s join pg_stat_replication r on r.pid = s.active_pid
  where s.slot_name = $1), -1)::bigint`

type lagSample struct {
	at  time.Time
	lag int64
}

// sampleSlotLag samples how far the slot's reader is behind the server's WAL
// (slotLagSQL) every 100 ms until the returned function is called.
func sampleSlotLag(ctx context.Context, dsn, slot string) func() []lagSample {
	ctx, cancel := context.WithCancel(ctx)
	var out []lagSample
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return
		}
		defer conn.Close(context.Background())
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			var lag int64
			err := conn.QueryRow(ctx, slotLagSQL, slot).Scan(&lag)
			if err == nil {
				out = append(out, lagSample{time.Now(), lag})
			}
		}
	}()
	return func() []lagSample { cancel(); <-done; return out }
}

func summarizeLag(res *Result, s []lagSample) {
	if len(s) == 0 {
		return
	}
	h := NewHist()
	var first, last float64
	q := max(len(s)/4, 1)
	for i, x := range s {
		h.Record(x.lag)
		if i < q {
			first += float64(x.lag)
		}
		if i >= len(s)-q {
			last += float64(x.lag)
		}
	}
	res.SlotLagMax = h.Max
	res.SlotLagP99 = int64(h.Quantile(0.99))
	res.SlotLagFirst, res.SlotLagLast = first/float64(q), last/float64(q)
}
