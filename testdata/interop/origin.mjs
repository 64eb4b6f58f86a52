// origin.mjs <url> <origin>: connects once over polling and once over WebSocket with the
// given Origin header (as a browser on that page would send it) and prints whether each
// connected: {"ev":"done","polling":{connected|error},"websocket":{...}}.
import { io } from "socket.io-client";
import { url, args, once, done } from "./lib.mjs";

const origin = args[0];
async function attempt(transport) {
  const socket = io(url, {
    forceNew: true,
    reconnection: false,
    transports: [transport],
    auth: { token: "good" },
    extraHeaders: { Origin: origin },
  });
  const r = await Promise.race([
    once(socket, "connect").then(() => ({ connected: true })),
    once(socket, "connect_error").then(([err]) => ({ connected: false, error: err.message })),
  ]);
  socket.disconnect();
  return r;
}
done({ polling: await attempt("polling"), websocket: await attempt("websocket") });
