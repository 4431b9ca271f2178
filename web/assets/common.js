// Shared helpers of the Studio pages: the JSON API, DOM building, times, status badges.
// No framework, no dependencies. Every string from the server goes in as text, never as HTML.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Calls the JSON API. Throws ApiError with the server's {error, message}. */
export async function api(path, { method = 'GET', body, signal } = {}) {
  const init = { method, signal, headers: { Accept: 'application/json' }, credentials: 'same-origin' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'Studio is not reachable (was `noctune studio` stopped?)');
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!res.ok) {
    const code = data && data.error ? data.error : `http_${res.status}`;
    const msg = data && data.message ? data.message : `${res.status} ${res.statusText}`;
    throw new ApiError(res.status, code, msg);
  }
  return data;
}

/** el('div', {class: 'x', onclick: f}, 'text', child) */
export function el(tag, attrs = {}, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') n.addEventListener(k.slice(2), v);
    else if (k === 'class') n.className = v;
    else if (k === 'dataset') Object.assign(n.dataset, v);
    else if (v === true) n.setAttribute(k, '');
    else n.setAttribute(k, String(v));
  }
  append(n, children);
  return n;
}

function append(n, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(n, c);
    else n.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(n) {
  while (n.firstChild) n.removeChild(n.firstChild);
  return n;
}

export function fmtTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const p = (x) => String(x).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export const TERMINAL = new Set(['done', 'failed', 'stopped']);

export function setStatus(node, status) {
  node.textContent = status ? status.replace('_', ' ') : '';
  node.dataset.status = status || '';
  node.className = `badge status-${status || 'unknown'}`;
}

export function statusBadge(status) {
  const b = el('span');
  setStatus(b, status);
  return b;
}

export function showMsg(node, text, kind = '') {
  node.textContent = text || '';
  node.hidden = !text;
  node.classList.toggle('error', kind === 'error');
  node.classList.toggle('ok', kind === 'ok');
}

/** Reads an SSE response body (fetch) as {event, id, data} objects. */
export async function* readSse(response) {
  const reader = response.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const msg = { event: 'message', id: null, data: '' };
      const data = [];
      for (const line of block.split('\n')) {
        if (!line || line.startsWith(':')) continue;
        const c = line.indexOf(':');
        const field = c < 0 ? line : line.slice(0, c);
        let val = c < 0 ? '' : line.slice(c + 1);
        if (val.startsWith(' ')) val = val.slice(1);
        if (field === 'event') msg.event = val;
        else if (field === 'id') msg.id = val;
        else if (field === 'data') data.push(val);
      }
      if (data.length) {
        msg.data = data.join('\n');
        yield msg;
      }
    }
  }
}

/** Calls fn at most once per `ms`, trailing. */
export function throttle(fn, ms) {
  let t = null;
  let again = false;
  return () => {
    if (t) { again = true; return; }
    fn();
    t = setTimeout(function tick() {
      t = null;
      if (again) { again = false; fn(); t = setTimeout(tick, ms); }
    }, ms);
  };
}
