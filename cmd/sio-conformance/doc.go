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
// then run the suites (they hard-code http://localhost:3000), outside this repository:
//
//	git clone https://github.com/socketio/engine.io-protocol
//	git clone -b fix/waitfor https://github.com/socketio/socket.io-protocol
//	(cd engine.io-protocol/test-suite && npm ci && npx mocha test-suite.js)   # 24 tests
//	(cd socket.io-protocol/test-suite && npm ci && npx mocha test-suite.js)   # 32 tests
//
// The fix/waitfor branch of socket.io-protocol buffers frames that arrive together; the
// harness on main drops the second of two back-to-back frames (e.g. the "auth" emit right
// after the CONNECT reply) and fails at random against any server. The suites use a 200 ms
// ping timeout, so a heavily loaded machine can fail the heartbeat tests now and then.
//
// It is a test fixture, not a production server.
package main
