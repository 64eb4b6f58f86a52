package packet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/walcast/walcast/internal/jsonw"
)

// This file holds a small MessagePack codec: append-style encoders for the
// values the adapter message needs, and a bounds-checked decoder over a
// []byte. It is written here rather than taken from vmihailenco/msgpack so that
// map key order survives (payload JSON keeps its order through Redis), and so
// that a hostile message can never make the decoder allocate by a length
// field or recurse without bound.

// maxDepth bounds the nesting of decoded arrays and maps.
const maxDepth = 64

// errTruncated reports msgpack input that ends inside a value.
var errTruncated = errors.New("truncated msgpack")

// DecodeError describes an adapter message that could not be decoded.
type DecodeError struct {
	Offset int // byte offset in the message where decoding failed
	Err    error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("packet: decode adapter message at byte %d: %v", e.Offset, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

func appendNil(dst []byte) []byte { return append(dst, 0xc0) }

func appendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, 0xc3)
	}
	return append(dst, 0xc2)
}

func appendInt(dst []byte, v int64) []byte {
	switch {
	case v >= 0 && v <= 0x7f:
		return append(dst, byte(v))
	case v < 0 && v >= -32:
		return append(dst, byte(v))
	case v >= math.MinInt8 && v <= math.MaxInt8:
		return append(dst, 0xd0, byte(v))
	case v >= 0 && v <= math.MaxUint8:
		return append(dst, 0xcc, byte(v))
	case v >= math.MinInt16 && v <= math.MaxInt16:
		return binary.BigEndian.AppendUint16(append(dst, 0xd1), uint16(v))
	case v >= 0 && v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, 0xcd), uint16(v))
	case v >= math.MinInt32 && v <= math.MaxInt32:
		return binary.BigEndian.AppendUint32(append(dst, 0xd2), uint32(v))
	case v >= 0 && v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(dst, 0xce), uint32(v))
	default:
		return binary.BigEndian.AppendUint64(append(dst, 0xd3), uint64(v))
	}
}

func appendUint(dst []byte, v uint64) []byte {
	if v <= math.MaxInt64 {
		return appendInt(dst, int64(v))
	}
	return binary.BigEndian.AppendUint64(append(dst, 0xcf), v)
}

func appendFloat(dst []byte, v float64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, 0xcb), math.Float64bits(v))
}

func appendString(dst []byte, s string) []byte {
	n := len(s)
	switch {
	case n <= 31:
		dst = append(dst, 0xa0|byte(n))
	case n <= math.MaxUint8:
		dst = append(dst, 0xd9, byte(n))
	case n <= math.MaxUint16:
		dst = binary.BigEndian.AppendUint16(append(dst, 0xda), uint16(n))
	default:
		dst = binary.BigEndian.AppendUint32(append(dst, 0xdb), uint32(n))
	}
	return append(dst, s...)
}

func appendBin(dst []byte, b []byte) []byte {
	n := len(b)
	switch {
	case n <= math.MaxUint8:
		dst = append(dst, 0xc4, byte(n))
	case n <= math.MaxUint16:
		dst = binary.BigEndian.AppendUint16(append(dst, 0xc5), uint16(n))
	default:
		dst = binary.BigEndian.AppendUint32(append(dst, 0xc6), uint32(n))
	}
	return append(dst, b...)
}

func appendArrayLen(dst []byte, n int) []byte {
	switch {
	case n <= 15:
		return append(dst, 0x90|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, 0xdc), uint16(n))
	default:
		return binary.BigEndian.AppendUint32(append(dst, 0xdd), uint32(n))
	}
}

func appendMapLen(dst []byte, n int) []byte {
	switch {
	case n <= 15:
		return append(dst, 0x80|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, 0xde), uint16(n))
	default:
		return binary.BigEndian.AppendUint32(append(dst, 0xdf), uint32(n))
	}
}

func appendStrings(dst []byte, ss []string) []byte {
	dst = appendArrayLen(dst, len(ss))
	for _, s := range ss {
		dst = appendString(dst, s)
	}
	return dst
}

// kind is the type of a decoded msgpack value.
type kind uint8

const (
	kindNil kind = iota
	kindBool
	kindInt
	kindUint
	kindFloat
	kindString
	kindBin
	kindArray
	kindMap
	kindTime
	kindRaw // an array or map below the decoder's lazy depth, kept as its bytes
)

// value is one decoded msgpack value. Strings, bins and raw values alias the
// input.
type value struct {
	kind kind
	b    bool
	i    int64
	u    uint64
	f    float64
	s    []byte  // string or bin bytes, or a raw value's msgpack
	arr  []value // array elements, or map keys and values interleaved
	t    time.Time
}

func (v *value) str() (string, bool) {
	if v.kind != kindString {
		return "", false
	}
	return string(v.s), true
}

// mapGet returns the value of map v under key k.
func (v *value) mapGet(k string) (*value, bool) {
	if v.kind != kindMap {
		return nil, false
	}
	for i := 0; i+1 < len(v.arr); i += 2 {
		if v.arr[i].kind == kindString && string(v.arr[i].s) == k {
			return &v.arr[i+1], true
		}
	}
	return nil, false
}

// decoder reads msgpack values from buf. decode builds a value tree for the
// message envelope only: an array or map at depth lazy or deeper (when lazy
// > 0) is checked and kept as its bytes (kindRaw), and appendJSON later
// transcodes those bytes straight to JSON, without a tree of the payload.
type decoder struct {
	buf  []byte
	off  int
	lazy int
}

func (d *decoder) fail(err error) error { return &DecodeError{Offset: d.off, Err: err} }

func (d *decoder) need(n int) ([]byte, error) {
	if n < 0 || len(d.buf)-d.off < n {
		return nil, d.fail(errTruncated)
	}
	b := d.buf[d.off : d.off+n]
	d.off += n
	return b, nil
}

func (d *decoder) uintN(n int) (uint64, error) {
	b, err := d.need(n)
	if err != nil {
		return 0, err
	}
	var u uint64
	for _, c := range b {
		u = u<<8 | uint64(c)
	}
	return u, nil
}

// token reads one value's header. A scalar is returned whole. For an array
// or a map it returns the kind and n, the number of values that follow (a
// map's keys and values both count); n is checked against the rest of the
// input, as each value takes at least one byte, so a hostile length
// allocates nothing.
func (d *decoder) token() (v value, n int, err error) {
	hb, err := d.need(1)
	if err != nil {
		return value{}, 0, err
	}
	c := hb[0]
	switch {
	case c <= 0x7f:
		return value{kind: kindInt, i: int64(c)}, 0, nil
	case c >= 0xe0:
		return value{kind: kindInt, i: int64(int8(c))}, 0, nil
	case c&0xf0 == 0x80:
		return d.container(kindMap, 2*int(c&0x0f))
	case c&0xf0 == 0x90:
		return d.container(kindArray, int(c&0x0f))
	case c&0xe0 == 0xa0:
		return d.bytes(kindString, int(c&0x1f))
	}
	switch c {
	case 0xc0:
		return value{kind: kindNil}, 0, nil
	case 0xc2, 0xc3:
		return value{kind: kindBool, b: c == 0xc3}, 0, nil
	case 0xc4, 0xc5, 0xc6:
		n, err := d.uintN(1 << (c - 0xc4))
		if err != nil {
			return value{}, 0, err
		}
		return d.bytes(kindBin, int(n))
	case 0xc7, 0xc8, 0xc9:
		n, err := d.uintN(1 << (c - 0xc7))
		if err != nil {
			return value{}, 0, err
		}
		v, err := d.ext(int(n))
		return v, 0, err
	case 0xca:
		u, err := d.uintN(4)
		if err != nil {
			return value{}, 0, err
		}
		return value{kind: kindFloat, f: float64(math.Float32frombits(uint32(u)))}, 0, nil
	case 0xcb:
		u, err := d.uintN(8)
		if err != nil {
			return value{}, 0, err
		}
		return value{kind: kindFloat, f: math.Float64frombits(u)}, 0, nil
	case 0xcc, 0xcd, 0xce, 0xcf:
		u, err := d.uintN(1 << (c - 0xcc))
		if err != nil {
			return value{}, 0, err
		}
		if u <= math.MaxInt64 {
			return value{kind: kindInt, i: int64(u)}, 0, nil
		}
		return value{kind: kindUint, u: u}, 0, nil
	case 0xd0, 0xd1, 0xd2, 0xd3:
		size := 1 << (c - 0xd0)
		u, err := d.uintN(size)
		if err != nil {
			return value{}, 0, err
		}
		shift := 64 - 8*size
		return value{kind: kindInt, i: int64(u<<shift) >> shift}, 0, nil
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
		v, err := d.ext(1 << (c - 0xd4))
		return v, 0, err
	case 0xd9, 0xda, 0xdb:
		n, err := d.uintN(1 << (c - 0xd9))
		if err != nil {
			return value{}, 0, err
		}
		return d.bytes(kindString, int(n))
	case 0xdc, 0xdd:
		n, err := d.uintN(2 << (c - 0xdc))
		if err != nil {
			return value{}, 0, err
		}
		return d.container(kindArray, int(n))
	case 0xde, 0xdf:
		n, err := d.uintN(2 << (c - 0xde))
		if err != nil {
			return value{}, 0, err
		}
		return d.container(kindMap, 2*int(n))
	}
	d.off--
	return value{}, 0, d.fail(fmt.Errorf("invalid type byte 0x%02x", c))
}

func (d *decoder) container(k kind, n int) (value, int, error) {
	if n < 0 || n > len(d.buf)-d.off {
		return value{}, 0, d.fail(errTruncated)
	}
	return value{kind: k}, n, nil
}

func (d *decoder) bytes(k kind, n int) (value, int, error) {
	b, err := d.need(n)
	if err != nil {
		return value{}, 0, err
	}
	return value{kind: k, s: b}, 0, nil
}

// decode reads one value: a tree above the lazy depth, raw bytes below it.
func (d *decoder) decode(depth int) (value, error) {
	if depth > maxDepth {
		return value{}, d.fail(errors.New("nested too deeply"))
	}
	start := d.off
	v, n, err := d.token()
	if err != nil || (v.kind != kindArray && v.kind != kindMap) {
		return v, err
	}
	if d.lazy > 0 && depth >= d.lazy {
		for range n {
			if err := d.skip(depth + 1); err != nil {
				return value{}, err
			}
		}
		return value{kind: kindRaw, s: d.buf[start:d.off]}, nil
	}
	v.arr = make([]value, 0, n)
	for range n {
		e, err := d.decode(depth + 1)
		if err != nil {
			return value{}, err
		}
		v.arr = append(v.arr, e)
	}
	return v, nil
}

// skip checks and passes over one value.
func (d *decoder) skip(depth int) error {
	if depth > maxDepth {
		return d.fail(errors.New("nested too deeply"))
	}
	_, n, err := d.token()
	for ; err == nil && n > 0; n-- {
		err = d.skip(depth + 1)
	}
	return err
}

// ext reads an extension of n data bytes. Only the timestamp extension
// (type -1, as notepack.io encodes a JavaScript Date) is understood.
func (d *decoder) ext(n int) (value, error) {
	tb, err := d.need(1)
	if err != nil {
		return value{}, err
	}
	typ := int8(tb[0])
	data, err := d.need(n)
	if err != nil {
		return value{}, err
	}
	if typ != -1 {
		return value{}, d.fail(fmt.Errorf("unsupported ext type %d", typ))
	}
	var t time.Time
	switch n {
	case 4:
		t = time.Unix(int64(binary.BigEndian.Uint32(data)), 0)
	case 8:
		u := binary.BigEndian.Uint64(data)
		t = time.Unix(int64(u&(1<<34-1)), int64(u>>34))
	case 12:
		t = time.Unix(int64(binary.BigEndian.Uint64(data[4:])), int64(binary.BigEndian.Uint32(data)))
	default:
		return value{}, d.fail(fmt.Errorf("bad timestamp ext length %d", n))
	}
	return value{kind: kindTime, t: t.UTC()}, nil
}

// appendJSON appends v, a scalar or a raw value, as JSON to dst. Bins become
// Socket.IO placeholders {"_placeholder":true,"num":i} and are appended to
// *atts.
func appendJSON(dst []byte, v *value, atts *[][]byte) ([]byte, error) {
	switch v.kind {
	case kindNil:
		return append(dst, "null"...), nil
	case kindBool:
		return strconv.AppendBool(dst, v.b), nil
	case kindInt:
		return strconv.AppendInt(dst, v.i, 10), nil
	case kindUint:
		// Only above MaxInt64, which jsonw.Number carries as a float64.
		return jsonw.AppendFloat(dst, float64(v.u)), nil
	case kindFloat:
		// As JSON.stringify writes the JS number a Node peer decodes (NaN
		// and ±Inf as null); for a message from walcast, the bytes the
		// leader gave its own clients.
		return jsonw.AppendFloat(dst, v.f), nil
	case kindString:
		return jsonw.AppendString(dst, v.s), nil
	case kindTime:
		dst = append(dst, '"')
		dst = v.t.AppendFormat(dst, "2006-01-02T15:04:05.000Z")
		return append(dst, '"'), nil
	case kindBin:
		dst = AppendPlaceholder(dst, len(*atts))
		*atts = append(*atts, v.s)
		return dst, nil
	case kindRaw:
		d := decoder{buf: v.s}
		return d.transcode(dst, 0, atts)
	}
	return dst, fmt.Errorf("cannot write a decoded %d value as JSON", v.kind)
}

// transcode reads one msgpack value and appends it as JSON to dst, value by
// value, building no tree (see appendJSON for the scalars).
func (d *decoder) transcode(dst []byte, depth int, atts *[][]byte) ([]byte, error) {
	if depth > maxDepth {
		return dst, d.fail(errors.New("nested too deeply"))
	}
	v, n, err := d.token()
	if err != nil {
		return dst, err
	}
	switch v.kind {
	case kindArray:
		dst = append(dst, '[')
		for i := range n {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = d.transcode(dst, depth+1, atts); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case kindMap:
		dst = append(dst, '{')
		for i := 0; i < n; i += 2 {
			if i > 0 {
				dst = append(dst, ',')
			}
			k, kn, err := d.token()
			if err != nil {
				return dst, err
			}
			switch {
			case kn > 0 || (k.kind != kindString && k.kind != kindInt && k.kind != kindUint):
				return dst, d.fail(errors.New("map key is not a string"))
			case k.kind == kindString:
				dst = jsonw.AppendString(dst, k.s)
			default:
				dst = append(dst, '"')
				dst, _ = appendJSON(dst, &k, atts)
				dst = append(dst, '"')
			}
			dst = append(dst, ':')
			if dst, err = d.transcode(dst, depth+1, atts); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	}
	return appendJSON(dst, &v, atts)
}
