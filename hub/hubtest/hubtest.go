package hubtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/hub/packet"
)

// EventBuffer is the capacity of Client.Events.
const EventBuffer = 4096

// ErrOverflow is the client's error when Events was not read fast enough.
var ErrOverflow = errors.New("hubtest: events not read, buffer full")

// ErrClosed is returned when using a closed client.
var ErrClosed = errors.New("hubtest: client closed")

// NewServer runs srv (created from cfg with hub.New) on an httptest server at
// cfg.Path and returns both; the URL to dial is ts.URL. Both are closed at the
// end of the test.
func NewServer(tb testing.TB, cfg hub.Config) (*hub.Server, *httptest.Server) {
	tb.Helper()
	srv, err := hub.New(cfg)
	if err != nil {
		tb.Fatalf("hub.New: %v", err)
	}
	path := cfg.Path
	if path == "" {
		path = hub.DefaultPath
	}
	mux := http.NewServeMux()
	mux.Handle(path, srv)
	ts := httptest.NewServer(mux)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 0)
		defer cancel()
		srv.Shutdown(ctx)
		ts.Close()
	})
	return srv, ts
}

// Event is one event received from the server.
type Event struct {
	Name        string
	Args        []json.RawMessage // placeholders left in place; the recovery offset stays last
	Attachments [][]byte
	// Ack answers the server's ack request; nil when none was requested.
	Ack func(args ...any) error
}

// ConnectError is returned by Dial when the server refuses the CONNECT.
type ConnectError struct {
	Message string
	Data    json.RawMessage // nil when absent
}

func (e *ConnectError) Error() string { return "hubtest: connect refused: " + e.Message }

// Options tune Dial; the zero value is fine.
type Options struct {
	Path   string      // "" = "/socket.io/"
	Header http.Header // extra handshake headers (e.g. Origin)
	// PID and Offset ask for connection state recovery (set by Reconnect).
	PID, Offset string
}

// Client is one Engine.IO connection with one namespace socket.
type Client struct {
	url  string
	nsp  string
	auth json.RawMessage
	opts Options
	ws   *websocket.Conn

	wmu sync.Mutex // serialises writes

	events chan Event
	done   chan struct{}

	mu        sync.Mutex
	err       error
	id, pid   string
	recovered bool
	offset    string
	nextAck   int64
	acks      map[int64]chan []json.RawMessage
	connected chan error // CONNECT outcome, read once by Dial
	pending   *pendingBin
	closed    bool
}

type pendingBin struct {
	typ   byte
	id    int64
	args  []json.RawMessage
	n     int
	atts  [][]byte
	isAck bool
}

// Dial connects to rawURL (http://host[:port]; the path defaults to
// /socket.io/) over WebSocket and CONNECTs to namespace with auth (nil = no
// payload). It returns when the CONNECT was accepted, or a *ConnectError.
func Dial(ctx context.Context, rawURL, namespace string, auth json.RawMessage) (*Client, error) {
	return DialOptions(ctx, rawURL, namespace, auth, Options{})
}

// DialOptions is Dial with Options.
func DialOptions(ctx context.Context, rawURL, namespace string, auth json.RawMessage, o Options) (*Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("hubtest: parse url %q: %w", rawURL, err)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	}
	u.Path = o.Path
	if u.Path == "" {
		u.Path = hub.DefaultPath
	}
	u.RawQuery = "EIO=4&transport=websocket"
	if namespace == "" {
		namespace = "/"
	}
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, u.String(), o.Header)
	if err != nil {
		return nil, fmt.Errorf("hubtest: dial %s: %w", u, err)
	}
	c := &Client{
		url: rawURL, nsp: namespace, auth: auth, opts: o, ws: ws,
		events:    make(chan Event, EventBuffer),
		done:      make(chan struct{}),
		acks:      make(map[int64]chan []json.RawMessage),
		connected: make(chan error, 1),
	}
	// open packet
	_, open, err := ws.ReadMessage()
	if err != nil || len(open) == 0 || open[0] != packet.EngineOpen {
		ws.Close()
		return nil, fmt.Errorf("hubtest: read open packet: %v %q", err, open)
	}
	payload := auth
	if o.PID != "" {
		m := map[string]json.RawMessage{}
		if len(auth) > 0 {
			if err := json.Unmarshal(auth, &m); err != nil {
				ws.Close()
				return nil, fmt.Errorf("hubtest: auth must be an object: %w", err)
			}
		}
		m["pid"], _ = json.Marshal(o.PID)
		m["offset"], _ = json.Marshal(o.Offset)
		payload, _ = json.Marshal(m)
	}
	if err := c.writeText(string(append(c.header(packet.SocketConnect, -1, 0), payload...))); err != nil {
		ws.Close()
		return nil, err
	}
	go c.readLoop()
	select {
	case err := <-c.connected:
		if err != nil {
			c.Drop()
			return nil, err
		}
		return c, nil
	case <-c.done:
		select {
		case err := <-c.connected:
			if err != nil {
				return nil, err
			}
		default:
		}
		return nil, fmt.Errorf("hubtest: connection closed before CONNECT reply: %w", c.Err())
	case <-ctx.Done():
		c.Drop()
		return nil, ctx.Err()
	}
}

// header appends the Engine.IO message type and the Socket.IO packet header
// of a packet on the client's namespace.
func (c *Client) header(typ byte, id int64, attachments int) []byte {
	return packet.AppendSocketHeader([]byte{packet.EngineMessage}, typ, attachments, c.nsp, id)
}

func (c *Client) writeText(s string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		return fmt.Errorf("hubtest: write: %w", err)
	}
	return nil
}

// WriteRaw writes one raw Engine.IO text frame (e.g. "42[\"x\"]" or a
// malformed one), for protocol tests.
func (c *Client) WriteRaw(frame string) error { return c.writeText(frame) }

func (c *Client) writeBinary(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.ws.WriteMessage(websocket.BinaryMessage, b)
}

// encode turns args into JSON arguments, with []byte as attachments.
func encode(args []any) ([]json.RawMessage, [][]byte, error) {
	raw := make([]json.RawMessage, len(args))
	var atts [][]byte
	for i, a := range args {
		switch v := a.(type) {
		case []byte:
			raw[i] = packet.AppendPlaceholder(nil, len(atts))
			atts = append(atts, v)
		case json.RawMessage:
			raw[i] = v
		default:
			b, err := json.Marshal(v)
			if err != nil {
				return nil, nil, fmt.Errorf("hubtest: encode arg: %w", err)
			}
			raw[i] = b
		}
	}
	return raw, atts, nil
}

// send writes an EVENT (typ packet.SocketEvent) or ACK (packet.SocketAck),
// made binary when args hold []byte, then its attachments.
func (c *Client) send(typ byte, id int64, event string, args []any) error {
	raw, atts, err := encode(args)
	if err != nil {
		return err
	}
	switch {
	case len(atts) > 0 && typ == packet.SocketEvent:
		typ = packet.SocketBinaryEvent
	case len(atts) > 0:
		typ = packet.SocketBinaryAck
	}
	msg := packet.AppendEventMessage(nil, typ, len(atts), c.nsp, id, event, raw)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.TextMessage, msg); err != nil {
		return fmt.Errorf("hubtest: write: %w", err)
	}
	for _, a := range atts {
		if err := c.ws.WriteMessage(websocket.BinaryMessage, a); err != nil {
			return fmt.Errorf("hubtest: write: %w", err)
		}
	}
	return nil
}

// Emit sends an event; []byte args become binary attachments,
// json.RawMessage passes through, the rest is json.Marshal'ed.
func (c *Client) Emit(event string, args ...any) error {
	return c.send(packet.SocketEvent, -1, event, args)
}

// EmitWithAck sends an event with an ack id and waits for the server's ack.
func (c *Client) EmitWithAck(ctx context.Context, event string, args ...any) ([]json.RawMessage, error) {
	ch := make(chan []json.RawMessage, 1)
	c.mu.Lock()
	id := c.nextAck
	c.nextAck++
	c.acks[id] = ch
	c.mu.Unlock()
	if err := c.send(packet.SocketEvent, id, event, args); err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		return r, nil
	case <-c.done:
		return nil, fmt.Errorf("hubtest: closed while waiting for ack: %w", c.Err())
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Events returns the channel of received events (closed when the connection ends).
func (c *Client) Events() <-chan Event { return c.events }

// Next returns the next event, or an error if ctx ends or the connection closes.
func (c *Client) Next(ctx context.Context) (Event, error) {
	select {
	case e, ok := <-c.events:
		if !ok {
			return Event{}, fmt.Errorf("hubtest: connection closed: %w", c.Err())
		}
		return e, nil
	case <-ctx.Done():
		return Event{}, ctx.Err()
	}
}

// Done is closed when the connection has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended (nil while open).
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// ID returns the socket id from the CONNECT reply.
func (c *Client) ID() string { c.mu.Lock(); defer c.mu.Unlock(); return c.id }

// PID returns the recovery private id ("" when recovery is off).
func (c *Client) PID() string { c.mu.Lock(); defer c.mu.Unlock(); return c.pid }

// LastOffset returns the offset of the last event received (recovery on).
func (c *Client) LastOffset() string { c.mu.Lock(); defer c.mu.Unlock(); return c.offset }

// Recovered reports whether the CONNECT resumed the previous session (the
// reply carried the pid that was asked for), like socket.recovered in JS.
func (c *Client) Recovered() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.recovered }

// Close sends the namespace DISCONNECT and closes the connection.
func (c *Client) Close() error {
	c.writeText(string(c.header(packet.SocketDisconnect, -1, 0)))
	c.wmu.Lock()
	c.ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	c.wmu.Unlock()
	c.Drop()
	return nil
}

// Drop closes the TCP connection without any packet, like a network loss;
// the server keeps the session for recovery.
func (c *Client) Drop() {
	c.ws.NetConn().Close()
	<-c.done
}

// Reconnect dials again with the same URL, namespace and auth, asking for
// recovery with this client's pid and last offset. Drop or Close this client
// first (or let the server close it).
func (c *Client) Reconnect(ctx context.Context) (*Client, error) {
	o := c.opts
	o.PID, o.Offset = c.PID(), c.LastOffset()
	if o.PID == "" {
		o.Offset = ""
	}
	return DialOptions(ctx, c.url, c.nsp, c.auth, o)
}

func (c *Client) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
}

func (c *Client) readLoop() {
	defer func() {
		c.ws.NetConn().Close()
		c.fail(ErrClosed)
		close(c.events)
		close(c.done)
	}()
	for {
		mt, data, err := c.ws.ReadMessage()
		if err != nil {
			c.fail(fmt.Errorf("hubtest: read: %w", err))
			return
		}
		if mt == websocket.BinaryMessage {
			if !c.onBinary(data) {
				return
			}
			continue
		}
		p, err := packet.ParseEngine(data)
		if err != nil {
			c.fail(fmt.Errorf("hubtest: %w", err))
			return
		}
		switch p.Type {
		case packet.EnginePing:
			c.writeText(string(packet.EnginePong))
		case packet.EngineClose:
			c.fail(errors.New("hubtest: server closed the session"))
			return
		case packet.EngineMessage:
			if !c.onPacket(p.Data) {
				return
			}
		}
	}
}

func (c *Client) onBinary(b []byte) bool {
	c.mu.Lock()
	p := c.pending
	c.mu.Unlock()
	if p == nil {
		c.fail(errors.New("hubtest: unexpected binary frame"))
		return false
	}
	p.atts = append(p.atts, b)
	if len(p.atts) < p.n {
		return true
	}
	c.mu.Lock()
	c.pending = nil
	c.mu.Unlock()
	return c.deliver(p.isAck, p.id, p.args, p.atts)
}

// onPacket handles one Socket.IO packet from the server.
func (c *Client) onPacket(b []byte) bool {
	p, err := packet.ParseSocket(b)
	if err != nil {
		c.fail(fmt.Errorf("hubtest: %w", err))
		return false
	}
	if p.Nsp != c.nsp {
		return true
	}
	typ, id, n := p.Type, p.ID, p.Attachments
	b = p.Data
	switch typ {
	case packet.SocketConnect:
		var r struct{ SID, PID string }
		if err := json.Unmarshal(b, &r); err != nil {
			c.signal(fmt.Errorf("hubtest: bad CONNECT reply %q", b))
			return false
		}
		c.mu.Lock()
		c.id, c.recovered = r.SID, c.opts.PID != "" && r.PID == c.opts.PID
		c.pid = r.PID
		if c.recovered {
			c.offset = c.opts.Offset
		}
		c.mu.Unlock()
		c.signal(nil)
	case packet.SocketConnectError:
		var r struct {
			Message string
			Data    json.RawMessage
		}
		json.Unmarshal(b, &r)
		c.signal(&ConnectError{Message: r.Message, Data: r.Data})
		return false
	case packet.SocketDisconnect:
		c.fail(errors.New("hubtest: server namespace disconnect"))
		return false
	case packet.SocketEvent, packet.SocketAck, packet.SocketBinaryEvent, packet.SocketBinaryAck:
		var args []json.RawMessage
		if err := json.Unmarshal(b, &args); err != nil {
			c.fail(fmt.Errorf("hubtest: bad payload %q: %w", b, err))
			return false
		}
		isAck := typ == packet.SocketAck || typ == packet.SocketBinaryAck
		if n > 0 {
			c.mu.Lock()
			c.pending = &pendingBin{typ: typ, id: id, args: args, n: n, isAck: isAck}
			c.mu.Unlock()
			return true
		}
		return c.deliver(isAck, id, args, nil)
	}
	return true
}

func (c *Client) deliver(isAck bool, id int64, args []json.RawMessage, atts [][]byte) bool {
	if isAck {
		c.mu.Lock()
		ch := c.acks[id]
		delete(c.acks, id)
		c.mu.Unlock()
		if ch != nil {
			ch <- args
		}
		return true
	}
	if len(args) == 0 {
		c.fail(errors.New("hubtest: event without name"))
		return false
	}
	var name string
	json.Unmarshal(args[0], &name)
	e := Event{Name: name, Args: args[1:], Attachments: atts}
	c.mu.Lock()
	if c.pid != "" && id < 0 && len(e.Args) > 0 {
		var off string
		if json.Unmarshal(e.Args[len(e.Args)-1], &off) == nil {
			c.offset = off
		}
	}
	c.mu.Unlock()
	if id >= 0 {
		e.Ack = func(args ...any) error { return c.send(packet.SocketAck, id, "", args) }
	}
	select {
	case c.events <- e:
		return true
	default:
		c.fail(ErrOverflow)
		return false
	}
}

func (c *Client) signal(err error) {
	select {
	case c.connected <- err:
	default:
	}
}
