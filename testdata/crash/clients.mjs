// Crash test clients for cmd/walcast/crash_test.go: real socket.io-client
// sockets with the seeds' transport options, each subscribed once to the
// products in PRODUCTS, recording every product:stock-updated after READY and
// whether each reconnect was recovered. A reconnect that was not recovered
// subscribes again, as the seeds' clients do (the state on subscribe then
// arrives as product:stock-updated). JSON lines on stdout; "DONE" on stdin
// ends the script. Env: URL, TOKEN, PRODUCTS (comma separated), PER (clients
// per option set), TIMEOUT_MS.
import { io } from "socket.io-client";
import { createInterface } from "node:readline";

const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const deadline = setTimeout(() => { out({ fatal: "script deadline exceeded" }); process.exit(1); }, Number(process.env.TIMEOUT_MS || 90000));
deadline.unref();

const products = process.env.PRODUCTS.split(",");
const per = Number(process.env.PER || 1);
const optionSets = [
  { name: "websocket+polling", transports: ["websocket", "polling"] },
  { name: "websocket", transports: ["websocket"] },
  { name: "default" },
];
let ready = false;
const sockets = [];
const subscribed = [];
for (const set of optionSets) {
  for (let i = 0; i < per; i++) {
    const c = sockets.length;
    const opts = { auth: { token: process.env.TOKEN }, reconnectionDelay: 200, reconnectionDelayMax: 1000 };
    if (set.transports) opts.transports = set.transports;
    const s = io(process.env.URL, opts);
    let connects = 0;
    subscribed.push(new Promise((resolve) => {
      s.on("connect", async () => {
        connects++;
        if (connects === 1) {
          // Subscribe once: later reconnects rely on connection state recovery.
          for (const p of products) {
            const ack = await s.timeout(10000).emitWithAck("subscribe:product", p);
            if (!ack || !ack.ok) out({ c, error: "subscribe " + p + ": " + JSON.stringify(ack) });
          }
          resolve();
        } else {
          out({ c, set: set.name, reconnect: connects - 1, recovered: s.recovered });
          if (!s.recovered) {
            for (const p of products) {
              const ack = await s.timeout(10000).emitWithAck("subscribe:product", p).catch((e) => ({ error: String(e) }));
              if (!ack || !ack.ok) out({ c, error: "resubscribe " + p + ": " + JSON.stringify(ack) });
            }
            out({ c, resubscribed: connects - 1 });
          }
        }
      });
    }));
    s.on("product:stock-updated", (d) => {
      if (ready) out({ c, v: d.variantId, a: d.available });
    });
    sockets.push(s);
  }
}
await Promise.all(subscribed);
await new Promise((r) => setTimeout(r, 300)); // the state on subscribe has arrived
ready = true;
out({ ready: sockets.length });
for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() === "DONE") break;
}
for (const s of sockets) s.close();
out({ done: true });
process.exit(0);
