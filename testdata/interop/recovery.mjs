// recovery.mjs <url> <default|websocket|polling> [manual|auto]: connection state recovery.
// Lines to the Go test: {"ev":"connect",id,recovered} on every connect, {"ev":"news",args}
// for each news event, {"ev":"disconnect",reason}; "ready" once connected (and upgraded with
// default options). When a news event whose first argument is "last" arrives the script
// prints {"ev":"done", events:[...every news event's args, in arrival order]} and exits.
//   manual: the test sends "drop" (the client force-closes its transport, with automatic
//           reconnection off) and later "reconnect" (the client reconnects by hand).
//   auto:   the server drops the transport; the client reconnects on its own.
import { io } from "socket.io-client";
import { url, args, out, once, expectCommand, done } from "./lib.mjs";

const mode = args[0] || "default";
const how = args[1] || "manual";
const opts = { auth: { token: "good" }, reconnectionDelay: 50, reconnectionDelayMax: 200, randomizationFactor: 0 };
if (mode === "websocket") opts.transports = ["websocket"];
if (mode === "polling") opts.transports = ["polling"];
const socket = io(url, opts);
const events = [];
socket.on("news", (...a) => {
  events.push(a);
  out({ ev: "news", args: a });
  if (a[0] === "last") done({ events, id: socket.id, recovered: socket.recovered });
});
socket.on("connect", () => out({ ev: "connect", id: socket.id, recovered: socket.recovered, transport: socket.io.engine.transport.name }));
socket.on("disconnect", (reason) => out({ ev: "disconnect", reason, active: socket.active }));
socket.on("connect_error", (err) => out({ ev: "connect_error", message: err.message }));

await once(socket, "connect");
if (mode === "default" && socket.io.engine.transport.name !== "websocket") {
  await once(socket.io.engine, "upgrade");
}
out({ ev: "ready" });
if (how === "manual") {
  await expectCommand("drop");
  // No automatic reconnection while the test broadcasts what this client misses.
  socket.io.reconnection(false);
  const disconnected = once(socket, "disconnect");
  socket.io.engine.close();
  await disconnected;
  await expectCommand("reconnect");
  socket.io.reconnection(true);
  socket.connect();
}
