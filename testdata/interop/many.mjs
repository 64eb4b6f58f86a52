// many.mjs <url> <n>: n clients with default options connect at once (n polling handshakes and
// upgrades in parallel), each waits for its upgrade, then the script says {"ev":"ready"}; the
// test broadcasts "news" 1..3 and the script reports how many each client got, in order.
import { io } from "socket.io-client";
import { url, args, out, once, done } from "./lib.mjs";

const n = Number(args[0] || 100);
const clients = [];
for (let i = 0; i < n; i++) {
  const s = io(url, { auth: { token: "good-" + i }, reconnection: false, forceNew: true });
  const c = { s, got: [], upgraded: false };
  s.io.on("open", () => s.io.engine.once("upgrade", () => (c.upgraded = true)));
  s.on("news", (x) => c.got.push(x));
  clients.push(c);
}
await Promise.all(clients.map((c) => once(c.s, "connect", 15000)));
await Promise.all(clients.map((c) => (c.upgraded || c.s.io.engine.transport.name === "websocket" ? null : once(c.s.io.engine, "upgrade", 15000))));
out({ ev: "ready" });
await Promise.all(clients.map((c) => new Promise((resolve) => {
  if (c.got.length >= 3) return resolve();
  c.s.on("news", () => c.got.length >= 3 && resolve());
})));
const bad = clients.filter((c) => JSON.stringify(c.got) !== "[1,2,3]").map((c) => ({ id: c.s.id, got: c.got }));
const transports = {};
for (const c of clients) transports[c.s.io.engine.transport.name] = (transports[c.s.io.engine.transport.name] || 0) + 1;
for (const c of clients) c.s.disconnect();
done({ n, bad, transports });
