// Stands in for the 'sonner' package the seed's admin components import: each
// toast becomes an <li class="toast KIND"> in #toasts, so the browser test can
// read what the admin was shown.
function show(kind, title, opts) {
  const list = document.getElementById('toasts');
  const li = document.createElement('li');
  li.className = `toast ${kind}`;
  li.textContent = opts && opts.description ? `${title} | ${opts.description}` : String(title);
  list.appendChild(li);
}

export const toast = Object.assign((title, opts) => show('message', title, opts), {
  success: (title, opts) => show('success', title, opts),
  warning: (title, opts) => show('warning', title, opts),
  error: (title, opts) => show('error', title, opts),
  info: (title, opts) => show('info', title, opts),
  message: (title, opts) => show('message', title, opts),
});
