// namespaces.mjs <url> <default|websocket|polling>: one Manager (one Engine.IO connection)
// multiplexing "/" and "/admin". Checks that broadcasts stay in their namespace, that the
// namespace middleware refuses "/admin" without the admin token, and that leaving "/admin"
// keeps "/" working. Prints {"ev":"done",...}.
import { Manager } from "socket.io-client";
import { url, args, once, emitAck, done } from "./lib.mjs";

const mode = args[0] || "default";
const opts = { reconnection: false };
if (mode === "websocket") opts.transports = ["websocket"];
if (mode === "polling") opts.transports = ["polling"];
const manager = new Manager(url, opts);
const main = manager.socket("/", { auth: { token: "good" } });
const admin = manager.socket("/admin", { auth: { token: "good-admin" } });
const got = { main: [], admin: [] };
main.on("news", (...a) => got.main.push(a));
admin.on("news", (...a) => got.admin.push(a));
await Promise.all([once(main, "connect"), once(admin, "connect")]);
const sameEngine = manager.engine && main.io === admin.io;

// A broadcast on "/admin" then one on "/", each followed by a marker on both namespaces.
let marks = [once(main, "mark"), once(admin, "mark")];
await emitAck(admin, "broadcast", { event: "news", args: ["to-admin"] });
await emitAck(admin, "broadcast", { event: "mark", args: [] });
await emitAck(main, "broadcast", { event: "mark", args: [] });
await Promise.all(marks);
marks = [once(main, "mark"), once(admin, "mark")];
await emitAck(main, "broadcast", { event: "news", args: ["to-main"] });
await emitAck(admin, "broadcast", { event: "mark", args: [] });
await emitAck(main, "broadcast", { event: "mark", args: [] });
await Promise.all(marks);

// A second "/admin" socket on its own Manager without the admin token is refused.
const other = new Manager(url, { ...opts, forceNew: true });
const refused = other.socket("/admin", { auth: { token: "good" } });
const [err] = await once(refused, "connect_error");
other._close();

// Leaving "/admin" keeps "/" (same Engine.IO connection) working.
admin.disconnect();
const echo = await emitAck(main, "echo", "still-here");
main.disconnect();
done({ sameEngine, got, refused: { message: err.message, data: err.data ?? null }, echo });
