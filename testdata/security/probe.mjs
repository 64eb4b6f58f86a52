// One well-behaved socket.io-client connection for cmd/walcast security
// tests: it connects with TOKEN to URL (the seeds' default transports) and
// prints {"connectMs": …}, the time from io() to the connect event, or
// {"fatal": …}, then exits. Env: URL, TOKEN, TIMEOUT_MS.
import { io } from "socket.io-client";

const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
setTimeout(() => { out({ fatal: "no connect before the deadline" }); process.exit(1); }, Number(process.env.TIMEOUT_MS || 10000)).unref();
const t0 = performance.now();
const s = io(process.env.URL, { auth: { token: process.env.TOKEN }, reconnection: false });
s.on("connect", () => {
  out({ connectMs: performance.now() - t0 });
  s.close();
  process.exit(0);
});
s.on("connect_error", (err) => { out({ fatal: "connect_error: " + err.message }); process.exit(1); });
