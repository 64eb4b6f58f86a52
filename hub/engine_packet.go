package hub

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
)

// Engine.IO v4 packet types (the first byte of a text packet).
const (
	engineOpen    byte = '0'
	engineClose   byte = '1'
	enginePing    byte = '2'
	enginePong    byte = '3'
	engineMessage byte = '4'
	engineUpgrade byte = '5'
	engineNoop    byte = '6'
)

// recordSeparator joins packets in a polling payload.
const recordSeparator = 0x1e

// Constant frames, built once.
var (
	framePing   = []byte{enginePing}
	framePong   = []byte{enginePong}
	frameNoop   = []byte{engineNoop}
	frameClose  = []byte{engineClose}
	frameProbe  = []byte("3probe")
	probeString = []byte("2probe")
)

// ErrBadPacket is wrapped by every decoding error of client input.
var ErrBadPacket = errors.New("hub: bad packet")

// enginePacket is one decoded Engine.IO packet. For a binary message Type is
// engineMessage and Binary is true. Data aliases the input.
type enginePacket struct {
	Type   byte
	Data   []byte
	Binary bool
}

// decodeEnginePacket decodes one text Engine.IO packet (a WebSocket text frame
// or one element of a polling payload, without base64 handling).
func decodeEnginePacket(b []byte) (enginePacket, error) {
	if len(b) == 0 {
		return enginePacket{}, fmt.Errorf("%w: empty engine packet", ErrBadPacket)
	}
	if b[0] < engineOpen || b[0] > engineNoop {
		return enginePacket{}, fmt.Errorf("%w: unknown engine packet type %q", ErrBadPacket, b[0])
	}
	return enginePacket{Type: b[0], Data: b[1:]}, nil
}

// appendEnginePacket appends the text or polling encoding of p.
func appendEnginePacket(dst []byte, p enginePacket) []byte {
	if p.Binary {
		dst = append(dst, 'b')
		return base64.StdEncoding.AppendEncode(dst, p.Data)
	}
	dst = append(dst, p.Type)
	return append(dst, p.Data...)
}

// decodePollingPayload splits a polling POST body into packets. Binary
// packets ("b"+base64) are decoded into fresh slices; text packets alias body.
func decodePollingPayload(body []byte) ([]enginePacket, error) {
	if len(body) == 0 {
		return nil, fmt.Errorf("%w: empty polling payload", ErrBadPacket)
	}
	var out []enginePacket
	for len(body) > 0 || out == nil {
		var part []byte
		if i := bytes.IndexByte(body, recordSeparator); i >= 0 {
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
			out = append(out, enginePacket{Type: engineMessage, Data: data, Binary: true})
			continue
		}
		p, err := decodeEnginePacket(part)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// appendPollingPayload appends packets joined by the record separator.
func appendPollingPayload(dst []byte, ps []enginePacket) []byte {
	for i, p := range ps {
		if i > 0 {
			dst = append(dst, recordSeparator)
		}
		dst = appendEnginePacket(dst, p)
	}
	return dst
}
