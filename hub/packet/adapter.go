package packet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// The @socket.io/redis-adapter (classic pub/sub) message, as the adapter
// and @socket.io/redis-emitter write it (notepack.io msgpack):
//
//	message  [uid, packet, opts]
//	packet   {type: 2, data: [event, args...], nsp}
//	opts     {rooms: [...], except: [...], flags: {...}}
//
// Binary arguments travel as msgpack bin values inside data; the receiver
// turns them back into Socket.IO placeholders plus attachments.
//
// walcast adds two keys to flags, which Node's adapter passes along and
// otherwise ignores:
//
//	walcastOffset      string: the recovery offset; data then ends with the same
//	                   string, exactly as a recovery-enabled socket.io emits it
//	walcastCommitTime  int: the source commit time in microseconds since the epoch
const (
	flagOffset     = "walcastOffset"
	flagCommitTime = "walcastCommitTime"
)

// The adapter writes a packet's type as a number: the Socket.IO type byte
// less '0'. It sends EVENT; BINARY_EVENT is accepted on input too.
const (
	adapterEvent       = int64(SocketEvent - '0')
	adapterBinaryEvent = int64(SocketBinaryEvent - '0')
)

// AdapterMessage is one broadcast as the Redis adapter carries it.
type AdapterMessage struct {
	UID       string // the sending node; "" when absent
	Namespace string // "" means "/"
	Event     string
	// Args are the event's arguments, each one JSON value; placeholders
	// {"_placeholder":true,"num":i} stand for Attachments[i].
	Args        []json.RawMessage
	Attachments [][]byte
	Rooms       []string // nil = every socket of the namespace
	Except      []string
	// Offset is the recovery offset, "" for none; it travels both as a flag
	// and as the last argument, as socket.io emits it.
	Offset     string
	CommitTime time.Time // the zero time means absent
}

// AppendAdapterMessage appends the msgpack message for m to dst. Arguments
// that are not JSON, or placeholders without an attachment, give an error.
func AppendAdapterMessage(dst []byte, m *AdapterMessage) ([]byte, error) {
	dst = appendArrayLen(dst, 3)
	dst = appendString(dst, m.UID)
	dst, err := appendPacket(dst, m)
	if err != nil {
		return dst, err
	}
	return appendOpts(dst, m), nil
}

// appendPacket appends m's packet map {type, data, nsp}.
func appendPacket(dst []byte, m *AdapterMessage) ([]byte, error) {
	dst = appendMapLen(dst, 3)
	dst = appendString(dst, "type")
	dst = appendInt(dst, adapterEvent)
	dst = appendString(dst, "data")
	n := 1 + len(m.Args)
	if m.Offset != "" {
		n++
	}
	dst = appendArrayLen(dst, n)
	dst = appendString(dst, m.Event)
	for i, a := range m.Args {
		var err error
		dst, err = appendJSONAsMsgpack(dst, a, m.Attachments)
		if err != nil {
			return dst, fmt.Errorf("packet: encode argument %d of event %q: %w", i, m.Event, err)
		}
	}
	if m.Offset != "" {
		dst = appendString(dst, m.Offset)
	}
	dst = appendString(dst, "nsp")
	dst = appendString(dst, Namespace(m.Namespace))
	return dst, nil
}

// appendOpts appends m's opts map {rooms, except, flags}.
func appendOpts(dst []byte, m *AdapterMessage) []byte {
	dst = appendMapLen(dst, 3)
	dst = appendString(dst, "rooms")
	dst = appendStrings(dst, m.Rooms)
	dst = appendString(dst, "except")
	dst = appendStrings(dst, m.Except)
	dst = appendString(dst, "flags")
	nf := 0
	if m.Offset != "" {
		nf++
	}
	if !m.CommitTime.IsZero() {
		nf++
	}
	dst = appendMapLen(dst, nf)
	if m.Offset != "" {
		dst = appendString(dst, flagOffset)
		dst = appendString(dst, m.Offset)
	}
	if !m.CommitTime.IsZero() {
		dst = appendString(dst, flagCommitTime)
		dst = appendInt(dst, m.CommitTime.UnixMicro())
	}
	return dst
}

// ParseAdapterMessage decodes one adapter or emitter message of an EVENT.
// The result does not alias data. Errors are *DecodeError.
func ParseAdapterMessage(data []byte) (AdapterMessage, error) {
	// [uid, {type, nsp, data: [event, args...]}, opts]: the arguments, at
	// depth 3, are transcoded from their bytes.
	d := &decoder{buf: data, lazy: 3}
	top, err := d.decode(0)
	if err != nil {
		return AdapterMessage{}, err
	}
	if d.off != len(data) {
		return AdapterMessage{}, d.fail(errors.New("trailing bytes after message"))
	}
	bad := func(format string, args ...any) (AdapterMessage, error) {
		return AdapterMessage{}, &DecodeError{Offset: 0, Err: fmt.Errorf(format, args...)}
	}
	if top.kind != kindArray || len(top.arr) < 2 {
		return bad("message is not an array [uid, packet, opts]")
	}
	var opts *value
	if len(top.arr) >= 3 {
		opts = &top.arr[2]
	}
	return parseAdapterParts(&top.arr[0], &top.arr[1], opts)
}

// parseAdapterParts decodes a message from its uid, packet and opts (nil =
// absent) values.
func parseAdapterParts(uid, pkt, opts *value) (AdapterMessage, error) {
	var err error
	bad := func(format string, args ...any) (AdapterMessage, error) {
		return AdapterMessage{}, &DecodeError{Offset: 0, Err: fmt.Errorf(format, args...)}
	}
	m := AdapterMessage{Namespace: "/"}
	switch u := uid; u.kind {
	case kindString:
		m.UID = string(u.s)
	case kindNil:
	default:
		return bad("uid is not a string")
	}
	if pkt.kind != kindMap {
		return bad("packet is not a map")
	}
	typ, ok := pkt.mapGet("type")
	if !ok || typ.kind != kindInt || (typ.i != adapterEvent && typ.i != adapterBinaryEvent) {
		return bad("packet type is not EVENT")
	}
	if nsp, ok := pkt.mapGet("nsp"); ok && nsp.kind != kindNil {
		s, ok := nsp.str()
		if !ok || s == "" || s[0] != '/' {
			return bad("packet nsp is not a namespace")
		}
		m.Namespace = s
	}
	dataV, ok := pkt.mapGet("data")
	if !ok || dataV.kind != kindArray || len(dataV.arr) == 0 {
		return bad("packet data is not a non-empty array")
	}
	ev, ok := dataV.arr[0].str()
	if !ok {
		return bad("event name is not a string")
	}
	m.Event = ev
	args := dataV.arr[1:]

	if opts != nil {
		if opts.kind == kindMap {
			if m.Rooms, err = stringList(opts, "rooms"); err != nil {
				return bad("%v", err)
			}
			if m.Except, err = stringList(opts, "except"); err != nil {
				return bad("%v", err)
			}
			if flags, ok := opts.mapGet("flags"); ok && flags.kind == kindMap {
				if o, ok := flags.mapGet(flagOffset); ok {
					s, ok := o.str()
					if !ok || s == "" || len(args) == 0 {
						return bad("bad %s flag", flagOffset)
					}
					if last, _ := args[len(args)-1].str(); last != s {
						return bad("%s flag does not match the last argument", flagOffset)
					}
					m.Offset = s
					args = args[:len(args)-1]
				}
				if ct, ok := flags.mapGet(flagCommitTime); ok && ct.kind == kindInt {
					m.CommitTime = time.UnixMicro(ct.i)
				}
			}
		} else if opts.kind != kindNil {
			return bad("opts is not a map")
		}
	}

	// One buffer holds every argument's JSON; slice it only once it is complete.
	var buf []byte
	ends := make([]int, len(args))
	for i := range args {
		if buf, err = appendJSON(buf, &args[i], &m.Attachments); err != nil {
			return bad("argument %d: %v", i, err)
		}
		ends[i] = len(buf)
	}
	m.Args = make([]json.RawMessage, len(args))
	start := 0
	for i, end := range ends {
		m.Args[i] = json.RawMessage(buf[start:end:end])
		start = end
	}
	// Attachments alias data; copy them so the caller may reuse data.
	for i, a := range m.Attachments {
		m.Attachments[i] = bytes.Clone(a)
	}
	return m, nil
}

// stringList reads an optional array of room names from map v.
func stringList(v *value, key string) ([]string, error) {
	l, ok := v.mapGet(key)
	if !ok || l.kind == kindNil {
		return nil, nil
	}
	if l.kind != kindArray {
		return nil, fmt.Errorf("%s is not an array", key)
	}
	if len(l.arr) == 0 {
		return nil, nil
	}
	out := make([]string, 0, len(l.arr))
	for _, e := range l.arr {
		switch e.kind {
		case kindString:
			out = append(out, string(e.s))
		case kindInt:
			out = append(out, strconv.FormatInt(e.i, 10))
		default:
			return nil, fmt.Errorf("%s holds a non-string room", key)
		}
	}
	return out, nil
}
