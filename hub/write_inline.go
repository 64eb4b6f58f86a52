package hub

import (
	"errors"
	"os"
	"syscall"

	"github.com/walcast/walcast/hub/internal/wsframe"
)

// opRaw marks a queued frame whose bytes are already WebSocket-framed (the
// unwritten rest of an inline write).
const opRaw byte = 0

// inlineWrite is one broadcast frame, framed once, that Broadcast tries to
// write straight into each idle receiver's socket with one non-blocking
// write(2): no goroutine start, no scheduling, no deadline timer for the
// common case of an idle connection with room in its kernel buffer. It is
// used by one goroutine at a time (the broadcaster).
type inlineWrite struct {
	wire []byte // WebSocket frame header + Engine.IO packet
	n    int
	err  error
	fn   func(fd uintptr) bool
}

func newInlineWrite(f frame) *inlineWrite {
	wire := wsframe.AppendHeader(make([]byte, 0, len(f.data)+wsframe.MaxHeaderLen), f.op, len(f.data))
	w := &inlineWrite{wire: append(wire, f.data...)}
	w.fn = func(fd uintptr) bool {
		w.n, w.err = syscall.Write(int(fd), w.wire)
		return true // one attempt: never wait for writability here
	}
	return w
}

// deliverInline delivers f (framed in iw) to c; see writer.deliverInline.
func (c *conn) deliverInline(iw *inlineWrite, f frame) bool { return c.w.deliverInline(iw, f) }

// deliverInline delivers f (framed in iw) to the connection: written at once
// when it is an idle WebSocket (idle → inline → idle), else queued like
// enqueue1. It never blocks on the client.
func (w *writer) deliverInline(iw *inlineWrite, f frame) bool {
	c := w.c
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	if w.rc == nil || w.state != writerIdle || len(w.out) > 0 || c.holding > 0 || c.replayed != nil || c.transport != transportWebSocket {
		c.mu.Unlock()
		return c.enqueue1(f)
	}
	w.state = writerInline // this goroutine owns the socket's write side now
	rc := w.rc
	c.mu.Unlock()

	iw.n, iw.err = 0, nil
	err := rc.Write(iw.fn)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = nil // an expired deadline of an earlier flush: nothing written, queue it
	}
	n := max(iw.n, 0)
	if err == nil && iw.err != nil && !errors.Is(iw.err, syscall.EAGAIN) && !errors.Is(iw.err, syscall.EINTR) {
		err = iw.err
	}
	c.mu.Lock()
	w.state = writerIdle
	if err != nil {
		c.mu.Unlock()
		c.close(ReasonTransportError, true)
		return false
	}
	if n < len(iw.wire) {
		// Kernel buffer full: the rest goes first in the queue, for the pool.
		rest := frame{data: iw.wire[n:], op: opRaw, off: f.off}
		fs := getFrames()
		fs = append(fs, rest)
		fs = append(fs, w.out...)
		if w.out != nil {
			putFrames(w.out)
		}
		w.out = fs
		w.outBytes += len(rest.data)
	}
	switch {
	case c.hard:
		w.state = writerDone
	case len(w.out) > 0 || c.closed:
		w.flushLocked()
	}
	c.mu.Unlock()
	return true
}
