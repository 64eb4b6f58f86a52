// Package wsframe is the RFC 6455 frame code the hub uses after
// gorilla/websocket has done the upgrade handshake: a Reader of masked client
// frames that holds no read buffer of its own, and append-style writers of
// unmasked server frame headers and close frames.
//
// The hub reads and writes frames itself, rather than through gorilla's
// Conn, so that an idle connection parks in a plain Read holding no buffer
// and so that the writer can batch many frames into one writev.
//
// A Reader is used by one goroutine at a time; the functions are safe for
// concurrent use. A Message's Data is freshly allocated for each message and
// belongs to the caller. Cancellation is the caller's: it sets deadlines on,
// or closes, the connection the Reader reads from.
package wsframe
