package packet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/walcast/walcast/internal/jsonw"
)

// Socket.IO v5 packet types (the first byte of a Socket.IO packet, which
// rides in an Engine.IO message).
const (
	SocketConnect      byte = '0'
	SocketDisconnect   byte = '1'
	SocketEvent        byte = '2'
	SocketAck          byte = '3'
	SocketConnectError byte = '4'
	SocketBinaryEvent  byte = '5'
	SocketBinaryAck    byte = '6'
)

// maxAckIDDigits keeps ack ids within a JavaScript safe integer.
const maxAckIDDigits = 15

// Socket is one Socket.IO packet:
//
//	<type>[<attachments>-][<nsp>,][<ack id>][JSON]
type Socket struct {
	Type        byte
	Attachments int    // binary attachments that follow (BINARY_EVENT, BINARY_ACK)
	Nsp         string // "/" when absent
	ID          int64  // ack id; -1 = none
	Data        []byte // JSON payload; nil when absent
}

// reserved are the event names a client may not send (socket.io-parser
// RESERVED_EVENTS).
var reserved = map[string]bool{
	"connect": true, "connect_error": true, "disconnect": true,
	"disconnecting": true, "newListener": true, "removeListener": true,
}

// Reserved reports whether event is a name socket.io keeps for itself, which
// no EVENT may carry.
func Reserved(event string) bool { return reserved[event] }

// Namespace returns nsp, or "/" when nsp is empty: the namespace a packet
// without one addresses.
func Namespace(nsp string) string {
	if nsp == "" {
		return "/"
	}
	return nsp
}

// ParseSocket parses a Socket.IO packet (the data of an Engine.IO message)
// and validates its payload as socket.io-parser does: JSON of the shape its
// type requires, an EVENT's name neither reserved nor missing. Data aliases
// b.
func ParseSocket(b []byte) (Socket, error) {
	p := Socket{Nsp: "/", ID: -1}
	if len(b) == 0 {
		return p, fmt.Errorf("%w: empty socket packet", ErrBadPacket)
	}
	p.Type = b[0]
	if p.Type < SocketConnect || p.Type > SocketBinaryAck {
		return p, fmt.Errorf("%w: unknown socket packet type %q", ErrBadPacket, b[0])
	}
	i := 1
	if p.Type == SocketBinaryEvent || p.Type == SocketBinaryAck {
		j := i
		for j < len(b) && b[j] >= '0' && b[j] <= '9' && j-i < 3 {
			j++
		}
		if j == i || j >= len(b) || b[j] != '-' {
			return p, fmt.Errorf("%w: bad attachments count", ErrBadPacket)
		}
		n, _ := strconv.Atoi(string(b[i:j]))
		if n > MaxAttachments {
			return p, fmt.Errorf("%w: %d attachments, limit %d", ErrBadPacket, n, MaxAttachments)
		}
		p.Attachments = n
		i = j + 1
	}
	if i < len(b) && b[i] == '/' {
		j := bytes.IndexByte(b[i:], ',')
		if j < 0 {
			p.Nsp = string(b[i:])
			i = len(b)
		} else {
			p.Nsp = string(b[i : i+j])
			i += j + 1
		}
		if !utf8.ValidString(p.Nsp) {
			return p, fmt.Errorf("%w: namespace is not UTF-8", ErrBadPacket)
		}
	}
	if j := i; j < len(b) && b[j] >= '0' && b[j] <= '9' {
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		if j-i > maxAckIDDigits {
			return p, fmt.Errorf("%w: ack id too long", ErrBadPacket)
		}
		p.ID, _ = strconv.ParseInt(string(b[i:j]), 10, 64)
		i = j
	}
	if i < len(b) {
		p.Data = b[i:]
	}
	if err := validatePayload(&p); err != nil {
		return p, err
	}
	return p, nil
}

func validatePayload(p *Socket) error {
	d := p.Data
	if d != nil && !json.Valid(d) {
		return fmt.Errorf("%w: payload is not JSON", ErrBadPacket)
	}
	first := firstNonSpace(d)
	switch p.Type {
	case SocketConnect:
		if d != nil && first != '{' {
			return fmt.Errorf("%w: CONNECT payload must be an object", ErrBadPacket)
		}
	case SocketDisconnect:
		if d != nil {
			return fmt.Errorf("%w: DISCONNECT has a payload", ErrBadPacket)
		}
	case SocketConnectError:
		if first != '{' && first != '"' {
			return fmt.Errorf("%w: CONNECT_ERROR payload must be a string or object", ErrBadPacket)
		}
	case SocketEvent, SocketBinaryEvent:
		if first != '[' {
			return fmt.Errorf("%w: EVENT payload must be an array", ErrBadPacket)
		}
		var args []json.RawMessage
		if err := json.Unmarshal(d, &args); err != nil || len(args) == 0 {
			return fmt.Errorf("%w: EVENT payload must be a non-empty array", ErrBadPacket)
		}
		if _, err := EventName(args[0]); err != nil {
			return err
		}
	case SocketAck, SocketBinaryAck:
		if first != '[' {
			return fmt.Errorf("%w: ACK payload must be an array", ErrBadPacket)
		}
	}
	return nil
}

func firstNonSpace(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c
	}
	return 0
}

// EventName returns the event name of an EVENT's first argument: a string
// that is not reserved, or a number (kept as its JSON text).
func EventName(raw json.RawMessage) (string, error) {
	switch c := firstNonSpace(raw); {
	case c == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("%w: event name: %w", ErrBadPacket, err)
		}
		if reserved[s] {
			return "", fmt.Errorf("%w: reserved event name %q", ErrBadPacket, s)
		}
		return s, nil
	case c == '-' || (c >= '0' && c <= '9'):
		return string(bytes.TrimSpace(raw)), nil
	}
	return "", fmt.Errorf("%w: event name must be a string or number", ErrBadPacket)
}

// AppendSocket appends the encoding of p.
func AppendSocket(dst []byte, p Socket) []byte {
	dst = AppendSocketHeader(dst, p.Type, p.Attachments, p.Nsp, p.ID)
	return append(dst, p.Data...)
}

// AppendSocketHeader appends everything of a Socket.IO packet before its
// JSON: the type, the attachment count of a binary packet, the namespace
// unless it is "/" or empty, and the ack id unless it is negative.
func AppendSocketHeader(dst []byte, typ byte, attachments int, nsp string, id int64) []byte {
	dst = append(dst, typ)
	if typ == SocketBinaryEvent || typ == SocketBinaryAck {
		dst = strconv.AppendInt(dst, int64(attachments), 10)
		dst = append(dst, '-')
	}
	if nsp != "" && nsp != "/" {
		dst = append(dst, nsp...)
		dst = append(dst, ',')
	}
	if id >= 0 {
		dst = strconv.AppendInt(dst, id, 10)
	}
	return dst
}

// AppendEventMessage appends a whole Engine.IO message ("4" + Socket.IO
// packet) of type typ: an EVENT or BINARY_EVENT whose arguments are event
// then args, or an ACK or BINARY_ACK whose arguments are args (event is
// ignored). Each of args must be one JSON value; they are copied as they are.
func AppendEventMessage(dst []byte, typ byte, attachments int, nsp string, id int64,
	event string, args []json.RawMessage) []byte {
	dst = append(dst, EngineMessage)
	dst = AppendSocketHeader(dst, typ, attachments, nsp, id)
	dst = append(dst, '[')
	n := 0
	if typ == SocketEvent || typ == SocketBinaryEvent {
		dst = jsonw.AppendString(dst, event)
		n++
	}
	for _, a := range args {
		if n > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, a...)
		n++
	}
	return append(dst, ']')
}
