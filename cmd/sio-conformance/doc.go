// Command sio-conformance serves the hub configured as the official protocol test suites
// (github.com/socketio/engine.io-protocol and socket.io-protocol, folder test-suite/) require:
//
//   - /socket.io/: Socket.IO with namespaces "/" and "/custom". On connect each socket
//     emits "auth" with its CONNECT payload; on "/" a "message" is echoed as
//     "message-back" and a "message-with-ack" is acknowledged with its own arguments.
//   - /engine.io/: raw Engine.IO that echoes every message, text or binary.
//
// Both use pingInterval 300ms, pingTimeout 200ms, maxPayload 1000000, connectTimeout 1s and
// allow every origin. Usage:
//
//	go run ./cmd/sio-conformance [-addr :3000] [-log-level debug]
//
// then run the suites (they hard-code http://localhost:3000). It is a test fixture, not a
// production server.
package main
