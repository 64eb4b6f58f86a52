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
//     [uid, packet, opts] on socket.io#<nsp># or socket.io#<nsp>#<room>#),
//     pipelined, and delivers it locally once Redis accepted it; Run
//     PSUBSCRIBEs socket.io#<nsp>#* and delivers every message not sent by
//     this node. A Node socket.io server using @socket.io/redis-adapter on the
//     same Redis therefore delivers walcast's events, and events sent by a
//     Node @socket.io/redis-emitter reach walcast's clients.
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
