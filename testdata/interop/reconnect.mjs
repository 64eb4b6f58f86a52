// reconnect.mjs <url> <default|websocket|polling>: automatic reconnection. Prints {"ev":"connect"}
// on every connect and {"ev":"disconnect"} on every disconnect; the Go test restarts the
// server in between. After the second connect it checks the socket works (ack round trip)
// and waits for "exit" on stdin.
import { io } from "socket.io-client";
import { url, args, out, emitAck, expectCommand, done } from "./lib.mjs";

const opts = { auth: { token: "good" }, reconnectionDelay: 50, reconnectionDelayMax: 200, randomizationFactor: 0 };
if (args[0] === "websocket") opts.transports = ["websocket"];
if (args[0] === "polling") opts.transports = ["polling"];
const socket = io(url, opts);
let connects = 0;
// "bye" events are broadcast just before the server shuts down: Shutdown must flush them.
let byes = 0;
let byesInOrder = true;
socket.on("bye", (i) => {
  if (i !== byes) byesInOrder = false;
  byes++;
});
socket.on("disconnect", (reason) => out({ ev: "disconnect", reason, active: socket.active, byes, byesInOrder }));
socket.on("connect_error", (err) => out({ ev: "connect_error", message: err.message }));
const reconnected = new Promise((resolve) => {
  socket.on("connect", async () => {
    connects++;
    out({ ev: "connect", id: socket.id, n: connects, transport: socket.io.engine.transport.name });
    if (connects === 2) resolve();
  });
});
await reconnected;
const echo = await emitAck(socket, "echo", "after-restart");
await expectCommand("exit");
socket.disconnect();
done({ echo, connects });
