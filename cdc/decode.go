package cdc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
)

// DecodeError reports a pgoutput message that could not be decoded: its type
// byte, the offset in the message where decoding failed, and the cause.
type DecodeError struct {
	MsgType byte
	Offset  int
	Err     error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("cdc: decode pgoutput message %q at offset %d: %v", e.MsgType, e.Offset, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

var (
	errShort       = errors.New("message too short")
	errUnsupported = errors.New("message type not supported")
)

// The pgoutput message type bytes the Reader handles itself.
const (
	msgBegin    = 'B'
	msgCommit   = 'C'
	msgOrigin   = 'O'
	msgRelation = 'R'
	msgType     = 'Y'
	msgInsert   = 'I'
	msgUpdate   = 'U'
	msgDelete   = 'D'
	msgTruncate = 'T'
	msgMessage  = 'M'
	// Streaming messages; never requested, but Postgres 18 has been seen to send
	// stray stream aborts, so they are decoded (and ignored) rather than rejected.
	msgStreamStart  = 'S'
	msgStreamStop   = 'E'
	msgStreamCommit = 'c'
	msgStreamAbort  = 'A'
)

// WireMessage is one decoded pgoutput message. Decode fills it in place so the
// Reader can reuse one WireMessage (and its tuple slices) for every message.
// Tuple data, Content and Other may alias the decoded buffer: they are only
// valid until that buffer is reused.
type WireMessage struct {
	Type byte

	// Begin: LSN is the final (commit) LSN. Commit: LSN is the commit LSN and
	// EndLSN the transaction's end LSN. Message: LSN is the message's LSN.
	LSN    LSN
	EndLSN LSN
	Time   time.Time
	XID    uint32

	// Insert, Update, Delete: the relation and the row images. OldKind is 'K'
	// (key columns only), 'O' (the full old row) or 0 (no old image).
	RelationID uint32
	OldKind    byte
	Old, New   Tuple

	// Truncate: the relations (reusing the slice) and the option bits
	// (1 cascade, 2 restart identity).
	RelationIDs    []uint32
	TruncateOption byte

	// Message: a pg_logical_emit_message payload.
	Transactional bool
	Prefix        string
	Content       []byte

	// Other holds the pglogrepl decoding of Relation, Type, Origin and stream
	// messages.
	Other pglogrepl.Message
}

// Decode decodes the pgoutput message data (the WALData of an XLogData) into m.
// It never panics: malformed input yields a *DecodeError.
func Decode(m *WireMessage, data []byte) (err error) {
	if len(data) == 0 {
		return &DecodeError{Offset: 0, Err: errShort}
	}
	typ := data[0]
	m.Type = typ
	m.Other = nil
	d := decoder{buf: data, off: 1}
	switch typ {
	case msgBegin:
		m.LSN = LSN(d.u64())
		m.Time = d.time()
		m.XID = d.u32()
	case msgCommit:
		d.u8() // flags
		m.LSN = LSN(d.u64())
		m.EndLSN = LSN(d.u64())
		m.Time = d.time()
	case msgInsert:
		m.RelationID = d.u32()
		m.OldKind = 0
		m.Old = m.Old[:0]
		if k := d.u8(); k != 'N' && d.err == nil {
			d.fail(fmt.Errorf("insert: tuple marker %q, want 'N'", k))
		}
		m.New = d.tuple(m.New[:0])
	case msgUpdate:
		m.RelationID = d.u32()
		m.OldKind = 0
		m.Old = m.Old[:0]
		k := d.u8()
		if k == 'K' || k == 'O' {
			m.OldKind = k
			m.Old = d.tuple(m.Old)
			k = d.u8()
		}
		if k != 'N' && d.err == nil {
			d.fail(fmt.Errorf("update: tuple marker %q, want 'N'", k))
		}
		m.New = d.tuple(m.New[:0])
	case msgDelete:
		m.RelationID = d.u32()
		m.New = m.New[:0]
		k := d.u8()
		if k != 'K' && k != 'O' && d.err == nil {
			d.fail(fmt.Errorf("delete: tuple marker %q, want 'K' or 'O'", k))
		}
		m.OldKind = k
		m.Old = d.tuple(m.Old[:0])
	case msgMessage:
		m.Transactional = d.u8()&1 == 1
		m.LSN = LSN(d.u64())
		m.Prefix = d.cstring()
		n := d.u32()
		m.Content = d.bytes(int(n))
	case msgTruncate:
		n := d.u32()
		m.TruncateOption = d.u8()
		m.RelationIDs = m.RelationIDs[:0]
		// Check the announced count against the data before trusting it.
		if d.err == nil && uint64(n)*4 != uint64(len(data)-d.off) {
			d.fail(fmt.Errorf("truncate: %d relations announced, %d bytes left", n, len(data)-d.off))
		}
		for i := uint32(0); i < n && d.err == nil; i++ {
			m.RelationIDs = append(m.RelationIDs, d.u32())
		}
	case msgRelation, msgType, msgOrigin,
		msgStreamStart, msgStreamStop, msgStreamCommit, msgStreamAbort:
		return decodeOther(m, data)
	default:
		return &DecodeError{MsgType: typ, Offset: 0, Err: errUnsupported}
	}
	if d.err != nil {
		return &DecodeError{MsgType: typ, Offset: d.errOff, Err: d.err}
	}
	if d.off != len(data) {
		return &DecodeError{MsgType: typ, Offset: d.off, Err: fmt.Errorf("%d trailing bytes", len(data)-d.off)}
	}
	return nil
}

// decodeOther decodes the rarely seen messages with pglogrepl, which panics on
// some truncated inputs; the panic becomes a *DecodeError.
func decodeOther(m *WireMessage, data []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &DecodeError{MsgType: data[0], Offset: -1, Err: fmt.Errorf("pglogrepl panic: %v", r)}
		}
	}()
	// Stream messages carry an xid only when inside a stream; the Reader never
	// asks for streaming, so inStream is false.
	msg, err := pglogrepl.ParseV2(data, false)
	if err != nil {
		return &DecodeError{MsgType: data[0], Offset: -1, Err: err}
	}
	if rel, ok := msg.(*pglogrepl.RelationMessageV2); ok {
		// pglogrepl trusts the column count; make sure it matches.
		if int(rel.ColumnNum) != len(rel.Columns) {
			return &DecodeError{MsgType: data[0], Offset: -1, Err: fmt.Errorf("relation: %d columns announced, %d decoded", rel.ColumnNum, len(rel.Columns))}
		}
	}
	m.Other = msg
	return nil
}

// decoder reads big-endian fields with bounds checks. After the first failure
// every read returns zero values and err/errOff keep the first failure.
type decoder struct {
	buf    []byte
	off    int
	err    error
	errOff int
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err, d.errOff = err, d.off
	}
}

func (d *decoder) need(n int) bool {
	if d.err != nil {
		return false
	}
	if n < 0 || len(d.buf)-d.off < n {
		d.fail(fmt.Errorf("%w: need %d bytes, have %d", errShort, n, len(d.buf)-d.off))
		return false
	}
	return true
}

func (d *decoder) u8() byte {
	if !d.need(1) {
		return 0
	}
	v := d.buf[d.off]
	d.off++
	return v
}

func (d *decoder) u16() uint16 {
	if !d.need(2) {
		return 0
	}
	v := binary.BigEndian.Uint16(d.buf[d.off:])
	d.off += 2
	return v
}

func (d *decoder) u32() uint32 {
	if !d.need(4) {
		return 0
	}
	v := binary.BigEndian.Uint32(d.buf[d.off:])
	d.off += 4
	return v
}

func (d *decoder) u64() uint64 {
	if !d.need(8) {
		return 0
	}
	v := binary.BigEndian.Uint64(d.buf[d.off:])
	d.off += 8
	return v
}

// pgEpoch is the Postgres timestamp epoch, 2000-01-01 UTC.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func (d *decoder) time() time.Time {
	us := int64(d.u64())
	if d.err != nil {
		return time.Time{}
	}
	return pgEpoch.Add(time.Duration(us) * time.Microsecond)
}

func (d *decoder) bytes(n int) []byte {
	if !d.need(n) {
		return nil
	}
	v := d.buf[d.off : d.off+n : d.off+n]
	d.off += n
	return v
}

func (d *decoder) cstring() string {
	if d.err != nil {
		return ""
	}
	for i := d.off; i < len(d.buf); i++ {
		if d.buf[i] == 0 {
			s := string(d.buf[d.off:i])
			d.off = i + 1
			return s
		}
	}
	d.fail(errors.New("unterminated string"))
	return ""
}

// tuple appends the columns of a TupleData to dst. Text values alias d.buf.
func (d *decoder) tuple(dst Tuple) Tuple {
	n := int(d.u16())
	if d.err != nil {
		return dst
	}
	// Each column takes at least one byte; refuse counts the data cannot hold
	// before allocating for them.
	if n > len(d.buf)-d.off {
		d.fail(fmt.Errorf("%w: %d columns announced, %d bytes left", errShort, n, len(d.buf)-d.off))
		return dst
	}
	for range n {
		switch k := d.u8(); k {
		case 'n':
			dst = append(dst, Value{Kind: ValueNull})
		case 'u':
			dst = append(dst, Value{Kind: ValueUnchanged})
		case 't':
			l := d.u32()
			if l > uint32(len(d.buf)) {
				d.fail(fmt.Errorf("%w: value of %d bytes", errShort, l))
				return dst
			}
			dst = append(dst, Value{Kind: ValueText, Data: d.bytes(int(l))})
		case 'b':
			d.fail(errors.New("binary tuple data was not requested"))
			return dst
		default:
			if d.err == nil {
				d.fail(fmt.Errorf("unknown tuple column kind %q", k))
			}
			return dst
		}
		if d.err != nil {
			return dst
		}
	}
	return dst
}
