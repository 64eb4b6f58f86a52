package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
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
