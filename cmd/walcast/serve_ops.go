package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"net/netip"
	"strings"
)

// metricsHandler wraps the Prometheus handler with the bearer token check
// when a token is configured (WALCAST_METRICS_TOKEN): a request without
// "Authorization: Bearer <token>" gets 401 and no metrics.
func metricsHandler(h http.Handler, token secret) http.Handler {
	if token == "" {
		return h
	}
	// Compare digests so the time taken says nothing about the token's
	// length or prefix.
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(got))
		if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="walcast metrics"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// clientIPFunc returns hub.Config.ClientIP for the trusted proxies: for a
// request whose TCP peer is one of them, the client is the rightmost
// X-Forwarded-For address that is not itself a trusted proxy (the entries
// left of it were written by the client and prove nothing). nil without
// trusted proxies: the TCP peer is the client.
func clientIPFunc(trusted []netip.Prefix) func(*http.Request) string {
	if len(trusted) == 0 {
		return nil
	}
	isTrusted := func(a netip.Addr) bool {
		a = a.Unmap()
		for _, p := range trusted {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	return func(r *http.Request) string {
		peer, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil || !isTrusted(peer.Addr()) {
			return ""
		}
		hops := r.Header.Values("X-Forwarded-For")
		for i := len(hops) - 1; i >= 0; i-- {
			parts := strings.Split(hops[i], ",")
			for j := len(parts) - 1; j >= 0; j-- {
				a, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
				if err != nil {
					return "" // unparsable: count the proxy itself
				}
				if !isTrusted(a) {
					return a.Unmap().String()
				}
			}
		}
		return ""
	}
}
