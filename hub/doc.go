// Package hub is a Socket.IO v5 / Engine.IO v4 server library: WebSocket and
// HTTP long-polling transports (with the polling→WebSocket upgrade), namespaces,
// connect middlewares, events and acks in both directions, binary attachments,
// rooms, a fan-out built to encode each broadcast once, and socket.io 4.6+
// connection state recovery behind the RecoveryStore interface.
//
// It knows nothing of shops or Postgres: cmd/walcast mounts a *Server at
// Config.Path, rooms/ installs middlewares and handlers on namespaces, and the
// CDC side calls Server.Broadcast with already-encoded JSON arguments.
//
// # Protocol flow
//
// Engine.IO (one session per browser tab, id "sid"):
//
//	C: GET  /socket.io/?EIO=4&transport=polling          (or transport=websocket)
//	S: 0{"sid":"…","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}
//	S: 2            every PingInterval            C: 3   within PingTimeout, else "ping timeout"
//	polling: GET receives packets joined by 0x1e, POST sends them; binary is "b"+base64
//	upgrade: C opens WS with &sid=…, C: 2probe  S: 3probe  (pending GET answered with 6)  C: 5
//	close:   S: 1 on polling / WebSocket close frame;  C: 1 on polling
//
// Socket.IO packets ride in Engine.IO message packets ("4" + packet):
//
//	<type>[<attachments>-][<nsp>,][<ack id>][JSON]
//	C: 40{"token":…}            CONNECT to "/" with the auth object
//	S: 40{"sid":"…"}            accepted (plus "pid" when recovery is on)
//	S: 44{"message":…,"data":…} refused by a middleware; 44/x,{"message":"Invalid namespace"}
//	C/S: 42["event",args…]      EVENT; 42<id>[…] asks for an ack answered by 43<id>[…]
//	C/S: 451-["e",{"_placeholder":true,"num":0}] + one binary message per attachment
//	C/S: 41                     DISCONNECT of one namespace; the Engine.IO session stays
//
// A client must CONNECT to a namespace within ConnectTimeout of the Engine.IO
// open. Bad input only costs its sender: malformed packets, illegal
// attachments and state errors close that client's connection (on WebSocket
// with close code 1002 and the reason text), oversize frames get 1009 and
// oversize polling bodies 413, more than MaxInboundRate messages per second
// (WebSocket pings and pongs included) close it as "flood", and a disallowed
// Origin gets 403. Frames are read incrementally: memory follows the bytes
// that arrived, not the length a header announces. Until a CONNECT is
// accepted a connection may send only MaxPreConnectBytes (WebSocket close
// 1008, polling 413, kind "preconnect"), and every unsent pong counts its
// queue slot against MaxQueueBytes, so a client that pings and never reads
// is closed as "slow". Each is logged (Debug; flood, preconnect and slow
// pongs at Warn) and counted in walcast_hub_bad_packets_total{kind}.
//
// Before a new session exists (a handshake without sid) the client IP
// (Config.ClientIP, else the TCP peer) must be under three caps:
// MaxHandshakesPerIP per second, MaxConnsPerIP open connections and
// MaxUnauthenticatedPerIP connections without an accepted CONNECT. Over one,
// the handshake gets 429 with Connection: close, counted in
// walcast_hub_ip_refused_total{limit}.
//
// # Metrics
//
// walcast_hub_connections, _sockets, _rooms (gauges),
// walcast_hub_events_out_total{event} (deliveries; the event label is the
// name only for NewMetrics' known names, or the first DefaultMaxEventLabels
// names when none are given, else "other", so names chosen by senders cannot
// grow the series), _events_in_total{event},
// _broadcasts_total, _disconnects_total{reason}, _queue_drops_total,
// _bad_packets_total{kind}, _ip_refused_total{limit} and the
// _commit_to_send_seconds histogram
// (observed once per broadcast, after the last receiver got it).
//
// # Broadcast and the adapter
//
// Server.Broadcast is the one broadcast verb: it reaches every node. It
// hands its broadcasts to Config.Adapter (nil: this node is the cluster, and
// they are delivered at once); a cluster transport such as hub/bus sends
// them to the other nodes and delivers them here through the Local that New
// attaches, and only then returns nil. An adapter that is a RoomObserver is
// told, without blocking, when a room gets its first member on this node and
// when it loses its last, so that it can subscribe only to the rooms served
// here.
//
// # Fan-out and memory
//
// Server.Broadcast encodes the whole Engine.IO frame ("42[…]") once and
// hands the same immutable bytes to every receiver's bounded outbound queue.
// A queue is drained by a flush that writes everything queued with one writev
// (so frames that pile up under load share syscalls); flushes run on a pool of
// goroutines shared by all connections, each kept for a second after its last
// flush, so a burst starts no goroutine and an idle connection holds none. The
// write deadline is moved about once per WriteTimeout/8 of a connection's
// activity, not once per write. For small audiences (<= 64 receivers) the
// frame is framed once and written inline to idle WebSocket receivers with one
// non-blocking write(2) instead: no goroutine and no allocation per receiver;
// the broadcast's own allocations (its encoding and the framed copy) do not
// grow with the audience (TestInlineWrite_Allocs: 0 per receiver, at most 5
// per broadcast). A connection over MaxQueueBytes is closed as "slow", one
// whose write stalls for WriteTimeout as "write timeout" (both recoverable);
// the broadcaster never waits for a client.
//
// gorilla/websocket performs the upgrade handshake; frames are then read and
// written by the hub's own frame code (hub/internal/wsframe), read without a
// read buffer, and an idle connection parks in a fresh goroutine on the
// minimum stack (the reader hands the wait over after each message). Pings use one runtime timer per connection, no goroutine.
// Measured with hub/testdata/memcheck: 6.8 KiB RSS per idle WebSocket socket
// at 15,000 connections (3.5 KB heap + 2 KB stack).
//
// # Connection state recovery
//
// With Config.Recovery set, the CONNECT reply carries a pid and every event
// without ack ends with an offset string: the Broadcast's Offset, or for
// broadcasts without one and Socket.Emit the namespace's latest offset (""
// before the first), as socket.io requires. Broadcasts with an Offset are
// appended to the RecoveryStore (synchronously, once per broadcast). On a
// recoverable disconnect (anything but an explicit namespace disconnect or a
// protocol error) the session is saved; a reconnect with that pid and offset
// gets the missed broadcasts that matched its rooms, before the CONNECT reply,
// its old socket id and rooms, and Recovered() == true. The middlewares run
// first, and only a CONNECT they accept reaches the store. The session is
// then resumed only if the handshake may (Namespace.OnRecoveryCheck; by
// default its Handshake.User is the session's); a refused session is saved
// back for its owner. A session whose socket is still connected (on this
// node, or as the store reports with ErrSessionLive) is not resumed, and
// neither is one whose replay would take more than 7/8 of MaxQueueBytes;
// each of these CONNECTs goes on as a new session (new pid, Recovered() ==
// false, none of the session's rooms). A Namespace.OnRecover filter then decides which of the session's
// rooms the socket rejoins, before the replay (so nothing of a dropped room
// is replayed).
// Live broadcasts during the replay are held and de-duplicated by offset, so
// each event arrives once, in order. Config.OnSessionChange reports every
// socket's session (pid, rooms, connected or not) as it changes, for a store
// that must keep sessions outside the process.
//
// # Introspection
//
// For monitoring tools (walcast's Socket.IO Admin UI namespace):
// Server.Namespaces, Lookup, Namespace.Sockets, Socket and InRoom,
// Socket.ConnID and Transport, and PollingConnections list what is there;
// Server.Observe installs one Observer whose functions hear of engine
// sessions opening and closing, sockets connecting, upgrading, joining,
// leaving and disconnecting, events received and emitted, and broadcasts.
// Without an observer each hook costs one atomic load.
//
// # Goroutine safety
//
// Server, Namespace and Socket methods are safe for concurrent use.
// Middlewares and OnConnect run on the connection's reader goroutine; the
// handlers of one socket run sequentially there, so a slow handler only slows
// its own connection. A Message and its slices are not reused by the hub, so
// handlers may keep them.
//
// # Context
//
// Socket.Context is cancelled when the socket disconnects. Shutdown stops
// accepting, lets queues drain until its context ends, then closes every
// connection so clients reconnect elsewhere.
package hub
