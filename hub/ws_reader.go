package hub

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Errors of the WebSocket frame reader.
var (
	errFrameTooBig   = errors.New("hub: websocket message over MaxPayload")
	errClientClosed  = errors.New("hub: websocket closed by client")
	errFrameProtocol = errors.New("hub: websocket protocol error")
	// errPreConnectBudget: a connection read more than MaxPreConnectBytes
	// before any Socket.IO CONNECT was accepted.
	errPreConnectBudget = errors.New("hub: read budget before CONNECT exhausted")
	// errControlFlood: ping/pong frames over MaxInboundRate.
	errControlFlood = errors.New("hub: control frames over MaxInboundRate")
	// errPongQueueFull: a pong did not fit in MaxQueueBytes; the connection
	// was closed as slow.
	errPongQueueFull = errors.New("hub: pong over MaxQueueBytes")
)

// readChunk is the first allocation for a message payload; the buffer then
// at most doubles with each read, so a client announcing a large frame and
// sending nothing costs this much, not the announced length.
const readChunk = 4096

// wsMessage is one complete data message read from a client.
type wsMessage struct {
	binary bool
	data   []byte
}

// readWSFrames reads client frames from nc until one data message is
// complete. It has no buffer of its own (the 10-byte header scratch lives in
// the conn), so an idle connection parks in a plain Read on a small stack
// and holds no read buffer; gorilla/websocket is used only for the upgrade
// handshake. Payloads are read incrementally: memory grows with the bytes
// that arrived, never with the length a header announces. Pings are
// answered through the writer (each ping and pong counts against
// MaxInboundRate; each pong against MaxQueueBytes); a close frame returns
// errClientClosed. Until a CONNECT is accepted, every byte read counts
// against MaxPreConnectBytes.
//
// haveHeader says the first two header bytes are already in c.hdr (read by
// the idle wait in readLoopWS).
func (c *conn) readWSFrames(nc io.Reader, limit int64, haveHeader bool) (wsMessage, error) {
	var msg wsMessage
	inMessage := false
	for {
		h := c.hdr[:2]
		if !haveHeader {
			if _, err := io.ReadFull(nc, h); err != nil {
				return msg, err
			}
		}
		haveHeader = false
		fin, rsv, op := h[0]&0x80 != 0, h[0]&0x70, h[0]&0x0f
		masked, n := h[1]&0x80 != 0, int64(h[1]&0x7f)
		if rsv != 0 || !masked {
			return msg, fmt.Errorf("%w: rsv bits or unmasked client frame", errFrameProtocol)
		}
		hlen := int64(2 + 4)
		switch n {
		case 126:
			if _, err := io.ReadFull(nc, c.hdr[2:4]); err != nil {
				return msg, err
			}
			n = int64(binary.BigEndian.Uint16(c.hdr[2:4]))
			hlen += 2
		case 127:
			if _, err := io.ReadFull(nc, c.hdr[2:10]); err != nil {
				return msg, err
			}
			u := binary.BigEndian.Uint64(c.hdr[2:10])
			if u > 1<<62 {
				return msg, errFrameTooBig
			}
			n = int64(u)
			hlen += 8
		}
		if err := c.chargePreConnect(hlen + n); err != nil {
			return msg, err
		}
		// The masking key and the payload are read together: one read(2)
		// for the usual small message after the two header bytes.
		var key [4]byte
		if op >= 8 { // control frame
			if !fin || n > 125 {
				return msg, fmt.Errorf("%w: bad control frame", errFrameProtocol)
			}
			if op == 8 {
				return msg, errClientClosed
			}
			if op != 9 && op != 10 {
				return msg, fmt.Errorf("%w: unknown control opcode %d", errFrameProtocol, op)
			}
			kp := c.hdr[2:6]
			if n > 0 {
				kp = make([]byte, 4+n)
			}
			if _, err := io.ReadFull(nc, kp); err != nil {
				return msg, err
			}
			if !c.allowControl() {
				return msg, errControlFlood
			}
			if op == 9 {
				copy(key[:], kp)
				var p []byte
				if n > 0 {
					p = kp[4:]
					maskBytes(key, p)
				}
				if !c.enqueue1(frame{data: p, op: opPong}) && c.closedSlow() {
					return msg, errPongQueueFull
				}
			}
			continue
		}
		switch {
		case op == 0 && !inMessage, op != 0 && inMessage:
			return msg, fmt.Errorf("%w: bad fragmentation", errFrameProtocol)
		case op == 1 || op == 2:
			msg.binary = op == 2
			inMessage = true
		case op != 0:
			return msg, fmt.Errorf("%w: unknown opcode %d", errFrameProtocol, op)
		}
		if int64(len(msg.data))+n > limit {
			return msg, errFrameTooBig
		}
		start := len(msg.data)
		end := start + 4 + int(n)
		for have := start; have < end; {
			step := min(end-have, max(readChunk, have-start))
			msg.data = slices.Grow(msg.data[:have], step)[:have+step]
			if _, err := io.ReadFull(nc, msg.data[have:]); err != nil {
				return msg, err
			}
			have += step
		}
		copy(key[:], msg.data[start:])
		copy(msg.data[start:], msg.data[start+4:])
		msg.data = msg.data[:start+int(n)]
		maskBytes(key, msg.data[start:])
		if fin {
			if msg.data == nil {
				msg.data = []byte{}
			}
			return msg, nil
		}
	}
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

func maskBytes(key [4]byte, b []byte) {
	for i := range b {
		b[i] ^= key[i&3]
	}
}

// closedSlow reports whether c was closed for going over MaxQueueBytes.
func (c *conn) closedSlow() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed && c.closeReason == reasonSlow
}
