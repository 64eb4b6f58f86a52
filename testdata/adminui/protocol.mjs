// The Socket.IO Admin UI protocol against a two-node walcast cluster, with
// socket.io-client (the client the UI itself uses): bad credentials refused,
// then an admin socket on node A that must see node B's sockets, stats,
// connects, joins, events and disconnects, and whose leave and disconnect
// actions reach a socket on node B; its session id logs in on node B.
//
//   ADMIN_USER=… ADMIN_PASS=… ADMIN_NSP=/walcast-admin TOKEN_A=… TOKEN_B=… TOKEN_C=… USER_C=<uuid> \
//   node testdata/adminui/protocol.mjs <url A> <url B>
//
// Prints "ok   <step>" per step, "FAIL <step>: why" and exits 1 on the first
// failure; every wait is bounded.
import { io } from 'socket.io-client';

const [urlA, urlB] = process.argv.slice(2);
const { ADMIN_USER, ADMIN_PASS, ADMIN_NSP, TOKEN_A, TOKEN_B, TOKEN_C, USER_C } = process.env;
const STEP = 10000;
const opts = { transports: ['websocket'], reconnection: false, forceNew: true };
const opened = [];

function fail(step, why) {
  console.log(`FAIL ${step}: ${why}`);
  for (const s of opened) s.close();
  process.exit(1);
}
function ok(step) { console.log(`ok   ${step}`); }

// until resolves with the first value of check(...args) that is truthy
// among the events `event` of socket, or fails the step after STEP ms.
function until(socket, event, step, check = () => true) {
  return new Promise((resolve) => {
    const t = setTimeout(() => fail(step, `no matching ${event} within ${STEP} ms`), STEP);
    const fn = (...args) => {
      const v = check(...args);
      if (v) {
        clearTimeout(t);
        socket.off(event, fn);
        resolve(v);
      }
    };
    socket.on(event, fn);
  });
}
function connect(url, auth, step) {
  const s = io(url, { ...opts, auth });
  opened.push(s);
  return new Promise((resolve) => {
    const t = setTimeout(() => fail(step, 'no connect'), STEP);
    s.once('connect', () => { clearTimeout(t); resolve(s); });
    s.once('connect_error', (e) => fail(step, `connect_error ${e.message}`));
  });
}

// 1. Bad credentials: refused with the message the UI shows.
for (const [name, auth] of [['wrong-password', { username: ADMIN_USER, password: 'wrong' }], ['no-credentials', {}], ['forged-session', { sessionId: 'AAAA' }]]) {
  const s = io(urlA + ADMIN_NSP, { ...opts, auth });
  opened.push(s);
  const msg = await new Promise((resolve) => {
    const t = setTimeout(() => fail(`bad-credentials ${name}`, 'no answer'), STEP);
    s.once('connect', () => fail(`bad-credentials ${name}`, 'connected'));
    s.once('connect_error', (e) => { clearTimeout(t); resolve(e.message); });
  });
  if (msg !== 'invalid credentials') fail(`bad-credentials ${name}`, `message ${JSON.stringify(msg)}`);
  s.close();
}
ok('bad-credentials');

// 2. One user socket per node, then the admin socket on node A.
const ua = await connect(urlA, { token: TOKEN_A }, 'user-a');
const ub = await connect(urlB, { token: TOKEN_B }, 'user-b');
const admin = io(urlA + ADMIN_NSP, { ...opts, auth: { username: ADMIN_USER, password: ADMIN_PASS } });
opened.push(admin);
const stats = new Map();
admin.on('server_stats', (st) => stats.set(st.serverId, st));
const gotSession = until(admin, 'session', 'session', (id) => id);
const gotConfig = until(admin, 'config', 'config', (c) => c);
const gotAll = until(admin, 'all_sockets', 'all-sockets', (socks) => socks);
admin.once('connect_error', (e) => fail('admin-login', e.message));
const sessionId = await gotSession;
const config = await gotConfig;
ok('admin-login');
const want = ['DISCONNECT', 'LEAVE', 'MLEAVE', 'MDISCONNECT', 'AGGREGATED_EVENTS', 'ALL_EVENTS'];
if (JSON.stringify(config.supportedFeatures) !== JSON.stringify(want)) fail('config', JSON.stringify(config));
ok('config');
const all = await gotAll;
const byId = new Map(all.map((s) => [s.id, s]));
for (const [name, u] of [['a', ua], ['b', ub]]) {
  const s = byId.get(u.id);
  if (!s) fail('all-sockets', `user ${name} ${u.id} missing from ${all.length} sockets: ${all.map((s) => s.id)}`);
  if (s.nsp !== '/' || s.transport !== 'websocket' || !s.rooms.includes(u.id) || !s.rooms.some((r) => r.startsWith('user:'))) {
    fail('all-sockets', `user ${name}: ${JSON.stringify(s)}`);
  }
  if (s.handshake.headers.authorization && s.handshake.headers.authorization !== '[redacted]') fail('all-sockets', 'authorization header shown');
  if (!s.data || !s.data.userId) fail('all-sockets', `no user id in data: ${JSON.stringify(s.data)}`);
}
ok(`all-sockets both-nodes (${all.length} sockets)`);

// 3. Both nodes' stats, each with its role.
await new Promise((resolve) => {
  const t0 = Date.now();
  const iv = setInterval(() => {
    if (stats.size >= 2) { clearInterval(iv); resolve(); }
    else if (Date.now() - t0 > STEP) fail('server-stats', `${stats.size} servers: ${[...stats.keys()]}`);
  }, 100);
});
const roles = [...stats.values()].map((s) => s.walcast && s.walcast.role).sort();
if (JSON.stringify(roles) !== '["leader","standby"]') fail('server-stats', `roles ${roles}`);
for (const st of stats.values()) {
  const nsp = st.namespaces.find((n) => n.name === '/');
  if (!nsp || nsp.socketsCount < 1 || st.clientsCount < 1 || typeof st.uptime !== 'number' || !st.hostname.includes(st.walcast.role)) {
    fail('server-stats', JSON.stringify(st));
  }
}
ok('server-stats both-nodes leader+standby');

// 4. A socket connecting on node B: socket_connected, room_joined, event_received.
const connected = until(admin, 'socket_connected', 'socket-connected-remote', (s) => s.data && s.data.userId === USER_C && s);
const joined = until(admin, 'room_joined', 'room-joined-remote', (nsp, room, id) => nsp === '/' && room === `user:${USER_C}` && id);
const uc = await connect(urlB, { token: TOKEN_C }, 'user-c');
const sc = await connected;
if (sc.id !== uc.id) fail('socket-connected-remote', `id ${sc.id}, want ${uc.id}`);
ok('socket-connected-remote');
if ((await joined) !== uc.id) fail('room-joined-remote', 'wrong id');
ok('room-joined-remote');
const received = until(admin, 'event_received', 'event-received-remote', (nsp, id, args) => id === uc.id && args[0] === 'hello' && args);
uc.emit('hello', { n: 1 });
const args = await received;
if (JSON.stringify(args) !== '["hello",{"n":1}]') fail('event-received-remote', JSON.stringify(args));
ok('event-received-remote');

// 5. Actions from node A on the socket of node B.
const left = until(admin, 'room_left', 'leave-remote', (nsp, room, id) => id === uc.id && room === `user:${USER_C}`);
admin.emit('leave', '/', `user:${USER_C}`, uc.id);
await left;
ok('leave-remote');
// socket.io-client forgets its id once disconnected: keep it.
const ucId = uc.id;
const gone = until(admin, 'socket_disconnected', 'disconnect-remote', (nsp, id, reason) => id === ucId && reason);
const clientSaw = new Promise((resolve) => uc.once('disconnect', resolve));
admin.emit('_disconnect', '/', false, ucId);
const reason = await gone;
if (reason !== 'server namespace disconnect') fail('disconnect-remote', `reason ${reason}`);
if ((await clientSaw) !== 'io server disconnect') fail('disconnect-remote', 'client not told');
ok('disconnect-remote');

// 6. The session id logs in on the other node.
await connect(urlB + ADMIN_NSP, { sessionId }, 'session-other-node');
ok('session-other-node');
for (const s of opened) s.close();
process.exit(0);
