// payload.mjs <url> <default|websocket|polling> <count> <size>: sends <count> events of a
// <size>-character string without waiting (the client batches polling POSTs up to the
// server's maxPayload), then asks the server with "tally" how many bytes it received; then
// asks the server to send as many back ("flood") and counts them. Prints {"ev":"done",...}.
import { io } from "socket.io-client";
import { url, args, once, emitAck, done } from "./lib.mjs";

const mode = args[0] || "default";
const count = Number(args[1] || 40);
const size = Number(args[2] || 20000);
const opts = { auth: { token: "good" }, reconnection: false };
if (mode === "websocket") opts.transports = ["websocket"];
if (mode === "polling") opts.transports = ["polling"];
const socket = io(url, opts);
let disconnects = [];
socket.on("disconnect", (r) => disconnects.push(r));
await once(socket, "connect");
const chunk = "x".repeat(size);
for (let i = 0; i < count; i++) socket.emit("bulk", i, chunk);
const [tally] = await emitAck(socket, "tally");

let received = 0, bytes = 0, inOrder = true;
const all = new Promise((resolve) => {
  socket.on("bulk-back", (i, s) => {
    if (i !== received) inOrder = false;
    received++;
    bytes += s.length;
    if (received === count) resolve();
  });
});
socket.emit("flood", count, size);
await all;
socket.disconnect();
done({ tally, received, bytes, inOrder, disconnects });
