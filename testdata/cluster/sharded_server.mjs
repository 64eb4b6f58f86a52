// A Node socket.io 4.8 server with @socket.io/redis-adapter's
// createShardedAdapter (Redis 7 sharded pub/sub, "dynamic" subscriptions) on
// REDIS_URL, or on the Redis Cluster whose nodes REDIS_CLUSTER lists
// (host:port,host:port,...). One socket.io-client connects to it and joins
// ROOMS (comma-separated, default product:1). It prints "READY" once the client
// is in its rooms, then one JSON line per event the client receives:
// {"event", "args"}. Commands on stdin, one per line:
//
//	emit <room> <event> <json>   io.to(room).emit(event, json); prints {"emitted": event}
//	emitargs <room> <event> <json array>   io.to(room).emit(event, ...array)
//	fetch                        io.fetchSockets(); prints {"fetched": [ids], "ms": n}
//
// It exits when stdin closes.
import { createServer } from "node:http";
import { createInterface } from "node:readline";
import { Server } from "socket.io";
import { io as ioc } from "socket.io-client";
import { createClient, createCluster } from "redis";
import { createShardedAdapter } from "@socket.io/redis-adapter";

const rooms = (process.env.ROOMS || "product:1").split(",");
let pub;
if (process.env.REDIS_CLUSTER) {
  const rootNodes = process.env.REDIS_CLUSTER.split(",").map((a) => ({ url: `redis://${a}` }));
  pub = createCluster({ rootNodes });
} else {
  pub = createClient({ url: process.env.REDIS_URL });
}
const sub = pub.duplicate();
pub.on("error", (e) => console.error("pub", e.message));
sub.on("error", (e) => console.error("sub", e.message));
await Promise.all([pub.connect(), sub.connect()]);

const http = createServer();
const io = new Server(http, { adapter: createShardedAdapter(pub, sub, { subscriptionMode: "dynamic" }) });
io.on("connection", (s) => s.join(rooms));
await new Promise((r) => http.listen(0, "127.0.0.1", r));
const port = http.address().port;

const client = ioc(`http://127.0.0.1:${port}`, { transports: ["websocket"] });
client.onAny((event, ...args) => {
  console.log(JSON.stringify({ event, args }));
});
client.on("connect", () => setTimeout(() => console.log("READY"), 200));

const rl = createInterface({ input: process.stdin });
rl.on("line", async (line) => {
  const [cmd, ...rest] = line.split(" ");
  try {
    if (cmd === "emit" || cmd === "emitargs") {
      const [room, event, ...json] = rest;
      const v = JSON.parse(json.join(" "));
      io.to(room).emit(event, ...(cmd === "emitargs" ? v : [v]));
      console.log(JSON.stringify({ emitted: event }));
    } else if (cmd === "fetch") {
      const t0 = Date.now();
      const socks = await io.fetchSockets();
      console.log(JSON.stringify({ fetched: socks.map((s) => s.id), ms: Date.now() - t0 }));
    }
  } catch (e) {
    console.log(JSON.stringify({ error: e.message }));
  }
});
rl.on("close", () => {
  client.close();
  io.close();
  pub.quit().catch(() => {});
  sub.quit().catch(() => {});
  setTimeout(() => process.exit(0), 100);
});
