// /studio: chat with the local model. Streams answers (SSE over fetch), shows tool calls and
// results as panels, asks permission with four buttons, keeps sessions in a sidebar.
import { api, el, clear, fmtTime, readSse, showMsg, throttle, ApiError } from './common.js';
import { renderMarkdown } from './markdown.js';
import { toolPanel, fillResult } from './tools.js';
import { permissionPreview } from './permission.js';

const $ = (id) => document.getElementById(id);
const state = { session: null, profile: '', defaultProfile: '', busy: false, abort: null, panels: new Map() };

// ---- model server banner ----

async function checkHealth() {
  try {
    const q = state.profile ? `?profile=${encodeURIComponent(state.profile)}` : '';
    const h = await api(`/api/chat/health${q}`);
    showBanner(h.ok ? null : h);
  } catch { /* the page's own error display covers Studio being down */ }
}

function showBanner(h) {
  $('llm-banner').hidden = !h;
  if (!h) return;
  // The server words the message and the command for the profile's own address.
  const msg = h.message || `Nothing answers at ${h.base_url}.`;
  $('llm-banner-msg').textContent = msg;
  $('llm-banner-msg').title = msg;
  $('llm-start-cmd').textContent = h.start_command || '';
  $('llm-start-cmd').parentElement.hidden = !h.start_command;
}

// ---- sessions ----

async function loadSessions() {
  try {
    const { sessions } = await api('/api/chat/sessions');
    const list = clear($('session-list'));
    for (const s of sessions) {
      const current = state.session === s.id;
      list.append(el('li', { class: current ? 'current' : '', dataset: { sessionId: s.id } },
        el('button', { type: 'button', class: 'session-open', 'aria-current': current ? 'true' : null, onclick: () => openSession(s.id) },
          el('span', { class: 'title' }, s.title || 'New chat'),
          el('span', { class: 'muted small' }, `${fmtTime(s.updated_at)} · ${s.messages} msg`)),
        el('button', { type: 'button', class: 'session-delete', 'aria-label': `Delete session ${s.title || s.id}`, onclick: () => deleteSession(s.id) }, '×')));
    }
    if (!sessions.length) list.append(el('li', { class: 'muted' }, 'No saved sessions yet.'));
  } catch (e) {
    showMsg($('sessions-msg'), e.message, 'error');
  }
}

function setSession(id) {
  state.session = id;
  const url = new URL(location.href);
  if (id) url.searchParams.set('session', id); else url.searchParams.delete('session');
  history.replaceState(null, '', url);
}

async function ensureSession() {
  if (state.session) return state.session;
  const s = await api('/api/chat/sessions', { method: 'POST', body: state.profile ? { profile: state.profile } : {} });
  setSession(s.id);
  return s.id;
}

async function openSession(id) {
  if (state.busy) return;
  try {
    const s = await api(`/api/chat/sessions/${encodeURIComponent(id)}`);
    setSession(s.id);
    state.panels.clear();
    const box = clear($('messages'));
    renderSession(box, s);
    if (s.profile) { state.profile = s.profile; $('profile').value = s.profile; }
    box.scrollTop = box.scrollHeight;
    await loadSessions();
    $('composer-input').focus();
  } catch (e) {
    showMsg($('toolbar-msg'), e.message, 'error');
  }
}

async function deleteSession(id) {
  if (!confirm('Delete this chat session?')) return;
  try {
    await api(`/api/chat/sessions/${encodeURIComponent(id)}`, { method: 'DELETE' });
    if (state.session === id) newChat();
    await loadSessions();
  } catch (e) {
    showMsg($('sessions-msg'), e.message, 'error');
  }
}

function newChat() {
  if (state.busy) return;
  setSession(null);
  state.panels.clear();
  clear($('messages')).append(el('p', { class: 'muted hint' }, 'Ask a question about the repository, or ask for a change. Edits and runs ask for your permission first.'));
  loadSessions();
  $('composer-input').focus();
}

// ---- rendering ----

function bubble(role, label) {
  const body = el('div', { class: 'body' });
  const node = el('article', { class: `msg-${role}`, 'aria-label': label }, el('div', { class: 'who' }, label), body);
  const box = $('messages');
  box.querySelector('.hint')?.remove();
  box.append(node);
  return body;
}

function parseJson(s) {
  try { return JSON.parse(s); } catch { return s; }
}

/** The messages, each failed turn's partial answer and error where the turn ended. */
function renderSession(box, s) {
  const failed = s.failed_turns || [];
  const n = s.messages.length;
  for (let i = 0; i <= n; i++) {
    for (const f of failed) if (Math.min(f.end_index, n) === i) renderFailed(f, i === n);
    if (i < n) renderStored(box, s.messages[i]);
  }
}

function renderFailed(f, last) {
  const body = bubble('assistant', 'Assistant');
  if (f.partial) {
    const md = el('div', { class: 'md' });
    md.innerHTML = renderMarkdown(f.partial);
    body.append(md);
  }
  const err = f.error || {};
  const stopped = err.code === 'cancelled';
  turnEnd(body, stopped ? 'Stopped before the answer was complete.' : err.message || 'The turn failed.', !stopped, last);
}

/** How a turn that ended without its answer ended, with Retry when it is the last turn. */
function turnEnd(body, message, isError, retry) {
  body.parentElement.classList.add('failed');
  body.append(el('p', isError ? { class: 'error turn-error', role: 'alert' } : { class: 'notice turn-error' }, message));
  if (retry) {
    body.append(el('div', { class: 'turn-actions' },
      el('button', { type: 'button', class: 'retry', onclick: () => retryLast() }, 'Retry'),
      el('span', { class: 'muted small' }, 'sends the same message again')));
  }
}

/** Waiting for the model: animated dots and the seconds since the request went out. */
function typingIndicator(body) {
  let node = null;
  let timer = null;
  let since = 0;
  const stop = () => {
    clearInterval(timer);
    timer = null;
    node?.remove();
    node = null;
  };
  const start = () => {
    stop();
    since = Date.now();
    // Announced once; the ticking seconds are for the eyes only.
    const secs = el('span', { class: 'secs', 'aria-hidden': 'true' }, '');
    node = el('p', { class: 'typing', role: 'status' },
      el('span', { class: 'dots', 'aria-hidden': 'true' }, el('i'), el('i'), el('i')),
      el('span', {}, 'waiting for the model…'), secs);
    body.append(node);
    const tick = () => { const s = Math.floor((Date.now() - since) / 1000); secs.textContent = s ? `${s} s` : ''; };
    tick();
    timer = setInterval(tick, 1000);
  };
  /** Adds `n` to the turn above the indicator, which stays last. */
  const add = (n) => { if (node) node.before(n); else body.append(n); };
  return { start, stop, add };
}

function renderStored(box, m) {
  if (m.role === 'user') {
    bubble('user', 'You').append(el('p', { class: 'plain' }, m.content || ''));
  } else if (m.role === 'assistant') {
    const body = bubble('assistant', 'Assistant');
    if (m.content) {
      const md = el('div', { class: 'md' });
      md.innerHTML = renderMarkdown(m.content);
      body.append(md);
    }
    for (const c of m.tool_calls || []) {
      const panel = toolPanel(c.id, c.function.name, parseJson(c.function.arguments));
      state.panels.set(c.id, panel);
      body.append(panel);
    }
  } else if (m.role === 'tool') {
    const panel = state.panels.get(m.tool_call_id);
    if (panel) {
      const result = parseJson(m.content || '');
      fillResult(panel, !(result && typeof result === 'object' && result.error), result);
    }
  }
}

function permissionCard(req, body) {
  const msg = el('span', { class: 'msg', role: 'status' });
  const buttons = [
    ['once', 'Allow once'], ['session', 'Allow this session'], ['always', 'Always allow'], ['deny', 'Deny'],
  ].map(([answer, label]) => el('button', {
    type: 'button', class: answer === 'deny' ? 'danger' : answer === 'once' ? 'primary' : '',
    dataset: { answer },
    onclick: async () => {
      for (const b of buttons) b.disabled = true;
      try {
        await api(`/api/chat/permissions/${encodeURIComponent(req.id)}`, { method: 'POST', body: { answer } });
        showMsg(msg, answer === 'deny' ? 'Denied.' : `Allowed (${label.toLowerCase()}).`, answer === 'deny' ? 'error' : 'ok');
        card.dataset.answered = answer;
      } catch (e) {
        showMsg(msg, e.message, 'error');
      }
    },
  }, label));
  const card = el('section', { class: 'permission', role: 'group', 'aria-label': 'Permission request', dataset: { requestId: req.id } },
    el('p', {}, el('strong', {}, 'Permission needed: '), req.summary || `${req.tool} (${req.class})`),
    req.protected ? el('p', { class: 'muted' }, 'This path is protected: only a one-time approval is possible.') : null,
    permissionPreview(req),
    el('div', { class: 'perm-buttons' }, buttons), msg);
  // Inside the panel of the call that asks, when there is one.
  const panel = [...state.panels.values()].reverse().find((p) => p.dataset.status === 'running' && p.dataset.tool === req.tool && body.contains(p));
  if (panel) panel.querySelector('.tool-result').before(card); else body.append(card);
  buttons[0].focus();
}

// ---- sending ----

function setBusy(b) {
  state.busy = b;
  $('send').disabled = b;
  $('stop').hidden = !b;
  $('composer-input').setAttribute('aria-busy', b ? 'true' : 'false');
}

async function send(text) {
  const sid = await ensureSession();
  bubble('user', 'You').append(el('p', { class: 'plain' }, text));
  await streamTurn(sid, { message: text });
}

/** Sends the failed last turn again: its answer is replaced, the question stays once. */
async function retryLast() {
  if (state.busy || !state.session) return;
  const box = $('messages');
  const users = box.querySelectorAll('article.msg-user');
  const lastUser = users[users.length - 1];
  if (!lastUser) return;
  while (lastUser.nextElementSibling) lastUser.nextElementSibling.remove();
  await streamTurn(state.session, { retry: true });
}

async function streamTurn(sid, request) {
  const body = bubble('assistant', 'Assistant');
  let answer = '';
  let thinking = '';
  let md = null;
  let think = null;
  let ended = false;
  const render = throttle(() => { if (md) md.innerHTML = renderMarkdown(answer); }, 50);
  const box = $('messages');
  const scroll = () => { box.scrollTop = box.scrollHeight; };
  const typing = typingIndicator(body);
  const ctl = new AbortController();
  state.abort = ctl;
  setBusy(true);
  typing.start();
  scroll();
  try {
    const res = await fetch(`/api/chat/sessions/${encodeURIComponent(sid)}/messages`, {
      method: 'POST', signal: ctl.signal, credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream' },
      body: JSON.stringify(request),
    });
    if (!res.ok) {
      const data = await res.json().catch(() => ({}));
      throw new ApiError(res.status, data.error, data.message || `${res.status} ${res.statusText}`);
    }
    for await (const m of readSse(res)) {
      const ev = JSON.parse(m.data);
      if (ev.type !== 'notice') typing.stop();
      switch (ev.type) {
        case 'delta':
          if (!md) { md = el('div', { class: 'md' }); body.append(md); }
          answer += ev.text;
          render();
          break;
        case 'reasoning':
          if (!think) {
            think = el('pre', { class: 'thinking' });
            body.append(el('details', { class: 'reasoning' }, el('summary', {}, 'Thinking'), think));
          }
          thinking += ev.text;
          think.textContent = thinking;
          break;
        case 'tool_call': {
          if (md) md.innerHTML = renderMarkdown(answer); // the text before the call, complete
          md = null; answer = '';
          const panel = toolPanel(ev.id, ev.name, ev.arguments);
          state.panels.set(ev.id, panel);
          body.append(panel);
          break;
        }
        case 'tool_result': {
          const panel = state.panels.get(ev.id);
          if (panel) fillResult(panel, ev.ok, ev.result);
          typing.start(); // the model reads the results before its next words
          break;
        }
        case 'permission_request':
          permissionCard(ev, body);
          break;
        case 'notice':
          typing.add(el('p', { class: 'notice' }, ev.message));
          break;
        case 'error':
          ended = true;
          if (md) md.innerHTML = renderMarkdown(answer);
          turnEnd(body, ev.message, true, true);
          if (/cannot reach the model server/i.test(ev.message)) checkHealth();
          break;
        case 'done':
          ended = true;
          if (ev.finish_reason === 'cancelled') turnEnd(body, 'Stopped before the answer was complete.', false, true);
          if (ev.usage) body.append(el('p', { class: 'muted small usage' }, `${ev.usage.prompt_tokens} + ${ev.usage.completion_tokens} tokens`));
          break;
        default:
          break;
      }
      render();
      scroll();
    }
    if (md) md.innerHTML = renderMarkdown(answer);
    if (!ended) turnEnd(body, 'The answer stream ended before the turn did (was Studio stopped?).', true, true);
  } catch (e) {
    if (md) md.innerHTML = renderMarkdown(answer);
    if (e.name === 'AbortError') turnEnd(body, 'Stopped.', false, true);
    else turnEnd(body, e.message, true, e.status !== 409 && e.status !== 400);
  } finally {
    typing.stop();
    state.abort = null;
    setBusy(false);
    scroll();
    loadSessions();
  }
}

$('composer').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = $('composer-input');
  const text = input.value.trim();
  if (!text || state.busy) return;
  input.value = '';
  send(text);
});

$('composer-input').addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    $('composer').requestSubmit();
  }
});

$('stop').addEventListener('click', () => state.abort?.abort());
$('new-session').addEventListener('click', newChat);
$('llm-recheck').addEventListener('click', checkHealth);

$('save-session').addEventListener('click', async () => {
  try {
    const sid = await ensureSession();
    const profile = state.profile || state.defaultProfile;
    await api(`/api/chat/sessions/${encodeURIComponent(sid)}/profile`, { method: 'POST', body: { profile } });
    showMsg($('toolbar-msg'), 'Session saved.', 'ok');
    loadSessions();
  } catch (e) {
    showMsg($('toolbar-msg'), e.message, 'error');
  }
});

$('undo-edit').addEventListener('click', async () => {
  if (!state.session) { showMsg($('toolbar-msg'), 'No edit to undo in this chat.', 'error'); return; }
  try {
    const u = await api(`/api/chat/sessions/${encodeURIComponent(state.session)}/undo`, { method: 'POST' });
    showMsg($('toolbar-msg'), u.removed ? `Undone: removed ${u.path}.` : `Undone: restored ${u.path}.`, 'ok');
  } catch (e) {
    showMsg($('toolbar-msg'), e.message, 'error');
  }
});

$('export-session').addEventListener('click', async () => {
  if (!state.session) { showMsg($('toolbar-msg'), 'Nothing to export yet.', 'error'); return; }
  try {
    const t = await api(`/api/chat/sessions/${encodeURIComponent(state.session)}/export`);
    const blob = new Blob([JSON.stringify(t, null, 2)], { type: 'application/json' });
    const a = el('a', { href: URL.createObjectURL(blob), download: `noctune-chat-${state.session}.json` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
    showMsg($('toolbar-msg'), 'Transcript exported.', 'ok');
  } catch (e) {
    showMsg($('toolbar-msg'), e.message, 'error');
  }
});

$('profile').addEventListener('change', async () => {
  state.profile = $('profile').value;
  checkHealth();
  if (!state.session) return;
  try {
    await api(`/api/chat/sessions/${encodeURIComponent(state.session)}/profile`, { method: 'POST', body: { profile: state.profile } });
    showMsg($('toolbar-msg'), `Model: ${state.profile}`, 'ok');
  } catch (e) {
    showMsg($('toolbar-msg'), e.message, 'error');
  }
});

async function init() {
  try {
    const p = await api('/api/chat/profiles');
    state.defaultProfile = p.default;
    state.profile = p.default;
    const sel = $('profile');
    for (const prof of p.profiles) sel.append(el('option', { value: prof.name, selected: prof.name === p.default }, `${prof.name} (${prof.model})`));
  } catch (e) {
    showMsg($('toolbar-msg'), e.message, 'error');
  }
  api('/api/config').then((c) => { $('repo-root').textContent = c.repo_root; }).catch(() => {});
  const sid = new URL(location.href).searchParams.get('session');
  if (sid) await openSession(sid); else newChat();
  checkHealth();
}

init();
