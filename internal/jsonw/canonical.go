package jsonw

import (
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// The canonical form of a JSON value is what a client gets from walcast on
// every node: no insignificant whitespace, strings escaped by AppendString,
// numbers written by Number.Append, object keys in their order (duplicates
// kept). The Redis bus carries an event as msgpack and writes it back in this
// form, so the leader puts payloads in this form before it delivers them.

// maxDepth bounds the nesting AppendCanonical accepts.
const maxDepth = 10000

// Unquote reads the JSON string at the start of in (in[0] is the opening
// quote), appends its unescaped bytes to dst and returns the number of bytes
// of in it took. A \u escape of a lone surrogate becomes U+FFFD, as in
// encoding/json; control characters must be escaped.
func Unquote(dst, in []byte) (out []byte, n int, err error) {
	pos := 1
	for pos < len(in) {
		c := in[pos]
		if c == '"' {
			return append(dst, in[1:pos]...), pos + 1, nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return dst, pos, fmt.Errorf("%w: control character in string", ErrSyntax)
		}
		pos++
	}
	// Slow path: escapes.
	out = append(dst, in[1:pos]...)
	for pos < len(in) {
		c := in[pos]
		switch {
		case c == '"':
			return out, pos + 1, nil
		case c < 0x20:
			return dst, pos, fmt.Errorf("%w: control character in string", ErrSyntax)
		case c != '\\':
			out = append(out, c)
			pos++
			continue
		}
		if pos+1 >= len(in) {
			break
		}
		e := in[pos+1]
		pos += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(in[pos:])
			if !ok {
				return dst, pos, fmt.Errorf("%w: bad \\u escape", ErrSyntax)
			}
			pos += 4
			if utf16.IsSurrogate(r) {
				// A surrogate pair is two escapes. When the next escape does
				// not complete a pair, this one becomes U+FFFD and the next is
				// decoded on its own.
				dec := utf8.RuneError
				if pos+1 < len(in) && in[pos] == '\\' && in[pos+1] == 'u' {
					if x, ok := hex4(in[pos+2:]); ok {
						if dec = utf16.DecodeRune(r, x); dec != utf8.RuneError {
							pos += 6
						}
					}
				}
				r = dec
			}
			out = utf8.AppendRune(out, r)
		default:
			return dst, pos, fmt.Errorf("%w: bad escape", ErrSyntax)
		}
	}
	return dst, pos, fmt.Errorf("%w: unterminated string", ErrSyntax)
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// AppendCanonical appends the one JSON value in in (surrounding whitespace
// allowed) to dst in canonical form. Input that is not JSON gives an error
// wrapping ErrSyntax, and dst is then returned unchanged.
func AppendCanonical(dst, in []byte) ([]byte, error) {
	c := canonicalizer{in: in}
	out, err := c.value(dst, 0)
	if err == nil {
		c.skipSpace()
		if c.pos != len(in) {
			err = c.fail("trailing data after the value")
		}
	}
	if err != nil {
		return dst, err
	}
	return out, nil
}

type canonicalizer struct {
	in  []byte
	pos int
	tmp []byte // unescaped string scratch
}

func (c *canonicalizer) fail(what string) error {
	return fmt.Errorf("%w at byte %d: %s", ErrSyntax, c.pos, what)
}

func (c *canonicalizer) skipSpace() {
	for c.pos < len(c.in) {
		switch c.in[c.pos] {
		case ' ', '\t', '\n', '\r':
			c.pos++
		default:
			return
		}
	}
}

func (c *canonicalizer) value(dst []byte, depth int) ([]byte, error) {
	if depth > maxDepth {
		return dst, c.fail("nested too deeply")
	}
	c.skipSpace()
	if c.pos >= len(c.in) {
		return dst, c.fail("unexpected end")
	}
	switch ch := c.in[c.pos]; {
	case ch == '{' || ch == '[':
		return c.container(dst, depth, ch)
	case ch == '"':
		var n int
		var err error
		c.tmp, n, err = Unquote(c.tmp[:0], c.in[c.pos:])
		c.pos += n
		if err != nil {
			return dst, fmt.Errorf("at byte %d: %w", c.pos, err)
		}
		return AppendString(dst, c.tmp), nil
	case ch == 't':
		return c.literal(dst, "true")
	case ch == 'f':
		return c.literal(dst, "false")
	case ch == 'n':
		return c.literal(dst, "null")
	case ch == '-' || isDigit(ch):
		num, n, err := ScanNumber(c.in[c.pos:])
		if err != nil {
			return dst, fmt.Errorf("%w at byte %d: %w", ErrSyntax, c.pos, err)
		}
		c.pos += n
		return num.Append(dst), nil
	}
	return dst, c.fail("unexpected character")
}

func (c *canonicalizer) literal(dst []byte, lit string) ([]byte, error) {
	if len(c.in)-c.pos < len(lit) || string(c.in[c.pos:c.pos+len(lit)]) != lit {
		return dst, c.fail("bad literal")
	}
	c.pos += len(lit)
	return append(dst, lit...), nil
}

func (c *canonicalizer) punct(dst []byte, ch byte) []byte {
	c.pos++
	return append(dst, ch)
}

func (c *canonicalizer) container(dst []byte, depth int, open byte) ([]byte, error) {
	closing := byte(']')
	if open == '{' {
		closing = '}'
	}
	dst = c.punct(dst, open)
	c.skipSpace()
	if c.pos < len(c.in) && c.in[c.pos] == closing {
		return c.punct(dst, closing), nil
	}
	for {
		var err error
		if open == '{' {
			c.skipSpace()
			if c.pos >= len(c.in) || c.in[c.pos] != '"' {
				return dst, c.fail("expected a key")
			}
			if dst, err = c.value(dst, depth+1); err != nil {
				return dst, err
			}
			c.skipSpace()
			if c.pos >= len(c.in) || c.in[c.pos] != ':' {
				return dst, c.fail("expected :")
			}
			dst = c.punct(dst, ':')
		}
		if dst, err = c.value(dst, depth+1); err != nil {
			return dst, err
		}
		c.skipSpace()
		if c.pos >= len(c.in) {
			return dst, c.fail("unterminated object or array")
		}
		switch c.in[c.pos] {
		case ',':
			dst = c.punct(dst, ',')
		case closing:
			return c.punct(dst, closing), nil
		default:
			return dst, c.fail("expected , or " + string(closing))
		}
	}
}
