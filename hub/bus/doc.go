// Package bus carries broadcasts from the one node that reads the replication
// slot (the leader) to the hub of every walcast node.
//
// A Bus has two halves. Publish is called by the CDC side (through a cdc.Sink
// adapter in cmd/walcast) with the broadcasts of one or more committed
// transactions; it returns nil only when the bus has accepted all of them, and
// only then may the reader acknowledge the transaction's position to Postgres.
// Run delivers what arrives on the bus to the local *hub.Server until its
// context ends.
//
// Two implementations exist:
//
//   - Local (NewLocal): one node. Publish hands each broadcast to
//     hub.Server.Broadcast directly; Run only waits for its context.
//   - Redis (NewRedis): many nodes on one Redis. Publish sends each broadcast
//     with PUBLISH in the @socket.io/redis-adapter wire format (msgpack
//     [uid, packet, opts], packet.AppendAdapterMessage, on socket.io#<nsp>#
//     or socket.io#<nsp>#<room>#),
//     pipelined, and delivers it locally once Redis accepted it; Run
//     PSUBSCRIBEs socket.io#<nsp>#* and delivers every message not sent by
//     this node. A Node socket.io server using @socket.io/redis-adapter on the
//     same Redis therefore delivers walcast's events, and events sent by a
//     Node @socket.io/redis-emitter reach walcast's clients.
//
// The Redis bus does not subscribe to the adapter's request channel
// (socket.io-request#<nsp>#): Node's fetchSockets(), allRooms() and
// serverCount() neither count nor wait for walcast nodes (and do not see
// their sockets).
//
// Each node remembers, per namespace, the highest offset it has delivered and
// drops a broadcast whose offset is not above it. After a leader change the
// new leader re-publishes what it reads again from the slot; clients see each
// event once, in commit order.
//
// RedisStore is a hub.RecoveryStore in Redis shared by all nodes: a stream per
// namespace whose entry ids are the offsets (filled by the publishing node in
// the same pipeline as its PUBLISH), and one key per session. It also keeps
// the sessions of connected sockets, so clients of a node that was killed
// recover on another node. When its subscription was lost, a node replays
// from the stream what it missed before delivering anything live.
//
// # Goroutine safety
//
// Publish may be called from several goroutines, concurrently with Run.
// Publish does not retain the slice it is given; the *hub.Broadcast values
// are handed to the hub and must not be modified afterwards.
//
// # Context
//
// Publish returns ctx.Err() (wrapped) when ctx ends before the bus accepted
// the broadcasts; the caller must then treat them as not delivered. Redis
// Publish keeps retrying while Redis is unreachable, so a leader pauses
// (and Postgres keeps the WAL) rather than losing events. Run returns nil when
// its context ends.
package bus
