package hub

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/walcast/walcast/hub/internal/wsframe"
	"github.com/walcast/walcast/hub/packet"
	"github.com/walcast/walcast/internal/jsonw"
	"github.com/walcast/walcast/internal/logkey"

	"github.com/gorilla/websocket"
)

// WebSocket opcodes of queued frames (opRaw, in write_inline.go, marks bytes
// already framed).
const (
	opText   = wsframe.OpText
	opBinary = wsframe.OpBinary
	opPong   = wsframe.OpPong
)

// frame is one queued Engine.IO packet: for opText the whole text packet
// ("42[…]", "2"), for opBinary the raw attachment bytes. data is shared and
// never modified.
type frame struct {
	data []byte
	op   byte
	off  string // recovery offset of the broadcast it belongs to ("" = none)
}

type transportKind uint8

const (
	transportPolling transportKind = iota + 1
	transportWebSocket
)

// pollCloseGrace keeps a polling session closed by the client findable, so a
// GET sent concurrently with the client's close packet gets its noop.
const pollCloseGrace = 100 * time.Millisecond

// conn is one Engine.IO session (one per browser tab), on polling or WebSocket.
type conn struct {
	srv        *Server
	sid        string
	header     http.Header
	query      url.Values
	remoteAddr string

	// readMu serialises packet handling (WebSocket reader, polling POSTs, the
	// probe) so a socket's handlers run one at a time.
	readMu sync.Mutex
	// pendingBin is the binary packet waiting for attachments (under readMu).
	pendingBin *pendingBinary
	// inbound is the MaxInboundRate bucket (under readMu).
	inbound tokenBucket
	// fr reads the WebSocket's frames; used by the reader goroutine only.
	fr wsframe.Reader

	mu          sync.Mutex
	transport   transportKind
	w           writer // the write side: queue, socket, who writes (under mu)
	closed      bool
	hard        bool // close without flushing
	closeReason Reason
	closeCode   int    // WebSocket close code; 0 = by reason
	closeText   string // WebSocket close reason text
	pingWaiting bool
	pongDue     time.Time   // when pingWaiting: the pong deadline
	preRead     int64       // bytes read before the first accepted CONNECT (reader side)
	connected   atomic.Bool // a CONNECT was accepted: MaxPreConnectBytes no longer applies
	holding     int         // recoveries or OnConnect handlers in progress: queue, do not send yet
	ip          *ipSlot     // its place in the per-IP caps; released by finish
	// replayed holds the offsets of the last recovery replay until the first
	// live broadcast past them: a broadcast the store already held when the
	// replay read it, but whose fan-out reached this conn only after the
	// replay ended, was sent by the replay and is dropped here (see
	// enqueueLocked). Broadcasts are delivered in offset order, so the first
	// one outside the set ends the race.
	replayed  map[string]struct{}
	pingTimer *time.Timer
	connTimer *time.Timer
	sockets   map[string]*Socket
	cancel    context.CancelFunc // of the CONNECT being handled
	finished  bool               // finish has run

	// polling state (under mu)
	pollNotify  chan struct{}
	getActive   bool
	postActive  bool
	upgrading   bool
	probeChecks int // probe read slices that found nothing (awaitProbeLocked)
	probing     *websocket.Conn
}

type pendingBinary struct {
	p           packet.Socket
	attachments [][]byte
}

// newID returns a 20-character URL-safe random id (like the reference base64id).
func newID() string {
	var b [15]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (s *Server) newConn(r *http.Request, t transportKind) *conn {
	c := &conn{
		srv:        s,
		sid:        newID(),
		header:     compactHeader(r.Header),
		query:      compactQuery(r.URL.Query()),
		remoteAddr: r.RemoteAddr,
		transport:  t,
	}
	c.w.c = c
	if t == transportPolling {
		c.pollNotify = make(chan struct{}, 1)
	}
	return c
}

// droppedHeaders are handshake and hop-by-hop headers no handler needs; an
// idle connection keeps its Handshake, so these would cost memory for life.
var droppedHeaders = map[string]bool{
	"Connection": true, "Upgrade": true, "Sec-Websocket-Key": true, "Sec-Websocket-Version": true,
	"Sec-Websocket-Extensions": true, "Sec-Websocket-Protocol": true, "Cache-Control": true,
	"Pragma": true, "Accept-Encoding": true, "Content-Length": true, "Content-Type": true,
}

// compactHeader copies h without droppedHeaders into a map of its own size.
func compactHeader(h http.Header) http.Header {
	n := 0
	for k := range h {
		if !droppedHeaders[k] {
			n++
		}
	}
	out := make(http.Header, n)
	for k, v := range h {
		if !droppedHeaders[k] {
			out[k] = v
		}
	}
	return out
}

// compactQuery drops the Engine.IO parameters (EIO, transport, sid, t); nil
// when nothing else is left.
func compactQuery(q url.Values) url.Values {
	for _, k := range []string{"EIO", "transport", "sid", "t"} {
		delete(q, k)
	}
	if len(q) == 0 {
		return nil
	}
	out := make(url.Values, len(q))
	for k, v := range q {
		out[k] = v
	}
	return out
}

// allowPacket takes one token from the connection's inbound bucket
// (MaxInboundRate per second, burst five times that). Caller holds readMu.
func (c *conn) allowPacket() bool {
	return c.inbound.allow(c.srv.cfg.MaxInboundRate, time.Now())
}

// tokenBucket is an inbound rate limit: rate tokens a second, up to 5 s worth
// in a burst; a negative rate is unlimited.
type tokenBucket struct {
	tokens float64
	at     time.Time
}

// allow takes one token, or reports that none is left.
func (b *tokenBucket) allow(rate int, now time.Time) bool {
	if rate < 0 {
		return true
	}
	burst := 5 * float64(rate)
	if b.at.IsZero() {
		b.tokens = burst
	} else {
		b.tokens = min(burst, b.tokens+now.Sub(b.at).Seconds()*float64(rate))
	}
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// openPacket is the Engine.IO handshake with exactly its five fields.
func (s *Server) openPacket(sid string, upgrades bool) []byte {
	b := make([]byte, 0, 128)
	b = append(b, packet.EngineOpen)
	b = append(b, `{"sid":`...)
	b = jsonw.AppendString(b, sid)
	if upgrades {
		b = append(b, `,"upgrades":["websocket"]`...)
	} else {
		b = append(b, `,"upgrades":[]`...)
	}
	b = append(b, `,"pingInterval":`...)
	b = strconv.AppendInt(b, s.cfg.PingInterval.Milliseconds(), 10)
	b = append(b, `,"pingTimeout":`...)
	b = strconv.AppendInt(b, s.cfg.PingTimeout.Milliseconds(), 10)
	b = append(b, `,"maxPayload":`...)
	b = strconv.AppendInt(b, s.cfg.MaxPayload, 10)
	return append(b, '}')
}

// register adds c to the server and starts its timers.
func (s *Server) register(c *conn) {
	s.connMu.Lock()
	s.conns[c.sid] = c
	s.connMu.Unlock()
	s.nConns.Add(1)
	s.observeConnOpen()
	s.m.addConnections(1)
	c.mu.Lock()
	c.pingTimer = time.AfterFunc(s.cfg.PingInterval, c.onPingTimer)
	c.connTimer = time.AfterFunc(s.cfg.ConnectTimeout, c.onConnectTimer)
	c.mu.Unlock()
}

// lookup finds a session. With overdue set (GETs and upgrades, not POSTs
// whose body may be the late pong), a session whose pong is overdue is
// closed here rather than served, whatever the lag of its timer under load.
func (s *Server) lookup(sid string, overdueCheck bool) *conn {
	s.connMu.Lock()
	c := s.conns[sid]
	s.connMu.Unlock()
	if c == nil {
		return nil
	}
	if !overdueCheck {
		return c
	}
	c.mu.Lock()
	overdue := c.pingWaiting && !c.closed && time.Now().After(c.pongDue)
	c.mu.Unlock()
	if overdue {
		c.close(ReasonPingTimeout, true)
		return nil
	}
	return c
}

func (s *Server) unregister(c *conn) {
	s.connMu.Lock()
	if s.conns[c.sid] == c {
		delete(s.conns, c.sid)
	}
	s.connMu.Unlock()
}

// onPingTimer sends a ping every PingInterval and closes the session when the
// previous ping got no pong within PingTimeout. One runtime timer per
// connection, no goroutine.
func (c *conn) onPingTimer() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if c.pingWaiting {
		c.mu.Unlock()
		c.close(ReasonPingTimeout, true)
		return
	}
	c.pingWaiting = true
	c.pongDue = time.Now().Add(c.srv.cfg.PingTimeout)
	c.pingTimer.Reset(c.srv.cfg.PingTimeout)
	c.enqueueLocked(frame{data: framePing, op: opText}, true)
	c.mu.Unlock()
}

func (c *conn) onPong() {
	c.mu.Lock()
	if c.pingWaiting && !c.closed {
		c.pingWaiting = false
		c.pingTimer.Reset(c.srv.cfg.PingInterval)
	}
	c.mu.Unlock()
}

func (c *conn) onConnectTimer() {
	c.mu.Lock()
	idle := len(c.sockets) == 0
	c.mu.Unlock()
	if idle {
		c.close(ReasonConnectTimeout, false)
	}
}

// enqueue queues frames for the client. It never blocks: over MaxQueueBytes
// the connection is closed as "slow". It returns false if the connection is
// closed (or was just closed for being slow).
func (c *conn) enqueue(fs ...frame) bool {
	c.mu.Lock()
	ok := true
	for _, f := range fs {
		if !c.enqueueLocked(f, false) {
			ok = false
			break
		}
	}
	slow := !ok && !c.closed
	c.mu.Unlock()
	if slow {
		c.srv.m.queueDrop()
		c.close(ReasonSlow, true)
	}
	return ok
}

// enqueue1 is enqueue for one frame without a variadic slice.
func (c *conn) enqueue1(f frame) bool {
	c.mu.Lock()
	ok := c.enqueueLocked(f, false)
	slow := !ok && !c.closed
	c.mu.Unlock()
	if slow {
		c.srv.m.queueDrop()
		c.close(ReasonSlow, true)
	}
	return ok
}

// enqueueLocked appends f; force skips the byte budget (pings, close).
// It returns false when closed or over budget.
func (c *conn) enqueueLocked(f frame, force bool) bool {
	if c.closed {
		return false
	}
	if c.replayed != nil && f.off != "" {
		if _, dup := c.replayed[f.off]; dup {
			return true // sent by the recovery replay
		}
		c.replayed = nil
	}
	if !c.w.pushLocked(f, force) {
		return false
	}
	c.w.kickLocked()
	return true
}

// pongOverhead is what a queued pong costs beyond its payload: its queue
// slot and its wire header. Without it an empty pong would be free, and a
// client that pings and never reads could grow its queue without bound.
const pongOverhead = int(unsafe.Sizeof(frame{})) + 2

// frameCost is what f counts against MaxQueueBytes: its bytes, and for a
// pong its overhead as well.
func frameCost(f frame) int {
	if f.op == opPong {
		return len(f.data) + pongOverhead
	}
	return len(f.data)
}

// kickLocked makes the transport send what is queued.
func (c *conn) kickLocked() { c.w.kickLocked() }

// framesPool recycles queue slices so an idle connection holds none and a
// delivery to an idle connection allocates no slice.
// Only slices of the pooled size return to the pool (no allocation on Put).
const pooledFrames = 8

var framesPool = sync.Pool{New: func() any { return new([pooledFrames]frame) }}

func getFrames() []frame { return framesPool.Get().(*[pooledFrames]frame)[:0] }

// putFrames recycles a slice returned by takeLocked once it has been written.
func putFrames(fs []frame) {
	if cap(fs) != pooledFrames {
		return
	}
	a := (*[pooledFrames]frame)(fs[:pooledFrames])
	clear(a[:])
	framesPool.Put(a)
}

// close ends the session. hard closes the network connection at once; else
// queued frames are flushed first (WebSocket) or handed to the pending GET with
// a close packet (polling). Socket cleanup and OnDisconnect handlers run on
// the reader goroutine (WebSocket) or a new goroutine (polling).
func (c *conn) close(reason Reason, hard bool) {
	c.mu.Lock()
	if c.closed {
		if hard && !c.hard && c.w.nc != nil {
			c.hard = true
			c.w.abortLocked()
		}
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.hard = hard
	c.closeReason = reason
	if c.pingTimer != nil {
		c.pingTimer.Stop()
	}
	if c.connTimer != nil {
		c.connTimer.Stop()
	}
	if c.cancel != nil {
		c.cancel()
	}
	probe := c.probing
	if c.upgrading {
		// Past 3probe the client waits to send "5" on the probe: let the
		// probe goroutine take it and close the WebSocket (bounded).
		probe = nil
		if c.probing != nil {
			c.probing.NetConn().SetReadDeadline(time.Now().Add(time.Second))
		}
	}
	c.probing = nil
	ws := c.transport == transportWebSocket && c.w.nc != nil
	c.w.closeLocked(reason, hard)
	c.mu.Unlock()
	if probe != nil {
		probe.NetConn().Close()
	}
	switch {
	case ws, reason == ReasonPingTimeout, reason == ReasonParseError, reason == ReasonPollingConflict,
		reason == ReasonTransportError:
		c.srv.unregister(c)
	case reason == ReasonTransportClose:
		// A client close by POST: a GET racing with it still gets its noop,
		// then the sid is forgotten (by that GET or after a grace period).
		time.AfterFunc(pollCloseGrace, func() { c.srv.unregister(c) })
	default:
		// A server-initiated close of a polling session: the client's next
		// GET collects what is queued plus the close packet (then the sid is
		// forgotten), if it comes within a ping period.
		time.AfterFunc(c.srv.cfg.PingInterval+c.srv.cfg.PingTimeout, func() { c.srv.unregister(c) })
	}
	c.srv.m.disconnect(reason)
	c.srv.observeConnClose(reason.String())
	c.srv.log.Debug("connection closed", logkey.Conn, c.sid, logkey.Reason, reason.String())
	if !ws {
		go c.finish(reason)
	}
}

// finish disconnects every socket of the closed connection, once.
func (c *conn) finish(reason Reason) {
	c.mu.Lock()
	if c.finished {
		c.mu.Unlock()
		return
	}
	c.finished = true
	socks := make([]*Socket, 0, len(c.sockets))
	for _, s := range c.sockets {
		socks = append(socks, s)
	}
	c.mu.Unlock()
	c.readMu.Lock()
	for _, s := range socks {
		s.onClose(reason)
	}
	c.readMu.Unlock()
	c.ip.release()
	c.srv.nConns.Add(-1)
	c.srv.m.addConnections(-1)
}

// connectContext returns a context cancelled when the connection closes or
// when the returned cancel is called (at most one at a time: CONNECTs are
// handled under readMu).
func (c *conn) connectContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	c.mu.Lock()
	if c.closed {
		cancel()
	} else {
		c.cancel = cancel
	}
	c.mu.Unlock()
	return ctx, func() {
		c.mu.Lock()
		c.cancel = nil
		c.mu.Unlock()
		cancel()
	}
}
