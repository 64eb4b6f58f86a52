package main

import (
	"net/http"

	"github.com/walcast/walcast/hub"
)

// newEchoEngine serves raw Engine.IO at cfg.Path, echoing every message.
// TODO(hub-interop): needs a raw Engine.IO hook in hub (requested in hub-bugs.md); until
// then /engine.io/ answers 501 and the engine.io-protocol suite cannot run.
func newEchoEngine(cfg hub.Config) (http.Handler, error) {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "raw Engine.IO echo not available yet", http.StatusNotImplemented)
	}), nil
}
