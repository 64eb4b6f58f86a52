// idle.mjs <url> <default|websocket|polling>: connects, says {"ev":"ready"}, then prints
// {"ev":"news",args} for every news event; exits after the news event "last".
import { io } from "socket.io-client";
import { url, args, out, once, done } from "./lib.mjs";

const mode = args[0] || "default";
const opts = { auth: { token: "good" }, reconnection: false };
if (mode === "websocket") opts.transports = ["websocket"];
if (mode === "polling") opts.transports = ["polling"];
const socket = io(url, opts);
const got = [];
socket.on("disconnect", (reason) => out({ ev: "disconnect", reason }));
socket.on("news", (...a) => {
  got.push(a);
  if (a[0] === "last") done({ got }); // exits; the server sees the transport close
});
await once(socket, "connect");
if (mode === "default" && socket.io.engine.transport.name !== "websocket") await once(socket.io.engine, "upgrade");
out({ ev: "ready", transport: socket.io.engine.transport.name });
