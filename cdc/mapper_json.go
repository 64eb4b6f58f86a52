package cdc

import (
	"time"

	"github.com/walcast/walcast/internal/jsonw"
)

// Postgres type OIDs the encoder treats specially; all others become JSON
// strings of their text form.
const (
	oidBool        = 16
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidJSON        = 114
	oidFloat4      = 700
	oidFloat8      = 701
	oidTimestamp   = 1114
	oidTimestamptz = 1184
	oidNumeric     = 1700
	oidJSONB       = 3802
)

// appendRowJSON appends the row t of rel as a JSON object that equals what
// Postgres' to_jsonb(row) gives, with keys in column order: numbers as JSON
// numbers, booleans, json/jsonb embedded, timestamptz in UTC as to_jsonb
// prints it, NULL as null, everything else as a string. Numbers and json
// values are written in jsonw's canonical form (JSON.stringify's, so 19.90
// is 19.9), the form a value has after crossing Redis: every node sends a
// client the same bytes.
// Columns whose value is not known (absent from an old key-only tuple, or an
// unchanged TOAST value Postgres did not send) are left out rather than
// invented.
//
// oids, when not nil, holds each column's type with domains resolved to their
// base type (to_jsonb encodes a domain like its base type).
//
// elems, when not nil, holds each array column's element type (0 for
// non-array columns); arrays become JSON arrays.
func appendRowJSON(dst []byte, rel *Relation, oids, elems []uint32, t Tuple) []byte {
	dst = append(dst, '{')
	first := true
	for i := range rel.Columns {
		if i >= len(t) {
			break
		}
		v := t[i]
		if v.Kind != ValueNull && v.Kind != ValueText {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = jsonw.AppendString(dst, rel.Columns[i].Name)
		dst = append(dst, ':')
		if i < len(elems) && elems[i] != 0 && v.Kind == ValueText {
			var ok bool
			if dst, ok = appendArrayJSON(dst, elems[i], v.Data); ok {
				continue
			}
		}
		oid := rel.Columns[i].TypeOID
		if i < len(oids) {
			oid = oids[i]
		}
		dst = appendValueJSON(dst, oid, v)
	}
	return append(dst, '}')
}

// appendValueJSON appends one column value (text format) as JSON.
func appendValueJSON(dst []byte, oid uint32, v Value) []byte {
	if v.Kind != ValueText {
		return append(dst, "null"...)
	}
	b := v.Data
	switch oid {
	case oidBool:
		switch string(b) {
		case "t":
			return append(dst, "true"...)
		case "f":
			return append(dst, "false"...)
		}
	case oidInt2, oidInt4, oidInt8, oidNumeric, oidFloat4, oidFloat8:
		// NaN and ±Infinity are not JSON numbers; to_jsonb makes them strings.
		if out, ok := jsonw.AppendNumber(dst, b); ok {
			return out
		}
	case oidJSON, oidJSONB:
		if out, err := jsonw.AppendCanonical(dst, b); err == nil {
			return out
		}
	case oidTimestamptz:
		return appendTimestamptzJSON(dst, b)
	case oidTimestamp:
		if isISOTimestamp(b) {
			dst = append(dst, '"')
			dst = append(dst, b[:10]...)
			dst = append(dst, 'T')
			dst = append(dst, b[11:]...)
			return append(dst, '"')
		}
	}
	return jsonw.AppendString(dst, b)
}

// appendTimestamptzJSON turns Postgres' ISO text form of a timestamptz
// ("2026-01-02 10:00:00.5+00", any session time zone) into to_jsonb's form in
// UTC ("2026-01-02T10:00:00.5+00:00"). Values it cannot parse (infinity, BC
// dates, other DateStyles) are kept as strings.
func appendTimestamptzJSON(dst []byte, b []byte) []byte {
	// Fast path: the server's TimeZone is UTC.
	if n := len(b); isISOTimestamp(b[:max(n-3, 0)]) && string(b[n-3:]) == "+00" {
		dst = append(dst, '"')
		dst = append(dst, b[:10]...)
		dst = append(dst, 'T')
		dst = append(dst, b[11:n-3]...)
		return append(dst, "+00:00\""...)
	}
	for _, layout := range tsLayouts {
		if t, err := time.Parse(layout, string(b)); err == nil {
			dst = append(dst, '"')
			dst = t.UTC().AppendFormat(dst, "2006-01-02T15:04:05.999999-07:00")
			return append(dst, '"')
		}
	}
	return jsonw.AppendString(dst, b)
}

// tsLayouts parse Postgres' ISO timestamptz output; fractional seconds are
// accepted by time.Parse without being in the layout.
var tsLayouts = []string{"2006-01-02 15:04:05-07", "2006-01-02 15:04:05-07:00", "2006-01-02 15:04:05-07:00:00"}

// isISOTimestamp reports whether b is "YYYY-MM-DD HH:MM:SS" with an optional
// fraction ".d…", nothing else.
func isISOTimestamp(b []byte) bool {
	const shape = "dddd-dd-dd dd:dd:dd"
	if len(b) < len(shape) {
		return false
	}
	for i := 0; i < len(shape); i++ {
		if shape[i] == 'd' && !isDigit(b[i]) || shape[i] != 'd' && b[i] != shape[i] {
			return false
		}
	}
	rest := b[len(shape):]
	if len(rest) == 0 {
		return true
	}
	if rest[0] != '.' || len(rest) == 1 {
		return false
	}
	for _, c := range rest[1:] {
		if !isDigit(c) {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// parseInt parses a decimal integer without allocating.
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	neg := false
	if b[0] == '-' || b[0] == '+' {
		neg = b[0] == '-'
		b = b[1:]
		if len(b) == 0 {
			return 0, false
		}
	}
	var n int64
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		d := int64(c - '0')
		if n > (1<<63-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	if neg {
		n = -n
	}
	return n, true
}

// arrayElems maps built-in array types to their element type; Load adds the
// database's other array types (enums, domains, …).
var arrayElems = map[uint32]uint32{
	1000: oidBool, 1005: oidInt2, 1007: oidInt4, 1016: oidInt8, 1021: oidFloat4, 1022: oidFloat8,
	1231: oidNumeric, 199: oidJSON, 3807: oidJSONB, 1115: oidTimestamp, 1185: oidTimestamptz,
	1009: 25 /* text */, 1015: 1043 /* varchar */, 1014: 1042 /* bpchar */, 2951: 2950, /* uuid */
	1182: 1082 /* date */, 1001: 17, /* bytea */
}

// appendArrayJSON appends a Postgres array in its text form ("{1,2,NULL}",
// `{"a b","c\"d"}`, "{{1,2},{3,4}}") as a JSON array the way to_jsonb does,
// encoding each element as elem. It reports false (and dst unchanged) for
// text it does not accept, e.g. arrays with explicit bounds ("[0:1]={…}").
func appendArrayJSON(dst []byte, elem uint32, b []byte) ([]byte, bool) {
	p := arrayParser{b: b, elem: elem}
	out, ok := p.array(dst, 0)
	if !ok || p.i != len(b) {
		return dst, false
	}
	return out, true
}

type arrayParser struct {
	b    []byte
	i    int
	elem uint32
	tmp  []byte
}

func (p *arrayParser) skipSpace() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\t' || p.b[p.i] == '\n' || p.b[p.i] == '\r') {
		p.i++
	}
}

func (p *arrayParser) array(dst []byte, depth int) ([]byte, bool) {
	if depth > 6 || p.i >= len(p.b) || p.b[p.i] != '{' {
		return dst, false
	}
	p.i++
	dst = append(dst, '[')
	p.skipSpace()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return append(dst, ']'), true
	}
	for first := true; ; first = false {
		if !first {
			dst = append(dst, ',')
		}
		p.skipSpace()
		if p.i >= len(p.b) {
			return dst, false
		}
		var ok bool
		switch p.b[p.i] {
		case '{':
			if dst, ok = p.array(dst, depth+1); !ok {
				return dst, false
			}
		case '"':
			p.i++
			p.tmp = p.tmp[:0]
			for {
				if p.i >= len(p.b) {
					return dst, false
				}
				c := p.b[p.i]
				p.i++
				if c == '"' {
					break
				}
				if c == '\\' {
					if p.i >= len(p.b) {
						return dst, false
					}
					c = p.b[p.i]
					p.i++
				}
				p.tmp = append(p.tmp, c)
			}
			dst = appendValueJSON(dst, p.elem, Value{Kind: ValueText, Data: p.tmp})
		default:
			start := p.i
			for p.i < len(p.b) && p.b[p.i] != ',' && p.b[p.i] != '}' {
				if c := p.b[p.i]; c == '{' || c == '"' || c == '\\' {
					return dst, false
				}
				p.i++
			}
			tok := p.b[start:p.i]
			for len(tok) > 0 && (tok[len(tok)-1] == ' ' || tok[len(tok)-1] == '\t' || tok[len(tok)-1] == '\n' || tok[len(tok)-1] == '\r') {
				tok = tok[:len(tok)-1]
			}
			if len(tok) == 0 {
				return dst, false
			}
			if len(tok) == 4 && (tok[0]|0x20) == 'n' && (tok[1]|0x20) == 'u' && (tok[2]|0x20) == 'l' && (tok[3]|0x20) == 'l' {
				dst = append(dst, "null"...)
			} else {
				dst = appendValueJSON(dst, p.elem, Value{Kind: ValueText, Data: tok})
			}
		}
		p.skipSpace()
		if p.i >= len(p.b) {
			return dst, false
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return append(dst, ']'), true
		default:
			return dst, false
		}
	}
}
