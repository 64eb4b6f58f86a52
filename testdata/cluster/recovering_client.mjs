// A socket.io-client 4.8 (websocket only) on URL with auth {token: TOKEN}. It
// prints "READY" after the first connect, then one JSON line per event:
// {"connect": n, "recovered": bool} on each (re)connect and {"seq": n} for each
// distinct "test:seq" event of phase PHASE (de-duplicated by offset). It exits 0
// after COUNT such events, 1 after TIMEOUT_MS.
import { io } from "socket.io-client";

const want = Number(process.env.COUNT || 1);
const phase = process.env.PHASE || "";
const socket = io(process.env.URL, {
  transports: ["websocket"],
  auth: { token: process.env.TOKEN },
  reconnectionDelay: 200,
  reconnectionDelayMax: 500,
});
const seen = new Set();
let connects = 0;
let got = 0;
const timer = setTimeout(() => {
  console.log(JSON.stringify({ error: `timeout with ${got} events` }));
  process.exit(1);
}, Number(process.env.TIMEOUT_MS || 30000));
socket.on("connect", () => {
  connects++;
  console.log(JSON.stringify({ connect: connects, recovered: socket.recovered }));
  if (connects === 1) console.log("READY");
});
socket.on("test:seq", (p, offset) => {
  if (p.phase !== phase || seen.has(offset)) return;
  seen.add(offset);
  console.log(JSON.stringify({ seq: p.seq }));
  if (++got >= want) {
    clearTimeout(timer);
    socket.close();
    setTimeout(() => process.exit(0), 20);
  }
});
