// rooms.mjs <url>: three clients a, b, c. a joins r1; b joins r1 and r2; c joins r2. The
// server broadcasts on request (event "broadcast" with {rooms, except, event, args}); after
// each case a namespace-wide "mark" broadcast tells every client the case is over, so no
// sleeps are needed: one connection delivers in order.
import { io } from "socket.io-client";
import { url, once, emitAck, plain, done } from "./lib.mjs";

const names = ["a", "b", "c"];
const clients = {};
for (const n of names) {
  const s = io(url, { auth: { token: "good-" + n }, transports: ["websocket"], reconnection: false, forceNew: true });
  clients[n] = { s, got: [] };
  s.on("news", (...a) => clients[n].got.push(plain(a)));
}
await Promise.all(names.map((n) => once(clients[n].s, "connect")));
const ids = Object.fromEntries(names.map((n) => [n, clients[n].s.id]));

await emitAck(clients.a.s, "join", "r1");
await emitAck(clients.b.s, "join", "r1");
await emitAck(clients.b.s, "join", "r2");
await emitAck(clients.c.s, "join", "r2");
const rooms = Object.fromEntries(await Promise.all(names.map(async (n) => [n, (await emitAck(clients[n].s, "rooms"))[0].sort()])));

const cases = {};
async function run(name, b, before) {
  if (before) await before();
  for (const n of names) clients[n].got = [];
  const marks = names.map((n) => once(clients[n].s, "mark"));
  await emitAck(clients.a.s, "broadcast", { event: "news", args: [name], ...b });
  await emitAck(clients.a.s, "broadcast", { event: "mark", args: [name] });
  await Promise.all(marks);
  cases[name] = Object.fromEntries(names.map((n) => [n, clients[n].got]));
}

await run("all", {});
await run("r1", { rooms: ["r1"] });
await run("r1+r2", { rooms: ["r1", "r2"] });
await run("r1-except-r2", { rooms: ["r1"], except: ["r2"] });
await run("all-except-a", { except: [ids.a] });
await run("to-socket-b", { rooms: [ids.b] });
await run("binary-r2", { rooms: ["r2"], binary: true });
await run("r1-after-b-leaves", { rooms: ["r1"] }, () => emitAck(clients.b.s, "leave", "r1"));

for (const n of names) clients[n].s.disconnect();
done({ ids, rooms, cases });
