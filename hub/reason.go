package hub

// Reason says why an Engine.IO connection or a Socket.IO socket closed. It
// labels walcast_hub_disconnects_total and is passed to OnDisconnect
// handlers; the values below are the hub's own, and Socket.CloseTransport
// takes any other (which is recoverable).
type Reason string

// The hub's close reasons. The names a Socket.IO client would also see keep
// socket.io's spelling ("transport close", "ping timeout", …).
const (
	ReasonTransportClose    Reason = "transport close"             // the client closed, or the socket ended
	ReasonTransportError    Reason = "transport error"             // a read or write failed, or the client broke the protocol's limits
	ReasonPingTimeout       Reason = "ping timeout"                // no pong within PingTimeout
	ReasonParseError        Reason = "parse error"                 // a malformed packet
	ReasonSlow              Reason = "slow"                        // the outbound queue went over MaxQueueBytes
	ReasonWriteTimeout      Reason = "write timeout"               // a write stalled for WriteTimeout
	ReasonShutdown          Reason = "server shutting down"        // Server.Shutdown
	ReasonConnectTimeout    Reason = "connect timeout"             // no CONNECT within ConnectTimeout
	ReasonForcedClose       Reason = "forced close"                // Socket.CloseTransport without a reason
	ReasonClientNamespace   Reason = "client namespace disconnect" // the client sent DISCONNECT
	ReasonServerNamespace   Reason = "server namespace disconnect" // Socket.Disconnect
	ReasonPollingConflict   Reason = "duplicate poll"              // two GETs at once on one polling session
	ReasonForcedServerClose Reason = "forced server close"         // a handler panicked
	ReasonFlood             Reason = "flood"                       // over MaxInboundRate
	ReasonResync            Reason = "server resync"               // Server.EndAllSessions
)

// String returns the reason as the metric label and log value.
func (r Reason) String() string { return string(r) }

// Recoverable reports whether a socket closed for r keeps its session for
// connection state recovery: an explicit disconnect by either side, a
// protocol error or a resync ends it; losing the transport does not.
func (r Reason) Recoverable() bool {
	switch r {
	case ReasonClientNamespace, ReasonServerNamespace, ReasonParseError, ReasonResync:
		return false
	}
	return true
}
