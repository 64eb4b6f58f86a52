package hub

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// Defaults for zero Config fields.
const (
	DefaultPath             = "/socket.io/"
	DefaultPingInterval     = 25 * time.Second
	DefaultPingTimeout      = 20 * time.Second
	DefaultConnectTimeout   = 45 * time.Second
	DefaultUpgradeTimeout   = 10 * time.Second
	DefaultMaxPayload       = 1_000_000
	DefaultMaxQueueBytes    = 1 << 20
	DefaultWriteTimeout     = 10 * time.Second
	DefaultMaxDisconnection = 2 * time.Minute
	DefaultMaxInboundRate   = 1000
	DefaultMaxPreConnect    = 64 << 10

	DefaultMaxHandshakesPerIP      = 20
	DefaultMaxConnsPerIP           = 256
	DefaultMaxUnauthenticatedPerIP = 32
)

// Config configures a Server. Every zero field takes its Default… value.
type Config struct {
	// Path is the URL path prefix the server is mounted at; "" = "/socket.io/".
	Path string
	// PingInterval is the time between server pings; 0 = 25s.
	PingInterval time.Duration
	// PingTimeout is how long the client has to answer a ping; 0 = 20s.
	PingTimeout time.Duration
	// ConnectTimeout is the time a client has to send a Socket.IO CONNECT after
	// the Engine.IO open; 0 = 45s.
	ConnectTimeout time.Duration
	// UpgradeTimeout bounds the polling→WebSocket upgrade; 0 = 10s.
	UpgradeTimeout time.Duration
	// MaxPayload is the limit in bytes per Engine.IO message (WebSocket frame)
	// and per polling request body; 0 = 1e6.
	MaxPayload int64
	// AllowedOrigins is the CORS (polling) and WebSocket Origin allow-list, exact
	// matches such as "https://shop.example"; nil/empty = allow all origins.
	AllowedOrigins []string
	// MaxQueueBytes is the per-connection outbound budget in bytes; a client
	// over it is disconnected as "slow"; 0 = 1 MiB.
	MaxQueueBytes int
	// WriteTimeout bounds each write to a client; a client stuck longer is
	// disconnected ("write timeout"). The deadline is moved only when it
	// would come within 7/8 of WriteTimeout, so a stuck write fails after
	// 7/8 to all of it. 0 = 10s.
	WriteTimeout time.Duration
	// MaxInboundRate bounds the messages (Socket.IO packets and attachments,
	// WebSocket pings and pongs) a client may send per second, with bursts of five times that; a client
	// over it is disconnected ("flood"). 0 = 1000; negative = unlimited.
	MaxInboundRate int
	// MaxPreConnectBytes bounds the bytes a connection may send (frames,
	// polling bodies, pings included) before a Socket.IO CONNECT is
	// accepted, so an unauthenticated client cannot make the server read or
	// buffer a full MaxPayload; over it the connection is closed (WebSocket
	// close code 1008, polling 413). 0 = 64 KiB.
	MaxPreConnectBytes int64
	// MaxHandshakesPerIP bounds the new Engine.IO sessions (handshakes
	// without a sid) one client IP may open per second, with bursts of five
	// times that. 0 = 20; negative = unlimited.
	MaxHandshakesPerIP int
	// MaxConnsPerIP bounds the open Engine.IO connections (WebSocket or
	// polling sessions) of one client IP. 0 = 256; negative = unlimited.
	MaxConnsPerIP int
	// MaxUnauthenticatedPerIP bounds the open connections of one client IP
	// that have no accepted Socket.IO CONNECT yet (no middleware accepted
	// them). 0 = 32; negative = unlimited.
	//
	// A handshake over any of the three per-IP caps is answered 429 (with
	// Connection: close) before a session exists.
	MaxUnauthenticatedPerIP int
	// ClientIP returns the address a request is counted under by the per-IP
	// caps, e.g. from X-Forwarded-For behind a trusted proxy; nil or "" =
	// the host of the request's RemoteAddr.
	ClientIP func(r *http.Request) string
	// Adapter carries broadcasts to the other nodes of a cluster: every
	// Server.Broadcast goes through it, and it delivers on this node through
	// the Local that New attaches. nil = one node (deliver at once).
	Adapter Adapter
	// Recovery enables connection state recovery; nil = off.
	Recovery *RecoveryConfig
	// OnSessionChange, when set, is called with a socket's state each time it
	// connects (or is recovered), joins or leaves rooms, and disconnects, so a
	// durable session store can follow sessions without polling. It is called
	// synchronously, in order for each socket, with the socket's lock held:
	// it must not block and must not call the Socket (copy what you keep and
	// write it elsewhere). nil = none.
	OnSessionChange func(SessionChange)
	// Metrics are optional Prometheus collectors from NewMetrics; nil = none.
	Metrics *Metrics
	// Logger receives the hub's logs; nil = slog.Default().
	Logger *slog.Logger

	// OnRawMessage, when set, turns the server into a plain Engine.IO server
	// (for the engine.io-protocol conformance suite): Socket.IO is not spoken
	// and every Engine.IO message is passed here; send queues a message back on
	// the same session. nil = Socket.IO (normal use).
	OnRawMessage func(data []byte, binary bool, send func(data []byte, binary bool))
}

// RecoveryConfig configures connection state recovery (socket.io 4.6+).
type RecoveryConfig struct {
	// Store keeps broadcasts with offsets and disconnected sessions;
	// nil = an in-memory store (NewMemoryStore) bounded by MaxDisconnection.
	Store RecoveryStore
	// MaxDisconnection is how long a disconnected session can be recovered;
	// 0 = 2m.
	MaxDisconnection time.Duration
}

// withDefaults returns a copy of c with zero fields filled, or every problem found.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	if c.Path == "" {
		c.Path = DefaultPath
	}
	if c.Path[0] != '/' {
		errs = append(errs, fmt.Errorf("hub: Path %q must start with /", c.Path))
	}
	if c.Path[len(c.Path)-1] != '/' {
		c.Path += "/"
	}
	dur := func(name string, d *time.Duration, def time.Duration) {
		switch {
		case *d == 0:
			*d = def
		case *d < 0:
			errs = append(errs, fmt.Errorf("hub: %s %v must not be negative", name, *d))
		}
	}
	dur("PingInterval", &c.PingInterval, DefaultPingInterval)
	dur("PingTimeout", &c.PingTimeout, DefaultPingTimeout)
	dur("ConnectTimeout", &c.ConnectTimeout, DefaultConnectTimeout)
	dur("UpgradeTimeout", &c.UpgradeTimeout, DefaultUpgradeTimeout)
	dur("WriteTimeout", &c.WriteTimeout, DefaultWriteTimeout)
	switch {
	case c.MaxPayload == 0:
		c.MaxPayload = DefaultMaxPayload
	case c.MaxPayload < 0:
		errs = append(errs, fmt.Errorf("hub: MaxPayload %d must not be negative", c.MaxPayload))
	}
	switch {
	case c.MaxQueueBytes == 0:
		c.MaxQueueBytes = DefaultMaxQueueBytes
	case c.MaxQueueBytes < 0:
		errs = append(errs, fmt.Errorf("hub: MaxQueueBytes %d must not be negative", c.MaxQueueBytes))
	}
	switch {
	case c.MaxPreConnectBytes == 0:
		c.MaxPreConnectBytes = DefaultMaxPreConnect
	case c.MaxPreConnectBytes < 0:
		errs = append(errs, fmt.Errorf("hub: MaxPreConnectBytes %d must not be negative", c.MaxPreConnectBytes))
	}
	if c.MaxInboundRate == 0 {
		c.MaxInboundRate = DefaultMaxInboundRate
	}
	if c.MaxHandshakesPerIP == 0 {
		c.MaxHandshakesPerIP = DefaultMaxHandshakesPerIP
	}
	if c.MaxConnsPerIP == 0 {
		c.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	if c.MaxUnauthenticatedPerIP == 0 {
		c.MaxUnauthenticatedPerIP = DefaultMaxUnauthenticatedPerIP
	}
	if c.Recovery != nil {
		r := *c.Recovery
		dur("Recovery.MaxDisconnection", &r.MaxDisconnection, DefaultMaxDisconnection)
		if r.Store == nil {
			r.Store = NewMemoryStore(r.MaxDisconnection, 0)
		}
		c.Recovery = &r
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, errors.Join(errs...)
}
