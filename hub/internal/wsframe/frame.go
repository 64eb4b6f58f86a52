package wsframe

import (
	"encoding/binary"
	"unicode/utf8"
)

// Opcodes.
const (
	OpContinuation byte = 0
	OpText         byte = 1
	OpBinary       byte = 2
	OpClose        byte = 8
	OpPing         byte = 9
	OpPong         byte = 10
)

// MaxHeaderLen is the longest server frame header: 2 bytes and a 64-bit
// length.
const MaxHeaderLen = 10

// maxControlPayload is the longest payload a control frame may carry.
const maxControlPayload = 125

// HeaderLen returns the length of the header AppendHeader writes for a
// payload of n bytes.
func HeaderLen(n int) int {
	switch {
	case n < 126:
		return 2
	case n <= 0xffff:
		return 4
	default:
		return MaxHeaderLen
	}
}

// AppendHeader appends the header of an unmasked, final server frame with
// opcode op and an n-byte payload.
func AppendHeader(dst []byte, op byte, n int) []byte {
	dst = append(dst, 0x80|op)
	switch {
	case n < 126:
		return append(dst, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(dst, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(dst, 127), uint64(n))
	}
}

// AppendClose appends a close frame with status code and reason text, the
// text cut to the 123 bytes a control frame leaves for it, on a UTF-8
// boundary.
func AppendClose(dst []byte, code int, text string) []byte {
	if len(text) > maxControlPayload-2 {
		text = text[:maxControlPayload-2]
		for len(text) > 0 && !utf8.ValidString(text) {
			text = text[:len(text)-1]
		}
	}
	dst = append(dst, 0x80|OpClose, byte(2+len(text)))
	dst = binary.BigEndian.AppendUint16(dst, uint16(code))
	return append(dst, text...)
}

// AppendMasked appends one client frame: masked with key, final when fin is
// set. The hub never sends one; its tests and fuzz seeds do.
func AppendMasked(dst []byte, fin bool, op byte, payload []byte, key [4]byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	dst = append(dst, b0)
	switch n := len(payload); {
	case n < 126:
		dst = append(dst, 0x80|byte(n))
	case n <= 0xffff:
		dst = binary.BigEndian.AppendUint16(append(dst, 0x80|126), uint16(n))
	default:
		dst = binary.BigEndian.AppendUint64(append(dst, 0x80|127), uint64(n))
	}
	dst = append(dst, key[:]...)
	start := len(dst)
	dst = append(dst, payload...)
	mask(key, dst[start:])
	return dst
}

func mask(key [4]byte, b []byte) {
	for i := range b {
		b[i] ^= key[i&3]
	}
}
