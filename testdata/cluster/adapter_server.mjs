// A Node socket.io 4.8 server with @socket.io/redis-adapter on REDIS_URL, and
// one socket.io-client connected to it, joined to ROOM. Prints "READY" once the
// client is connected, then one JSON line {"event", "args"} per event the client
// receives, until it has COUNT events (default 1) or TIMEOUT_MS passes.
// It also prints {"fetchSocketsMs": n}: how long io.fetchSockets() took with
// walcast nodes on the same Redis (they stay off the request channel, so it
// must not wait for them).
import { createServer } from "node:http";
import { Server } from "socket.io";
import { io as ioc } from "socket.io-client";
import { createClient } from "redis";
import { createAdapter } from "@socket.io/redis-adapter";

const url = process.env.REDIS_URL;
const room = process.env.ROOM || "product:1";
const count = Number(process.env.COUNT || 1);
const timeout = Number(process.env.TIMEOUT_MS || 15000);

const pub = createClient({ url });
const sub = pub.duplicate();
await Promise.all([pub.connect(), sub.connect()]);

const http = createServer();
const io = new Server(http, { adapter: createAdapter(pub, sub) });
io.on("connection", (s) => s.join(room));
await new Promise((r) => http.listen(0, "127.0.0.1", r));
const port = http.address().port;

const client = ioc(`http://127.0.0.1:${port}`, { transports: ["websocket"] });
let got = 0;
const done = (code) => {
  client.close();
  io.close();
  pub.quit().catch(() => {});
  sub.quit().catch(() => {});
  setTimeout(() => process.exit(code), 50);
};
const timer = setTimeout(() => {
  console.log(JSON.stringify({ error: `timeout after ${timeout}ms with ${got} events` }));
  done(1);
}, timeout);
client.onAny((event, ...args) => {
  const out = args.map((a) => (Buffer.isBuffer(a) || a instanceof ArrayBuffer ? { binary: [...Buffer.from(a)] } : a));
  console.log(JSON.stringify({ event, args: out }));
  if (++got >= count) {
    clearTimeout(timer);
    done(0);
  }
});
client.on("connect", async () => {
  // Give the server a moment to run the join before announcing readiness.
  setTimeout(async () => {
    const t0 = Date.now();
    await io.fetchSockets();
    console.log(JSON.stringify({ fetchSocketsMs: Date.now() - t0 }));
    console.log("READY");
  }, 50);
});
