package hub

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/walcast/walcast/internal/jsonw"
	"github.com/walcast/walcast/internal/logkey"
)

// Engine.IO HTTP error codes (the reference server's).
const (
	errTransportUnknown  = 0
	errUnknownSID        = 1
	errBadHandshake      = 2
	errBadRequest        = 3
	errForbidden         = 4
	errUnsupportedProto  = 5
	errServerUnavailable = 6 // ours: shutting down
)

func writeEngineError(w http.ResponseWriter, status, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	b := make([]byte, 0, 64)
	b = append(b, `{"code":`...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, `,"message":`...)
	b = jsonw.AppendString(b, msg)
	b = append(b, '}')
	w.Write(b)
}

// originAllowed reports whether a request with this Origin header may connect.
// Requests without Origin (non-browser clients) are allowed.
func (s *Server) originAllowed(origin string) bool {
	if len(s.cfg.AllowedOrigins) == 0 || origin == "" {
		return true
	}
	return slices.Contains(s.cfg.AllowedOrigins, origin)
}

// setCORS answers CORS for polling: the request's origin is echoed (never "*",
// so withCredentials clients work) with credentials allowed.
func (s *Server) setCORS(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Add("Vary", "Origin")
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if p != s.cfg.Path && p+"/" != s.cfg.Path {
		http.NotFound(w, r)
		return
	}
	if !s.originAllowed(r.Header.Get("Origin")) {
		s.m.badPacket("origin")
		s.log.Debug("origin not allowed", "origin", r.Header.Get("Origin"), logkey.Remote, r.RemoteAddr)
		writeEngineError(w, http.StatusForbidden, errForbidden, "Forbidden")
		return
	}
	if r.Method == http.MethodOptions {
		s.setCORS(w, r)
		h := w.Header()
		h.Set("Access-Control-Allow-Methods", "GET,POST")
		if rh := r.Header.Get("Access-Control-Request-Headers"); rh != "" {
			h.Set("Access-Control-Allow-Headers", rh)
		}
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	q := r.URL.Query()
	if q.Get("EIO") != "4" {
		s.setCORS(w, r)
		writeEngineError(w, http.StatusBadRequest, errUnsupportedProto, "Unsupported protocol version")
		return
	}
	transport := q.Get("transport")
	if transport != "polling" && transport != "websocket" {
		s.setCORS(w, r)
		writeEngineError(w, http.StatusBadRequest, errTransportUnknown, "Transport unknown")
		return
	}
	isWS := transport == "websocket"
	if isWS && !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		writeEngineError(w, http.StatusBadRequest, errBadRequest, "Bad request")
		return
	}
	sid := q.Get("sid")
	if sid == "" {
		if s.closing.Load() {
			s.setCORS(w, r)
			writeEngineError(w, http.StatusServiceUnavailable, errServerUnavailable, "Server shutting down")
			return
		}
		if !isWS && r.Method != http.MethodGet {
			s.setCORS(w, r)
			writeEngineError(w, http.StatusBadRequest, errBadHandshake, "Bad handshake method")
			return
		}
		slot, ok := s.admitHandshake(w, r)
		if !ok {
			return
		}
		if isWS {
			s.serveWebSocketOpen(w, r, slot)
			return
		}
		s.servePollingOpen(w, r, slot)
		return
	}
	c := s.lookup(sid, r.Method != http.MethodPost)
	if c == nil {
		s.setCORS(w, r)
		writeEngineError(w, http.StatusBadRequest, errUnknownSID, "Session ID unknown")
		return
	}
	if isWS {
		s.serveUpgrade(w, r, c)
		return
	}
	s.setCORS(w, r)
	c.mu.Lock()
	polling := c.transport == transportPolling
	c.mu.Unlock()
	if !polling {
		writeEngineError(w, http.StatusBadRequest, errBadRequest, "Bad request")
		return
	}
	switch r.Method {
	case http.MethodGet:
		c.servePollGet(w, r)
	case http.MethodPost:
		c.servePollPost(w, r)
	default:
		writeEngineError(w, http.StatusBadRequest, errBadRequest, "Bad request")
	}
}
