// server_disconnect.mjs <url> <default|websocket|polling> [settle|nowait]: the two ways a server ends a
// socket. "kick" with "disconnect" -> the server sends a namespace DISCONNECT: the client gets
// "io server disconnect" and does not reconnect on its own (the script reconnects by hand).
// "kick" with "close-transport" -> the server drops the Engine.IO connection: the client gets
// a transport-level reason and reconnects on its own. Prints {"ev":"done",...}.
import { io } from "socket.io-client";
import { url, args, once, done } from "./lib.mjs";

const mode = args[0] || "default";
const opts = { auth: { token: "good" }, reconnectionDelay: 50, reconnectionDelayMax: 200, randomizationFactor: 0 };
if (mode === "websocket") opts.transports = ["websocket"];
if (mode === "polling") opts.transports = ["polling"];
const socket = io(url, opts);
// With default options wait for the upgrade before each kick: when the server closes the
// session in the middle of the upgrade (after the noop that ends the paused poll, before "5"),
// socket.io-client keeps its polling transport paused and only notices at its ping timeout.
// The hub now finishes the upgrade before closing; "nowait" kicks without waiting to cover that.
async function settled() {
  if (args[1] === "nowait") return;
  if (mode === "default" && socket.io.engine.transport.name !== "websocket") await once(socket.io.engine, "upgrade");
}
await once(socket, "connect");
await settled();

const result = {};
let d = once(socket, "disconnect");
socket.emit("kick", "disconnect");
let [reason] = await d;
result.disconnect = { reason, active: socket.active };

const c = once(socket, "connect");
socket.connect();
await c;
await settled();

d = once(socket, "disconnect");
const again = once(socket, "connect");
socket.emit("kick", "close-transport");
[reason] = await d;
result.closeTransport = { reason, active: socket.active };
await again;
result.reconnected = socket.connected;
socket.disconnect();
done(result);
