// Package adminui is the server side of the official Socket.IO Admin UI
// (@socket.io/admin-ui, hosted at admin.socket.io or served from the npm
// package's ui/dist) for a *hub.Server: the protocol that the package's
// instrument() speaks on its admin namespace, written for the hub.
//
// cmd/walcast creates it with New when the UI is enabled. New declares the
// admin namespace (DefaultNamespace unless Config.Namespace says otherwise),
// installs its basic-auth middleware (a username and a bcrypt hash, the UI's
// "basic" authentication) and a hub.Observer; Run emits the figures and
// relays what the observer saw until its context ends.
//
// # Protocol
//
// The UI connects to the admin namespace with {username, password} (or
// {sessionId} after a reload). A refused CONNECT gets CONNECT_ERROR
// {"message":"invalid credentials"}, which the UI shows in its login form.
// An accepted admin socket gets:
//
//	session        a session id (valid on every node with the same password hash, for SessionTTL)
//	config         {supportedFeatures: [...]}: DISCONNECT, LEAVE, MLEAVE, MDISCONNECT,
//	               AGGREGATED_EVENTS and, in development mode, ALL_EVENTS (none of the first
//	               four when Config.ReadOnly)
//	all_sockets    every node's sockets (development mode), at most MaxSockets per node
//
// and then, on every node's admin sockets:
//
//	server_stats         every StatsInterval from each node: serverId, hostname, pid, uptime,
//	                     clientsCount, pollingClientsCount, namespaces, aggregatedEvents
//	                     (rawConnection, rawDisconnection, packetsIn, packetsOut per second),
//	                     plus the caller's own figures (Config.Extra) under "walcast"
//	socket_connected     (socket, timestamp)           development mode, from every node
//	socket_updated       ({id, nsp, transport})        after a polling→WebSocket upgrade
//	socket_disconnected  (nsp, id, reason, timestamp)
//	room_joined          (nsp, room, id, timestamp)
//	room_left            (nsp, room, id, timestamp)
//	event_received       (nsp, id, [event, args...], timestamp)
//	event_sent           (nsp, id, [event, args...], timestamp)  per-socket emits; and, from
//	                     the local node only, each broadcast (id = its rooms), at most
//	                     BroadcastRate a second
//
// The UI's actions: "_disconnect" (nsp, close, id or room) and "leave" (nsp,
// room, id or room, or every socket without one) run on every node; a
// disconnect needs a target (the UI always gives one). "join" and "emit" are
// not offered: a join would put a socket into a room the application's
// policy did not grant it, and an emit would send clients events that no
// database change made. Requests for them are refused and logged.
//
// # Cluster
//
// With Config.Publish (the Redis bus's Publish in walcast), every message is
// published to the admin namespace on every node, so an admin socket on any
// node sees every node's server stats and socket events; the UI aggregates
// them by serverId. all_sockets is gathered with a request to the other nodes
// (a broadcast to a room no socket joins, handed to Remote by the bus): the
// node waits up to GatherTimeout for the nodes whose stats it saw in the last
// 10 seconds. Actions go to every node the same way.
//
// # Safety and cost
//
// While no admin socket is connected on any node (as the nodes' stats say,
// at most 10 seconds old), a node sends only its server stats: the observer
// counts and sends nothing per socket. An admin socket's node sends its
// stats at once when it logs in, so the others start before they list their
// sockets for it.
//
// Observer callbacks only queue (a bounded queue of QueueSize messages,
// dropped when full and counted in the "walcast.adminDropped" figure); one
// goroutine publishes them in batches. Event arguments over MaxArgsBytes are
// replaced with a note of their size. Authorization and Cookie headers and
// token-like query parameters are sent as "[redacted]". Password checks
// (bcrypt) run at most two at a time and five a second per node; over that
// a login is refused at once with MsgTooManyLogins.
//
// # Goroutine safety and context
//
// An *Admin is safe for concurrent use. Run's context bounds every goroutine
// the package starts; after it ends nothing more is sent (the observer's
// messages fill the bounded queue and are dropped).
package adminui
