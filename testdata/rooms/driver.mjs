// Drives several socket.io-client v4 sockets for rooms/policy_test.go.
//
// Usage: node testdata/rooms/driver.mjs <base url>
// Commands arrive on stdin, one JSON object per line; everything the sockets
// see goes to stdout, one JSON object per line, tagged with the socket's name.
//
//   {"op":"connect","name":"a","nsp":"/","token":"…","transports":["websocket"],"reconnection":true,"authFn":false}
//     (authFn: auth is a callback returning the socket's current token, as apps
//     that read the session at each (re)connection do)
//     (pid, offset: resume that session, as socket.io-client does after a drop,
//     e.g. one read with the "session" op from another socket)
//   {"op":"session","name":"a"}     (prints a's session: {"name","ev":"session","pid","offset"})
//   {"op":"emit","name":"a","id":1,"event":"subscribe:product","args":["p1"],"ack":true}
//   {"op":"flood","name":"a","id":2,"event":"subscribe:product","args":["p1"],"count":1000,"ms":1000}
//   {"op":"setauth","name":"a","token":"…"}
//   {"op":"reconnect","name":"a"}   (socket.connect() after a connect_error or a drop)
//   {"op":"drop","name":"a"}        (closes the Engine.IO connection as a network loss would:
//                                    the session stays recoverable by its pid)
//   {"op":"close","name":"a"}
//
// Output lines: {"name","ev":"connect","id"} | {"name","ev":"connect_error","message","data"} |
// {"name","ev":"event","event","args"} | {"name","ev":"ack","id","args"|"error"} |
// {"name","ev":"disconnect","reason"} | {"name","ev":"flood","id","results":{…},"disconnected"} |
// {"ev":"fatal","error"}. The script exits on its own after DRIVER_DEADLINE_MS.
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

const base = process.argv[2];
if (!base) {
  console.error("usage: node driver.mjs <base url>");
  process.exit(2);
}

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}
function fail(msg) {
  out({ ev: "fatal", error: String(msg) });
  process.exit(1);
}
process.on("unhandledRejection", (e) => fail(e && e.stack ? e.stack : e));
process.on("uncaughtException", (e) => fail(e && e.stack ? e.stack : e));
setTimeout(() => fail("driver deadline exceeded"), Number(process.env.DRIVER_DEADLINE_MS || 120000)).unref();

const sockets = new Map();
const tokens = new Map(); // for sockets whose auth is a callback (authFn)
const ACK_TIMEOUT = 5000;

function connect(c) {
  const nsp = c.nsp || "/";
  tokens.set(c.name, c.token);
  const s = io(base + (nsp === "/" ? "" : nsp), {
    auth: c.authFn ? (cb) => cb({ token: tokens.get(c.name) }) : c.token == null ? {} : { token: c.token },
    transports: c.transports || ["polling", "websocket"],
    reconnection: c.reconnection !== false,
    reconnectionDelay: 100,
    reconnectionDelayMax: 500,
    forceNew: true,
    autoConnect: c.pid == null,
  });
  sockets.set(c.name, s);
  if (c.pid != null) {
    s._pid = c.pid;
    s._lastOffset = c.offset;
    s.connect();
  }
  s.on("connect", () => out({ name: c.name, ev: "connect", id: s.id, recovered: s.recovered }));
  s.on("connect_error", (err) => out({ name: c.name, ev: "connect_error", message: err.message, data: err.data ?? null }));
  s.on("disconnect", (reason) => out({ name: c.name, ev: "disconnect", reason }));
  s.onAny((event, ...args) => out({ name: c.name, ev: "event", event, args }));
}

function emit(c) {
  const s = sockets.get(c.name);
  if (!s) return fail("no socket " + c.name);
  const args = c.args || [];
  if (!c.ack) {
    s.emit(c.event, ...args);
    out({ name: c.name, ev: "sent", id: c.id });
    return;
  }
  s.timeout(ACK_TIMEOUT).emit(c.event, ...args, (err, ...res) => {
    if (err) out({ name: c.name, ev: "ack", id: c.id, error: String(err.message || err) });
    else out({ name: c.name, ev: "ack", id: c.id, args: res });
  });
}

// flood emits count events with acks spread over ms milliseconds and reports
// how the acks were answered.
function flood(c) {
  const s = sockets.get(c.name);
  if (!s) return fail("no socket " + c.name);
  const results = {};
  let pending = c.count;
  let disconnected = false;
  s.once("disconnect", () => {
    disconnected = true;
  });
  const done = () => {
    if (--pending === 0) out({ name: c.name, ev: "flood", id: c.id, results, disconnected });
  };
  const perTick = Math.max(1, Math.ceil(c.count / Math.max(1, c.ms / 10)));
  let sent = 0;
  const tick = () => {
    for (let i = 0; i < perTick && sent < c.count; i++, sent++) {
      s.timeout(ACK_TIMEOUT).emit(c.event, ...(c.args || []), (err, res) => {
        const key = err ? "no ack" : res && res.ok ? "ok" : String(res && res.error);
        results[key] = (results[key] || 0) + 1;
        done();
      });
    }
    if (sent < c.count) setTimeout(tick, 10);
  };
  tick();
}

const rl = createInterface({ input: process.stdin });
rl.on("line", (l) => {
  if (!l.trim()) return;
  const c = JSON.parse(l);
  switch (c.op) {
    case "connect":
      return connect(c);
    case "emit":
      return emit(c);
    case "flood":
      return flood(c);
    case "setauth": {
      const s = sockets.get(c.name);
      if (!s) return fail("no socket " + c.name);
      tokens.set(c.name, c.token);
      if (typeof s.auth !== "function") s.auth = c.token == null ? {} : { token: c.token };
      return out({ name: c.name, ev: "auth_set" });
    }
    case "session": {
      const s = sockets.get(c.name);
      if (!s) return fail("no socket " + c.name);
      return out({ name: c.name, ev: "session", pid: s._pid ?? null, offset: s._lastOffset ?? null });
    }
    case "reconnect": {
      const s = sockets.get(c.name);
      if (!s) return fail("no socket " + c.name);
      s.connect();
      return;
    }
    case "drop": {
      const s = sockets.get(c.name);
      if (!s) return fail("no socket " + c.name);
      s.io.engine.close();
      return out({ name: c.name, ev: "dropped" });
    }
    case "close": {
      const s = sockets.get(c.name);
      if (s) s.close();
      sockets.delete(c.name);
      return out({ name: c.name, ev: "closed" });
    }
    default:
      fail("unknown op " + c.op);
  }
});
rl.on("close", () => {
  for (const s of sockets.values()) s.close();
  process.exit(0);
});
