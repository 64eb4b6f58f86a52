// Node socket.io 4.8 baseline for hub/testdata/memcheck: the same idle
// WebSocket clients against socket.io's default server. Run with
//   node --expose-gc testdata/hub/memcheck-node.mjs 127.0.0.1:4012
// then `go run ./hub/testdata/memcheck client -addr 127.0.0.1:4012 -n 15000`.
// GET /stats runs gc() and answers like the Go server ({rss_kib, Sockets}).
import http from "node:http";
import { Server } from "socket.io";

const [host, port] = (process.argv[2] || "127.0.0.1:4012").split(":");
const srv = http.createServer((req, res) => {
  if (req.url !== "/stats") return;
  if (global.gc) global.gc();
  const m = process.memoryUsage();
  res.end(JSON.stringify({ rss_kib: Math.round(m.rss / 1024), HeapAlloc: m.heapUsed, Sockets: io.of("/").sockets.size }));
});
const io = new Server(srv, { transports: ["websocket", "polling"] });
io.on("connection", (socket) => socket.join("all"));
srv.listen(Number(port), host);
