// A real socket.io-client socket for cmd/walcast security tests: it connects
// with TOKEN to URL, prints "READY" once connected, then one JSON line
// {"event","args"} per event it receives, and exits after the event named by
// END (default "test:exit") or after TIMEOUT_MS.
import { io } from "socket.io-client";

const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const end = process.env.END || "test:exit";
const deadline = setTimeout(() => { out({ fatal: "script deadline exceeded" }); process.exit(1); }, Number(process.env.TIMEOUT_MS || 30000));
deadline.unref();

const s = io(process.env.URL, { auth: { token: process.env.TOKEN }, transports: ["websocket"], reconnection: false });
s.on("connect", () => process.stdout.write("READY\n"));
s.on("connect_error", (err) => { out({ fatal: "connect_error: " + err.message }); process.exit(1); });
s.onAny((event, ...args) => {
  out({ event, args });
  if (event === end) {
    s.close();
    process.exit(0);
  }
});
