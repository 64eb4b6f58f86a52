// Package packet is the Engine.IO v4 / Socket.IO v5 wire codec: the packet
// types, append-style encoders and bounds-checked parsers for Engine.IO
// packets and polling payloads, Socket.IO packets with their binary
// placeholders, and the message envelope of the Redis adapter
// (@socket.io/redis-adapter and @socket.io/redis-emitter).
//
// The hub speaks it on its transports, hub/bus on Redis, and hub/hubtest as a
// client. It holds no state, so every function is safe for concurrent use.
//
// Parsers never panic on client input; every error they return wraps
// ErrBadPacket, except the adapter decoder's *DecodeError. A parsed Engine or
// Socket aliases its input (Data is a sub-slice of it), so it is valid only
// as long as the caller keeps the input unchanged; ParsePayload copies only
// the binary packets it decodes from base64. Encoders append to dst and
// return the extended slice, as append does.
package packet
