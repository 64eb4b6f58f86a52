package hub

import (
	"errors"
	"io"
	"time"

	"github.com/walcast/walcast/hub/internal/wsframe"
)

// Errors the conn's frame handler stops a WebSocket read with.
var (
	// errPreConnectBudget: a connection read more than MaxPreConnectBytes
	// before any Socket.IO CONNECT was accepted.
	errPreConnectBudget = errors.New("hub: read budget before CONNECT exhausted")
	// errControlFlood: ping/pong frames over MaxInboundRate.
	errControlFlood = errors.New("hub: control frames over MaxInboundRate")
	// errPongQueueFull: a pong did not fit in MaxQueueBytes; the connection
	// was closed as slow.
	errPongQueueFull = errors.New("hub: pong over MaxQueueBytes")
)

// readWSMessage reads the next data message of the connection's WebSocket
// with the conn's frame reader (wsframe.Reader, whose only buffer is its
// header, so an idle connection parks in a plain Read on a small stack and
// holds no read buffer; gorilla/websocket is used only for the upgrade
// handshake). The conn is the reader's handler: pings are answered through
// the writer (each ping and pong counts against MaxInboundRate, each pong
// against MaxQueueBytes), and until a CONNECT is accepted every byte read
// counts against MaxPreConnectBytes.
//
// haveHeader says the first two header bytes are already in c.fr.Header()
// (read by the idle wait in readLoopWS).
func (c *conn) readWSMessage(nc io.Reader, haveHeader bool) (wsframe.Message, error) {
	return c.fr.ReadMessage(nc, c.srv.cfg.MaxPayload, haveHeader, c)
}

// ChargeFrame implements wsframe.Handler: n more bytes read.
func (c *conn) ChargeFrame(n int64) error { return c.chargePreConnect(n) }

// ControlFrame implements wsframe.Handler: a ping is answered with a pong
// through the writer.
func (c *conn) ControlFrame(op byte, payload []byte) error {
	if !c.allowControl() {
		return errControlFlood
	}
	if op == wsframe.OpPing && !c.enqueue1(frame{data: payload, op: opPong}) && c.closedSlow() {
		return errPongQueueFull
	}
	return nil
}

// chargePreConnect counts n bytes read by a connection with no accepted
// CONNECT yet against MaxPreConnectBytes (not in raw Engine.IO mode, which
// has no CONNECT).
func (c *conn) chargePreConnect(n int64) error {
	if c.srv.cfg.OnRawMessage != nil || c.connected.Load() {
		return nil
	}
	c.preRead += n
	if c.preRead > c.srv.cfg.MaxPreConnectBytes {
		return errPreConnectBudget
	}
	return nil
}

// allowControl takes an inbound-rate token for a ping or pong frame.
func (c *conn) allowControl() bool {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	return c.allowPacket()
}

// closedSlow reports whether c was closed for going over MaxQueueBytes.
func (c *conn) closedSlow() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed && c.closeReason == ReasonSlow
}

// probeLimits is the frame handler of an upgrade probe, which carries only
// "2probe" and "5": its pings go unanswered (the session still runs on
// polling) but take tokens of MaxInboundRate from a bucket of its own, and it
// may read at most MaxPreConnectBytes.
type probeLimits struct {
	cfg    *Config
	read   int64
	bucket tokenBucket
}

func (p *probeLimits) ChargeFrame(n int64) error {
	p.read += n
	if p.read > p.cfg.MaxPreConnectBytes {
		return errPreConnectBudget
	}
	return nil
}

func (p *probeLimits) ControlFrame(op byte, payload []byte) error {
	if !p.bucket.allow(p.cfg.MaxInboundRate, time.Now()) {
		return errControlFlood
	}
	return nil
}
