package cdc_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/cdc/pgtest"
)

// Child processes: the test binary re-executes itself with -test.run
// '^TestReaderChild$' and WALCAST_TEST_CHILD set to a mode. Without that
// variable TestReaderChild does nothing.
const childEnv = "WALCAST_TEST_CHILD"

func TestReaderChild(t *testing.T) {
	mode := os.Getenv(childEnv)
	if mode == "" {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	var err error
	switch mode {
	case "crash":
		err = crashChild(ctx)
	case "bigtx":
		err = bigTxChild(ctx)
	default:
		err = fmt.Errorf("unknown child mode %q", mode)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

func childLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// crashMapper: one event per inserted crash row, room "room:<room>", payload
// the row's per-room sequence number.
type crashMapper struct{}

func (crashMapper) Map(dst []cdc.Event, c *cdc.Change) ([]cdc.Event, error) {
	if c.Op != cdc.OpInsert || c.Relation.Name != "crash" {
		return dst, nil
	}
	return append(dst, cdc.Event{
		ID:      cdc.EventID{LSN: c.CommitLSN, Index: c.Index},
		Room:    "room:" + string(c.New[1].Data),
		Payload: append([]byte(nil), c.New[2].Data...),
	}), nil
}

// stdoutSink writes one line per event, "EV <id> <room> <seq>", with one
// write per batch, and returns (lets the reader ack) only after the write.
type stdoutSink struct{ buf []byte }

func (s *stdoutSink) Publish(_ context.Context, evs []cdc.Event) error {
	s.buf = s.buf[:0]
	for _, e := range evs {
		s.buf = fmt.Appendf(s.buf, "EV %s %s %s\n", e.ID, e.Room, e.Payload)
	}
	_, err := os.Stdout.Write(s.buf)
	return err
}

func crashChild(ctx context.Context) error {
	p, err := cdc.NewPipeline(cdc.PipelineConfig{
		Reader: cdc.ReaderConfig{
			DSN: os.Getenv("WALCAST_TEST_DSN"), Slot: os.Getenv("WALCAST_TEST_SLOT"),
			// Status updates only every second leave a window of delivered but
			// unacknowledged events for SIGKILL to hit.
			HeartbeatInterval: -1, StatusInterval: time.Second,
			BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond, Logger: childLogger(),
		},
		Transformer: crashMapper{},
		Sink:        &stdoutSink{},
		MaxBatch:    64,
	})
	if err != nil {
		return err
	}
	return p.Run(ctx)
}

// startChild starts the test binary in mode with env; lines of its stdout
// that end in a newline go to lines (a torn last line after SIGKILL is
// dropped). The returned wait reaps it.
func startChild(t *testing.T, mode string, env []string, lines func(string)) (*exec.Cmd, func() error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestReaderChild$", "-test.count=1", "-test.v=false")
	cmd.Env = append(append(os.Environ(), childEnv+"="+mode), env...)
	var stderr strings.Builder
	var mu sync.Mutex
	cmd.Stderr = writerFunc(func(b []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		if stderr.Len() < 1<<16 {
			stderr.Write(b)
		}
		return len(b), nil
	})
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		br := bufio.NewReaderSize(out, 1<<16)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return // io.EOF; a line without its newline is torn: drop it
			}
			lines(strings.TrimSuffix(line, "\n"))
		}
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	return cmd, func() error {
		<-done
		err := cmd.Wait()
		mu.Lock()
		defer mu.Unlock()
		if err != nil && stderr.Len() > 0 {
			return fmt.Errorf("%w; stderr: %s", err, stderr.String())
		}
		return err
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

var _ io.Writer = writerFunc(nil)

// TestReader_Crash: 10,000 changes in 1,000 transactions are written while
// the reader runs as a separate process that is killed with SIGKILL at three
// random moments and restarted. Every event must arrive at least once,
// duplicates must carry the same identity, and each room must see its rows in
// commit order.
func TestReader_Crash(t *testing.T) {
	const (
		txs   = 1000
		perTx = 10
		rooms = 7
		kills = 3
	)
	c := pgtest.New(t, pgtest.Options{})
	db := testDB(t, c, `CREATE TABLE crash (id int PRIMARY KEY, room int NOT NULL, seq int NOT NULL)`)
	dsn := c.DSN(db)
	execEach(t, dsn, fmt.Sprintf(`SELECT pg_create_logical_replication_slot('%s', 'pgoutput')`, db))

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("random seed %d", seed)

	// The write plan: transaction k inserts ids k*10+1..k*10+10, spread over
	// rooms; seq counts per room in commit order.
	type row struct{ room, seq int }
	want := make(map[int]row)
	nextSeq := make([]int, rooms)
	var stmts []string
	for k := range txs {
		var vals []string
		for j := range perTx {
			id := k*perTx + j + 1
			room := rng.IntN(rooms)
			nextSeq[room]++
			want[id] = row{room, nextSeq[room]}
			vals = append(vals, fmt.Sprintf("(%d,%d,%d)", id, room, nextSeq[room]))
		}
		stmts = append(stmts, "INSERT INTO crash VALUES "+strings.Join(vals, ","))
	}

	type line struct {
		run  int
		id   cdc.EventID
		room string
		seq  int
	}
	var (
		mu  sync.Mutex
		got []line
		bad []string
	)
	ids := map[cdc.EventID]bool{}
	collect := func(run int) func(string) {
		return func(s string) {
			f := strings.Fields(s)
			if len(f) != 4 || f[0] != "EV" {
				return // test framework output
			}
			id, err := cdc.ParseEventID(f[1])
			seq, err2 := strconv.Atoi(f[3])
			mu.Lock()
			defer mu.Unlock()
			if err != nil || err2 != nil {
				bad = append(bad, s)
				return
			}
			got = append(got, line{run, id, f[2], seq})
			ids[id] = true
		}
	}
	distinct := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(ids)
	}
	env := []string{"WALCAST_TEST_DSN=" + dsn, "WALCAST_TEST_SLOT=" + db}

	// Writer: 1,000 transactions over a few seconds.
	writeDone := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		conn, err := pgconn.Connect(ctx, dsn)
		if err != nil {
			writeDone <- err
			return
		}
		defer conn.Close(context.Background())
		for i, s := range stmts {
			if _, err := conn.Exec(ctx, s).ReadAll(); err != nil {
				writeDone <- err
				return
			}
			if i%5 == 4 {
				time.Sleep(40 * time.Millisecond) // ~8s of writing in all
			}
		}
		writeDone <- nil
	}()

	run := 0
	cmd, wait := startChild(t, "crash", env, collect(run))
	for k := range kills {
		// A random moment while rows are still coming: 0.3s to 2.3s into
		// this run (the writer takes about 8s).
		time.Sleep(time.Duration(300+rng.IntN(2000)) * time.Millisecond)
		n := distinct()
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("kill %d: %v", k+1, err)
		}
		err := wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("child run %d ended with %v, want killed by SIGKILL", run, err)
		}
		t.Logf("kill %d: SIGKILL after %d distinct events", k+1, n)
		run++
		cmd, wait = startChild(t, "crash", env, collect(run))
	}
	if err := <-writeDone; err != nil {
		t.Fatalf("writer: %v", err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for distinct() < txs*perTx && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // let the last child install its SIGTERM handler
	cmd.Process.Signal(syscall.SIGTERM)
	if err := wait(); err != nil {
		t.Errorf("last child run (stopped with SIGTERM): %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Errorf("%d malformed lines, first %q", len(bad), bad[0])
	}
	// Identity: every duplicate carries the same room and seq.
	first := map[cdc.EventID]line{}
	dups := 0
	for _, l := range got {
		if f, ok := first[l.id]; ok {
			dups++
			if f.room != l.room || f.seq != l.seq {
				t.Errorf("event %v delivered as %s/%d and %s/%d", l.id, f.room, f.seq, l.room, l.seq)
			}
			continue
		}
		first[l.id] = l
	}
	// At least once: each row (room, seq) arrived.
	type rs struct {
		room string
		seq  int
	}
	arrived := map[rs]bool{}
	for _, l := range first {
		arrived[rs{l.room, l.seq}] = true
	}
	missing := 0
	for id, w := range want {
		if !arrived[rs{fmt.Sprintf("room:%d", w.room), w.seq}] {
			missing++
			if missing <= 5 {
				t.Errorf("row %d (room %d seq %d) never arrived", id, w.room, w.seq)
			}
		}
	}
	if len(first) != txs*perTx || missing > 0 {
		t.Errorf("got %d distinct events (%d missing rows), want %d", len(first), missing, txs*perTx)
	}
	// Order: within each run each room's seqs strictly increase, and across
	// runs the first occurrences of each room are 1, 2, 3, ... in order.
	lastInRun := map[[2]any]int{}
	nextFirst := map[string]int{}
	seenFirst := map[cdc.EventID]bool{}
	orderErrs := 0
	for _, l := range got {
		k := [2]any{l.run, l.room}
		if prev, ok := lastInRun[k]; ok && l.seq <= prev {
			orderErrs++
			if orderErrs <= 5 {
				t.Errorf("run %d room %s: seq %d after %d (not commit order)", l.run, l.room, l.seq, prev)
			}
		}
		lastInRun[k] = l.seq
		if !seenFirst[l.id] {
			seenFirst[l.id] = true
			if l.seq != nextFirst[l.room]+1 {
				orderErrs++
				if orderErrs <= 5 {
					t.Errorf("room %s: first delivery of seq %d after seq %d", l.room, l.seq, nextFirst[l.room])
				}
			}
			nextFirst[l.room] = l.seq
		}
	}
	t.Logf("%d lines over %d runs: %d distinct events, %d duplicates (redelivered after SIGKILL), %d order errors",
		len(got), run+1, len(first), dups, orderErrs)
}
