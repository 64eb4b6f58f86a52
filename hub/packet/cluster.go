package packet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/walcast/walcast/internal/jsonw"
)

// The message of socket.io-adapter's ClusterAdapter, which
// @socket.io/redis-adapter's createShardedAdapter (Redis 7 sharded pub/sub)
// sends:
//
//	message  {uid, nsp, type, data}
//	BROADCAST (type 3)  data {packet, opts[, requestId]}, packet and opts as in
//	                    the classic message (see AdapterMessage)
//	request  type 4-7, 9 (socketsJoin, socketsLeave, disconnectSockets,
//	         fetchSockets, serverSideEmit), data {opts, ..., requestId}
//	response type 8, 10-12, sent to the requester's own channel
//
// It is JSON (JSON.stringify) unless the data holds binary, then msgpack
// (notepack.io) of the same map; a receiver tells them apart by the first
// byte ('{' is JSON). walcast writes BROADCAST, with its flags as in the
// classic message, and FETCH_SOCKETS_RESPONSE.

// ClusterType is a ClusterAdapter message type.
type ClusterType int

// The ClusterAdapter message types.
const (
	ClusterBroadcast              ClusterType = 3
	ClusterSocketsJoin            ClusterType = 4
	ClusterSocketsLeave           ClusterType = 5
	ClusterDisconnectSockets      ClusterType = 6
	ClusterFetchSockets           ClusterType = 7
	ClusterFetchSocketsResponse   ClusterType = 8
	ClusterServerSideEmit         ClusterType = 9
	ClusterServerSideEmitResponse ClusterType = 10
	ClusterBroadcastClientCount   ClusterType = 11
	ClusterBroadcastAck           ClusterType = 12
	ClusterAdapterClose           ClusterType = 13
)

// ClusterMessage is a decoded ClusterAdapter message.
type ClusterMessage struct {
	UID       string
	Namespace string // "/" when absent
	Type      ClusterType
	// RequestID is data.requestId ("" = none): a BROADCAST with one asks
	// for acknowledgements; a request expects responses on the requester's
	// channel.
	RequestID string
	// Broadcast is the event of a BROADCAST (UID and Namespace set too).
	Broadcast AdapterMessage
	// Rooms and Except are the selection (data.opts) of a request.
	Rooms, Except []string
}

// AppendClusterBroadcast appends the BROADCAST message for m to dst: JSON
// when m has no attachments, else msgpack. Arguments are written as they are
// (they must be JSON); with attachments, placeholders without an attachment
// give an error.
func AppendClusterBroadcast(dst []byte, m *AdapterMessage) ([]byte, error) {
	nsp := Namespace(m.Namespace)
	if len(m.Attachments) > 0 {
		dst = appendMapLen(dst, 4)
		dst = appendString(dst, "uid")
		dst = appendString(dst, m.UID)
		dst = appendString(dst, "nsp")
		dst = appendString(dst, nsp)
		dst = appendString(dst, "type")
		dst = appendInt(dst, int64(ClusterBroadcast))
		dst = appendString(dst, "data")
		dst = appendMapLen(dst, 2)
		dst = appendString(dst, "packet")
		var err error
		if dst, err = appendPacket(dst, m); err != nil {
			return dst, err
		}
		dst = appendString(dst, "opts")
		return appendOpts(dst, m), nil
	}
	dst = append(dst, `{"uid":`...)
	dst = jsonw.AppendString(dst, m.UID)
	dst = append(dst, `,"nsp":`...)
	dst = jsonw.AppendString(dst, nsp)
	dst = append(dst, `,"type":3,"data":{"packet":{"type":2,"data":[`...)
	dst = jsonw.AppendString(dst, m.Event)
	for _, a := range m.Args {
		dst = append(dst, ',')
		dst = append(dst, a...)
	}
	if m.Offset != "" {
		dst = append(dst, ',')
		dst = jsonw.AppendString(dst, m.Offset)
	}
	dst = append(dst, `],"nsp":`...)
	dst = jsonw.AppendString(dst, nsp)
	dst = append(dst, `},"opts":{"rooms":`...)
	dst = appendJSONStrings(dst, m.Rooms)
	dst = append(dst, `,"except":`...)
	dst = appendJSONStrings(dst, m.Except)
	dst = append(dst, `,"flags":{`...)
	if m.Offset != "" {
		dst = append(dst, `"`+flagOffset+`":`...)
		dst = jsonw.AppendString(dst, m.Offset)
	}
	if !m.CommitTime.IsZero() {
		if m.Offset != "" {
			dst = append(dst, ',')
		}
		dst = append(dst, `"`+flagCommitTime+`":`...)
		dst = strconv.AppendInt(dst, m.CommitTime.UnixMicro(), 10)
	}
	return append(dst, "}}}}"...), nil
}

func appendJSONStrings(dst []byte, ss []string) []byte {
	dst = append(dst, '[')
	for i, s := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = jsonw.AppendString(dst, s)
	}
	return append(dst, ']')
}

// AppendFetchSocketsResponse appends the JSON FETCH_SOCKETS_RESPONSE to
// request requestID, from uid in nsp, listing sockets.
func AppendFetchSocketsResponse(dst []byte, uid, nsp, requestID string, sockets []ClusterSocket) []byte {
	dst = append(dst, `{"uid":`...)
	dst = jsonw.AppendString(dst, uid)
	dst = append(dst, `,"nsp":`...)
	dst = jsonw.AppendString(dst, Namespace(nsp))
	dst = append(dst, `,"type":8,"data":{"requestId":`...)
	dst = jsonw.AppendString(dst, requestID)
	dst = append(dst, `,"sockets":[`...)
	for i, s := range sockets {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"id":`...)
		dst = jsonw.AppendString(dst, s.ID)
		dst = append(dst, `,"handshake":{"address":`...)
		dst = jsonw.AppendString(dst, s.Address)
		dst = append(dst, `,"time":`...)
		dst = jsonw.AppendString(dst, s.Time.UTC().Format(time.RFC1123))
		dst = append(dst, `,"issued":`...)
		dst = strconv.AppendInt(dst, s.Time.UnixMilli(), 10)
		dst = append(dst, `,"headers":{},"query":{},"auth":{},"xdomain":false,"secure":false,"url":"/socket.io/"},"rooms":`...)
		dst = appendJSONStrings(dst, s.Rooms)
		dst = append(dst, `,"data":{}}`...)
	}
	return append(dst, "]}}"...)
}

// ClusterSocket is one socket in a FETCH_SOCKETS_RESPONSE. walcast sends no
// headers, query, auth or data: they may hold tokens.
type ClusterSocket struct {
	ID      string
	Rooms   []string // the socket's id first
	Address string
	Time    time.Time // the handshake
}

// ParseClusterMessage decodes one ClusterAdapter message. A BROADCAST's
// event is decoded into Broadcast; for other types only the header, the
// request id and the selection. The result does not alias data. Errors are
// *DecodeError.
func ParseClusterMessage(data []byte) (ClusterMessage, error) {
	if len(data) > 0 && data[0] == '{' {
		return parseClusterJSON(data)
	}
	// {uid, nsp, type, data: {packet: {data: [event, args...]}, opts}}: the
	// arguments, at depth 4, are transcoded from their bytes.
	d := &decoder{buf: data, lazy: 4}
	top, err := d.decode(0)
	if err != nil {
		return ClusterMessage{}, err
	}
	bad := func(format string, args ...any) (ClusterMessage, error) {
		return ClusterMessage{}, &DecodeError{Offset: 0, Err: fmt.Errorf(format, args...)}
	}
	if d.off != len(data) {
		return bad("trailing bytes after message")
	}
	if top.kind != kindMap {
		return bad("message is not a map")
	}
	m := ClusterMessage{Namespace: "/"}
	if u, ok := top.mapGet("uid"); ok {
		m.UID, _ = u.str()
	}
	if n, ok := top.mapGet("nsp"); ok {
		if s, ok := n.str(); ok && s != "" {
			m.Namespace = s
		}
	}
	t, ok := top.mapGet("type")
	if !ok || t.kind != kindInt {
		return bad("type is not a number")
	}
	m.Type = ClusterType(t.i)
	dv, ok := top.mapGet("data")
	if !ok || dv.kind != kindMap {
		return bad("data is not a map")
	}
	if r, ok := dv.mapGet("requestId"); ok {
		switch r.kind {
		case kindString:
			m.RequestID = string(r.s)
		case kindInt:
			m.RequestID = strconv.FormatInt(r.i, 10)
		}
	}
	opts, _ := dv.mapGet("opts")
	if m.Type != ClusterBroadcast {
		if opts != nil && opts.kind == kindMap {
			if m.Rooms, err = stringList(opts, "rooms"); err != nil {
				return bad("%v", err)
			}
			if m.Except, err = stringList(opts, "except"); err != nil {
				return bad("%v", err)
			}
		}
		return m, nil
	}
	pkt, ok := dv.mapGet("packet")
	if !ok {
		return bad("broadcast without a packet")
	}
	uid := &value{kind: kindString, s: []byte(m.UID)}
	if m.Broadcast, err = parseAdapterParts(uid, pkt, opts); err != nil {
		return ClusterMessage{}, err
	}
	if m.Broadcast.Namespace == "/" {
		m.Broadcast.Namespace = m.Namespace
	}
	return m, nil
}

// clusterJSON is the JSON form of a ClusterAdapter message.
type clusterJSON struct {
	UID  string          `json:"uid"`
	Nsp  string          `json:"nsp"`
	Type *int            `json:"type"`
	Data json.RawMessage `json:"data"`
}

type clusterDataJSON struct {
	RequestID json.RawMessage `json:"requestId"`
	Packet    *struct {
		Type int               `json:"type"`
		Data []json.RawMessage `json:"data"`
		Nsp  string            `json:"nsp"`
	} `json:"packet"`
	Opts *struct {
		Rooms  []json.RawMessage          `json:"rooms"`
		Except []json.RawMessage          `json:"except"`
		Flags  map[string]json.RawMessage `json:"flags"`
	} `json:"opts"`
}

func parseClusterJSON(data []byte) (ClusterMessage, error) {
	bad := func(format string, args ...any) (ClusterMessage, error) {
		return ClusterMessage{}, &DecodeError{Offset: 0, Err: fmt.Errorf(format, args...)}
	}
	var top clusterJSON
	if err := json.Unmarshal(data, &top); err != nil {
		return bad("json: %v", err)
	}
	if top.Type == nil {
		return bad("type is not a number")
	}
	m := ClusterMessage{UID: top.UID, Namespace: "/", Type: ClusterType(*top.Type)}
	if top.Nsp != "" {
		if top.Nsp[0] != '/' {
			return bad("nsp is not a namespace")
		}
		m.Namespace = top.Nsp
	}
	var d clusterDataJSON
	if len(top.Data) == 0 || top.Data[0] != '{' {
		return bad("data is not an object")
	}
	if err := json.Unmarshal(top.Data, &d); err != nil {
		return bad("json data: %v", err)
	}
	if len(d.RequestID) > 0 && !bytes.Equal(d.RequestID, []byte("null")) {
		var s string
		if json.Unmarshal(d.RequestID, &s) == nil {
			m.RequestID = s
		} else {
			m.RequestID = string(d.RequestID)
		}
	}
	var rooms, except []string
	var err error
	if d.Opts != nil {
		if rooms, err = jsonRooms(d.Opts.Rooms); err != nil {
			return bad("rooms: %v", err)
		}
		if except, err = jsonRooms(d.Opts.Except); err != nil {
			return bad("except: %v", err)
		}
	}
	if m.Type != ClusterBroadcast {
		m.Rooms, m.Except = rooms, except
		return m, nil
	}
	p := d.Packet
	if p == nil || (p.Type != int(adapterEvent) && p.Type != int(adapterBinaryEvent)) {
		return bad("packet type is not EVENT")
	}
	if len(p.Data) == 0 {
		return bad("packet data is not a non-empty array")
	}
	var ev string
	if err := json.Unmarshal(p.Data[0], &ev); err != nil {
		return bad("event name is not a string")
	}
	b := AdapterMessage{UID: m.UID, Namespace: m.Namespace, Event: ev, Rooms: rooms, Except: except}
	if p.Nsp != "" {
		b.Namespace = p.Nsp
	}
	args := p.Data[1:]
	if d.Opts != nil {
		if raw, ok := d.Opts.Flags[flagOffset]; ok {
			var off, last string
			if json.Unmarshal(raw, &off) != nil || off == "" || len(args) == 0 ||
				json.Unmarshal(args[len(args)-1], &last) != nil || last != off {
				return bad("bad %s flag", flagOffset)
			}
			b.Offset = off
			args = args[:len(args)-1]
		}
		if raw, ok := d.Opts.Flags[flagCommitTime]; ok {
			if us, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
				b.CommitTime = time.UnixMicro(us)
			}
		}
	}
	if len(args) > 0 {
		b.Args = args
	}
	m.Broadcast = b
	return m, nil
}

// jsonRooms reads a list of rooms (strings, or numbers as their text).
func jsonRooms(l []json.RawMessage) ([]string, error) {
	if len(l) == 0 {
		return nil, nil
	}
	out := make([]string, 0, len(l))
	for _, r := range l {
		var s string
		if err := json.Unmarshal(r, &s); err == nil {
			out = append(out, s)
			continue
		}
		var n json.Number
		if err := json.Unmarshal(r, &n); err != nil {
			return nil, errors.New("a room is not a string")
		}
		out = append(out, n.String())
	}
	return out, nil
}
