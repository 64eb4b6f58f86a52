package hub

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/walcast/walcast/internal/logkey"
)

// Per-IP caps, checked before a new Engine.IO session is opened (a handshake
// without sid). Counted per client IP (Config.ClientIP; IPv6 per /64):
//
//   - handshakes: a token bucket of MaxHandshakesPerIP per second, bursts of
//     five times that;
//   - open connections (WebSocket or polling sessions): MaxConnsPerIP;
//   - of those, the ones without an accepted Socket.IO CONNECT yet:
//     MaxUnauthenticatedPerIP.
//
// A handshake over a cap is answered 429 with Connection: close before any
// session state exists, and counted in walcast_hub_ip_refused_total{limit}.
// A connection leaves the counts when it finishes; it leaves the
// unauthenticated count when its first CONNECT is accepted.

// Limit names, the label of walcast_hub_ip_refused_total.
const (
	ipLimitHandshakes      = "handshake_rate"
	ipLimitConns           = "connections"
	ipLimitUnauthenticated = "unauthenticated"
)

// ipSweepEvery is how often admit drops the entries of IPs with no
// connection and a full handshake bucket, so the table holds only IPs that
// are connected or were active in the last few seconds.
const ipSweepEvery = 10 * time.Second

// ipTable holds the per-IP counts. One mutex: it is taken once per
// handshake and once per connection end, never per frame.
type ipTable struct {
	rate, burst float64 // handshakes per second and bucket size; rate < 0: unlimited
	maxConns    int     // < 0: unlimited
	maxUnauth   int     // < 0: unlimited
	mu          sync.Mutex
	ips         map[string]*ipEntry
	lastSweep   time.Time
}

type ipEntry struct {
	conns, unauth int
	tokens        float64
	at            time.Time
}

// ipSlot is one connection's place in the table.
type ipSlot struct {
	t                *ipTable
	e                *ipEntry
	authed, released bool // under t.mu
}

func newIPTable(cfg Config) *ipTable {
	return &ipTable{
		rate:      float64(cfg.MaxHandshakesPerIP),
		burst:     5 * float64(cfg.MaxHandshakesPerIP),
		maxConns:  cfg.MaxConnsPerIP,
		maxUnauth: cfg.MaxUnauthenticatedPerIP,
		ips:       map[string]*ipEntry{},
	}
}

// admit takes a handshake token and a connection place for ip, or returns
// the limit that refuses it.
func (t *ipTable) admit(ip string, now time.Time) (*ipSlot, string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if now.Sub(t.lastSweep) >= ipSweepEvery {
		t.sweepLocked(now)
	}
	e := t.ips[ip]
	if e == nil {
		e = &ipEntry{tokens: t.burst, at: now}
		t.ips[ip] = e
	}
	if t.rate >= 0 {
		e.tokens = min(t.burst, e.tokens+now.Sub(e.at).Seconds()*t.rate)
		e.at = now
		if e.tokens < 1 {
			return nil, ipLimitHandshakes
		}
	}
	if t.maxConns >= 0 && e.conns >= t.maxConns {
		return nil, ipLimitConns
	}
	if t.maxUnauth >= 0 && e.unauth >= t.maxUnauth {
		return nil, ipLimitUnauthenticated
	}
	if t.rate >= 0 {
		e.tokens--
	}
	e.conns++
	e.unauth++
	return &ipSlot{t: t, e: e}, ""
}

func (t *ipTable) sweepLocked(now time.Time) {
	t.lastSweep = now
	for ip, e := range t.ips {
		if e.conns > 0 {
			continue
		}
		if t.rate < 0 || e.tokens+now.Sub(e.at).Seconds()*t.rate >= t.burst {
			delete(t.ips, ip)
		}
	}
}

// authenticated moves the connection out of the unauthenticated count
// (its first accepted CONNECT). Safe on a nil slot and idempotent.
func (s *ipSlot) authenticated() {
	if s == nil {
		return
	}
	s.t.mu.Lock()
	defer s.t.mu.Unlock()
	if s.authed || s.released {
		return
	}
	s.authed = true
	s.e.unauth--
}

// release gives the connection's place back. Safe on a nil slot and
// idempotent. An entry with connections is never swept, so s.e is still
// the IP's entry.
func (s *ipSlot) release() {
	if s == nil {
		return
	}
	s.t.mu.Lock()
	defer s.t.mu.Unlock()
	if s.released {
		return
	}
	s.released = true
	s.e.conns--
	if !s.authed {
		s.e.unauth--
	}
}

// clientIP is the address a request is counted under: Config.ClientIP, else
// the host of RemoteAddr.
func (s *Server) clientIP(r *http.Request) string {
	if s.cfg.ClientIP != nil {
		if ip := s.cfg.ClientIP(r); ip != "" {
			return ip
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// ipKey is the key an address is counted under: an IPv4 address as is, an
// IPv6 address by its /64 (one host usually holds a whole /64, so counting
// single addresses would let it open 2^64 times the cap); anything that
// does not parse, as given.
func ipKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// admitHandshake applies the per-IP caps to a new session's handshake. On
// refusal it has answered 429 and returns nil.
func (s *Server) admitHandshake(w http.ResponseWriter, r *http.Request) (*ipSlot, bool) {
	ip := ipKey(s.clientIP(r))
	slot, limit := s.ips.admit(ip, time.Now())
	if slot != nil {
		return slot, true
	}
	s.m.ipRefused(limit)
	s.log.Debug("handshake refused by a per-IP cap", logkey.Remote, ip, logkey.Reason, limit)
	s.setCORS(w, r)
	// Close the TCP connection too: a refused client keeps no descriptor.
	w.Header().Set("Connection", "close")
	w.Header().Set("Retry-After", "1")
	writeEngineError(w, http.StatusTooManyRequests, errForbidden, "Too many connections from this address")
	return nil, false
}

// IPCounts reports the connections the per-IP caps count now, and how many
// of them have no accepted CONNECT yet, for ip (an IPv6 address counts with
// its whole /64).
func (s *Server) IPCounts(ip string) (conns, unauthenticated int) {
	s.ips.mu.Lock()
	defer s.ips.mu.Unlock()
	if e := s.ips.ips[ipKey(ip)]; e != nil {
		return e.conns, e.unauth
	}
	return 0, 0
}
