package bus

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/walcast/walcast/hub"
)

// The @socket.io/redis-adapter (classic pub/sub) wire format, as the adapter
// and @socket.io/redis-emitter write it (notepack.io msgpack):
//
//	channel  <prefix>#<nsp>#            broadcast to all sockets or to several rooms
//	         <prefix>#<nsp>#<room>#     broadcast to exactly one room
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

// packetTypeEvent is the Socket.IO EVENT packet type; packetTypeBinaryEvent is
// accepted on input too.
const (
	packetTypeEvent       = 2
	packetTypeBinaryEvent = 5
)

// channelFor returns the channel a broadcast is published on.
func channelFor(prefix string, b *hub.Broadcast) string {
	nsp := nspOf(b.Namespace)
	if len(b.Rooms) == 1 {
		return prefix + "#" + nsp + "#" + b.Rooms[0] + "#"
	}
	return prefix + "#" + nsp + "#"
}

func nspOf(s string) string {
	if s == "" {
		return "/"
	}
	return s
}

// appendMessage appends the msgpack message for b, sent by uid, to dst.
func appendMessage(dst []byte, uid string, b *hub.Broadcast) ([]byte, error) {
	dst = appendArrayLen(dst, 3)
	dst = appendString(dst, uid)

	dst = appendMapLen(dst, 3)
	dst = appendString(dst, "type")
	dst = appendInt(dst, packetTypeEvent)
	dst = appendString(dst, "data")
	n := 1 + len(b.Args)
	if b.Offset != "" {
		n++
	}
	dst = appendArrayLen(dst, n)
	dst = appendString(dst, b.Event)
	for i, a := range b.Args {
		var err error
		dst, err = appendJSONAsMsgpack(dst, a, b.Attachments)
		if err != nil {
			return dst, fmt.Errorf("bus: encode argument %d of event %q: %w", i, b.Event, err)
		}
	}
	if b.Offset != "" {
		dst = appendString(dst, b.Offset)
	}
	dst = appendString(dst, "nsp")
	dst = appendString(dst, nspOf(b.Namespace))

	dst = appendMapLen(dst, 3)
	dst = appendString(dst, "rooms")
	dst = appendStrings(dst, b.Rooms)
	dst = appendString(dst, "except")
	dst = appendStrings(dst, b.Except)
	dst = appendString(dst, "flags")
	nf := 0
	if b.Offset != "" {
		nf++
	}
	if !b.CommitTime.IsZero() {
		nf++
	}
	dst = appendMapLen(dst, nf)
	if b.Offset != "" {
		dst = appendString(dst, flagOffset)
		dst = appendString(dst, b.Offset)
	}
	if !b.CommitTime.IsZero() {
		dst = appendString(dst, flagCommitTime)
		dst = appendInt(dst, b.CommitTime.UnixMicro())
	}
	return dst, nil
}

// message is a decoded bus message.
type message struct {
	uid string
	b   *hub.Broadcast
}

// decodeMessage decodes one adapter/emitter message. The returned broadcast
// does not alias data.
func decodeMessage(data []byte) (message, error) {
	d := &decoder{buf: data}
	top, err := d.decode(0)
	if err != nil {
		return message{}, err
	}
	if d.off != len(data) {
		return message{}, d.fail(errors.New("trailing bytes after message"))
	}
	bad := func(format string, args ...any) (message, error) {
		return message{}, &DecodeError{Offset: 0, Err: fmt.Errorf(format, args...)}
	}
	if top.kind != kindArray || len(top.arr) < 2 {
		return bad("message is not an array [uid, packet, opts]")
	}
	var m message
	switch u := &top.arr[0]; u.kind {
	case kindString:
		m.uid = string(u.s)
	case kindNil:
	default:
		return bad("uid is not a string")
	}
	pkt := &top.arr[1]
	if pkt.kind != kindMap {
		return bad("packet is not a map")
	}
	typ, ok := pkt.mapGet("type")
	if !ok || typ.kind != kindInt || (typ.i != packetTypeEvent && typ.i != packetTypeBinaryEvent) {
		return bad("packet type is not EVENT")
	}
	b := &hub.Broadcast{Namespace: "/"}
	if nsp, ok := pkt.mapGet("nsp"); ok && nsp.kind != kindNil {
		s, ok := nsp.str()
		if !ok || s == "" || s[0] != '/' {
			return bad("packet nsp is not a namespace")
		}
		b.Namespace = s
	}
	dataV, ok := pkt.mapGet("data")
	if !ok || dataV.kind != kindArray || len(dataV.arr) == 0 {
		return bad("packet data is not a non-empty array")
	}
	ev, ok := dataV.arr[0].str()
	if !ok {
		return bad("event name is not a string")
	}
	b.Event = ev
	args := dataV.arr[1:]

	if len(top.arr) >= 3 {
		opts := &top.arr[2]
		if opts.kind == kindMap {
			if b.Rooms, err = stringList(opts, "rooms"); err != nil {
				return bad("%v", err)
			}
			if b.Except, err = stringList(opts, "except"); err != nil {
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
					b.Offset = s
					args = args[:len(args)-1]
				}
				if ct, ok := flags.mapGet(flagCommitTime); ok && ct.kind == kindInt {
					b.CommitTime = time.UnixMicro(ct.i)
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
		if buf, err = appendJSON(buf, &args[i], &b.Attachments); err != nil {
			return bad("argument %d: %v", i, err)
		}
		ends[i] = len(buf)
	}
	b.Args = make([]json.RawMessage, len(args))
	start := 0
	for i, end := range ends {
		b.Args[i] = json.RawMessage(buf[start:end:end])
		start = end
	}
	// Attachments alias data; copy them so the caller may reuse data.
	for i, a := range b.Attachments {
		b.Attachments[i] = bytes.Clone(a)
	}
	m.b = b
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
