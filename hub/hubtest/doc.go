// Package hubtest is a small Socket.IO v5 client over WebSocket for Go tests,
// plus a helper that runs a hub.Server on an httptest server.
//
// It encodes and parses packets with hub/packet, the codec the server uses;
// the transcripts in hub/testdata and the socket.io-client interop tests are
// what check that codec against the reference implementation. It is not a
// production client: no polling, no automatic reconnection (Reconnect does it
// on request, with recovery).
//
// A Client is safe for concurrent use. Received events go to the Events
// channel (buffered; a reader that falls behind by more than EventBuffer
// events makes the client drop the connection with ErrOverflow).
package hubtest
