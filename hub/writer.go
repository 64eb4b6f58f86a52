package hub

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/walcast/walcast/hub/internal/wsframe"
)

// writerState says who may write to a connection's socket.
type writerState uint8

const (
	// writerIdle: nobody writes. The queue is empty, or held (a recovery
	// replay in progress, or a polling session whose GET takes it).
	writerIdle writerState = iota
	// writerInline: a broadcaster writes one framed broadcast straight into
	// the socket with one non-blocking write (deliverInline).
	writerInline
	// writerFlushing: a pool worker owns the socket and drains the queue,
	// several frames per writev, then the close frame if the session closed.
	// Set when the flush is handed to the pool, before a worker runs it.
	writerFlushing
	// writerDone: the socket is closed for writing (close frame sent, hard
	// close or write error). Final.
	writerDone
)

// writer is a connection's write side: the outbound queue and the one state
// machine that decides who writes to the socket. Its fields are guarded by
// conn.mu and changed only by the methods in this file, except deadline,
// which only the socket's current owner (writerInline or writerFlushing)
// touches.
//
// Transitions (WebSocket; on polling the queue is taken by GETs and the state
// stays idle):
//
//	idle     → inline    deliverInline: queue empty, not held, WebSocket
//	inline   → idle      the frame went out whole
//	inline   → flushing  the kernel took part of it (the rest is queued first)
//	                     or the session closed meanwhile
//	idle     → flushing  kickLocked: frames queued and not held; or a
//	                     graceful close (flush, then the close frame)
//	flushing → idle      the queue is empty, or a recovery replay holds it
//	flushing → done      close frame written, hard close seen, write error
//	idle     → done      hard close (the socket is closed at once)
//
// A hard close from any state closes the socket, which fails the owner's
// blocked write; the owner then moves to done. Flushes run on a server-wide
// pool of goroutines (writerPool) that outlive one flush, so a burst costs no
// goroutine start and no stack growth per connection.
type writer struct {
	c        *conn
	nc       net.Conn        // the upgraded connection
	rc       syscall.RawConn // nc's raw conn for inline writes; nil if unsupported
	out      []frame
	outBytes int
	state    writerState
	// deadline is the write deadline last set on nc (zero = none). It is
	// moved only when it would end before now+WriteTimeout-deadlineSlack,
	// so a busy connection sets it about once per deadlineSlack, not once
	// per write.
	deadline time.Time
}

// setNetConn makes nc the connection's WebSocket (under c.mu or before use).
func (c *conn) setNetConn(nc net.Conn) {
	if c.w.c == nil {
		c.w.c = c // a conn not made by newConn (tests)
	}
	c.w.attach(nc)
}

// attach makes nc the socket the writer writes to.
func (w *writer) attach(nc net.Conn) {
	w.nc = nc
	w.deadline = time.Time{}
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			w.rc = rc
		}
	}
}

// busyLocked reports whether someone owns the socket (inline or flushing).
func (w *writer) busyLocked() bool {
	return w.state == writerInline || w.state == writerFlushing
}

// pushLocked appends f to the queue; force skips the byte budget (pings,
// close). It returns false when f does not fit in MaxQueueBytes.
func (w *writer) pushLocked(f frame, force bool) bool {
	cost := frameCost(f)
	if !force && w.outBytes+cost > w.c.srv.cfg.MaxQueueBytes {
		return false
	}
	if w.out == nil {
		w.out = getFrames()
	}
	w.out = append(w.out, f)
	w.outBytes += cost
	return true
}

// takeLocked removes and returns every queued frame.
func (w *writer) takeLocked() []frame {
	fs := w.out
	w.out = nil
	w.outBytes = 0
	return fs
}

// replayLocked puts a recovery replay's frames first in the queue, drops the
// held frames the replay already holds (same offset), and kicks the writer.
func (w *writer) replayLocked(fs []frame, seen map[string]struct{}) {
	size := 0
	for _, f := range fs {
		size += frameCost(f)
	}
	for _, f := range w.out {
		if _, dup := seen[f.off]; dup && f.off != "" {
			continue
		}
		fs = append(fs, f)
		size += frameCost(f)
	}
	w.out, w.outBytes = fs, size
	w.kickLocked()
}

// kickLocked makes the transport send what is queued: on WebSocket the pool
// flushes it, on polling the pending GET is woken.
func (w *writer) kickLocked() {
	c := w.c
	if c.holding > 0 {
		return
	}
	switch {
	case c.transport == transportWebSocket && w.nc != nil:
		if w.state == writerIdle && (len(w.out) > 0 || c.closed) {
			w.flushLocked()
		}
	case c.pollNotify != nil:
		select {
		case c.pollNotify <- struct{}{}:
		default:
		}
	}
}

// flushLocked hands the socket to the pool (idle → flushing).
func (w *writer) flushLocked() {
	w.state = writerFlushing
	w.c.srv.writers.run(w)
}

// closeLocked is the write side of conn.close (closed is already set). hard
// closes the socket at once; else the queue is flushed and the close frame
// follows (WebSocket), or a close packet is queued for the GET (polling).
func (w *writer) closeLocked(reason Reason, hard bool) {
	c := w.c
	if c.transport == transportWebSocket && w.nc != nil {
		switch {
		case hard:
			w.nc.Close()
			if w.state == writerIdle {
				w.state = writerDone
			}
		case w.state == writerIdle:
			w.flushLocked()
		}
		return
	}
	// polling: the pending (or next) GET gets the close packet.
	// A client that sent close gets a noop for its pending GET.
	fc := frameClose
	if reason == ReasonTransportClose {
		fc = frameNoop
	}
	w.pushLocked(frame{data: fc, op: opText}, true)
	w.kickLocked()
}

// abortLocked closes the socket of an already closed session at once (a hard
// close after a graceful one: the flush is stuck or no longer wanted).
func (w *writer) abortLocked() {
	if w.nc == nil {
		return
	}
	w.nc.Close()
	if w.state == writerIdle {
		w.state = writerDone
	}
}

// flush drains the queue with writev until it is empty (flushing → idle),
// then writes the close frame if the session closed (flushing → done). It
// runs on a pool worker.
func (w *writer) flush() {
	c := w.c
	for {
		c.mu.Lock()
		if c.holding > 0 && !c.closed {
			w.state = writerIdle // a recovery replay goes first; it kicks again
			c.mu.Unlock()
			return
		}
		fs := w.takeLocked()
		closed, hard, nc := c.closed, c.hard, w.nc
		if hard {
			w.state = writerDone
			c.mu.Unlock()
			if fs != nil {
				putFrames(fs)
			}
			return
		}
		if len(fs) == 0 && !closed {
			w.state = writerIdle
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		err := w.writeFrames(nc, fs)
		if fs != nil {
			putFrames(fs)
		}
		if err != nil {
			reason := ReasonTransportError
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				reason = ReasonWriteTimeout
			}
			c.mu.Lock()
			w.state = writerDone
			c.mu.Unlock()
			c.close(reason, true)
			return
		}
		if closed {
			w.writeClose(nc)
			return
		}
	}
}

// writeClose sends the close frame of a closed session and closes the socket
// (flushing → done).
func (w *writer) writeClose(nc net.Conn) {
	c := w.c
	code := websocket.CloseNormalClosure
	c.mu.Lock()
	if c.closeReason == ReasonShutdown {
		code = websocket.CloseGoingAway
	}
	if c.closeCode != 0 {
		code = c.closeCode
	}
	text := c.closeText
	c.mu.Unlock()
	w.deadline = time.Now().Add(time.Second)
	nc.SetWriteDeadline(w.deadline)
	nc.Write(wsframe.AppendClose(nil, code, text))
	c.mu.Lock()
	w.state = writerDone
	c.hard = true
	c.mu.Unlock()
	nc.Close()
}

// deadlineSlack is how far the write deadline may lag behind
// now+WriteTimeout before it is moved: a write that stalls is failed after
// between WriteTimeout-deadlineSlack and WriteTimeout.
func deadlineSlack(timeout time.Duration) time.Duration { return timeout / 8 }

// armDeadline makes sure nc's write deadline is at least
// WriteTimeout-deadlineSlack away, setting it (one timer update) only when it
// is not. The deadline stays set between flushes: an inline write that finds
// it expired queues its frame instead, and the flush moves it.
func (w *writer) armDeadline(nc net.Conn) {
	timeout := w.c.srv.cfg.WriteTimeout
	now := time.Now()
	if w.deadline.Sub(now) >= timeout-deadlineSlack(timeout) {
		return
	}
	w.deadline = now.Add(timeout)
	nc.SetWriteDeadline(w.deadline)
}

type writeScratch struct {
	hdr  []byte
	bufs net.Buffers
	tmp  net.Buffers // consumed by WriteTo
}

var scratchPool = sync.Pool{New: func() any { return new(writeScratch) }}

// writeFrames writes fs with one writev per maxWriteBatch frames.
func (w *writer) writeFrames(nc net.Conn, fs []frame) error {
	sc := scratchPool.Get().(*writeScratch)
	defer func() {
		clear(sc.bufs[:cap(sc.bufs)])
		sc.bufs = sc.bufs[:0]
		sc.tmp = nil
		sc.hdr = sc.hdr[:0]
		scratchPool.Put(sc)
	}()
	for len(fs) > 0 {
		n := min(len(fs), maxWriteBatch)
		batch := fs[:n]
		fs = fs[n:]
		sc.hdr = sc.hdr[:0]
		for _, f := range batch {
			if f.op != opRaw {
				sc.hdr = wsframe.AppendHeader(sc.hdr, f.op, len(f.data))
			}
		}
		sc.bufs = sc.bufs[:0]
		h := sc.hdr
		for _, f := range batch {
			if f.op != opRaw {
				hl := wsframe.HeaderLen(len(f.data))
				sc.bufs = append(sc.bufs, h[:hl:hl])
				h = h[hl:]
			}
			if len(f.data) > 0 {
				sc.bufs = append(sc.bufs, f.data)
			}
		}
		w.armDeadline(nc)
		sc.tmp = sc.bufs
		if _, err := sc.tmp.WriteTo(nc); err != nil {
			return err
		}
	}
	return nil
}

// writerLinger is how long a pool worker waits for another flush before it
// exits (it exits after one to two lingers without work).
const writerLinger = time.Second

// writerPool runs flushes on goroutines that stay for writerLinger after
// their last one, instead of one new goroutine per connection per burst: a
// started goroutine grows its stack to the writev path's depth before every
// first write, which cost about 15 % of fan-out CPU. An idle connection still
// holds no goroutine; a flush stuck on a slow client holds one worker, and
// the next flush finds no worker waiting and starts another. The Server owns
// the workers: Shutdown stops the waiting ones and waits for the rest.
type writerPool struct {
	work chan *writer  // unbuffered: a send succeeds only if a worker waits
	stop chan struct{} // closed by Shutdown: waiting workers exit
	once sync.Once
	live atomic.Int32 // running workers
}

func (p *writerPool) init() {
	p.work = make(chan *writer)
	p.stop = make(chan struct{})
}

// run flushes w on a waiting worker, or on a new one.
func (p *writerPool) run(w *writer) {
	select {
	case p.work <- w:
	default:
		p.live.Add(1)
		go p.worker(w)
	}
}

// close makes waiting workers exit; later flushes still run (on a worker
// that exits after its flush). It waits until deadline for the running ones.
func (p *writerPool) close(deadline time.Time) {
	p.once.Do(func() { close(p.stop) })
	for p.live.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
}

func (p *writerPool) worker(w *writer) {
	defer p.live.Add(-1)
	w.flush()
	select {
	case <-p.stop:
		return
	default:
	}
	t := time.NewTimer(writerLinger)
	defer t.Stop()
	busy := false
	for {
		select {
		case w = <-p.work:
			w.flush()
			busy = true
		case <-t.C:
			if !busy {
				return
			}
			busy = false
			t.Reset(writerLinger)
		case <-p.stop:
			return
		}
	}
}
