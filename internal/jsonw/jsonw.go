// Package jsonw is walcast's one JSON writer for strings and numbers. Every
// JSON string and number walcast puts on the wire — row JSON from the mapper
// and the rule engine, Socket.IO packets from the hub, events transcoded from
// the Redis adapter's msgpack — is written here, so that a client gets the
// same bytes for the same event on every node and through every path.
//
// Numbers (number.go): an integer that fits an int64 keeps its digits; any
// other number is written as JavaScript prints the float64 it denotes
// ("12.50" → 12.5, "1e-05" → 0.00001, "1e21" → 1e+21). That is the form the
// Redis bus can reproduce from msgpack, where a number is an int64 or a
// float64. AppendCanonical (canonical.go) puts a whole JSON value in that
// form: compact, these strings, these numbers.
//
// String output is what JavaScript's JSON.stringify writes for the same string
// (which for control characters is also what Postgres's to_jsonb writes):
// `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, other characters below U+0020 as
// `\u00xx` (lower-case hex), and everything else, U+2028 and U+2029 included,
// as raw UTF-8. No HTML escaping. Invalid UTF-8 (which a JavaScript string
// cannot hold) becomes U+FFFD, so the output is always valid JSON.
//
// The functions append to dst and, except AppendCanonical for strings with
// escapes, never allocate beyond growing it; they are safe for concurrent use.
package jsonw

import "unicode/utf8"

const hexDigits = "0123456789abcdef"

// AppendString appends s as a quoted JSON string.
func AppendString[T string | []byte](dst []byte, s T) []byte {
	dst = append(dst, '"')
	dst = AppendStringBody(dst, s)
	return append(dst, '"')
}

// AppendStringBody appends s escaped for the inside of a JSON string
// (without the quotes).
func AppendStringBody[T string | []byte](dst []byte, s T) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		// At most 4 bytes: the conversion uses a stack buffer, no allocation.
		r, size := utf8.DecodeRune([]byte(s[i:min(i+utf8.UTFMax, len(s))]))
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\ufffd"...)
			i++
			start = i
			continue
		}
		i += size
	}
	return append(dst, s[start:]...)
}
