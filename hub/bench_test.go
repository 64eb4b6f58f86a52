package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/walcast/walcast/hub/internal/wsframe"
	"github.com/walcast/walcast/hub/packet"
)

// attachConn connects a server-side Engine.IO session on nc (as if upgraded
// to WebSocket) with one socket in namespace "/", without a reader.
func (s *Server) attachConn(nc net.Conn) *Socket {
	c := &conn{srv: s, sid: newID(), transport: transportWebSocket}
	c.setNetConn(nc)
	s.register(c)
	n := s.namespace("/")
	sock := &Socket{id: newID(), nsp: n, c: c, hs: &Handshake{Namespace: "/", Auth: emptyAuth}}
	c.mu.Lock()
	c.sockets = map[string]*Socket{"/": sock}
	c.connTimer.Stop()
	c.mu.Unlock()
	n.rooms.addSocket(sock)
	return sock
}

func socketPair(tb testing.TB) (net.Conn, net.Conn) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		tb.Fatalf("socketpair: %v", err)
	}
	mk := func(fd int) net.Conn {
		f := os.NewFile(uintptr(fd), "sp")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			tb.Fatalf("FileConn: %v", err)
		}
		return c
	}
	return mk(fds[0]), mk(fds[1])
}

// drainer counts the bytes all clients received.
type drainer struct {
	total  atomic.Int64
	target atomic.Int64
	hit    chan struct{}
}

func (d *drainer) read(c net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 && d.total.Add(int64(n)) >= d.target.Load() {
			select {
			case d.hit <- struct{}{}:
			default:
			}
		}
		if err != nil {
			return
		}
	}
}

func (d *drainer) wait(tb testing.TB, target int64) {
	d.target.Store(target)
	for d.total.Load() < target {
		select {
		case <-d.hit:
		case <-time.After(10 * time.Second):
			tb.Fatalf("drain: got %d bytes, want %d", d.total.Load(), target)
		}
	}
}

func benchEvent() *Broadcast {
	return &Broadcast{
		Event: "order.updated",
		Args: []json.RawMessage{json.RawMessage(`{"order_id":"0b9e6c2a-4f1e-4b7a-9a55-3c2b7d1e8f00","status":"paid",` +
			`"total_cents":12990,"currency":"EUR","shop_id":42,"items":3,"updated_at":"2026-11-22T05:00:00.123456Z"}`)},
		CommitTime: time.Time{},
	}
}

// BenchmarkBroadcast measures one Broadcast to subs sockets, including the
// time until every byte has reached the client ends (drained per op). The
// reported ns/delivery and allocs/delivery divide by subs.
func BenchmarkBroadcast(b *testing.B) {
	for _, subs := range []int{1, 100, 1000, 10000} {
		for _, kind := range []string{"unix", "pipe"} {
			if kind == "unix" && subs > 5000 {
				continue // 2 fds per pair; ulimit -n is 20000 here
			}
			b.Run(fmt.Sprintf("subs=%d/conn=%s", subs, kind), func(b *testing.B) {
				srv, err := New(Config{Logger: slog.New(slog.DiscardHandler), MaxQueueBytes: 64 << 20})
				if err != nil {
					b.Fatal(err)
				}
				d := &drainer{hit: make(chan struct{}, 1)}
				var clients []net.Conn
				var wg sync.WaitGroup
				for range subs {
					var sc, cc net.Conn
					if kind == "unix" {
						sc, cc = socketPair(b)
					} else {
						sc, cc = net.Pipe()
					}
					srv.attachConn(sc)
					clients = append(clients, cc)
					wg.Go(func() { d.read(cc) })
				}
				bc := benchEvent()
				text, _ := encodeBroadcast(bc, false, "")
				per := int64(wsframe.HeaderLen(len(text.data)) + len(text.data))
				var ms0, ms1 runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&ms0)
				var sent int64
				var ru0, ru1 syscall.Rusage
				syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
				b.ReportAllocs()
				b.SetBytes(per * int64(subs))
				start := time.Now()
				for b.Loop() {
					srv.Broadcast(context.Background(), bc)
					sent++
					d.wait(b, sent*per*int64(subs))
				}
				el := time.Since(start)
				syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
				cpu := time.Duration(ru1.Utime.Nano() - ru0.Utime.Nano() + ru1.Stime.Nano() - ru0.Stime.Nano())
				runtime.ReadMemStats(&ms1)
				deliveries := float64(sent) * float64(subs)
				b.ReportMetric(float64(el.Nanoseconds())/deliveries, "ns/delivery")
				// process CPU (hub + the in-process client drains) per delivery
				b.ReportMetric(float64(cpu.Nanoseconds())/deliveries, "cpu-ns/delivery")
				b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/deliveries, "allocs/delivery")
				for _, c := range clients {
					c.Close()
				}
				srv.shutdown(canceledCtx())
				wg.Wait()
			})
		}
	}
}

func BenchmarkEncodeEvent(b *testing.B) {
	bc := benchEvent()
	b.ReportAllocs()
	for b.Loop() {
		encodeBroadcast(bc, true, "123456789-0")
	}
}

func BenchmarkDecodeEvent(b *testing.B) {
	p := []byte(`2["order.updated",{"order_id":"0b9e6c2a","status":"paid","total_cents":12990}]`)
	b.ReportAllocs()
	for b.Loop() {
		packet.ParseSocket(p)
	}
}

var _ = io.Discard

func canceledCtx() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
