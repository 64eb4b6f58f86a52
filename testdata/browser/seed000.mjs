// Browser test of the seed 000 React components, unchanged (testdata/seed000/),
// against `walcast serve`: esbuild bundles them into a storefront page
// (customer token: ProductStock, OrderTracking) and an admin page (admin token:
// OrderNotifications, LiveMetrics), served from <page addr>; headless Debian
// Chromium driven by playwright-core loads both; SQL changes rows and the pages
// must show them.
//
//   SEED000_CUSTOMER_TOKEN=… SEED000_ADMIN_TOKEN=… \
//   node testdata/browser/seed000.mjs <page addr> <walcast url> <database url> <artifacts dir> [-restart]
//
// With -restart it also stops walcast twice (SIGKILL, then SIGTERM), changes
// rows while it is down, has it started again, and checks that the pages show
// the final stock, status and metrics after reconnecting, then live changes.
// walcast is run by the caller: this script prints "CTL stop KILL",
// "CTL stop TERM" or "CTL start" and waits for a line "ok" (or an error) on
// stdin. The seed's OrderNotifications plays /notification.mp3, which is not
// served: the page error it logs is expected. Every step is bounded; a
// screenshot of both pages is saved after each step and on failure. Exit
// status 0 = pass.
import { chromium } from 'playwright-core';
import * as esbuild from 'esbuild';
import pg from 'pg';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const restart = args.includes('-restart');
const [pageAddr, walcastURL, dbURL, artifacts] = args.filter((a) => a !== '-restart');
const customerToken = process.env.SEED000_CUSTOMER_TOKEN;
const adminToken = process.env.SEED000_ADMIN_TOKEN;
if (!pageAddr || !walcastURL || !dbURL || !artifacts || !customerToken || !adminToken) {
  console.error('usage: SEED000_CUSTOMER_TOKEN=… SEED000_ADMIN_TOKEN=… node seed000.mjs <page addr> <walcast url> <database url> <artifacts dir> [-restart]');
  process.exit(2);
}
fs.mkdirSync(artifacts, { recursive: true });

// Ids from sql/020_demo_seed.sql.
const PRODUCT = '10000000-0000-4000-8000-000000000001'; // Classic T-Shirt
const VARIANT = '20000000-0000-4000-8000-000000000002'; // its Medium variant
const SYNC_PRODUCT = '10000000-0000-4000-8000-000000000003'; // Coffee Mug, only for the probe's acked subscribe
const CUSTOMER = '00000000-0000-4000-8000-000000000101'; // Alice
const SELLER = '00000000-0000-4000-8000-000000000011';
const ORDER = '30000000-0000-4000-8000-000000000001'; // ORD-1001, Alice's
const STEP_TIMEOUT = 15000;
const RECONNECT_TIMEOUT = 30000; // socket.io-client's own backoff: 5 attempts, 1 s doubling to 5 s, ±50%

const here = path.dirname(fileURLToPath(import.meta.url));
const seedDir = path.join(here, '..', 'seed000');

// Bundle the pages. The admin components import useSocket from '@/lib/socket':
// the storefront's lib/socket.ts is the only one the seed gives.
const bundle = await esbuild.build({
  entryPoints: { storefront: path.join(here, 'seed000', 'storefront.jsx'), admin: path.join(here, 'seed000', 'admin.jsx') },
  bundle: true,
  write: false,
  outdir: '/seed000',
  format: 'iife',
  jsx: 'automatic',
  logLevel: 'error',
  define: {
    'process.env.NEXT_PUBLIC_API_URL': JSON.stringify(walcastURL),
    'process.env.NODE_ENV': '"development"',
  },
  plugins: [{
    name: 'seed000-aliases',
    setup(build) {
      build.onResolve({ filter: /^@\/lib\/socket$/ }, () => ({ path: path.join(seedDir, 'storefront', 'lib', 'socket.ts') }));
      build.onResolve({ filter: /^sonner$/ }, () => ({ path: path.join(here, 'seed000', 'sonner.js') }));
    },
  }],
});
const scripts = Object.fromEntries(bundle.outputFiles.map((f) => [path.basename(f.path), f.text]));

const db = new pg.Client({ connectionString: dbURL });
await db.connect();
const available = async () => (await db.query(`SELECT quantity - reserved AS a FROM inventory WHERE variant_id = $1`, [VARIANT])).rows[0].a;
const orderRow = async () => (await db.query(`SELECT status, tracking_number FROM orders WHERE id = $1`, [ORDER])).rows[0];
// walcast's metrics: orders not cancelled or refunded (the mapping's default).
const dbMetrics = async () => {
  const { rows } = await db.query(`SELECT count(*)::int AS n, coalesce(sum(total), 0)::float8 AS rev FROM orders WHERE status NOT IN ('cancelled', 'refunded')`);
  return { revenue: rows[0].rev.toFixed(2), orders: rows[0].n }; // in the order shows.metrics gives
};

const initial = { stock: await available(), order: await orderRow() };
const pageConfig = {
  storefront: { token: customerToken, config: { productId: PRODUCT, variantId: VARIANT, initialStock: initial.stock, orderId: ORDER, initialStatus: initial.order.status, syncProduct: SYNC_PRODUCT } },
  admin: { token: adminToken, config: { initialMetrics: { totalRevenue: 0, totalOrders: 0, averageOrderValue: 0 }, syncProduct: SYNC_PRODUCT } },
};
const server = http.createServer((req, res) => {
  const name = req.url.replace(/^\//, '');
  if (scripts[name]) {
    res.writeHead(200, { 'content-type': 'text/javascript' });
    res.end(scripts[name]);
    return;
  }
  const p = pageConfig[name];
  if (name === 'favicon.ico') {
    res.writeHead(204);
    res.end();
    return;
  }
  if (!p) {
    res.writeHead(404);
    res.end();
    return;
  }
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><html><head><meta charset="utf-8"><title>seed 000 ${name}</title></head><body>
<div id="root"></div><ul id="toasts"></ul>
<script>window.__SEED000 = ${JSON.stringify(p.config)}; window.getAuthToken = () => ${JSON.stringify(p.token)};</script>
<script src="/${name}.js"></script></body></html>`);
});
const [host, port] = [pageAddr.slice(0, pageAddr.lastIndexOf(':')), Number(pageAddr.slice(pageAddr.lastIndexOf(':') + 1))];
await new Promise((ok, fail) => { server.once('error', fail); server.listen(port, host, ok); });

// Control of walcast by the caller, over stdout/stdin.
const stdin = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const ctl = async (cmd) => {
  console.log(`CTL ${cmd}`);
  const { value, done } = await stdin.next();
  if (done || value !== 'ok') throw new Error(`walcast ${cmd}: ${done ? 'no answer' : value}`);
};

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'walcast-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  viewport: { width: 900, height: 500 },
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});

const pages = {};
let n = 0;
const shot = async (name) => {
  n++;
  for (const [who, page] of Object.entries(pages)) {
    const file = path.join(artifacts, `${String(n).padStart(2, '0')}-${name}-${who}.png`);
    await page.screenshot({ path: file, fullPage: true });
  }
  console.log(`screenshot ${artifacts}/${String(n).padStart(2, '0')}-${name}-*.png`);
};
const step = async (name, fn) => {
  const t0 = Date.now();
  await fn();
  console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  await shot(name);
};

// What the pages show, read from the seed components' own markup.
const shows = {
  stock: async () => {
    const t = (await pages.storefront.textContent('#stock')) || '';
    const m = t.match(/(\d+) in stock/);
    return m ? Number(m[1]) : t.includes('Out of stock') ? 0 : `"${t}"`;
  },
  status: async () => (await pages.storefront.textContent('#order strong')) || '',
  tracking: async () => ((await pages.storefront.textContent('#order')) || '').match(/Tracking: (.*)$/)?.[1] ?? '',
  metrics: async () => {
    const ps = await pages.admin.$$eval('#metrics p.text-2xl', (els) => els.map((e) => e.textContent));
    return { revenue: (ps[0] || '').replace(/^\$/, ''), orders: Number(ps[1]) };
  },
  toasts: async () => pages.admin.$$eval('#toasts li', (els) => els.map((e) => e.textContent)),
  body: async (who) => pages[who].evaluate(() => ({ ...document.body.dataset })),
};

// waitFor polls check() (which returns {ok, shown}) until ok or the deadline,
// then fails naming what the page showed last.
const waitFor = async (what, check, timeout = STEP_TIMEOUT) => {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await check();
    if (last.ok) return last.shown;
    if (Date.now() > deadline) throw new Error(`${what}: after ${timeout} ms the page shows ${JSON.stringify(last.shown)}, want ${JSON.stringify(last.want)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};
const waitSynced = (who, count, timeout) => waitFor(`${who} socket connected and subscribed (connection ${count})`, async () => {
  const b = await shows.body(who);
  return { ok: Number(b.synced || 0) >= count, shown: b, want: { synced: String(count) } };
}, timeout);
const waitStateIs = (what, want) => waitFor(what, async () => {
  const shown = { stock: await shows.stock(), status: await shows.status(), tracking: await shows.tracking(), metrics: await shows.metrics() };
  const ok = Object.entries(want).every(([k, v]) => JSON.stringify(shown[k]) === JSON.stringify(v));
  return { ok, shown, want };
});
// waitToast waits for the toast and for OrderNotifications' bell badge to
// count every new-order toast shown.
const waitToast = (text) => waitFor(`admin toast "${text}" and the bell's count`, async () => {
  const toasts = await shows.toasts();
  const bell = Number(await pages.admin.evaluate(() => document.querySelector('#bell span.absolute')?.textContent || 0)); // no badge = 0
  const want = toasts.filter((s) => s.startsWith('New Order: ')).length;
  return { ok: toasts.includes(text) && bell === want, shown: { toasts, bell }, want: { toast: text, bell: want } };
});

let tick = 0;
const changeStock = async () => {
  const { rows } = await db.query(
    `UPDATE inventory SET quantity = reserved + $2 WHERE variant_id = $1 RETURNING quantity - reserved AS a`, [VARIANT, 30 + (++tick % 50)]);
  return rows[0].a;
};
const changeStatus = async () => {
  const next = (await orderRow()).status === 'shipped' ? 'delivered' : 'shipped';
  const tracking = `1Z-S0-${++tick}`;
  await db.query(`UPDATE orders SET status = $2, tracking_number = $3 WHERE id = $1`, [ORDER, next, tracking]);
  return { status: next, tracking };
};
const newOrder = async () => {
  const number = `ORD-S0-${++tick}`;
  const total = `${10 + tick}.25`; // cents that print the same whether numeric arrives as a JSON number or a string
  await db.query(`INSERT INTO orders (order_number, user_id, seller_id, total) VALUES ($1, $2, $3, $4)`, [number, CUSTOMER, SELLER, total]);
  return `New Order: ${number} | Total: $${total}`;
};

let failed = false;
try {
  for (const who of ['storefront', 'admin']) {
    const page = context.pages().find((p) => !Object.values(pages).includes(p)) || await context.newPage();
    pages[who] = page;
    page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') console.log(`console ${who} ${m.type()}: ${m.text()}`); });
    page.on('pageerror', (e) => console.log(`page error ${who}: ${e.message}`));
  }

  await step('pages-connected', async () => {
    for (const [who, page] of Object.entries(pages)) {
      await page.goto(`http://${pageAddr}/${who}`, { waitUntil: 'load' });
      await waitSynced(who, 1);
    }
    console.log(`     initial stock ${initial.stock}, status ${initial.order.status}`);
  });

  await step('metrics-shown', async () => {
    await waitStateIs('LiveMetrics after subscribe:metrics', { metrics: await dbMetrics() });
  });

  await step('stock-update', async () => {
    const want = await changeStock();
    await waitStateIs('ProductStock after an inventory UPDATE', { stock: want });
    console.log(`     stock -> ${want}`);
  });

  await step('order-status', async () => {
    const { status, tracking } = await changeStatus();
    await waitStateIs('OrderTracking after an orders UPDATE', { status, tracking });
    console.log(`     status -> ${status}, tracking ${tracking}`);
  });

  await step('new-order-toast', async () => {
    const text = await newOrder();
    await waitToast(text);
    await waitStateIs('LiveMetrics after an orders INSERT', { metrics: await dbMetrics() });
    console.log(`     ${text}`);
  });

  if (restart) {
    let connection = 1;
    for (const sig of ['KILL', 'TERM']) {
      let downToast;
      await step(`restart-${sig}`, async () => {
        await ctl(`stop ${sig}`);
        const stock = await changeStock();
        const { status, tracking } = await changeStatus();
        downToast = await newOrder();
        await ctl('start');
        connection++;
        for (const who of Object.keys(pages)) await waitSynced(who, connection, RECONNECT_TIMEOUT);
        const shown = await waitStateIs(`after SIG${sig} and restart, with rows changed while walcast was down`,
          { stock, status, tracking, metrics: await dbMetrics() });
        const rec = { storefront: (await shows.body('storefront')).recovered, admin: (await shows.body('admin')).recovered };
        console.log(`     shown ${JSON.stringify(shown)}; socket.recovered per connect ${JSON.stringify(rec)}`);
        const toasts = await shows.toasts();
        console.log(`     toast of the order inserted while down ${toasts.includes(downToast) ? 'shown' : 'not shown'} (${downToast})`);
      });
      await step(`live-after-${sig}`, async () => {
        const stock = await changeStock();
        const { status, tracking } = await changeStatus();
        const text = await newOrder();
        await waitToast(text);
        await waitStateIs(`live changes after the SIG${sig} restart`, { stock, status, tracking, metrics: await dbMetrics() });
      });
    }
  }
} catch (err) {
  failed = true;
  console.error(`FAIL ${err.stack || err}`);
  for (const who of Object.keys(pages)) console.error(`     ${who} body ${JSON.stringify(await shows.body(who).catch((e) => e.message))}`);
  await shot('failure').catch(() => {});
} finally {
  await db.end().catch(() => {});
  await context.close().catch(() => {});
  server.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
