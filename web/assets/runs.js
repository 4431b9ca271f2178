// /studio/runs: the runs of this repository (refreshed every 2 s) and the start form.
import { api, el, clear, fmtTime, statusBadge, showMsg } from './common.js';

const $ = (id) => document.getElementById(id);
const REFRESH_MS = 2000;

async function loadConfig() {
  try {
    const cfg = await api('/api/config');
    $('repo-root').textContent = cfg.repo_root;
    const pack = $('pack');
    for (const p of cfg.packs) pack.append(el('option', { value: p.name, selected: p.name === 'lint_fix' }, p.name));
    const prof = $('profile');
    for (const p of cfg.profiles) {
      prof.append(el('option', { value: p.name, selected: p.name === cfg.default_profile }, `${p.name} (${p.model})`));
    }
  } catch (e) {
    showMsg($('start-msg'), e.message, 'error');
  }
}

function row(r) {
  const link = el('a', { href: `/studio/runs/${encodeURIComponent(r.run_id)}` }, r.run_id);
  return el('tr', { dataset: { runId: r.run_id } },
    el('td', { 'data-label': 'Run' }, link),
    el('td', { 'data-label': 'Status', class: 'run-status' }, statusBadge(r.status)),
    el('td', { 'data-label': 'Pack' }, r.pack),
    el('td', { 'data-label': 'Started' }, el('time', { datetime: r.started_at }, fmtTime(r.started_at))),
    el('td', { 'data-label': 'Updated' }, el('time', { datetime: r.updated_at }, fmtTime(r.updated_at))));
}

async function refresh() {
  try {
    const { runs } = await api('/api/runs');
    const body = clear($('runs-body'));
    for (const r of runs) body.append(row(r));
    $('runs-empty').hidden = runs.length > 0;
    $('runs-table').hidden = runs.length === 0;
    $('refreshed').textContent = `updated ${fmtTime(new Date().toISOString())}`;
    showMsg($('runs-error'), '');
  } catch (e) {
    showMsg($('runs-error'), e.message, 'error');
  }
}

$('start-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const btn = $('start-btn');
  btn.disabled = true;
  showMsg($('start-msg'), 'Starting…');
  try {
    const body = { pack: $('pack').value };
    if ($('profile').value) body.profile = $('profile').value;
    const rec = await api('/api/runs', { method: 'POST', body });
    const msg = $('start-msg');
    clear(msg).append('Started ', el('a', { href: `/studio/runs/${encodeURIComponent(rec.run_id)}` }, rec.run_id));
    msg.hidden = false;
    msg.classList.remove('error');
    await refresh();
  } catch (e) {
    showMsg($('start-msg'), e.message, 'error');
  } finally {
    btn.disabled = false;
  }
});

loadConfig();
refresh();
setInterval(() => { if (!document.hidden) refresh(); }, REFRESH_MS);
