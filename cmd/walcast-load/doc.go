// Command walcast-load measures a Socket.IO server that pushes Postgres changes:
// walcast, or the Node socket.io baseline in testdata/bench.
//
// It is a lean Engine.IO v4 / Socket.IO v5 client over its own WebSocket
// client code (wire.go), building its packets with hub/packet. Clients live
// in worker processes (at most 19,000 sockets each, the machine's file limit
// being 20,000), bound to 127.0.0.x source addresses, and are served by one
// level-triggered epoll loop per worker: one
// read(2) per ready socket, frames parsed in place, no allocation per delivery.
// That keeps the tool's CPU per delivery below the server's, and the tool
// reports its own CPU beside the server's so that this can be checked.
//
// A run connects N clients with HS256 JWTs (auth.token), subscribes each to a
// bench product room with an acknowledged subscribe:product, then drives
// database changes at a fixed rate: each change sets inventory.quantity of one
// bench variant to a sequence number, so the event's "available" field carries
// it. The wall time is taken just before COMMIT and streamed to the workers,
// which compute commit-to-receive latency per delivery into a log-linear
// histogram and count expected, received, duplicated and lost events.
//
// Subcommands:
//
//	walcast-load run -server 127.0.0.1:3001 -db DSN -secret S -clients N -rooms R -rate C -duration D
//	walcast-load bench     # the benchmark scenarios against walcast and Node; BENCH_QUICK=1 for small numbers
//	walcast-load worker    # internal: one worker process, driven over stdin/stdout
//
// The worker protocol is line-based: a JSON WorkerConfig, "ready <ok> <failed>",
// then "c <seq> <unixnano>" commit records, "stat" (answered "stat <received>
// <closed>") and "end" (answered with a JSON WorkerResult).
package main
