// Shared helpers for the interop scripts. Each script is run by hub/interop_test.go as
// `node testdata/interop/<script>.mjs <url> [args...]`. Scripts talk to the Go test with
// JSON lines: one object per line on stdout ({"ev": ...}), commands as plain lines on stdin.
// Every script exits on its own: a global deadline prints {"ev":"fatal"} and exits 1.
import { createInterface } from "node:readline";

export const url = process.argv[2];
if (!url) {
  console.error("usage: node <script>.mjs <url> [args...]");
  process.exit(2);
}
export const args = process.argv.slice(3);

/** out writes one JSON line for the Go test. */
export function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

/** fail reports a fatal error and exits with status 1. */
export function fail(msg) {
  out({ ev: "fatal", error: String(msg) });
  process.exit(1);
}

process.on("unhandledRejection", (err) => fail(err && err.stack ? err.stack : err));
process.on("uncaughtException", (err) => fail(err && err.stack ? err.stack : err));

const deadline = setTimeout(() => fail("script deadline exceeded"), Number(process.env.INTEROP_DEADLINE_MS || 20000));
deadline.unref();

/** once resolves with the arguments of the next `event` on emitter, or rejects after ms. */
export function once(emitter, event, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, handler);
      reject(new Error(`timeout waiting for ${event}`));
    }, ms);
    function handler(...a) {
      clearTimeout(timer);
      emitter.off(event, handler);
      resolve(a);
    }
    emitter.on(event, handler);
  });
}

/** emitAck emits with an ack callback and resolves with all the ack arguments. */
export function emitAck(socket, event, ...a) {
  return new Promise((resolve, reject) => {
    socket.timeout(5000).emit(event, ...a, (err, ...res) => (err ? reject(new Error(`ack for ${event}: ${err.message}`)) : resolve(res)));
  });
}

/** plain converts Buffers (also nested) to {"bin":[bytes]} so results are JSON-comparable. */
export function plain(v) {
  if (Buffer.isBuffer(v) || v instanceof ArrayBuffer || ArrayBuffer.isView(v)) {
    return { bin: Array.from(Buffer.from(v.buffer ? v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength) : v)) };
  }
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === "object") {
    const o = {};
    for (const [k, x] of Object.entries(v)) o[k] = plain(x);
    return o;
  }
  return v;
}

const lines = [];
const waiters = [];
createInterface({ input: process.stdin }).on("line", (l) => {
  if (waiters.length) waiters.shift()(l.trim());
  else lines.push(l.trim());
});

/** command resolves with the next stdin line sent by the Go test. */
export function command() {
  if (lines.length) return Promise.resolve(lines.shift());
  return new Promise((resolve) => waiters.push(resolve));
}

/** expectCommand waits for the next stdin line and fails unless it equals want. */
export async function expectCommand(want) {
  const got = await command();
  if (got !== want) fail(`got command ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

/** done prints the final line and exits 0 (the process would otherwise wait on stdin). */
export function done(obj) {
  out({ ev: "done", ...obj });
  process.exit(0);
}
