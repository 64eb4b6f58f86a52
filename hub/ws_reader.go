package hub

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Errors of the WebSocket frame reader.
var (
	errFrameTooBig   = errors.New("hub: websocket message over MaxPayload")
	errClientClosed  = errors.New("hub: websocket closed by client")
	errFrameProtocol = errors.New("hub: websocket protocol error")
)

// wsMessage is one complete data message read from a client.
type wsMessage struct {
	binary bool
	data   []byte
}

// readWSFrames reads client frames from nc until one data message is
// complete. It has no buffer of its own (the 10-byte header scratch lives in
// the conn), so an idle connection parks in a plain Read on a small stack
// and holds no read buffer; gorilla/websocket is used only for the upgrade
// handshake. Pings are answered through the writer; a close frame returns
// errClientClosed.
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
		switch n {
		case 126:
			if _, err := io.ReadFull(nc, c.hdr[2:4]); err != nil {
				return msg, err
			}
			n = int64(binary.BigEndian.Uint16(c.hdr[2:4]))
		case 127:
			if _, err := io.ReadFull(nc, c.hdr[2:10]); err != nil {
				return msg, err
			}
			u := binary.BigEndian.Uint64(c.hdr[2:10])
			if u > 1<<62 {
				return msg, errFrameTooBig
			}
			n = int64(u)
		}
		// The masking key and the payload are read together: one read(2)
		// for the usual small message after the two header bytes.
		var key [4]byte
		if op >= 8 { // control frame
			if !fin || n > 125 {
				return msg, fmt.Errorf("%w: bad control frame", errFrameProtocol)
			}
			kp := make([]byte, 4+n)
			if _, err := io.ReadFull(nc, kp); err != nil {
				return msg, err
			}
			copy(key[:], kp)
			p := kp[4:]
			maskBytes(key, p)
			switch op {
			case 8:
				return msg, errClientClosed
			case 9:
				c.enqueue(frame{data: p, op: opPong})
			case 10:
			default:
				return msg, fmt.Errorf("%w: unknown control opcode %d", errFrameProtocol, op)
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
		msg.data = append(msg.data, make([]byte, 4+n)...)
		if _, err := io.ReadFull(nc, msg.data[start:]); err != nil {
			return msg, err
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

func maskBytes(key [4]byte, b []byte) {
	for i := range b {
		b[i] ^= key[i&3]
	}
}
