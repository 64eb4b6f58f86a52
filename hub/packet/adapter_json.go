package packet

import (
	"fmt"

	"github.com/walcast/walcast/internal/jsonw"
)

// jsonScanner transcodes one JSON value to msgpack without building a tree:
// it writes containers with a 5-byte placeholder header and patches it when
// the element count is known. Object keys keep their order. A Socket.IO
// placeholder object {"_placeholder":true,"num":i} becomes a bin holding
// atts[i]; without an atts[i] it is an ordinary object. Input is one
// argument of an AdapterMessage; invalid JSON gives an error, never a panic.
type jsonScanner struct {
	in   []byte
	pos  int
	atts [][]byte
	tmp  []byte // unescaped string scratch
}

func (s *jsonScanner) fail(what string) error {
	return fmt.Errorf("%w at byte %d: %s", jsonw.ErrSyntax, s.pos, what)
}

func (s *jsonScanner) skipSpace() {
	for s.pos < len(s.in) {
		switch s.in[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// appendJSONAsMsgpack transcodes one JSON value to msgpack.
func appendJSONAsMsgpack(dst []byte, raw []byte, atts [][]byte) ([]byte, error) {
	s := jsonScanner{in: raw, atts: atts}
	dst, err := s.value(dst, 0)
	if err != nil {
		return dst, err
	}
	s.skipSpace()
	if s.pos != len(s.in) {
		return dst, s.fail("trailing data after the value")
	}
	return dst, nil
}

func (s *jsonScanner) value(dst []byte, depth int) ([]byte, error) {
	if depth > maxDepth {
		return dst, s.fail("nested too deeply")
	}
	s.skipSpace()
	if s.pos >= len(s.in) {
		return dst, s.fail("unexpected end")
	}
	switch c := s.in[s.pos]; {
	case c == '{':
		return s.object(dst, depth)
	case c == '[':
		return s.array(dst, depth)
	case c == '"':
		str, err := s.str()
		if err != nil {
			return dst, err
		}
		return appendString(dst, string(str)), nil
	case c == 't':
		return s.literal(dst, "true", 0xc3)
	case c == 'f':
		return s.literal(dst, "false", 0xc2)
	case c == 'n':
		return s.literal(dst, "null", 0xc0)
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number(dst)
	}
	return dst, s.fail("unexpected character")
}

func (s *jsonScanner) literal(dst []byte, lit string, code byte) ([]byte, error) {
	if len(s.in)-s.pos < len(lit) || string(s.in[s.pos:s.pos+len(lit)]) != lit {
		return dst, s.fail("bad literal")
	}
	s.pos += len(lit)
	return append(dst, code), nil
}

// number writes a JSON number the way jsonw.Number carries it: an integer
// literal that fits an int64 as a msgpack int, every other number as a
// float64 (an overflowing one as ±Inf). A Node peer decodes either as a JS
// number; a walcast node writes it back with jsonw.Number.Append, which is
// the canonical form the leader already gave its own clients. The two differ
// only for integers beyond 2^53, which walcast keeps exact and Node rounds.
func (s *jsonScanner) number(dst []byte) ([]byte, error) {
	n, size, err := jsonw.ScanNumber(s.in[s.pos:])
	if err != nil {
		return dst, s.fail(err.Error())
	}
	s.pos += size
	if n.IsInt {
		return appendInt(dst, n.Int), nil
	}
	return appendFloat(dst, n.Float), nil
}

// str reads a string and returns its unescaped bytes; they alias the input
// or s.tmp and are valid until the next call.
func (s *jsonScanner) str() ([]byte, error) {
	// Fast path, most keys and values: no escape, so no copy.
	for i := s.pos + 1; i < len(s.in); i++ {
		c := s.in[i]
		if c == '"' {
			out := s.in[s.pos+1 : i]
			s.pos = i + 1
			return out, nil
		}
		if c == '\\' || c < 0x20 {
			break
		}
	}
	var n int
	var err error
	s.tmp, n, err = jsonw.Unquote(s.tmp[:0], s.in[s.pos:])
	s.pos += n
	if err != nil {
		return nil, fmt.Errorf("at byte %d: %w", s.pos, err)
	}
	return s.tmp, nil
}

func (s *jsonScanner) array(dst []byte, depth int) ([]byte, error) {
	s.pos++ // [
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0)
	n := 0
	s.skipSpace()
	if s.pos < len(s.in) && s.in[s.pos] == ']' {
		s.pos++
		return patchHeader(dst, start, 0, false), nil
	}
	for {
		var err error
		if dst, err = s.value(dst, depth+1); err != nil {
			return dst, err
		}
		n++
		s.skipSpace()
		if s.pos >= len(s.in) {
			return dst, s.fail("unterminated array")
		}
		switch s.in[s.pos] {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return patchHeader(dst, start, n, false), nil
		default:
			return dst, s.fail("expected , or ]")
		}
	}
}

func (s *jsonScanner) object(dst []byte, depth int) ([]byte, error) {
	s.pos++ // {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0)
	n := 0
	var phTrue, phNum bool
	phIdx := int64(-1)
	s.skipSpace()
	if s.pos < len(s.in) && s.in[s.pos] == '}' {
		s.pos++
		return patchHeader(dst, start, 0, true), nil
	}
	for {
		s.skipSpace()
		if s.pos >= len(s.in) || s.in[s.pos] != '"' {
			return dst, s.fail("expected a key")
		}
		key, err := s.str()
		if err != nil {
			return dst, err
		}
		isPH, isNum := string(key) == "_placeholder", string(key) == "num"
		dst = appendString(dst, string(key))
		s.skipSpace()
		if s.pos >= len(s.in) || s.in[s.pos] != ':' {
			return dst, s.fail("expected :")
		}
		s.pos++
		vstart := len(dst)
		if dst, err = s.value(dst, depth+1); err != nil {
			return dst, err
		}
		if v := dst[vstart:]; isPH {
			phTrue = len(v) == 1 && v[0] == 0xc3
		} else if isNum {
			d := decoder{buf: v}
			if x, err := d.decode(0); err == nil && x.kind == kindInt {
				phNum, phIdx = true, x.i
			}
		}
		n++
		s.skipSpace()
		if s.pos >= len(s.in) {
			return dst, s.fail("unterminated object")
		}
		switch s.in[s.pos] {
		case ',':
			s.pos++
		case '}':
			s.pos++
			// Only a placeholder that names one of the message's
			// attachments is one; any other such object is data (a row may
			// hold it), kept as a map, as the local path sends it.
			if n == 2 && phTrue && phNum && phIdx >= 0 && phIdx < int64(len(s.atts)) {
				return appendBin(dst[:start], s.atts[phIdx]), nil
			}
			return patchHeader(dst, start, n, true), nil
		default:
			return dst, s.fail("expected , or }")
		}
	}
}

// patchHeader writes the shortest array or map header for n elements at
// dst[start:start+5] (reserved) and closes the gap.
func patchHeader(dst []byte, start, n int, isMap bool) []byte {
	var h [5]byte
	hdr := h[:0]
	if isMap {
		hdr = appendMapLen(hdr, n)
	} else {
		hdr = appendArrayLen(hdr, n)
	}
	copy(dst[start:], hdr)
	if gap := 5 - len(hdr); gap > 0 {
		copy(dst[start+len(hdr):], dst[start+5:])
		dst = dst[:len(dst)-gap]
	}
	return dst
}
