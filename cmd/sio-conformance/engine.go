package main

import (
	"net/http"

	"github.com/walcast/walcast/hub"
)

// newEchoEngine serves raw Engine.IO at cfg.Path and sends every message back as it came
// (text as text, binary as binary), as the engine.io-protocol suite expects.
func newEchoEngine(cfg hub.Config) (http.Handler, error) {
	return hub.NewEngine(cfg, func(send func(data []byte, binary bool) error, data []byte, binary bool) {
		_ = send(data, binary)
	})
}
