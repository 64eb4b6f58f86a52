// auth_error.mjs <url>: connect_error cases. A missing token, a bad token, an unknown
// namespace; each connect_error's message and data are printed in one {"ev":"done"} line.
import { io, Manager } from "socket.io-client";
import { url, once, done } from "./lib.mjs";

async function attempt(nsp, auth) {
  const manager = new Manager(url, { reconnection: false, transports: ["websocket"] });
  const socket = manager.socket(nsp, auth === undefined ? {} : { auth });
  const result = await Promise.race([
    once(socket, "connect_error").then(([err]) => ({ message: err.message, data: err.data ?? null })),
    once(socket, "connect").then(() => ({ connected: true })),
  ]);
  result.active = socket.active;
  socket.disconnect();
  manager._close();
  return result;
}

done({
  noToken: await attempt("/", undefined),
  badToken: await attempt("/", { token: "bad" }),
  unknownNamespace: await attempt("/nope", { token: "good" }),
});
