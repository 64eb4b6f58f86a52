package packet

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
)

// Engine.IO v4 packet types (the first byte of a text packet).
const (
	EngineOpen    byte = '0'
	EngineClose   byte = '1'
	EnginePing    byte = '2'
	EnginePong    byte = '3'
	EngineMessage byte = '4'
	EngineUpgrade byte = '5'
	EngineNoop    byte = '6'
)

// RecordSeparator joins packets in a polling payload.
const RecordSeparator = 0x1e

// Probe is the data of the ping ("2probe") and pong ("3probe") that test a
// WebSocket during the polling to WebSocket upgrade.
const Probe = "probe"

// ErrBadPacket is wrapped by every parse error of Engine.IO and Socket.IO
// input.
var ErrBadPacket = errors.New("packet: bad packet")

// Engine is one Engine.IO packet. For a binary message Type is EngineMessage
// and Binary is true.
type Engine struct {
	Type   byte
	Data   []byte
	Binary bool
}

// ParseEngine parses one text Engine.IO packet: a WebSocket text frame or one
// element of a polling payload, without base64 handling. Data aliases b.
func ParseEngine(b []byte) (Engine, error) {
	if len(b) == 0 {
		return Engine{}, fmt.Errorf("%w: empty engine packet", ErrBadPacket)
	}
	if b[0] < EngineOpen || b[0] > EngineNoop {
		return Engine{}, fmt.Errorf("%w: unknown engine packet type %q", ErrBadPacket, b[0])
	}
	return Engine{Type: b[0], Data: b[1:]}, nil
}

// AppendEngine appends the text (or polling) encoding of p: its type byte and
// data, or "b" and the base64 of a binary message.
func AppendEngine(dst []byte, p Engine) []byte {
	if p.Binary {
		dst = append(dst, 'b')
		return base64.StdEncoding.AppendEncode(dst, p.Data)
	}
	dst = append(dst, p.Type)
	return append(dst, p.Data...)
}

// ParsePayload splits a polling POST body into packets. Binary packets
// ("b"+base64) are decoded into fresh slices; text packets alias body.
func ParsePayload(body []byte) ([]Engine, error) {
	if len(body) == 0 {
		return nil, fmt.Errorf("%w: empty polling payload", ErrBadPacket)
	}
	var out []Engine
	for len(body) > 0 || out == nil {
		var part []byte
		if i := bytes.IndexByte(body, RecordSeparator); i >= 0 {
			part, body = body[:i], body[i+1:]
			if len(body) == 0 {
				return nil, fmt.Errorf("%w: trailing record separator", ErrBadPacket)
			}
		} else {
			part, body = body, nil
		}
		if len(part) > 0 && part[0] == 'b' {
			data, err := base64.StdEncoding.AppendDecode(nil, part[1:])
			if err != nil {
				return nil, fmt.Errorf("%w: binary packet: %w", ErrBadPacket, err)
			}
			if data == nil {
				data = []byte{}
			}
			out = append(out, Engine{Type: EngineMessage, Data: data, Binary: true})
			continue
		}
		p, err := ParseEngine(part)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// AppendPayload appends packets joined by the record separator: the body of
// a polling response.
func AppendPayload(dst []byte, ps []Engine) []byte {
	for i, p := range ps {
		if i > 0 {
			dst = append(dst, RecordSeparator)
		}
		dst = AppendEngine(dst, p)
	}
	return dst
}
