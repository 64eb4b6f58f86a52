package hub

import (
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/walcast/walcast/hub/internal/wsframe"
	"github.com/walcast/walcast/hub/packet"
	"github.com/walcast/walcast/internal/logkey"
)

// maxWriteBatch bounds the frames written with one writev (IOV_MAX is 1024 and
// every frame takes two iovecs).
const maxWriteBatch = 500

// wsReadBufferSize is small because gorilla's reader is only allocated by the
// upgrade and dropped (frames are read by wsframe.Reader). Gorilla raises a
// size under 125 to 125, and 0 would mean its 4096-byte default.
const wsReadBufferSize = 128

// writeBufferPool is never used for data (the writer frames messages itself);
// it only stops gorilla from allocating a write buffer per connection.
var writeBufferPool = &sync.Pool{}

func (s *Server) upgrader() *websocket.Upgrader {
	return &websocket.Upgrader{
		ReadBufferSize:  wsReadBufferSize,
		WriteBufferSize: 256,
		WriteBufferPool: writeBufferPool,
		CheckOrigin:     func(r *http.Request) bool { return s.originAllowed(r.Header.Get("Origin")) },
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			writeEngineError(w, status, 3, "Bad request")
		},
	}
}

// serveWebSocketOpen handles a WebSocket-only session (no sid).
func (s *Server) serveWebSocketOpen(w http.ResponseWriter, r *http.Request, slot *ipSlot) {
	ws, err := s.upgrader().Upgrade(w, r, nil)
	if err != nil {
		slot.release()
		s.m.badPacket("upgrade")
		s.log.Debug("websocket upgrade failed", logkey.Err, err)
		return
	}
	c := s.newConn(r, transportWebSocket)
	c.ip = slot
	c.setNetConn(ws.NetConn()) // gorilla did the handshake; frames are ours from here
	c.enqueue(frame{data: s.openPacket(c.sid, false), op: opText})
	s.register(c)
	go c.readLoopWS(c.w.nc)
}

// readLoopWS reads one message, handles it, and hands the next wait to a
// fresh goroutine: handling may have grown this stack (JSON, middlewares,
// handlers), and an idle connection should park on the smallest stack
// possible (measured: ~4 KiB per idle socket otherwise).
func (c *conn) readLoopWS(nc net.Conn) {
	// The idle wait: as few frames as possible below this Read (an idle
	// goroutine then stays on the minimum 2 KiB stack).
	_, err := io.ReadFull(nc, c.fr.Header())
	c.onReadable(nc, err)
}

//go:noinline
func (c *conn) onReadable(nc net.Conn, err error) {
	var msg wsframe.Message
	if err == nil {
		msg, err = c.readWSMessage(nc, true)
	}
	if err != nil {
		reason := ReasonTransportClose
		switch {
		case errors.Is(err, wsframe.ErrTooBig):
			c.srv.m.badPacket("oversize")
			c.srv.log.Debug("frame over MaxPayload", logkey.Conn, c.sid)
			c.closeGracefully(ReasonTransportError, websocket.CloseMessageTooBig)
		case errors.Is(err, wsframe.ErrProtocol):
			c.srv.m.badPacket("websocket")
			c.srv.log.Debug("websocket protocol error", logkey.Conn, c.sid, logkey.Err, err)
			c.closeGracefully(ReasonTransportError, websocket.CloseProtocolError)
		case errors.Is(err, errPreConnectBudget):
			c.srv.m.badPacket("preconnect")
			c.srv.log.Warn("client over MaxPreConnectBytes before CONNECT, closing", logkey.Conn, c.sid,
				"limit", c.srv.cfg.MaxPreConnectBytes)
			c.closeWithText(ReasonTransportError, websocket.ClosePolicyViolation, "read budget before CONNECT exhausted")
		case errors.Is(err, errControlFlood):
			c.srv.m.badPacket("flood")
			c.srv.log.Warn("client pings over MaxInboundRate, closing", logkey.Conn, c.sid, "rate", c.srv.cfg.MaxInboundRate)
			c.closeWithText(ReasonFlood, websocket.ClosePolicyViolation, "ping flood")
		case errors.Is(err, errPongQueueFull):
			c.srv.log.Warn("client over MaxQueueBytes with pongs it does not read, closed as slow", logkey.Conn, c.sid,
				"limit", c.srv.cfg.MaxQueueBytes)
		case errors.Is(err, wsframe.ErrClosed):
			c.closeGracefully(ReasonTransportClose, websocket.CloseNormalClosure)
		}
		c.close(reason, true)
		c.finishNow()
		return
	}
	c.readMu.Lock()
	ok := c.onWSMessage(msg)
	c.readMu.Unlock()
	if !ok {
		c.close(ReasonTransportClose, false)
		c.waitWriter()
		c.close(ReasonTransportClose, true)
		c.finishNow()
		return
	}
	go c.readLoopWS(nc)
}

// closeGracefully closes with a close frame carrying code, sent by the writer.
func (c *conn) closeGracefully(reason Reason, code int) {
	c.mu.Lock()
	if !c.closed {
		c.closeCode = code
	}
	c.mu.Unlock()
	c.close(reason, false)
	c.waitWriter()
}

// closeWithText closes with a close frame carrying code and text, sent by
// the writer (bounded by WriteTimeout).
func (c *conn) closeWithText(reason Reason, code int, text string) {
	c.mu.Lock()
	if !c.closed {
		c.closeCode = code
		c.closeText = text
	}
	c.mu.Unlock()
	c.close(reason, false)
	c.waitWriter()
}

// waitWriter waits (bounded) for the writer to flush and send the close frame.
func (c *conn) waitWriter() {
	for deadline := time.Now().Add(c.srv.cfg.WriteTimeout); time.Now().Before(deadline); {
		c.mu.Lock()
		busy := c.w.busyLocked()
		c.mu.Unlock()
		if !busy {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (c *conn) finishNow() {
	c.mu.Lock()
	r := c.closeReason
	c.mu.Unlock()
	c.finish(r)
}

// onWSMessage handles one WebSocket message on the main transport; it returns
// false when the connection must close.
func (c *conn) onWSMessage(m wsframe.Message) bool {
	if m.Binary {
		return c.onEnginePacket(packet.Engine{Type: packet.EngineMessage, Data: m.Data, Binary: true})
	}
	p, err := packet.ParseEngine(m.Data)
	if err != nil {
		c.badInput("engine", err)
		return false
	}
	return c.onEnginePacket(p)
}

// onEnginePacket handles one packet from the client on the main transport.
func (c *conn) onEnginePacket(p packet.Engine) bool {
	switch p.Type {
	case packet.EngineMessage:
		if !c.allowPacket() {
			c.srv.m.badPacket("flood")
			c.srv.log.Warn("client over MaxInboundRate, closing", logkey.Conn, c.sid, "rate", c.srv.cfg.MaxInboundRate)
			c.close(ReasonFlood, false)
			return false
		}
		return c.onMessage(p.Data, p.Binary)
	case packet.EnginePong:
		c.onPong()
	case packet.EngineClose:
		c.close(ReasonTransportClose, false)
		return false
	case packet.EngineNoop, packet.EngineUpgrade:
	case packet.EnginePing:
		c.badInput("engine", errors.New("invalid heartbeat direction"))
		return false
	default:
		c.badInput("engine", errors.New("unexpected packet type"))
		return false
	}
	return true
}

// badInput logs, counts and closes the connection for malformed input.
// On WebSocket the close frame carries code 1002 (protocol error) and the
// reason, so a developer sees it in the browser's network tab.
func (c *conn) badInput(kind string, err error) {
	c.srv.m.badPacket(kind)
	c.srv.log.Debug("bad packet, closing connection", logkey.Conn, c.sid, logkey.Kind, kind, logkey.Err, err)
	c.mu.Lock()
	if !c.closed {
		c.closeCode = websocket.CloseProtocolError
		c.closeText = err.Error()
	}
	c.mu.Unlock()
	c.close(ReasonParseError, false)
}
