package hub

import (
	"net/http"
)

// NewEngine serves raw Engine.IO v4 at cfg.Path with no Socket.IO layer:
// every message a client sends is passed to onMessage, which may answer
// through send (data is the message payload, without the "4" type byte). It
// exists for the engine.io-protocol conformance suite; cfg.OnRawMessage is
// overwritten.
func NewEngine(cfg Config, onMessage func(send func(data []byte, binary bool) error, data []byte, binary bool)) (http.Handler, error) {
	cfg.OnRawMessage = func(data []byte, binary bool, send func([]byte, bool)) {
		onMessage(func(d []byte, b bool) error { send(d, b); return nil }, data, binary)
	}
	return New(cfg)
}
