package hub

import (
	"context"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"testing"
)

// inlineReceivers attaches n idle WebSocket sockets on socket pairs whose
// client ends are drained; wait blocks until want bytes reached them in all
// (bounded in count).
func inlineReceivers(t *testing.T, srv *Server, n int) (socks []*Socket, wait func(want int64)) {
	t.Helper()
	d := &drainer{hit: make(chan struct{}, 1)}
	var wg sync.WaitGroup
	var clients []net.Conn
	for range n {
		sc, cc := socketPair(t)
		socks = append(socks, srv.attachConn(sc))
		clients = append(clients, cc)
		wg.Go(func() { d.read(cc) })
	}
	t.Cleanup(func() {
		for _, c := range clients {
			c.Close()
		}
		srv.shutdown(canceledCtx())
		wg.Wait()
	})
	return socks, func(want int64) {
		for i := 0; d.total.Load() < want; i++ {
			if i > 10_000_000 {
				t.Fatalf("drain: got %d bytes, want %d", d.total.Load(), want)
			}
			runtime.Gosched()
		}
	}
}

// TestInlineWrite_Allocs pins the inline write path: delivering a framed
// broadcast to an idle WebSocket receiver allocates nothing, so a Broadcast to
// 64 receivers allocates no more than one to a single receiver.
func TestInlineWrite_Allocs(t *testing.T) {
	srv, err := New(Config{Logger: slog.New(slog.DiscardHandler), MaxQueueBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	socks, wait := inlineReceivers(t, srv, maxInlineTargets)
	bc := benchEvent()
	text, _ := encodeBroadcast(bc, false, "")
	iw := newInlineWrite(text)
	per := int64(len(iw.wire))

	// AllocsPerRun runs with GOMAXPROCS=1, where the drains only run between
	// calls; runs*len(iw.wire) bytes fit in the socket buffers, so every
	// write completes inline without waiting for them.
	const runs = 100
	c := socks[0].c
	allocs := testing.AllocsPerRun(runs, func() {
		if !c.deliverInline(iw, text) {
			t.Fatal("deliverInline: the receiver was closed")
		}
	})
	if allocs != 0 {
		t.Errorf("deliverInline to an idle receiver: %v allocs, want 0", allocs)
	}
	total := (runs + 1) * per
	wait(total)
	assertIdle(t, socks)

	// One receiver, then all 64: the per-broadcast allocations are the
	// encoding and the inline frame, the same for any audience up to 64.
	one := &Broadcast{Event: bc.Event, Args: bc.Args, Rooms: []string{socks[0].ID()}}
	perOne := testing.AllocsPerRun(runs, func() { srv.Broadcast(context.Background(), one) })
	total += (runs + 1) * per
	wait(total)
	perAll := testing.AllocsPerRun(runs, func() { srv.Broadcast(context.Background(), bc) })
	total += (runs + 1) * per * int64(len(socks))
	wait(total)
	assertIdle(t, socks)
	t.Logf("allocs per broadcast: %v to 1 receiver, %v to %d", perOne, perAll, len(socks))
	if perAll > perOne {
		t.Errorf("Broadcast to %d inline receivers: %v allocs, to 1: %v; want no more per receiver", len(socks), perAll, perOne)
	}
	if perOne > 5 {
		t.Errorf("Broadcast to 1 inline receiver: %v allocs, want at most 5", perOne)
	}
}

// assertIdle fails unless every socket's frames went out inline: none
// queued, no writer goroutine.
func assertIdle(t *testing.T, socks []*Socket) {
	t.Helper()
	for i, s := range socks {
		s.c.mu.Lock()
		queued, writing, closed := len(s.c.w.out), s.c.w.busyLocked(), s.c.closed
		s.c.mu.Unlock()
		if queued != 0 || writing || closed {
			t.Fatalf("receiver %d: %d frames queued, writer running %v, closed %v; want every write inline", i, queued, writing, closed)
		}
	}
}
