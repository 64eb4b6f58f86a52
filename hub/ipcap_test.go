package hub_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/walcast/walcast/hub"
	"github.com/walcast/walcast/hub/hubtest"
)

// ipCapServer returns a server with the given caps and its metrics.
func ipCapServer(t *testing.T, cfg hub.Config) (*hub.Server, *httptest.Server, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Metrics = hub.NewMetrics(reg)
	cfg.Logger = hubLogger(t)
	srv, ts := hubtest.NewServer(t, cfg)
	return srv, ts, reg
}

// openWS opens a WebSocket session without CONNECT; it returns the HTTP
// status of a refused handshake, or 101.
func openWS(t *testing.T, ts *httptest.Server, hdr http.Header) (*websocket.Conn, int) {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(wsURL(ts, "transport=websocket"), hdr)
	if err != nil {
		if resp == nil {
			t.Fatalf("dial: %v", err)
		}
		return nil, resp.StatusCode
	}
	t.Cleanup(func() { ws.Close() })
	readWS(t, ws) // the open packet
	return ws, http.StatusSwitchingProtocols
}

func refused(t *testing.T, reg *prometheus.Registry, limit string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "walcast_hub_ip_refused_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "limit" && l.GetValue() == limit {
					return int(m.GetCounter().GetValue())
				}
			}
		}
	}
	return 0
}

// waitCounts waits until the server counts conns connections and unauth
// unauthenticated ones for ip.
func waitCounts(t *testing.T, srv *hub.Server, ip string, conns, unauth int) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		c, u := srv.IPCounts(ip)
		if c == conns && u == unauth {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("IPCounts(%s) = %d, %d; want %d, %d", ip, c, u, conns, unauth)
		}
	}
}

func TestIPCaps_Unauthenticated(t *testing.T) {
	srv, ts, reg := ipCapServer(t, hub.Config{MaxHandshakesPerIP: -1, MaxUnauthenticatedPerIP: 5})
	var held []*websocket.Conn
	for range 5 {
		ws, code := openWS(t, ts, nil)
		if code != 101 {
			t.Fatalf("handshake under the cap: status %d, want 101", code)
		}
		held = append(held, ws)
	}
	if _, code := openWS(t, ts, nil); code != http.StatusTooManyRequests {
		t.Errorf("6th unauthenticated WebSocket: status %d, want 429", code)
	}
	if code, body := httpDo(t, "GET", eioURL(ts, "transport=polling"), ""); code != http.StatusTooManyRequests || !strings.Contains(body, "Too many connections") {
		t.Errorf("polling open over the cap: %d %q, want 429", code, body)
	}
	if _, err := hubtest.Dial(t.Context(), ts.URL, "/", nil); err == nil {
		t.Error("a client dialled while 5 unauthenticated connections were held, want 429")
	}
	if got := refused(t, reg, "unauthenticated"); got != 3 {
		t.Errorf("walcast_hub_ip_refused_total{limit=unauthenticated} = %d, want 3", got)
	}
	// One leaves; a client that CONNECTs no longer counts as unauthenticated.
	held[0].Close()
	waitCounts(t, srv, "127.0.0.1", 4, 4)
	cl, err := hubtest.Dial(t.Context(), ts.URL, "/", nil)
	if err != nil {
		t.Fatalf("dial after one left: %v", err)
	}
	defer cl.Close()
	waitCounts(t, srv, "127.0.0.1", 5, 4)
	if _, code := openWS(t, ts, nil); code != 101 {
		t.Errorf("unauthenticated WebSocket beside 4 others and 1 connected: status %d, want 101", code)
	}
	waitCounts(t, srv, "127.0.0.1", 6, 5)
}

func TestIPCaps_Connections(t *testing.T) {
	srv, ts, reg := ipCapServer(t, hub.Config{MaxHandshakesPerIP: -1, MaxConnsPerIP: 3})
	var cls []*hubtest.Client
	for range 3 {
		cl, err := hubtest.Dial(t.Context(), ts.URL, "/", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		cls = append(cls, cl)
	}
	if _, err := hubtest.Dial(t.Context(), ts.URL, "/", nil); err == nil {
		t.Error("4th connection from one IP accepted, want 429")
	}
	if got := refused(t, reg, "connections"); got != 1 {
		t.Errorf("walcast_hub_ip_refused_total{limit=connections} = %d, want 1", got)
	}
	cls[0].Close()
	waitCounts(t, srv, "127.0.0.1", 2, 0)
	cl, err := hubtest.Dial(t.Context(), ts.URL, "/", nil)
	if err != nil {
		t.Fatalf("dial after one closed: %v", err)
	}
	cl.Close()
}

func TestIPCaps_HandshakeRate(t *testing.T) {
	// 2 per second, bursts of 10.
	_, ts, reg := ipCapServer(t, hub.Config{MaxHandshakesPerIP: 2, MaxUnauthenticatedPerIP: -1, MaxConnsPerIP: -1})
	ok, limited := 0, 0
	for range 30 {
		switch code, _ := httpDo(t, "GET", eioURL(ts, "transport=polling"), ""); code {
		case 200:
			ok++
		case http.StatusTooManyRequests:
			limited++
		default:
			t.Fatalf("polling open: status %d", code)
		}
	}
	// The 30 requests take far less than the half second a token takes.
	if ok != 10 || limited != 20 {
		t.Errorf("30 handshakes at once: %d opened, %d refused; want 10 and 20", ok, limited)
	}
	if got := refused(t, reg, "handshake_rate"); got != 20 {
		t.Errorf("walcast_hub_ip_refused_total{limit=handshake_rate} = %d, want 20", got)
	}
}

func TestIPCaps_ClientIP(t *testing.T) {
	srv, ts, _ := ipCapServer(t, hub.Config{MaxHandshakesPerIP: -1, MaxUnauthenticatedPerIP: 2,
		ClientIP: func(r *http.Request) string { return r.Header.Get("X-Test-IP") }})
	for _, ip := range []string{"192.0.2.1", "192.0.2.1", "192.0.2.2", "192.0.2.2"} {
		if _, code := openWS(t, ts, http.Header{"X-Test-IP": {ip}}); code != 101 {
			t.Fatalf("%s: status %d, want 101", ip, code)
		}
	}
	if _, code := openWS(t, ts, http.Header{"X-Test-IP": {"192.0.2.1"}}); code != http.StatusTooManyRequests {
		t.Errorf("third from 192.0.2.1: status %d, want 429", code)
	}
	waitCounts(t, srv, "192.0.2.2", 2, 2)
	// IPv6 addresses count by their /64: a host cannot step through its
	// prefix to open more.
	for i, ip := range []string{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9", "2001:db8:1:2::3"} {
		_, code := openWS(t, ts, http.Header{"X-Test-IP": {ip}})
		if want := map[bool]int{true: 101, false: http.StatusTooManyRequests}[i < 2]; code != want {
			t.Errorf("%s (#%d in its /64): status %d, want %d", ip, i+1, code, want)
		}
	}
	if _, code := openWS(t, ts, http.Header{"X-Test-IP": {"2001:db8:1:3::1"}}); code != 101 {
		t.Errorf("another /64: status %d, want 101", code)
	}
	waitCounts(t, srv, "2001:db8:1:2::77", 2, 2)
}
