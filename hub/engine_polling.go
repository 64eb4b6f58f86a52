package hub

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/walcast/walcast/hub/internal/wsframe"
	"github.com/walcast/walcast/hub/packet"
	"github.com/walcast/walcast/internal/logkey"
)

// probeCheckInterval is the slice in which the probe looks for "5".
const probeCheckInterval = 20 * time.Millisecond

// awaitProbeLocked holds a GET that races an upgrade until the transport
// switched or the probe has found its socket empty twice since the GET
// arrived (so a "5" the client sent before this GET has been read), at most
// a second. Called and returns with c.mu held.
func (c *conn) awaitProbeLocked(r *http.Request) {
	start := c.probeChecks
	deadline := time.Now().Add(time.Second)
	for c.upgrading && c.transport == transportPolling && !c.closed && c.probeChecks < start+2 {
		wait := time.Until(deadline)
		if wait <= 0 {
			return
		}
		c.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-c.pollNotify:
		case <-t.C:
		case <-r.Context().Done():
		}
		t.Stop()
		c.mu.Lock()
		if r.Context().Err() != nil {
			return
		}
	}
}

func setPollingHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=UTF-8")
	h.Set("Cache-Control", "no-store")
}

// servePollingOpen starts a polling session: the first GET's body is the open
// packet.
func (s *Server) servePollingOpen(w http.ResponseWriter, r *http.Request, slot *ipSlot) {
	c := s.newConn(r, transportPolling)
	c.ip = slot
	open := s.openPacket(c.sid, true)
	s.register(c)
	s.setCORS(w, r)
	setPollingHeaders(w)
	w.Write(open)
}

// servePollGet holds a GET until packets are queued, answers it with all of
// them joined by the record separator, and enforces one GET at a time.
func (c *conn) servePollGet(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	if c.getActive {
		c.mu.Unlock()
		c.srv.m.badPacket("polling")
		c.srv.log.Debug("concurrent polling GET, closing", logkey.Conn, c.sid)
		c.close(ReasonPollingConflict, false)
		writeEngineError(w, http.StatusBadRequest, errBadRequest, "Bad request")
		return
	}
	if c.upgrading && !c.closed {
		// A GET that arrives mid-upgrade: a GET after the switch must fail
		// (transport mismatch), so let the probe read a "5" sent before it.
		c.awaitProbeLocked(r)
		if c.transport != transportPolling {
			c.mu.Unlock()
			writeEngineError(w, http.StatusBadRequest, errBadRequest, "Bad request")
			return
		}
	}
	if c.closed && len(c.w.out) == 0 {
		c.mu.Unlock()
		c.srv.unregister(c)
		writeEngineError(w, http.StatusBadRequest, errUnknownSID, "Session ID unknown")
		return
	}
	c.getActive = true
	for {
		if c.upgrading && c.transport == transportPolling && !c.closed {
			// A GET pending while the probe runs: noop (the client pauses
			// polling, then sends "5"), unless the switch happens meanwhile.
			c.awaitProbeLocked(r)
			c.getActive = false
			polling := c.transport == transportPolling
			c.mu.Unlock()
			if !polling {
				writeEngineError(w, http.StatusBadRequest, errBadRequest, "Bad request")
				return
			}
			setPollingHeaders(w)
			w.Write(frameNoop)
			return
		}
		if c.transport != transportPolling && !c.closed {
			// Switched while this GET waited (a client that sent "5" without
			// waiting for its GET): transport mismatch, as the reference.
			c.getActive = false
			c.mu.Unlock()
			writeEngineError(w, http.StatusBadRequest, errBadRequest, "Bad request")
			return
		}
		if (len(c.w.out) > 0 && c.holding == 0) || c.closed {
			fs := c.w.takeLocked()
			c.getActive = false
			closed := c.closed
			c.mu.Unlock()
			if closed {
				c.srv.unregister(c) // the close packet is delivered: forget the sid
			}
			setPollingHeaders(w)
			w.Write(appendPollingFrames(nil, fs))
			if fs != nil {
				putFrames(fs)
			}
			return
		}
		c.mu.Unlock()
		select {
		case <-c.pollNotify:
		case <-r.Context().Done():
			c.mu.Lock()
			c.getActive = false
			c.mu.Unlock()
			return
		}
		c.mu.Lock()
	}
}

func appendPollingFrames(dst []byte, fs []frame) []byte {
	n := 0
	for _, f := range fs {
		if f.op != opText && f.op != opBinary {
			continue
		}
		if n > 0 {
			dst = append(dst, packet.RecordSeparator)
		}
		n++
		if f.op == opBinary {
			dst = packet.AppendEngine(dst, packet.Engine{Type: packet.EngineMessage, Data: f.data, Binary: true})
		} else {
			dst = append(dst, f.data...)
		}
	}
	return dst
}

// servePollPost reads a POST body of packets; one POST at a time.
func (c *conn) servePollPost(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		writeEngineError(w, http.StatusBadRequest, errUnknownSID, "Session ID unknown")
		return
	}
	if c.postActive {
		c.mu.Unlock()
		c.srv.m.badPacket("polling")
		c.close(ReasonPollingConflict, false)
		writeEngineError(w, http.StatusBadRequest, errBadRequest, "Bad request")
		return
	}
	c.postActive = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.postActive = false
		c.mu.Unlock()
	}()
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/octet-stream") {
		c.badInput("polling", errors.New("binary content type"))
		writeEngineError(w, http.StatusBadRequest, errBadRequest, "invalid content")
		return
	}
	limit, preConnect := c.srv.cfg.MaxPayload, false
	if c.srv.cfg.OnRawMessage == nil && !c.connected.Load() {
		if rest := c.srv.cfg.MaxPreConnectBytes - c.preRead; rest < limit {
			limit, preConnect = max(rest, 0), true
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err == nil {
		err = c.chargePreConnect(int64(len(body)))
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.Is(err, errPreConnectBudget) || errors.As(err, &mbe) && preConnect {
			c.srv.m.badPacket("preconnect")
			c.srv.log.Warn("client over MaxPreConnectBytes before CONNECT, closing", logkey.Conn, c.sid,
				"limit", c.srv.cfg.MaxPreConnectBytes)
			c.close(ReasonTransportError, false)
			writeEngineError(w, http.StatusRequestEntityTooLarge, errBadRequest, "Read budget before CONNECT exhausted")
			return
		}
		if errors.As(err, &mbe) {
			c.srv.m.badPacket("oversize")
			c.srv.log.Debug("polling body over MaxPayload", logkey.Conn, c.sid)
			c.close(ReasonTransportError, false)
			writeEngineError(w, http.StatusRequestEntityTooLarge, errBadRequest, "Payload too large")
			return
		}
		c.close(ReasonTransportError, false)
		writeEngineError(w, http.StatusBadRequest, errBadRequest, "Bad request")
		return
	}
	pkts, err := packet.ParsePayload(body)
	if err != nil {
		c.badInput("polling", err)
		writeEngineError(w, http.StatusBadRequest, errBadRequest, "Bad request")
		return
	}
	c.readMu.Lock()
	for _, p := range pkts {
		if !c.onEnginePacket(p) {
			break
		}
	}
	c.readMu.Unlock()
	w.Header().Set("Content-Type", "text/html")
	w.Write([]byte("ok"))
}

// serveUpgrade accepts the probing WebSocket of a polling session.
//
// A WebSocket for a session that is already upgraded or probing is accepted
// and closed at once, as the reference server does.
func (s *Server) serveUpgrade(w http.ResponseWriter, r *http.Request, c *conn) {
	ws, err := s.upgrader().Upgrade(w, r, nil)
	if err != nil {
		s.m.badPacket("upgrade")
		return
	}
	c.mu.Lock()
	ok := c.transport == transportPolling && c.probing == nil && !c.closed
	if ok {
		c.probing = ws
	}
	c.mu.Unlock()
	if !ok {
		nc := ws.NetConn()
		nc.SetWriteDeadline(time.Now().Add(time.Second))
		nc.Write(wsframe.AppendClose(nil, websocket.CloseNormalClosure, ""))
		nc.Close()
		return
	}
	go c.probe(ws)
}

// probe runs the upgrade: 2probe → 3probe (pending GETs get noop) → 5, then
// the WebSocket becomes the transport and its reader loop takes over.
func (c *conn) probe(ws *websocket.Conn) {
	nc := ws.NetConn()
	fail := func(why string) {
		c.srv.log.Debug("upgrade failed", logkey.Conn, c.sid, "why", why)
		c.mu.Lock()
		if c.probing == ws {
			c.probing = nil
			c.upgrading = false
		}
		c.kickLocked() // wake GETs waiting on the probe
		c.mu.Unlock()
		nc.Close()
	}
	nc.SetReadDeadline(time.Now().Add(c.srv.cfg.UpgradeTimeout))
	var fr wsframe.Reader
	limits := &probeLimits{cfg: &c.srv.cfg}
	m, err := fr.ReadMessage(nc, c.srv.cfg.MaxPayload, false, limits)
	if err != nil || m.Binary || string(m.Data) != string(probePing) {
		fail("no 2probe")
		return
	}
	nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
	if _, err := nc.Write(append(wsframe.AppendHeader(nil, opText, len(frameProbe)), frameProbe...)); err != nil {
		fail("write 3probe")
		return
	}
	nc.SetWriteDeadline(time.Time{})
	c.mu.Lock()
	if c.probing != ws || c.closed {
		c.mu.Unlock()
		nc.Close()
		return
	}
	c.upgrading = true
	c.kickLocked()
	c.mu.Unlock()
	// Wait for "5" in short slices; each slice that ends with nothing to read
	// is counted (probeChecks), so a GET racing the upgrade knows whether a
	// "5" already sent could still be unread (see awaitProbeLocked).
	haveHeader, closedSeen := false, false
	upgradeDeadline := time.Now().Add(c.srv.cfg.UpgradeTimeout)
	for !haveHeader {
		slice := time.Now().Add(probeCheckInterval)
		if slice.After(upgradeDeadline) {
			slice = upgradeDeadline
		}
		nc.SetReadDeadline(slice)
		n, err := io.ReadFull(nc, fr.Header())
		var ne net.Error
		switch {
		case err == nil:
			haveHeader = true
		case errors.As(err, &ne) && ne.Timeout() && n > 0:
			nc.SetReadDeadline(upgradeDeadline)
			if _, err := io.ReadFull(nc, fr.Header()[n:]); err != nil {
				fail("no upgrade packet")
				return
			}
			haveHeader = true
		case errors.As(err, &ne) && ne.Timeout() && time.Now().Before(upgradeDeadline):
			c.mu.Lock()
			c.probeChecks++
			c.kickLocked()
			if c.closed && !closedSeen {
				// closed mid-upgrade: wait for "5" only a little longer
				closedSeen = true
				if d := time.Now().Add(time.Second); d.Before(upgradeDeadline) {
					upgradeDeadline = d
				}
			}
			c.mu.Unlock()
		default:
			fail("no upgrade packet")
			return
		}
	}
	nc.SetReadDeadline(upgradeDeadline)
	m, err = fr.ReadMessage(nc, c.srv.cfg.MaxPayload, haveHeader, limits)
	if err != nil || m.Binary || string(m.Data) != string([]byte{packet.EngineUpgrade}) {
		fail("no upgrade packet")
		return
	}
	nc.SetReadDeadline(time.Time{})
	c.mu.Lock()
	if c.probing != ws || c.closed {
		// The session closed during the upgrade. The client has paused
		// polling and switched to this WebSocket: close it properly so the
		// client sees "transport close" at once (dropping the probe earlier
		// would leave it waiting for its ping timeout).
		c.mu.Unlock()
		nc.SetWriteDeadline(time.Now().Add(time.Second))
		nc.Write(wsframe.AppendClose(nil, websocket.CloseGoingAway, ""))
		nc.Close()
		return
	}
	c.probing = nil
	c.upgrading = false
	c.transport = transportWebSocket
	c.setNetConn(nc)
	select { // wake a pending GET so it sees the transport change
	case c.pollNotify <- struct{}{}:
	default:
	}
	c.w.kickLocked()
	c.mu.Unlock()
	c.observeUpgrade()
	c.readLoopWS(nc)
}
