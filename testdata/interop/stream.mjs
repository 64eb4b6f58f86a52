// stream.mjs <url> <count>: default options (polling, then upgrade). From the connect on, the
// server emits "seq" 0..count-1 and the client emits "seq" 0..count-1, both without pauses,
// so packets flow in both directions while the transport is upgraded. The client checks
// its events arrive complete and in order, then asks the server ("seq-tally") what it got.
import { io } from "socket.io-client";
import { url, args, once, emitAck, done } from "./lib.mjs";

const count = Number(args[0] || 2000);
const socket = io(url, { auth: { token: "good" }, reconnection: false });
let upgradedAt = -1;
socket.io.on("open", () => socket.io.engine.once("upgrade", () => (upgradedAt = received)));
let received = 0;
let inOrder = true;
const all = new Promise((resolve) => {
  socket.on("seq", (i) => {
    if (i !== received) inOrder = false;
    received++;
    if (received === count) resolve();
  });
});
await once(socket, "connect");
for (let i = 0; i < count; i++) {
  socket.emit("seq", i);
  if (i % 100 === 0) await new Promise((r) => setImmediate(r)); // let the upgrade progress
}
await all;
if (upgradedAt < 0 && socket.io.engine.transport.name !== "websocket") await once(socket.io.engine, "upgrade");
const [tally] = await emitAck(socket, "seq-tally");
const transport = socket.io.engine.transport.name;
socket.disconnect();
done({ received, inOrder, upgradedAt, transport, tally });
