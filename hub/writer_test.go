package hub

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestWriter_StuckClientWriteTimeout: a client that stops reading, with a
// queue budget too large to trip, is dropped as "write timeout" once its
// write stalls for WriteTimeout, although the deadline is moved lazily.
func TestWriter_StuckClientWriteTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	srv, err := New(Config{Logger: slog.New(slog.DiscardHandler), MaxQueueBytes: 256 << 20, WriteTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	sc, cc := socketPair(t)
	defer cc.Close() // never read
	sock := srv.attachConn(sc)
	c := sock.c
	big := &Broadcast{Event: "big", Args: []json.RawMessage{json.RawMessage(`"` + strings.Repeat("x", 64<<10) + `"`)}}
	// Fill the socket buffers: a later write must block.
	start := time.Now()
	for range 200 {
		srv.Broadcast(t.Context(), big)
	}
	deadline := time.Now().Add(15 * time.Second) // load average 6 tolerated
	for {
		c.mu.Lock()
		closed, reason, state := c.closed, c.closeReason, c.w.state
		c.mu.Unlock()
		if closed && state == writerDone {
			if reason != ReasonWriteTimeout {
				t.Fatalf("closed as %q, want %q", reason, ReasonWriteTimeout)
			}
			if el := time.Since(start); el < timeout-deadlineSlack(timeout) {
				t.Fatalf("closed after %v, before WriteTimeout-slack (%v)", el, timeout-deadlineSlack(timeout))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not closed after 15 s (closed %v, reason %q, writer state %d)", closed, reason, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
	srv.shutdown(canceledCtx())
}

// TestWriter_States walks the writer through idle → flushing → idle and a
// graceful close (flushing → done), and checks that a queued frame reaches
// the client.
func TestWriter_States(t *testing.T) {
	srv, err := New(Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	socks, wait := inlineReceivers(t, srv, 1)
	c := socks[0].c
	state := func() writerState {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.w.state
	}
	waitState := func(want writerState) {
		t.Helper()
		for i := 0; state() != want; i++ {
			if i > 1500 {
				t.Fatalf("writer state %d, want %d", state(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if s := state(); s != writerIdle {
		t.Fatalf("new connection: writer state %d, want idle", s)
	}
	f := frame{data: []byte("42[\"x\"]"), op: opText}
	if !c.enqueue1(f) {
		t.Fatal("enqueue1: closed")
	}
	wait(int64(2 + len(f.data)))
	waitState(writerIdle)
	c.close(ReasonServerNamespace, false)
	waitState(writerDone)
	c.mu.Lock()
	hard := c.hard
	c.mu.Unlock()
	if !hard {
		t.Fatal("after the close frame: socket not closed")
	}
}

// TestWriter_PoolReusesAndStops: a second flush runs on the worker the first
// one started (no new goroutine), and Shutdown leaves no worker behind.
func TestWriter_PoolReusesAndStops(t *testing.T) {
	srv, err := New(Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	socks, wait := inlineReceivers(t, srv, 1)
	c := socks[0].c
	f := frame{data: []byte("42[\"x\"]"), op: opText}
	per := int64(2 + len(f.data))
	idle := func() {
		t.Helper()
		for i := 0; ; i++ {
			c.mu.Lock()
			st := c.w.state
			c.mu.Unlock()
			if st == writerIdle {
				return
			}
			if i > 1500 {
				t.Fatalf("writer state %d, want idle", st)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for i := range 3 {
		if !c.enqueue1(f) {
			t.Fatal("enqueue1: closed")
		}
		wait(int64(i+1) * per)
		idle()
		time.Sleep(200 * time.Millisecond) // the worker is back waiting (well within writerLinger)
		if n := srv.writers.live.Load(); n != 1 {
			t.Fatalf("after flush %d: %d pool workers, want 1 (reused)", i+1, n)
		}
	}
	srv.shutdown(canceledCtx())
	if n := srv.writers.live.Load(); n != 0 {
		t.Fatalf("after Shutdown: %d pool workers, want 0", n)
	}
}
