// Package bus carries broadcasts from the one node that reads the replication
// slot (the leader) to the hub of every walcast node.
//
// A Bus is a hub.Adapter (hub.Config.Adapter): hub.Server.Broadcast hands
// it every broadcast, it sends them to the other nodes and delivers them on
// this node through the hub.Local that hub.New attaches. On the leader the
// CDC side calls Server.Broadcast with the broadcasts of one or more
// committed transactions; it returns nil only when the bus has accepted all
// of them, and only then may the reader acknowledge the transaction's
// position to Postgres. Run delivers what arrives on the bus to the local hub
// until its context ends.
//
// Two implementations exist:
//
//   - Local (NewLocal): one node. Publish delivers each broadcast at once;
//     Run only waits for its context.
//   - Redis (NewRedis): many nodes on one Redis or a Redis Cluster. Publish
//     sends each broadcast, pipelined, and delivers it locally once Redis
//     accepted it. In classic mode (@socket.io/redis-adapter's createAdapter
//     format: msgpack [uid, packet, opts], packet.AppendAdapterMessage, with
//     PUBLISH on socket.io#<nsp># or socket.io#<nsp>#<room>#) Run
//     PSUBSCRIBEs socket.io#<nsp>#* and delivers every message not sent by
//     this node, skipping without decoding a room channel's message for a
//     room without members here. In sharded mode (RedisConfig.Sharded,
//     createShardedAdapter's "dynamic" format: packet.AppendClusterBroadcast
//     with SPUBLISH) Run SSUBSCRIBEs only to the namespace's channel and to
//     the channels of rooms with members on this node (hub.RoomObserver),
//     one connection per cluster primary, and answers the Node adapter's
//     fetchSockets and acknowledged requests (see redis_sharded.go). A Node
//     socket.io server with the matching adapter on the same Redis delivers
//     walcast's events, and its emits reach walcast's clients.
//
// In classic mode the bus does not subscribe to the adapter's request
// channel (socket.io-request#<nsp>#): Node's fetchSockets(), allRooms() and
// serverCount() neither count nor wait for walcast nodes (and do not see
// their sockets).
//
// Each node remembers, per namespace (in sharded mode per channel, as the
// channels arrive on separate connections), the highest offset it has
// delivered and drops a broadcast whose offset is not above it. After a leader change the
// new leader re-publishes what it reads again from the slot; clients see each
// event once, in commit order.
//
// RedisStore is a hub.RecoveryStore in Redis shared by all nodes: a stream per
// namespace (or several with hash tags, RedisStoreConfig.Shards) whose entry
// ids are the offsets (filled by the publishing node in the same pipeline as
// its PUBLISH, or on a cluster one round trip before it), and one key per
// session. It also keeps
// the sessions of connected sockets, so clients of a node that was killed
// recover on another node. When its subscription was lost, a node replays
// from the stream what it missed before delivering anything live.
//
// # Goroutine safety
//
// Publish may be called from several goroutines, concurrently with Run;
// RoomChanged (sharded mode) does not block. Publish does not retain the
// slice it is given; the *hub.Broadcast values are handed to the hub and must
// not be modified afterwards.
//
// # Context
//
// Publish returns ctx.Err() (wrapped) when ctx ends before the bus accepted
// the broadcasts; the caller must then treat them as not delivered. Redis
// Publish keeps retrying while Redis is unreachable, so a leader pauses
// (and Postgres keeps the WAL) rather than losing events. Run returns nil when
// its context ends.
package bus
