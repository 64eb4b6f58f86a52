// Node baseline for walcast-load: what the seeds do, with Postgres as the event
// source. socket.io 4.8 with a JWT middleware (jsonwebtoken, HS256), the role
// looked up in profiles like the seed's auth middleware, subscribe:product rooms,
// and product:stock-updated emitted with io.to(room).emit from a Postgres
// trigger + LISTEN/NOTIFY (testdata/bench/bench.sql).
//
// Env: PORT (3002), HOST (127.0.0.1), DATABASE_URL (required), JWT_SECRET (required).
// Prints "listening <port>" when ready.
import http from 'node:http';
import { Server } from 'socket.io';
import jwt from 'jsonwebtoken';
import pg from 'pg';

const port = Number(process.env.PORT || 3002);
const host = process.env.HOST || '127.0.0.1';
const secret = process.env.JWT_SECRET;
const dsn = process.env.DATABASE_URL;
if (!secret || !dsn) {
  console.error('server.mjs: DATABASE_URL and JWT_SECRET are required');
  process.exit(2);
}

const pool = new pg.Pool({ connectionString: dsn, max: 4 });
const httpServer = http.createServer();
const io = new Server(httpServer, {
  cors: { origin: '*', credentials: true },
  transports: ['websocket', 'polling'],
});

io.use(async (socket, next) => {
  const token = socket.handshake.auth && socket.handshake.auth.token;
  if (!token) return next(new Error('Authentication token required'));
  let claims;
  try {
    claims = jwt.verify(token, secret, { algorithms: ['HS256'] });
  } catch (e) {
    return next(new Error(e.name === 'TokenExpiredError' ? 'Token expired' : 'Invalid authentication token'));
  }
  try {
    const { rows } = await pool.query('select role, email, full_name from profiles where user_id = $1', [claims.sub]);
    const p = rows[0];
    socket.data.user = { id: claims.sub, role: (p && p.role) || 'customer', email: p && p.email };
    next();
  } catch (e) {
    next(new Error('Authentication failed'));
  }
});

io.on('connection', (socket) => {
  const u = socket.data.user;
  socket.join(`user:${u.id}`);
  socket.join(`cart:${u.id}`);
  if (u.role === 'admin' || u.role === 'super_admin') socket.join('admin:room');
  socket.on('subscribe:product', (productId, ack) => {
    socket.join(`product:${productId}`);
    if (typeof ack === 'function') ack({ ok: true });
  });
  socket.on('unsubscribe:product', (productId, ack) => {
    socket.leave(`product:${productId}`);
    if (typeof ack === 'function') ack({ ok: true });
  });
});

const listener = new pg.Client({ connectionString: dsn });
await listener.connect();
listener.on('notification', (msg) => {
  let p;
  try { p = JSON.parse(msg.payload); } catch { return; }
  io.to(`product:${p.productId}`).emit('product:stock-updated', {
    variantId: p.variantId,
    available: p.available,
    timestamp: Date.now(),
  });
});
listener.on('error', (e) => { console.error('listen connection:', e.message); process.exit(1); });
await listener.query('LISTEN bench_stock');

httpServer.listen(port, host, () => console.log(`listening ${port}`));
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => { io.close(); listener.end(); pool.end(); process.exit(0); });
}
