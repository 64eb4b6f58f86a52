// Browser test of the official Socket.IO Admin UI (the @socket.io/admin-ui
// npm package's ui/dist, unchanged) against a walcast cluster: the UI is
// served from <page addr>, headless Debian Chromium driven by
// playwright-core fills its connection form (server URL, username,
// password, admin namespace), first with a wrong password (the form must say
// "Invalid credentials"), then with the right one, and must list every
// socket of both nodes on its Sockets page and both nodes on its Servers
// page (one of them the leader).
//
//   ADMIN_USER=… ADMIN_PASS=… ADMIN_NSP=/walcast-admin EXPECT_SOCKETS=id,id,… EXPECT_SERVERS=id|id \
//   node testdata/browser/adminui.mjs <page addr> <walcast url> <artifacts dir>
//
// The UI's fonts and icons come from CDNs: those requests are refused (no
// network here), so the screenshots show icon placeholders. Every step is
// bounded; a screenshot is saved after each step and on failure. Exit status
// 0 = pass.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const [pageAddr, walcastURL, artifacts] = process.argv.slice(2);
const { ADMIN_USER, ADMIN_PASS, ADMIN_NSP, EXPECT_SOCKETS, EXPECT_SERVERS } = process.env;
if (!pageAddr || !walcastURL || !artifacts || !ADMIN_USER || !ADMIN_PASS || !EXPECT_SOCKETS || !EXPECT_SERVERS) {
  console.error('usage: ADMIN_USER=… ADMIN_PASS=… ADMIN_NSP=… EXPECT_SOCKETS=… EXPECT_SERVERS=… node adminui.mjs <page addr> <walcast url> <artifacts dir>');
  process.exit(2);
}
fs.mkdirSync(artifacts, { recursive: true });
const STEP_TIMEOUT = 20000;

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, '..', 'node_modules', '@socket.io', 'admin-ui', 'ui', 'dist');
const types = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.png': 'image/png', '.svg': 'image/svg+xml', '.map': 'application/json' };
const server = http.createServer((req, res) => {
  let rel = decodeURIComponent(new URL(req.url, 'http://x').pathname);
  if (rel === '/') rel = '/index.html';
  const file = path.join(dist, path.normalize(rel));
  if (!file.startsWith(dist + path.sep) || !fs.existsSync(file)) {
    res.writeHead(404);
    res.end();
    return;
  }
  res.writeHead(200, { 'content-type': types[path.extname(file)] || 'application/octet-stream' });
  fs.createReadStream(file).pipe(res);
});
const [host, port] = [pageAddr.slice(0, pageAddr.lastIndexOf(':')), Number(pageAddr.slice(pageAddr.lastIndexOf(':') + 1))];
await new Promise((ok, fail) => { server.once('error', fail); server.listen(port, host, ok); });

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'walcast-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1280, height: 800 },
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
// Only loopback: the CDN fonts and icons are refused at once.
await context.route(/^https?:\/\/(?!127\.0\.0\.1|localhost)/, (route) => route.abort());
const page = context.pages()[0] || await context.newPage();
page.on('pageerror', (e) => console.log(`page error: ${e.message}`));

let n = 0;
const shot = async (name) => {
  n++;
  const file = path.join(artifacts, `${String(n).padStart(2, '0')}-${name}.png`);
  await page.waitForTimeout(800); // let the page's slide transition end
  await page.screenshot({ path: file, fullPage: true });
  console.log(`screenshot ${file}`);
};
let failed = false;
const step = async (name, fn) => {
  const t0 = Date.now();
  try {
    await fn();
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
    await shot(name);
  } catch (e) {
    failed = true;
    console.log(`FAIL ${name}: ${e.message.split('\n')[0]}`);
    await shot(`${name}-failed`).catch(() => {});
    throw e;
  }
};

const login = async (password) => {
  const dialog = page.locator('.v-dialog--active');
  await dialog.waitFor({ timeout: STEP_TIMEOUT });
  await dialog.getByLabel('Server URL').fill(walcastURL);
  await dialog.getByLabel('Username').fill(ADMIN_USER);
  await dialog.getByLabel('Password').fill(password);
  if (!(await dialog.getByLabel('Admin namespace').isVisible())) {
    await dialog.getByText('Advanced options').click();
  }
  await dialog.getByLabel('Admin namespace').fill(ADMIN_NSP);
  await dialog.getByRole('button', { name: 'Connect' }).click();
};

try {
  await step('bad-credentials', async () => {
    await page.goto(`http://${pageAddr}/`, { timeout: STEP_TIMEOUT });
    await login('not the password');
    await page.locator('.v-dialog--active').getByText('Invalid credentials').waitFor({ timeout: STEP_TIMEOUT });
  });

  await step('login', async () => {
    await login(ADMIN_PASS);
    await page.locator('.v-dialog--active').waitFor({ state: 'detached', timeout: STEP_TIMEOUT }).catch(async () => {
      await page.locator('.v-dialog--active').waitFor({ state: 'hidden', timeout: 1000 });
    });
    // The dashboard fills in with the servers' stats.
    await page.getByText('Servers').first().waitFor({ timeout: STEP_TIMEOUT });
    await page.waitForTimeout(2500);
  });

  await step('sockets-of-both-nodes', async () => {
    await page.goto(`http://${pageAddr}/#/sockets/`, { timeout: STEP_TIMEOUT });
    // Show every row, then wait for each socket id.
    const ids = EXPECT_SOCKETS.split(',');
    for (const id of ids) {
      await page.getByText(id, { exact: true }).first().waitFor({ timeout: STEP_TIMEOUT });
    }
  });

  await step('servers-both-nodes', async () => {
    await page.goto(`http://${pageAddr}/#/servers/`, { timeout: STEP_TIMEOUT });
    for (const id of EXPECT_SERVERS.split('|')) {
      await page.getByText(id, { exact: true }).first().waitFor({ timeout: STEP_TIMEOUT });
    }
    await page.getByText(/\(leader, slot lag/).first().waitFor({ timeout: STEP_TIMEOUT });
    await page.getByText(/\(standby\)/).first().waitFor({ timeout: STEP_TIMEOUT });
  });

  await step('rooms', async () => {
    await page.goto(`http://${pageAddr}/#/rooms/`, { timeout: STEP_TIMEOUT });
    await page.getByText(/^user:/).first().waitFor({ timeout: STEP_TIMEOUT });
  });

  await step('dashboard', async () => {
    await page.goto(`http://${pageAddr}/#/`, { timeout: STEP_TIMEOUT });
    await page.waitForTimeout(1500);
  });
} catch {
  // reported by step
}
await context.close();
server.close();
fs.rmSync(userDataDir, { recursive: true, force: true });
process.exit(failed ? 1 : 0);
