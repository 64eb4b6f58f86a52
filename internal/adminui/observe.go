package adminui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/internal/jsonw"
)

// observer turns the hub's events into the UI's messages (queued only).
func (a *Admin) observer() *hub.Observer {
	dev := a.cfg.Mode == Development
	o := &hub.Observer{
		ConnOpen:  func() { a.buf.push("rawConnection", "", 1) },
		ConnClose: func(reason string) { a.buf.push("rawDisconnection", reason, 1) },
		EventIn: func(s *hub.Socket, event string, args []json.RawMessage) {
			a.buf.push("packetsIn", "", 1)
			if dev && a.watched.Load() && s.Namespace() != a.nsp {
				a.emit("event_received", s.Namespace(), s.ID(), a.eventArgs(event, args), now())
			}
		},
		EventOut: func(s *hub.Socket, event string, args []json.RawMessage) {
			a.buf.push("packetsOut", "", 1)
			if dev && a.watched.Load() && s.Namespace() != a.nsp {
				a.emit("event_sent", s.Namespace(), s.ID(), a.eventArgs(event, args), now())
			}
		},
		Broadcast: func(b *hub.Broadcast, delivered int) {
			nsp := b.Namespace
			if nsp == "" {
				nsp = "/"
			}
			if nsp == a.nsp {
				return
			}
			a.buf.push("packetsOut", "", delivered)
			// Every node fans out the same broadcast: only this node's admin
			// sockets are told, at most BroadcastRate a second.
			if !dev || a.admins.Load() == 0 || a.bcastLim == nil || !a.bcastLim.Allow() {
				return
			}
			to := "*"
			if len(b.Rooms) > 0 {
				to = strings.Join(b.Rooms, ",")
			}
			raw, err := encodeArgs([]any{nsp, to, a.eventArgs(b.Event, b.Args), now()})
			if err == nil {
				a.localOnly(&hub.Broadcast{Event: "event_sent", Args: raw})
			}
		},
	}
	if !dev {
		return o
	}
	o.Connect = func(s *hub.Socket) {
		if a.watched.Load() || s.Namespace() == a.nsp {
			a.emit("socket_connected", a.serialize(s), now())
		}
	}
	o.Upgrade = func(s *hub.Socket) {
		if a.watched.Load() {
			a.emit("socket_updated", map[string]string{"id": s.ID(), "nsp": s.Namespace(), "transport": "websocket"})
		}
	}
	o.Disconnect = func(s *hub.Socket, reason string, rooms []string) {
		if !a.watched.Load() {
			return
		}
		t := now()
		a.emit("socket_disconnected", s.Namespace(), s.ID(), reason, t)
		for _, r := range rooms {
			a.emit("room_left", s.Namespace(), r, s.ID(), t)
		}
	}
	o.Join = func(s *hub.Socket, room string) {
		if a.watched.Load() {
			a.emit("room_joined", s.Namespace(), room, s.ID(), now())
		}
	}
	o.Leave = func(s *hub.Socket, room string) {
		if a.watched.Load() {
			a.emit("room_left", s.Namespace(), room, s.ID(), now())
		}
	}
	return o
}

// now is the timestamp the UI expects (a JavaScript Date as JSON).
func now() string { return time.Now().UTC().Format("2006-01-02T15:04:05.000Z") }

// eventArgs is the UI's [event, args...], or [event, "<n bytes>"] when the
// arguments are over MaxArgsBytes.
func (a *Admin) eventArgs(event string, args []json.RawMessage) []json.RawMessage {
	size := 0
	for _, r := range args {
		size += len(r)
	}
	out := make([]json.RawMessage, 0, len(args)+1)
	out = append(out, jsonw.AppendString(nil, event))
	if size > a.cfg.MaxArgsBytes {
		return append(out, jsonw.AppendString(nil, fmt.Sprintf("(%d bytes of arguments, not shown)", size)))
	}
	return append(out, args...)
}

// encodeArgs encodes each argument as JSON; json.RawMessage passes through.
func encodeArgs(args []any) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, len(args))
	for i, v := range args {
		if r, ok := v.(json.RawMessage); ok {
			out[i] = r
			continue
		}
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return nil, fmt.Errorf("argument %d: %w", i, err)
		}
		out[i] = bytes.TrimSuffix(b.Bytes(), []byte{'\n'})
	}
	return out, nil
}

// socketJSON is the UI's SerializedSocket.
type socketJSON struct {
	ID        string        `json:"id"`
	ClientID  string        `json:"clientId"`
	Transport string        `json:"transport"`
	Nsp       string        `json:"nsp"`
	Data      any           `json:"data"`
	Handshake handshakeJSON `json:"handshake"`
	Rooms     []string      `json:"rooms"`
}

type handshakeJSON struct {
	Address string            `json:"address"`
	Headers map[string]string `json:"headers"`
	Query   map[string]string `json:"query"`
	Secure  bool              `json:"secure"`
}

// serialize describes s for the UI (headers and query redacted).
func (a *Admin) serialize(s *hub.Socket) json.RawMessage {
	h := s.Handshake()
	cid := s.ConnID()
	if len(cid) > 12 {
		cid = cid[:12] // the sid lets its holder act as the client on polling: show a prefix
	}
	var data any = map[string]any{}
	if a.cfg.Data != nil {
		if d := a.cfg.Data(s); d != nil {
			data = d
		}
	}
	sj := socketJSON{
		ID: s.ID(), ClientID: cid, Transport: s.Transport(), Nsp: s.Namespace(), Data: data,
		Rooms: s.Rooms(),
		Handshake: handshakeJSON{
			Address: clientAddress(h),
			Headers: make(map[string]string, len(h.Header)),
			Query:   make(map[string]string, len(h.Query)),
		},
	}
	for k, vs := range h.Header {
		k = strings.ToLower(k)
		v := strings.Join(vs, ", ")
		if redactedHeader(k) {
			v = "[redacted]"
		}
		sj.Handshake.Headers[k] = v
	}
	sj.Handshake.Secure = sj.Handshake.Headers["x-forwarded-proto"] == "https"
	for k, vs := range h.Query {
		v := strings.Join(vs, ",")
		if redactedParam(k) {
			v = "[redacted]"
		}
		sj.Handshake.Query[k] = v
	}
	b, err := json.Marshal(sj)
	if err != nil {
		sj.Data = map[string]any{}
		b, _ = json.Marshal(sj)
	}
	return b
}

// clientAddress is the client's IP as the UI shows it.
func clientAddress(h *hub.Handshake) string {
	if xff := h.Header.Get("X-Forwarded-For"); xff != "" {
		return strings.TrimSpace(strings.Split(xff, ",")[0])
	}
	if host, _, err := net.SplitHostPort(h.RemoteAddr); err == nil {
		return host
	}
	return h.RemoteAddr
}

func redactedHeader(k string) bool {
	switch k {
	case "authorization", "cookie", "proxy-authorization", "x-api-key":
		return true
	}
	return false
}

func redactedParam(k string) bool {
	k = strings.ToLower(k)
	return strings.Contains(k, "token") || strings.Contains(k, "key") || strings.Contains(k, "secret") ||
		strings.Contains(k, "password") || k == "auth" || k == "jwt"
}

// eventBuffer counts the aggregated events of the current seconds, as the
// UI's dashboard charts them.
type eventBuffer struct {
	mu sync.Mutex
	m  map[aggKey]int
}

type aggKey struct {
	ts      int64 // unix milliseconds, truncated to the second
	typ     string
	subType string
}

func (e *eventBuffer) push(typ, subType string, n int) {
	if n <= 0 {
		return
	}
	k := aggKey{ts: time.Now().Truncate(time.Second).UnixMilli(), typ: typ, subType: subType}
	e.mu.Lock()
	if e.m == nil {
		e.m = make(map[aggKey]int)
	}
	if len(e.m) < 10_000 { // bounded even when Run does not drain it
		e.m[k] += n
	}
	e.mu.Unlock()
}

// aggEvent is one of server_stats' aggregatedEvents.
type aggEvent struct {
	Timestamp int64  `json:"timestamp"`
	Type      string `json:"type"`
	SubType   string `json:"subType,omitempty"`
	Count     int    `json:"count"`
}

func (e *eventBuffer) drain() []aggEvent {
	e.mu.Lock()
	m := e.m
	e.m = nil
	e.mu.Unlock()
	out := make([]aggEvent, 0, len(m))
	for k, n := range m {
		out = append(out, aggEvent{Timestamp: k.ts, Type: k.typ, SubType: k.subType, Count: n})
	}
	return out
}
