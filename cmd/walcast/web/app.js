// walcast demo page: the seeds' components (ProductStock, OrderTracking,
// OrderNotifications, LiveMetrics, a connection indicator) in plain JS, on the
// real socket.io-client. Three sockets, one per demo user: the customer uses the
// seed's storefront options, the seller the marketplace seed's websocket-only
// options, the admin the defaults (polling first, then upgrade).
'use strict';

const $ = (sel) => document.querySelector(sel);
const el = (tag, props = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') e.className = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
};
const money = (v) => '$' + Number(v || 0).toFixed(2);
const flash = (node) => { node.classList.add('flash'); setTimeout(() => node.classList.remove('flash'), 900); };

function feed(list, text, cls) {
  const empty = list.querySelector('.empty');
  if (empty) empty.remove();
  const li = el('li', cls ? { class: cls } : {}, new Date().toLocaleTimeString() + '  ' + text);
  list.prepend(li);
  while (list.children.length > 50) list.lastChild.remove();
}

// toast mimics sonner's toast.success / toast.warning from the seed.
function toast(kind, title, description) {
  const t = el('div', { class: 'toast ' + kind, role: 'status' }, el('strong', {}, title), el('span', {}, description));
  $('#toasts').append(t);
  setTimeout(() => t.remove(), 10000);
}

// Connection indicator: one pill per socket.
function indicate(socket, id) {
  const pill = $('#conn-' + id);
  const set = (state, title) => { pill.dataset.state = state; pill.title = id + ' socket: ' + (title || state); };
  socket.on('connect', () => set('connected', 'connected over ' + socket.io.engine.transport.name +
    (socket.recovered ? ' (recovered)' : '')));
  socket.io.on('open', () => socket.io.engine.on('upgrade', (t) => set('connected', 'connected over ' + t.name)));
  socket.on('disconnect', (reason) => set('disconnected', reason));
  socket.on('connect_error', (err) => set('error', err.message));
}

function subscribeAll(socket, pairs) {
  // pairs: [event, arg]; resolves when every ack came back.
  return Promise.all(pairs.map(([ev, arg]) => new Promise((resolve) => {
    const done = (res) => {
      if (res && res.ok === false) console.warn(ev, arg, res.error);
      resolve(res);
    };
    if (arg === undefined) socket.timeout(5000).emit(ev, (err, res) => done(err ? { ok: false, error: String(err) } : res));
    else socket.timeout(5000).emit(ev, arg, (err, res) => done(err ? { ok: false, error: String(err) } : res));
  })));
}

// ProductStock: one card per product, one line per variant.
function renderProducts(products) {
  const box = $('#products');
  box.replaceChildren();
  for (const p of products) {
    const card = el('div', { class: 'card', dataset: { product: p.id } }, el('h4', {}, p.name));
    for (const v of p.variants) {
      const stock = el('span', { class: 'stock' });
      const row = el('div', { class: 'variant', dataset: { variant: v.id } }, el('span', {}, v.name), stock);
      setStock(row, v.available);
      card.append(row);
    }
    box.append(card);
  }
}

function setStock(row, available) {
  const stock = row.querySelector('.stock');
  stock.dataset.available = available;
  if (available > 0) {
    stock.className = 'stock in';
    stock.textContent = available + ' in stock 🔴';
  } else {
    stock.className = 'stock out';
    stock.textContent = 'Out of stock';
  }
}

// OrderTracking: the customer's orders with live status and tracking number.
function orderRow(o) {
  let tr = document.querySelector(`#orders tr[data-order="${o.id}"]`);
  if (!tr) {
    tr = el('tr', { dataset: { order: o.id } },
      el('td', { class: 'number' }, o.order_number || o.orderNumber || o.id.slice(0, 8)),
      el('td', { class: 'status' }, o.status || ''),
      el('td', { class: 'tracking' }, o.tracking_number || ''),
      el('td', { class: 'total' }, o.total != null ? money(o.total) : ''));
    $('#orders tbody').prepend(tr);
  }
  return tr;
}

function setOrder(tr, status, tracking) {
  if (status) tr.querySelector('.status').textContent = status;
  if (tracking !== undefined) tr.querySelector('.tracking').textContent = tracking || '';
  flash(tr);
}

// LiveMetrics.
function setMetrics(m) {
  $('#m-revenue').textContent = money(m.totalRevenue);
  $('#m-orders').textContent = String(m.totalOrders ?? 0);
  $('#m-aov').textContent = money(m.averageOrderValue);
}

async function main() {
  const state = await (await fetch('/demo/state')).json();
  $('#customer-name').textContent = state.customer.name;
  $('#admin-name').textContent = state.admin.name;
  $('#seller-name').textContent = state.seller.name;
  $('#try-sql').textContent = state.trySQL;
  renderProducts(state.products);
  for (const o of state.orders) orderRow(o);
  setMetrics(state.metrics);
  const url = location.origin;
  // auth as a function: every (re)connection fetches a fresh demo token, so a
  // session outlives token expiry (walcast drops a socket at its token's exp).
  const tokenFor = (who) => (cb) => fetch('/demo/tokens')
    .then((r) => r.json())
    .then((t) => cb({ token: t[who] }))
    .catch(() => cb({ token: state[who].token }));
  const ready = { customer: false, seller: false, admin: false };
  const markReady = (who) => {
    ready[who] = true;
    if (ready.customer && ready.seller && ready.admin) document.body.dataset.ready = 'true';
  };

  // Storefront: seed 000 storefront/lib/socket.ts options.
  const customer = io(url, {
    auth: tokenFor('customer'),
    transports: ['websocket', 'polling'],
    autoConnect: true,
    reconnection: true,
    reconnectionDelay: 1000,
  });
  indicate(customer, 'customer');
  const orderIds = () => [...document.querySelectorAll('#orders tr[data-order]')].map((tr) => tr.dataset.order);
  customer.on('connect', async () => {
    await subscribeAll(customer, [
      ...state.products.map((p) => ['subscribe:product', p.id]),
      ...orderIds().map((id) => ['subscribe:order', id]),
    ]);
    markReady('customer');
  });
  customer.on('product:stock-updated', (data) => {
    const row = document.querySelector(`.variant[data-variant="${data.variantId}"]`);
    if (row) { setStock(row, data.available); flash(row); }
  });
  customer.on('order:status-changed', (data) => {
    setOrder(orderRow({ id: data.orderId, status: data.status }), data.status, data.trackingNumber);
  });
  // Marketplace seed's per-user event: also how the page learns of new orders of this customer.
  customer.on('order:status', (order) => {
    const known = document.querySelector(`#orders tr[data-order="${order.id}"]`);
    const tr = orderRow({ id: order.id, order_number: order.orderNumber, status: order.status });
    setOrder(tr, order.status);
    if (!known) customer.emit('subscribe:order', order.id);
  });
  customer.on('notification', (n) => {
    feed($('#notifications'), `${n.title}: ${n.message}`, n.type === 'warning' ? 'warn' : '');
    toast(n.type === 'warning' ? 'warning' : 'success', n.title, n.message);
  });

  // Seller: seed 003 client options (websocket only).
  const seller = io(url, { auth: tokenFor('seller'), transports: ['websocket'] });
  indicate(seller, 'seller');
  seller.on('connect', () => markReady('seller'));
  seller.on('order:new', (order) => feed($('#seller-feed'), `new order ${order.order_number} ${money(order.total)}`));
  seller.on('inventory:low-stock', (p) => feed($('#seller-feed'), `low stock: ${p.name} (${p.stock} left)`, 'warn'));

  // Admin: default options (polling, then upgrade to WebSocket).
  const admin = io(url, { auth: tokenFor('admin') });
  indicate(admin, 'admin');
  let newOrders = 0;
  admin.on('connect', async () => {
    await subscribeAll(admin, [['subscribe:metrics']]);
    $('#metrics-live').hidden = false;
    markReady('admin');
  });
  admin.on('disconnect', () => { $('#metrics-live').hidden = true; });
  admin.on('admin:new-order', (data) => {
    newOrders++;
    const badge = $('#bell-count');
    badge.hidden = false;
    badge.textContent = String(newOrders);
    toast('success', `New Order: ${data.order.order_number}`, `Total: ${money(data.order.total)}`);
    feed($('#activity'), `new order ${data.order.order_number} ${money(data.order.total)} (${data.order.status})`);
  });
  admin.on('admin:low-stock', (data) => {
    const v = data.variant || {};
    toast('warning', 'Low Stock Alert', `${v.product_name} - ${v.name}: ${v.available} left`);
    feed($('#activity'), `low stock: ${v.product_name} - ${v.name}: ${v.available} left (threshold ${v.threshold})`, 'warn');
  });
  admin.on('admin:metrics-updated', (data) => setMetrics(data.metrics));

  window.walcastDemo = { customer, seller, admin, state };
}

main().catch((err) => {
  console.error(err);
  document.body.dataset.error = String(err);
});
