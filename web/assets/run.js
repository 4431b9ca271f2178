// /studio/runs/<run_id>: status and stop, the live event tail (EventSource with cursor
// catch-up), the approval queue with rendered diffs, patchsets and commits.
import { api, el, clear, fmtTime, setStatus, showMsg, TERMINAL, throttle } from './common.js';
import { renderDiff } from './diff.js';

const $ = (id) => document.getElementById(id);
const runId = decodeURIComponent(location.pathname.replace(/\/+$/, '').split('/').pop());
const base = `/api/runs/${encodeURIComponent(runId)}`;
const MAX_EVENTS_SHOWN = 2000;
// Events after which status, approvals or patchsets may have changed.
const REFRESHING = new Set(['status_changed', 'stage', 'approval_requested', 'approval_decided', 'approval_stale',
  'approval_tampered', 'auto_approved', 'patchset_planned', 'patchset_applied', 'patchset_committed', 'patchset_failed',
  'stopped', 'run_done', 'run_failed', 'stop_requested', 'run_resumed', 'check_baseline']);

let rec = null;
let cursor = 0;
let es = null;
let approvalsKey = '';
let patchKey = '';

$('run-id').textContent = runId;
document.title = `Run ${runId} · Noctune Studio`;

function fact(name, value) {
  if (value === null || value === undefined || value === '') return [];
  return [el('dt', {}, name), el('dd', {}, value)];
}

function renderStatus(r) {
  rec = r;
  setStatus($('run-status'), r.status);
  clear($('facts')).append(
    ...fact('Pack', r.pack), ...fact('Profile', r.profile), ...fact('Stage', r.stage),
    ...fact('Branch', el('code', {}, r.branch)),
    ...fact('Started', fmtTime(r.started_at)), ...fact('Updated', fmtTime(r.updated_at)),
    ...fact('Ended', fmtTime(r.ended_at)), ...fact('Repository', r.repo_root));
  showMsg($('run-error'), r.error ? `Error: ${r.error}` : '', 'error');
  renderSummary(r);
  const terminal = TERMINAL.has(r.status);
  $('stop-btn').disabled = terminal || r.status === 'stopping';
  $('resume-btn').hidden = !(r.status === 'stopped' || r.status === 'failed');
}

const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

// The closing summary of a finished run (run.json's `summary`, the same figures the CLI prints):
// what was proposed and decided, what was committed or rolled back and why, and how each check
// did on the base commit, so a run that committed nothing says why at a glance.
function renderSummary(r) {
  const box = clear($('run-summary'));
  const s = r.summary;
  box.hidden = !s;
  if (!s) return;
  const outcome = r.commits
    ? el('p', { class: 'outcome ok', 'data-testid': 'run-outcome' }, `${plural(r.commits, 'commit')} on `, el('code', {}, r.branch))
    : el('p', { class: 'outcome none', 'data-testid': 'run-outcome' }, `No commits${r.reason ? `: ${r.reason}` : ''}`);
  const counts = [
    plural(s.files_proposed, 'file') + ' proposed', `${s.auto_approved} auto-approved`, `${s.approved} approved`,
    `${s.rejected} rejected`, `${s.refused} refused`, `${s.dropped} dropped`,
  ].join(' · ');
  const rows = [el('p', { 'data-testid': 'run-counts' }, counts),
    el('p', {}, `Patchsets: ${s.patchsets_committed} committed, ${s.rolled_back.length} rolled back`)];
  if (s.rolled_back.length) {
    rows.push(el('ul', { class: 'rolled-back', 'data-testid': 'rolled-back' }, s.rolled_back.map((b) =>
      el('li', {}, b.tool ? el('strong', {}, `${b.tool}: `) : null, b.reason, el('span', { class: 'muted' }, ` (${b.files.join(', ')})`)))));
  }
  if (s.baselines.length) {
    rows.push(el('ul', { class: 'baselines', 'data-testid': 'baselines' }, s.baselines.map((b) =>
      el('li', {}, el('strong', {}, `${b.tool} on the base commit: `), b.summary,
        b.regressions ? ` · rolled back ${plural(b.regressions, 'patchset')}` : ''))));
  }
  for (const n of s.notes) rows.push(el('p', { class: 'muted' }, n));
  box.append(el('h2', {}, 'Summary'), outcome, ...rows);
}

async function loadStatus() {
  try {
    renderStatus(await api(base));
  } catch (e) {
    showMsg($('run-error'), e.message, 'error');
  }
}

function approvalCard(a) {
  const head = el('div', { class: 'appr-head' },
    el('code', { class: 'file' }, a.file_path),
    a.symbol ? el('span', { class: 'muted' }, a.symbol) : null,
    el('span', { class: `risk ${a.risk_score >= 60 ? 'high' : a.risk_score >= 30 ? 'mid' : 'low'}`, title: 'Risk score (0-100)' },
      `risk ${a.risk_score}/100`),
    el('span', { class: `badge appr-${a.status}`, 'data-testid': 'approval-status' }, a.status.replace('_', ' ')));
  const card = el('article', { class: 'approval', dataset: { approvalId: a.approval_id, status: a.status },
    'aria-label': `Approval for ${a.file_path}` }, head,
  el('p', { class: 'reason' }, a.reason), renderDiff(a.diff));
  if (a.status === 'pending' && rec && !TERMINAL.has(rec.status)) {
    const id = `reason-${a.approval_id}`;
    const input = el('input', { id, type: 'text', class: 'reason-input', placeholder: 'Why (required to reject)', maxlength: '4000' });
    const msg = el('span', { class: 'msg', role: 'status', 'aria-live': 'polite' });
    const decide = async (decision) => {
      const reason = input.value.trim();
      if (decision === 'reject' && !reason) {
        showMsg(msg, 'Say why you reject it (the reason goes into the audit).', 'error');
        input.focus();
        return;
      }
      for (const b of card.querySelectorAll('button')) b.disabled = true;
      try {
        await api(`${base}/decide`, { method: 'POST', body: { approval_id: a.approval_id, decision, reason } });
        showMsg(msg, decision === 'approve' ? 'Approved.' : 'Rejected.', 'ok');
        await Promise.all([loadApprovals(), loadStatus()]);
      } catch (e) {
        showMsg(msg, e.message, 'error');
        for (const b of card.querySelectorAll('button')) b.disabled = false;
      }
    };
    card.append(el('div', { class: 'decide' },
      el('label', { for: id }, 'Reason'), input,
      el('button', { type: 'button', class: 'primary', onclick: () => decide('approve') }, 'Approve'),
      el('button', { type: 'button', class: 'danger', onclick: () => decide('reject') }, 'Reject'), msg));
  } else if (a.decision) {
    const d = a.decision;
    card.append(el('p', { class: 'decided' },
      `${d.decision === 'approve' ? 'Approved' : 'Rejected'} by ${d.decided_by} at ${fmtTime(d.decided_at)}`,
      d.reason ? `: ${d.reason}` : ''));
  }
  return card;
}

async function loadApprovals() {
  try {
    const { approvals } = await api(`${base}/approvals`);
    const key = JSON.stringify([approvals, rec && TERMINAL.has(rec.status)]);
    if (key === approvalsKey) return;
    approvalsKey = key;
    const order = { pending: 0, tampered: 1, rejected: 2, approved: 3, auto_approved: 4 };
    approvals.sort((x, y) => order[x.status] - order[y.status] || x.file_path.localeCompare(y.file_path));
    const pending = approvals.filter((a) => a.status === 'pending').length;
    $('appr-count').textContent = `${pending} pending of ${approvals.length}`;
    bulk.box.hidden = !(pending && rec && !TERMINAL.has(rec.status));
    const box = clear($('approvals'));
    if (!approvals.length) box.append(el('p', { class: 'muted' }, 'No edits proposed yet.'));
    for (const a of approvals) box.append(approvalCard(a));
  } catch (e) {
    showMsg($('run-error'), e.message, 'error');
  }
}

// "Approve all pending" / "Reject all pending": the server picks the approvals (pending ones
// matching the glob and the risk ceiling) and decides each one by itself; a dry run first
// says how many, for the confirmation.
const bulk = (() => {
  const glob = el('input', { id: 'bulk-glob', type: 'text', placeholder: 'e.g. src/**/*.py', size: '18' });
  const maxRisk = el('input', { id: 'bulk-max-risk', type: 'number', min: '0', max: '100', step: '1', placeholder: '0-100' });
  const reason = el('input', { id: 'bulk-reason', type: 'text', class: 'reason-input', maxlength: '4000',
    placeholder: 'Why (required to reject)' });
  const msg = el('span', { class: 'msg', role: 'status', 'aria-live': 'polite', 'data-testid': 'bulk-msg' });
  const confirmBox = el('div', { class: 'bulk-confirm', hidden: true, 'data-testid': 'bulk-confirm' });
  const buttons = [];
  const word = (d) => (d === 'approve' ? 'Approve' : 'Reject');
  const skippedText = (r) => {
    const left = r.items.filter((i) => i.outcome.kind === 'skipped'
      && !['auto_approved', 'already_decided'].includes(i.outcome.reason));
    if (!left.length) return '';
    const why = {};
    for (const i of left) why[i.outcome.reason] = (why[i.outcome.reason] || 0) + 1;
    const label = { over_max_risk: `risk > ${r.filter.max_risk}`, glob_mismatch: `not matching ${r.filter.glob}`,
      tampered: 'tampered', refused: 'refused' };
    return ` ${left.length} left pending (${Object.entries(why).map(([k, n]) => `${n} ${label[k] || k}`).join(', ')}).`;
  };
  const body = (decision, dryRun) => {
    const b = { decision, reason: reason.value.trim(), dry_run: dryRun };
    if (glob.value.trim()) b.glob = glob.value.trim();
    if (maxRisk.value !== '') b.max_risk = Number(maxRisk.value);
    return b;
  };
  const busy = (on) => { for (const b of [...buttons, ...confirmBox.querySelectorAll('button')]) b.disabled = on; };
  const decideAll = async (decision) => {
    clear(confirmBox).hidden = true;
    showMsg(msg, '');
    if (decision === 'reject' && !reason.value.trim()) {
      showMsg(msg, 'Say why you reject them (the reason goes into the audit).', 'error');
      reason.focus();
      return;
    }
    busy(true);
    let preview;
    try {
      preview = await api(`${base}/approvals/decide`, { method: 'POST', body: body(decision, true) });
    } catch (e) {
      showMsg(msg, e.message, 'error');
      busy(false);
      return;
    }
    busy(false);
    if (!preview.matched) {
      showMsg(msg, `No pending edit matches.${skippedText(preview)}`, 'error');
      return;
    }
    const n = preview.matched;
    const go = el('button', { type: 'button', class: decision === 'approve' ? 'primary' : 'danger',
      'data-testid': 'bulk-confirm-btn' }, `${word(decision)} ${n}`);
    const cancel = el('button', { type: 'button' }, 'Cancel');
    confirmBox.append(el('p', {}, `${word(decision)} ${n} pending edit${n === 1 ? '' : 's'}?${skippedText(preview)}`), go, cancel);
    confirmBox.hidden = false;
    cancel.addEventListener('click', () => { clear(confirmBox).hidden = true; });
    go.addEventListener('click', async () => {
      busy(true);
      try {
        const r = await api(`${base}/approvals/decide`, { method: 'POST', body: body(decision, false) });
        clear(confirmBox).hidden = true;
        const done = decision === 'approve' ? 'Approved' : 'Rejected';
        showMsg(msg, `${done} ${r.decided}.${skippedText(r)}`, 'ok');
        await Promise.all([loadApprovals(), loadStatus()]);
      } catch (e) {
        showMsg(msg, e.message, 'error');
      }
      busy(false);
    });
  };
  buttons.push(
    el('button', { type: 'button', class: 'primary', onclick: () => decideAll('approve') }, 'Approve all pending…'),
    el('button', { type: 'button', class: 'danger', onclick: () => decideAll('reject') }, 'Reject all pending…'));
  const box = el('div', { class: 'bulk decide', hidden: true, 'aria-label': 'Decide all pending edits' },
    el('label', { for: 'bulk-glob' }, 'Files'), glob,
    el('label', { for: 'bulk-max-risk' }, 'Max risk'), maxRisk,
    el('label', { for: 'bulk-reason' }, 'Reason'), reason, ...buttons, msg, confirmBox);
  $('approvals').before(box);
  return { box };
})();

async function loadPatchsets() {
  try {
    const p = await api(`${base}/patchsets`);
    const key = JSON.stringify(p);
    if (key === patchKey) return;
    patchKey = key;
    const box = clear($('patchsets'));
    if (!p.patchsets.length) box.append(el('p', { class: 'muted' }, 'No patchsets planned yet.'));
    else {
      box.append(el('ol', { class: 'patchsets' }, p.patchsets.map((ps, i) => el('li', { dataset: { status: ps.status } },
        el('span', { class: `badge ps-${ps.status}` }, ps.status), ` patchset ${i + 1}: `,
        ps.files.join(', '),
        ps.commit_sha ? [' → ', el('code', {}, ps.commit_sha.slice(0, 10))] : null,
        ps.reason ? el('div', { class: 'muted' }, ps.reason) : null))));
    }
    box.append(el('h3', {}, `Commits on ${p.branch}`));
    if (!p.commits.length) box.append(el('p', { class: 'muted' }, 'No commits yet.'));
    else box.append(el('ul', { class: 'commits', 'data-testid': 'commits' }, p.commits.map((c) =>
      el('li', {}, el('code', {}, c.sha.slice(0, 10)), ' ', c.summary))));
  } catch (e) {
    showMsg($('run-error'), e.message, 'error');
  }
}

function summarize(ev) {
  const p = ev.payload || {};
  switch (ev.type) {
    // A check on the base commit: what fails before any edit, so later failures are judged against it.
    case 'check_baseline':
      return `${p.tool} on the base commit: ${p.summary}${p.cached ? ' (cached)' : ''}${p.note ? ` · ${p.note}` : ''}`;
    case 'patchset_failed':
      return `patchset ${p.n} of ${p.of}: ${p.tool}: ${p.reason}${p.regressions?.length ? ` · regressions: ${p.regressions.slice(0, 5).join(', ')}${p.regressions.length > 5 ? ', …' : ''}` : ''}`;
    case 'run_done':
      return p.commits?.length ? `${plural(p.commits.length, 'commit')} on ${p.branch}`
        : `no commits: ${p.reason || 'nothing committed'}${p.branch_deleted ? ` (empty branch ${p.branch} deleted)` : ''}`;
    case 'approval_tampered':
      return `${p.file}: ${p.reason}`;
    case 'uncommitted_changes':
      return `${plural(p.count, 'uncommitted change')} left out (the run works from ${String(p.head_sha || '').slice(0, 10)})`;
    default: break;
  }
  const parts = [];
  for (const k of ['status', 'stage', 'file', 'tool', 'n', 'error', 'reason', 'decision']) {
    if (p[k] !== undefined && p[k] !== null && typeof p[k] !== 'object') parts.push(`${k}=${p[k]}`);
  }
  if (p.of !== undefined) parts.push(`of=${p.of}`);
  return parts.join(' ');
}

const refreshAll = throttle(() => { loadStatus(); loadApprovals(); loadPatchsets(); }, 250);

function addEvent(ev) {
  const list = $('events');
  list.append(el('li', { dataset: { idx: ev.idx, type: ev.type } },
    el('span', { class: 'idx' }, `#${ev.idx}`), ' ',
    el('time', { datetime: ev.ts }, fmtTime(ev.ts).slice(11)), ' ',
    el('strong', {}, ev.type), ' ', el('span', { class: 'muted' }, summarize(ev))));
  while (list.children.length > MAX_EVENTS_SHOWN) list.removeChild(list.firstChild);
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  if (nearBottom) list.scrollTop = list.scrollHeight;
}

function follow() {
  if (es) es.close();
  // The stream resumes from `cursor`; a reconnect by the browser sends Last-Event-ID itself.
  es = new EventSource(`${base}/events/stream?cursor=${cursor}`);
  $('ev-state').textContent = 'live';
  es.onmessage = (m) => {
    let ev;
    try { ev = JSON.parse(m.data); } catch { return; }
    if (ev.idx < cursor) return;
    cursor = ev.idx + 1;
    addEvent(ev);
    if (REFRESHING.has(ev.type)) refreshAll();
  };
  es.addEventListener('end', () => {
    es.close();
    es = null;
    $('ev-state').textContent = 'run ended';
    refreshAll();
  });
  es.onerror = () => {
    if (es && es.readyState === EventSource.CLOSED) {
      $('ev-state').textContent = 'disconnected; retrying…';
      setTimeout(follow, 2000);
    } else {
      $('ev-state').textContent = 'reconnecting…';
    }
  };
}

$('stop-btn').addEventListener('click', async () => {
  $('stop-btn').disabled = true;
  showMsg($('action-msg'), 'Stopping…');
  try {
    renderStatus(await api(`${base}/stop`, { method: 'POST' }));
    showMsg($('action-msg'), 'Stopped.', 'ok');
  } catch (e) {
    showMsg($('action-msg'), e.message, 'error');
  }
  refreshAll();
});

$('resume-btn').addEventListener('click', async () => {
  try {
    renderStatus(await api(`${base}/resume`, { method: 'POST' }));
    showMsg($('action-msg'), 'Resumed.', 'ok');
    if (!es) follow();
  } catch (e) {
    showMsg($('action-msg'), e.message, 'error');
  }
});

await loadStatus();
loadApprovals();
loadPatchsets();
follow();
setInterval(() => {
  if (rec && !TERMINAL.has(rec.status) && !document.hidden) refreshAll();
}, 2000);
