// recovery.mjs <url> <default|websocket>: connection state recovery. Protocol with the Go test:
//   script: {"ev":"connect",recovered:false} ... {"ev":"news",args} for each news event
//   test:   "drop"       -> the client force-closes its transport, prints {"ev":"disconnect"}
//   test:   "reconnect"  -> the client reconnects, prints {"ev":"connect",recovered,id}
//   when a news event whose first argument is "last" arrives, the script prints
//   {"ev":"done", events:[...every news event's args, in arrival order]}.
import { io } from "socket.io-client";
import { url, args, out, once, expectCommand, done } from "./lib.mjs";

const opts = { auth: { token: "good" } };
if (args[0] === "websocket") opts.transports = ["websocket"];
const socket = io(url, opts);
const events = [];
socket.on("news", (...a) => {
  events.push(a);
  out({ ev: "news", args: a });
  if (a[0] === "last") done({ events, id: socket.id, recovered: socket.recovered });
});
socket.on("connect", () => out({ ev: "connect", id: socket.id, recovered: socket.recovered, transport: socket.io.engine.transport.name }));
socket.on("disconnect", (reason) => out({ ev: "disconnect", reason }));
socket.on("connect_error", (err) => out({ ev: "connect_error", message: err.message }));

await once(socket, "connect");
if (args[0] !== "websocket" && socket.io.engine.transport.name !== "websocket") {
  await once(socket.io.engine, "upgrade");
}
out({ ev: "ready" });
await expectCommand("drop");
// No automatic reconnection while the test broadcasts what this client misses.
socket.io.reconnection(false);
const disconnected = once(socket, "disconnect");
socket.io.engine.close();
await disconnected;
await expectCommand("reconnect");
socket.io.reconnection(true);
socket.connect();
