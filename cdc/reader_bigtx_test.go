package cdc_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walcast/walcast/cdc"
	"github.com/walcast/walcast/cdc/pgtest"
)

// bigRows is the size of the big transaction: a million rows, in CI too.
const bigRows = 1_000_000

// bigMapper: one small event per row, so the memory measured is the reader's
// and the pipeline's, not a mapper's.
type bigMapper struct{}

func (bigMapper) Map(dst []cdc.Event, c *cdc.Change) ([]cdc.Event, error) {
	if c.Op != cdc.OpInsert {
		return dst, nil
	}
	return append(dst, cdc.Event{
		ID:      cdc.EventID{LSN: c.CommitLSN, Index: c.Index},
		Room:    "big",
		Payload: append([]byte(nil), c.New[0].Data...),
	}), nil
}

// countingSink counts events and publish calls, checks the events come in
// index order, and counts chunks published while the reader had already
// acknowledged past the transaction (it must not: the transaction's end LSN
// may only be acknowledged after its last chunk).
type countingSink struct {
	n          atomic.Int64
	calls      int
	next       uint32
	badSeqs    int
	p          *cdc.Pipeline
	ackAtStart cdc.LSN
	earlyAcks  int
}

func (s *countingSink) Publish(_ context.Context, evs []cdc.Event) error {
	s.calls++
	if s.calls == 1 {
		s.ackAtStart = s.p.Stats().AckedLSN
	} else if s.p.Stats().AckedLSN != s.ackAtStart {
		s.earlyAcks++
	}
	for _, e := range evs {
		if e.ID.Index != s.next {
			s.badSeqs++
		}
		s.next = e.ID.Index + 1
	}
	s.n.Add(int64(len(evs)))
	return nil
}

// vmHWM returns the peak resident set size of process pid ("self" for this
// one) in kB, from /proc/<pid>/status.
func vmHWM(pid string) (int64, error) {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "VmHWM:" {
			return strconv.ParseInt(f[1], 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%s/status", pid)
}

// bigTxChild streams until it has seen WALCAST_TEST_ROWS events and acked the
// transaction, then prints "DONE <events> <seconds> <VmHWM kB> <bad seqs>".
func bigTxChild(ctx context.Context) error {
	want, _ := strconv.ParseInt(os.Getenv("WALCAST_TEST_ROWS"), 10, 64)
	sink := &countingSink{}
	p, err := cdc.NewPipeline(cdc.PipelineConfig{
		Reader: cdc.ReaderConfig{
			DSN: os.Getenv("WALCAST_TEST_DSN"), Slot: os.Getenv("WALCAST_TEST_SLOT"),
			HeartbeatInterval: -1, StatusInterval: time.Second, Logger: childLogger(),
		},
		Transformer: bigMapper{},
		Sink:        sink,
	})
	if err != nil {
		return err
	}
	sink.p = p
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- p.Run(ctx) }()
	// Done when every row arrived and the transaction's commit is acknowledged.
	for st := p.Stats(); sink.n.Load() < want || st.Transactions < 1 || st.AckedLSN < st.ReceivedLSN; st = p.Stats() {
		select {
		case err := <-done:
			return fmt.Errorf("pipeline stopped after %d events: %w", sink.n.Load(), err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	elapsed := time.Since(start)
	cancel()
	<-done
	hwm, err := vmHWM("self")
	if err != nil {
		return err
	}
	fmt.Printf("DONE %d %.3f %d %d %d %d\n", sink.n.Load(), elapsed.Seconds(), hwm, sink.badSeqs, sink.calls, sink.earlyAcks)
	return nil
}

// TestReader_BigTransaction: one 1,000,000-row transaction passes through a
// reader process with bounded memory. The child reports its own peak RSS.
func TestReader_BigTransaction(t *testing.T) {
	const maxRSSkB = 300 << 10 // 300 MB
	c := pgtest.New(t, pgtest.Options{})
	db := testDB(t, c, `CREATE TABLE big (id int PRIMARY KEY, k int, pad text)`)
	dsn := c.DSN(db)
	execEach(t, dsn, fmt.Sprintf(`SELECT pg_create_logical_replication_slot('%s', 'pgoutput')`, db))
	start := time.Now()
	execEach(t, dsn, fmt.Sprintf(`INSERT INTO big SELECT g, g %% 100, repeat('x', 40) FROM generate_series(1, %d) g`, bigRows))
	target := mustLSN(t, queryValue(t, dsn, "SELECT pg_current_wal_lsn()::text"))
	t.Logf("committed %d rows in one transaction in %v (WAL now %s)", bigRows, time.Since(start).Round(time.Millisecond), target)

	var result string
	_, wait := startChild(t, "bigtx", []string{
		"WALCAST_TEST_DSN=" + dsn, "WALCAST_TEST_SLOT=" + db,
		"WALCAST_TEST_ROWS=" + strconv.Itoa(bigRows),
	}, func(s string) {
		if strings.HasPrefix(s, "DONE ") {
			result = s
		}
	})
	timer := time.AfterFunc(5*time.Minute, func() { t.Error("big transaction child still running after 5 minutes; killing it") })
	err := wait()
	timer.Stop()
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	var n, hwm int64
	var secs float64
	var badSeqs, calls, earlyAcks int
	if _, err := fmt.Sscanf(result, "DONE %d %f %d %d %d %d", &n, &secs, &hwm, &badSeqs, &calls, &earlyAcks); err != nil {
		t.Fatalf("child result %q: %v", result, err)
	}
	t.Logf("big transaction: %d rows streamed in %d Publish calls and acked in %.2fs (%.0f rows/s), child peak RSS (VmHWM) %d MB", n, calls, secs, float64(n)/secs, hwm>>10)
	if calls < 2 || earlyAcks != 0 {
		t.Errorf("%d Publish calls, %d of them after the transaction was acknowledged; want chunks (>1) and no ack before the last", calls, earlyAcks)
	}
	if n != bigRows || badSeqs != 0 {
		t.Errorf("child saw %d events (%d out of order), want %d in order", n, badSeqs, bigRows)
	}
	if hwm > maxRSSkB {
		t.Errorf("child peak RSS %d MB, want < %d MB", hwm>>10, maxRSSkB>>10)
	}
}
