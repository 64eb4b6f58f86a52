// Browser test of `walcast demo`: headless Debian Chromium driven by
// playwright-core loads the demo page, then SQL run against the demo database
// must change what the page shows.
//
//   node testdata/browser/demo.mjs <page url> <database url> <artifacts dir>
//
// Steps: wait for the three sockets (customer, seller, admin) to connect and
// subscribe; UPDATE inventory -> the stock number changes; INSERT an order ->
// the admin toast shows its number; UPDATE the order's status -> the customer's
// tracking view shows the new status and tracking number; a low-stock crossing
// -> the admin's warning toast; walcast.notify -> the customer's notification
// list. A screenshot is saved
// after each step (and on failure). Exit status 0 = pass.
import { chromium } from 'playwright-core';
import pg from 'pg';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const [pageURL, dbURL, artifacts] = process.argv.slice(2);
if (!pageURL || !dbURL || !artifacts) {
  console.error('usage: node demo.mjs <page url> <database url> <artifacts dir>');
  process.exit(2);
}
fs.mkdirSync(artifacts, { recursive: true });

const VARIANT = '20000000-0000-4000-8000-000000000002'; // Classic T-Shirt, Medium (25 in stock, threshold 5)
const CUSTOMER = '00000000-0000-4000-8000-000000000101';
const SELLER = '00000000-0000-4000-8000-000000000011';
const ORDER = '30000000-0000-4000-8000-000000000001'; // ORD-1001, Alice's
const STEP_TIMEOUT = 15000;

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'walcast-chromium-'));
// playwright passes the fresh profile as --user-data-dir itself.
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1400, height: 1000 },
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
const db = new pg.Client({ connectionString: dbURL });
await db.connect();

let page;
let n = 0;
const shot = async (name) => {
  const file = path.join(artifacts, `${String(++n).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`screenshot ${file}`);
};
const step = async (name, fn) => {
  const t0 = Date.now();
  await fn();
  console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  await shot(name);
};

let failed = false;
try {
  page = context.pages()[0] || await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') console.log(`console ${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => console.log(`page error: ${e.message}`));

  await step('page-ready', async () => {
    await page.goto(pageURL, { waitUntil: 'load' });
    await page.waitForSelector('body[data-ready="true"]', { timeout: STEP_TIMEOUT });
    for (const who of ['customer', 'seller', 'admin']) {
      const state = await page.getAttribute(`#conn-${who}`, 'data-state');
      if (state !== 'connected') throw new Error(`${who} socket is ${state}, want connected`);
    }
  });

  await step('stock-update', async () => {
    const sel = `.variant[data-variant="${VARIANT}"] .stock`;
    const before = Number(await page.getAttribute(sel, 'data-available'));
    const { rows } = await db.query(
      `UPDATE inventory SET quantity = quantity - 4 WHERE variant_id = $1 RETURNING quantity - reserved AS available`, [VARIANT]);
    const want = rows[0].available;
    if (want === before) throw new Error(`stock did not change in the database (${before})`);
    await page.waitForFunction(([s, w]) => document.querySelector(s)?.dataset.available === String(w), [sel, want], { timeout: STEP_TIMEOUT });
    const text = await page.textContent(sel);
    if (!text.includes(`${want} in stock`)) throw new Error(`stock text ${JSON.stringify(text)}, want "${want} in stock"`);
    console.log(`     stock ${before} -> ${want}`);
  });

  const orderNumber = `ORD-BT-${Date.now() % 1000000}`;
  await step('new-order-toast', async () => {
    const ordersBefore = Number(await page.textContent('#m-orders'));
    await db.query(
      `INSERT INTO orders (order_number, user_id, seller_id, total) VALUES ($1, $2, $3, 64.50)`,
      [orderNumber, CUSTOMER, SELLER]);
    const toast = page.locator('.toast', { hasText: `New Order: ${orderNumber}` });
    await toast.waitFor({ state: 'visible', timeout: STEP_TIMEOUT });
    const text = await toast.textContent();
    if (!text.includes('Total: $64.50')) throw new Error(`toast ${JSON.stringify(text)}, want the total $64.50`);
    await page.waitForSelector('#bell-count:not([hidden])', { timeout: STEP_TIMEOUT });
    // LiveMetrics: the coalesced admin:metrics-updated (at most one per second) counts it.
    await page.waitForFunction((n) => Number(document.querySelector('#m-orders').textContent) === n + 1,
      ordersBefore, { timeout: STEP_TIMEOUT });
  });

  await step('order-status', async () => {
    const row = `#orders tr[data-order="${ORDER}"]`;
    await page.waitForSelector(row, { timeout: STEP_TIMEOUT });
    const before = await page.textContent(`${row} .status`);
    const next = before.trim() === 'shipped' ? 'delivered' : 'shipped';
    const tracking = `1Z-BT-${Date.now() % 100000}`;
    await db.query(`UPDATE orders SET status = $2, tracking_number = $3 WHERE id = $1`, [ORDER, next, tracking]);
    await page.waitForFunction(([r, s, t]) => {
      const tr = document.querySelector(r);
      return tr && tr.querySelector('.status').textContent === s && tr.querySelector('.tracking').textContent === t;
    }, [row, next, tracking], { timeout: STEP_TIMEOUT });
    console.log(`     ${before.trim()} -> ${next}, tracking ${tracking}`);
  });

  await step('low-stock-alert', async () => {
    // Classic T-Shirt Large: push it below its threshold (5) so it crosses once.
    const LARGE = '20000000-0000-4000-8000-000000000003';
    await db.query(`UPDATE inventory SET quantity = reserved + 2 WHERE variant_id = $1`, [LARGE]);
    const toast = page.locator('.toast.warning', { hasText: 'Classic T-Shirt - Large: 2 left' });
    await toast.waitFor({ state: 'visible', timeout: STEP_TIMEOUT });
  });

  await step('sql-notification', async () => {
    await db.query(`SELECT walcast.notify($1::uuid, 'Hello', 'sent from the browser test', 'info')`, [CUSTOMER]);
    await page.locator('#notifications li', { hasText: 'Hello: sent from the browser test' }).waitFor({ timeout: STEP_TIMEOUT });
  });
} catch (err) {
  failed = true;
  console.error(`FAIL ${err.stack || err}`);
  if (page) await shot('failure').catch(() => {});
} finally {
  await db.end().catch(() => {});
  await context.close().catch(() => {});
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
