package hub

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/walcast/walcast/internal/jsonw"
)

// Socket.IO v5 packet types.
const (
	sioConnect      byte = '0'
	sioDisconnect   byte = '1'
	sioEvent        byte = '2'
	sioAck          byte = '3'
	sioConnectError byte = '4'
	sioBinaryEvent  byte = '5'
	sioBinaryAck    byte = '6'
)

// maxAttachments bounds the attachments of one binary packet (the reference
// parser's default).
const maxAttachments = 10

// maxAckIDDigits keeps ack ids within a JavaScript safe integer.
const maxAckIDDigits = 15

// socketPacket is one decoded Socket.IO packet. Data aliases the input.
type socketPacket struct {
	Type        byte
	Attachments int
	Nsp         string // "/" when absent
	ID          int64  // -1 = no ack id
	Data        []byte // JSON payload; nil when absent
}

// reservedEvents cannot be sent by clients (socket.io-parser RESERVED_EVENTS).
var reservedEvents = map[string]bool{
	"connect": true, "connect_error": true, "disconnect": true,
	"disconnecting": true, "newListener": true, "removeListener": true,
}

// decodeSocketPacket decodes a Socket.IO packet (the payload of an Engine.IO
// message) and validates its payload like socket.io-parser does.
func decodeSocketPacket(b []byte) (socketPacket, error) {
	p := socketPacket{Nsp: "/", ID: -1}
	if len(b) == 0 {
		return p, fmt.Errorf("%w: empty socket packet", ErrBadPacket)
	}
	p.Type = b[0]
	if p.Type < sioConnect || p.Type > sioBinaryAck {
		return p, fmt.Errorf("%w: unknown socket packet type %q", ErrBadPacket, b[0])
	}
	i := 1
	if p.Type == sioBinaryEvent || p.Type == sioBinaryAck {
		j := i
		for j < len(b) && b[j] >= '0' && b[j] <= '9' && j-i < 3 {
			j++
		}
		if j == i || j >= len(b) || b[j] != '-' {
			return p, fmt.Errorf("%w: bad attachments count", ErrBadPacket)
		}
		n, _ := strconv.Atoi(string(b[i:j]))
		if n > maxAttachments {
			return p, fmt.Errorf("%w: %d attachments, limit %d", ErrBadPacket, n, maxAttachments)
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
	if err := validateSocketPayload(&p); err != nil {
		return p, err
	}
	return p, nil
}

func validateSocketPayload(p *socketPacket) error {
	d := p.Data
	if d != nil && !json.Valid(d) {
		return fmt.Errorf("%w: payload is not JSON", ErrBadPacket)
	}
	first := firstNonSpace(d)
	switch p.Type {
	case sioConnect:
		if d != nil && first != '{' {
			return fmt.Errorf("%w: CONNECT payload must be an object", ErrBadPacket)
		}
	case sioDisconnect:
		if d != nil {
			return fmt.Errorf("%w: DISCONNECT has a payload", ErrBadPacket)
		}
	case sioConnectError:
		if first != '{' && first != '"' {
			return fmt.Errorf("%w: CONNECT_ERROR payload must be a string or object", ErrBadPacket)
		}
	case sioEvent, sioBinaryEvent:
		if first != '[' {
			return fmt.Errorf("%w: EVENT payload must be an array", ErrBadPacket)
		}
		var args []json.RawMessage
		if err := json.Unmarshal(d, &args); err != nil || len(args) == 0 {
			return fmt.Errorf("%w: EVENT payload must be a non-empty array", ErrBadPacket)
		}
		if _, err := eventName(args[0]); err != nil {
			return err
		}
	case sioAck, sioBinaryAck:
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

// eventName returns the event name of an EVENT's first argument: a string
// that is not reserved, or a number (kept as its JSON text).
func eventName(raw json.RawMessage) (string, error) {
	switch c := firstNonSpace(raw); {
	case c == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("%w: event name: %w", ErrBadPacket, err)
		}
		if reservedEvents[s] {
			return "", fmt.Errorf("%w: reserved event name %q", ErrBadPacket, s)
		}
		return s, nil
	case c == '-' || (c >= '0' && c <= '9'):
		return string(bytes.TrimSpace(raw)), nil
	}
	return "", fmt.Errorf("%w: event name must be a string or number", ErrBadPacket)
}

// appendSocketPacket appends the encoding of p.
func appendSocketPacket(dst []byte, p socketPacket) []byte {
	dst = appendSocketHeader(dst, p.Type, p.Attachments, p.Nsp, p.ID)
	return append(dst, p.Data...)
}

func appendSocketHeader(dst []byte, typ byte, attachments int, nsp string, id int64) []byte {
	dst = append(dst, typ)
	if typ == sioBinaryEvent || typ == sioBinaryAck {
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

// appendEventFrame appends a whole Engine.IO message frame ("4" + packet) for
// an EVENT (event != "" or isEvent) or ACK carrying args, plus offset as a
// last string argument when offset != "".
func appendEventFrame(dst []byte, typ byte, attachments int, nsp string, id int64,
	event string, isEvent bool, args []json.RawMessage, offset string) []byte {
	dst = append(dst, engineMessage)
	dst = appendSocketHeader(dst, typ, attachments, nsp, id)
	dst = append(dst, '[')
	n := 0
	if isEvent {
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
	if offset != "" {
		if n > 0 {
			dst = append(dst, ',')
		}
		dst = jsonw.AppendString(dst, offset)
	}
	return append(dst, ']')
}

// validatePlaceholders checks, like socket.io-parser's reconstructPacket,
// that every {"_placeholder":true,"num":n} in a binary packet's payload has
// an integer 0 <= n < attachments.
func validatePlaceholders(data []byte, attachments int) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("%w: binary payload: %w", ErrBadPacket, err)
	}
	return walkPlaceholders(v, attachments, 0)
}

func walkPlaceholders(v any, n, depth int) error {
	if depth > 64 {
		return fmt.Errorf("%w: binary payload nested too deep", ErrBadPacket)
	}
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			if err := walkPlaceholders(e, n, depth+1); err != nil {
				return err
			}
		}
	case map[string]any:
		if x["_placeholder"] == true {
			num, ok := x["num"].(json.Number)
			i, err := num.Int64()
			if !ok || err != nil || i < 0 || i >= int64(n) {
				return fmt.Errorf("%w: illegal attachments", ErrBadPacket)
			}
			return nil
		}
		for _, e := range x {
			if err := walkPlaceholders(e, n, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}
