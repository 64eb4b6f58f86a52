// basic.mjs <url> <default|websocket|polling|seed> [path] ("seed" = the storefront seed's
// options: transports ['websocket','polling'], reconnectionAttempts 5): one client exercising the connect
// handshake with auth, query and an extra header, acks both ways and binary both ways.
// Prints one {"ev":"done",...} line.
import { io } from "socket.io-client";
import { args, out, fail, once, emitAck, plain, done } from "./lib.mjs";
import { url } from "./lib.mjs";

const mode = args[0] || "default";
const opts = {
  auth: { token: "good", extra: [1, "x", { y: null }] },
  query: { shop: "demo shop" },
  extraHeaders: { "X-Interop": "yes" },
  reconnection: false,
};
if (args[1]) opts.path = args[1];
if (mode === "websocket") opts.transports = ["websocket"];
if (mode === "polling") opts.transports = ["polling"];
if (mode === "seed") Object.assign(opts, { transports: ["websocket", "polling"], reconnectionAttempts: 5, reconnectionDelay: 1000 });

const socket = io(url, opts);
let initialTransport = null;
let upgraded = false;
socket.io.once("open", () => {
  initialTransport = socket.io.engine.transport.name;
  socket.io.engine.once("upgrade", () => (upgraded = true));
});
const welcome = once(socket, "welcome");
socket.on("connect_error", (err) => fail(`connect_error: ${err.message}`));
socket.on("question", (n, cb) => cb("answer", n + 1));
socket.on("bin-question", (buf, cb) => cb("got", Buffer.from(buf).length, Buffer.from([9, 8, 7])));

await once(socket, "connect");
const id = socket.id;
const [hello] = await welcome;

if (mode === "default" && !upgraded) {
  await once(socket.io.engine, "upgrade");
  upgraded = true;
}

const echo = await emitAck(socket, "echo", 1, "two", { three: [true] }, "<&>");

const answered = once(socket, "answered");
socket.emit("ask");
const [answer] = await answered;

const binBack = once(socket, "bin-back");
const binAck = await emitAck(socket, "bin", Buffer.from([1, 2, 3]), { nested: Buffer.from([4]) }, "txt");
const binBackArgs = await binBack;

const binAnswered = once(socket, "bin-answered");
socket.emit("bin-ask");
const binAnswer = plain(await binAnswered);

const transport = socket.io.engine.transport.name;
socket.disconnect();
done({
  mode,
  initialTransport,
  upgraded,
  transport,
  id,
  welcome: hello,
  echo,
  answer,
  binAck: plain(binAck),
  binBack: plain(binBackArgs),
  binAnswer,
});
