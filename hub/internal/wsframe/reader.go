package wsframe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Errors of Reader.ReadMessage.
var (
	ErrTooBig   = errors.New("wsframe: message over the size limit")
	ErrClosed   = errors.New("wsframe: close frame from the peer")
	ErrProtocol = errors.New("wsframe: protocol error")
)

// readChunk is the first allocation for a message payload; the buffer then
// at most doubles with each read, so a client announcing a large frame and
// sending nothing costs this much, not the announced length.
const readChunk = 4096

// maxFrameLen bounds a 64-bit frame length before it is converted to int64.
const maxFrameLen = 1 << 62

// Message is one complete data message.
type Message struct {
	Binary bool
	Data   []byte // never nil for a message read without error
}

// Handler is what a Reader asks about each frame. Its errors stop
// ReadMessage and are returned as they are.
type Handler interface {
	// ChargeFrame is called with the wire length (header, masking key and
	// payload) of every frame, before its payload is read.
	ChargeFrame(n int64) error
	// ControlFrame is called for every ping (OpPing) and pong (OpPong) with
	// its unmasked payload (nil when empty), which the handler may keep.
	ControlFrame(op byte, payload []byte) error
}

// Reader reads masked client frames. It has no buffer but its 10 header
// bytes, so a connection waiting for a frame holds no read buffer.
type Reader struct {
	hdr [MaxHeaderLen]byte
}

// Header returns the space for the first two header bytes of the next
// frame. A caller that waits for the next frame itself (on a small stack, or
// in slices of its own deadlines) reads them into it, then calls ReadMessage
// with haveHeader set.
func (r *Reader) Header() []byte { return r.hdr[:2] }

// ReadMessage reads frames from src until one data message is complete and
// returns it. Fragments are joined; pings and pongs between them go to h. A
// message over limit bytes gives ErrTooBig, a close frame ErrClosed, and a
// frame RFC 6455 forbids from a client (unmasked, reserved bits, bad
// fragmentation or control frame, unknown opcode) an error wrapping
// ErrProtocol. Payloads are read incrementally: memory grows with the bytes
// that arrived, never with the length a header announces.
func (r *Reader) ReadMessage(src io.Reader, limit int64, haveHeader bool, h Handler) (Message, error) {
	var msg Message
	inMessage := false
	for {
		hb := r.hdr[:2]
		if !haveHeader {
			if _, err := io.ReadFull(src, hb); err != nil {
				return msg, err
			}
		}
		haveHeader = false
		fin, rsv, op := hb[0]&0x80 != 0, hb[0]&0x70, hb[0]&0x0f
		masked, n := hb[1]&0x80 != 0, int64(hb[1]&0x7f)
		if rsv != 0 || !masked {
			return msg, fmt.Errorf("%w: rsv bits or unmasked client frame", ErrProtocol)
		}
		hlen := int64(2 + 4)
		switch n {
		case 126:
			if _, err := io.ReadFull(src, r.hdr[2:4]); err != nil {
				return msg, err
			}
			n = int64(binary.BigEndian.Uint16(r.hdr[2:4]))
			hlen += 2
		case 127:
			if _, err := io.ReadFull(src, r.hdr[2:10]); err != nil {
				return msg, err
			}
			u := binary.BigEndian.Uint64(r.hdr[2:10])
			if u > maxFrameLen {
				return msg, ErrTooBig
			}
			n = int64(u)
			hlen += 8
		}
		if err := h.ChargeFrame(hlen + n); err != nil {
			return msg, err
		}
		// The masking key and the payload are read together: one read(2)
		// for the usual small message after the two header bytes.
		var key [4]byte
		if op >= 8 { // control frame
			if !fin || n > maxControlPayload {
				return msg, fmt.Errorf("%w: bad control frame", ErrProtocol)
			}
			if op == OpClose {
				return msg, ErrClosed
			}
			if op != OpPing && op != OpPong {
				return msg, fmt.Errorf("%w: unknown control opcode %d", ErrProtocol, op)
			}
			kp := r.hdr[2:6]
			if n > 0 {
				kp = make([]byte, 4+n)
			}
			if _, err := io.ReadFull(src, kp); err != nil {
				return msg, err
			}
			var p []byte
			if n > 0 {
				copy(key[:], kp)
				p = kp[4:]
				mask(key, p)
			}
			if err := h.ControlFrame(op, p); err != nil {
				return msg, err
			}
			continue
		}
		switch {
		case op == OpContinuation && !inMessage, op != OpContinuation && inMessage:
			return msg, fmt.Errorf("%w: bad fragmentation", ErrProtocol)
		case op == OpText || op == OpBinary:
			msg.Binary = op == OpBinary
			inMessage = true
		case op != OpContinuation:
			return msg, fmt.Errorf("%w: unknown opcode %d", ErrProtocol, op)
		}
		if int64(len(msg.Data))+n > limit {
			return msg, ErrTooBig
		}
		start := len(msg.Data)
		end := start + 4 + int(n)
		for have := start; have < end; {
			step := min(end-have, max(readChunk, have-start))
			msg.Data = slices.Grow(msg.Data[:have], step)[:have+step]
			if _, err := io.ReadFull(src, msg.Data[have:]); err != nil {
				return msg, err
			}
			have += step
		}
		copy(key[:], msg.Data[start:])
		copy(msg.Data[start:], msg.Data[start+4:])
		msg.Data = msg.Data[:start+int(n)]
		mask(key, msg.Data[start:])
		if fin {
			if msg.Data == nil {
				msg.Data = []byte{}
			}
			return msg, nil
		}
	}
}
