// Tool calls and their results as readable panels: file and range, colored diffs, search hits,
// run links; raw JSON only for tools we do not know.
import { el, clear } from './common.js';
import { renderDiff } from './diff.js';

const MAX_LINES_SHOWN = 400;

function range(a) {
  if (a.start_line && a.end_line) return ` lines ${a.start_line}–${a.end_line}`;
  if (a.start_line) return ` from line ${a.start_line}`;
  return '';
}

function target(name, a) {
  if (!a || typeof a !== 'object') return String(a ?? '');
  switch (name) {
    case 'readFile': case 'replaceLines': return `${a.path ?? ''}${range(a)}`;
    case 'writeFile': return a.path ?? '';
    case 'listFiles': return [a.path, a.glob].filter(Boolean).join(' ') || '.';
    case 'search': return `"${a.pattern ?? a.query ?? ''}"${a.path ? ` in ${a.path}` : ''}${a.glob ? ` (${a.glob})` : ''}`;
    case 'noctuneStart': return `pack ${a.pack ?? ''}${a.profile ? `, profile ${a.profile}` : ''}`;
    case 'noctuneDecide': return `${a.decision ?? ''} ${a.approval_id ?? ''} of ${a.run_id ?? ''}`;
    default: return a.run_id ?? '';
  }
}

export function toolPanel(id, name, args) {
  const result = el('div', { class: 'tool-result', 'aria-live': 'polite' }, el('span', { class: 'muted' }, 'running…'));
  const panel = el('details', { class: 'tool', open: true, dataset: { callId: id, tool: name, status: 'running' } },
    el('summary', {}, el('span', { class: 'tool-name' }, name), ' ', el('code', { class: 'tool-target' }, target(name, args))),
    el('details', { class: 'tool-args' }, el('summary', {}, 'arguments'), el('pre', {}, JSON.stringify(args, null, 2))),
    result);
  return panel;
}

function runLink(runId) {
  return el('a', { href: `/studio/runs/${encodeURIComponent(runId)}` }, runId);
}

// readFile numbers its lines itself (`12: text`, for the model to cite): the gutter shows that
// number and the code column the text after it, so each line is numbered once.
const NUMBERED = /^(\d+): (.*)$/s;

function codeLines(content, start) {
  const lines = String(content ?? '').split('\n');
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  const shown = lines.slice(0, MAX_LINES_SHOWN);
  const table = el('table', { class: 'code-lines' }, el('tbody', {}, shown.map((l, i) => {
    const m = NUMBERED.exec(l);
    return el('tr', {}, el('td', { class: 'ln' }, m ? m[1] : String(start + i)), el('td', { class: 'code' }, m ? m[2] : l));
  })));
  const more = lines.length > shown.length ? el('p', { class: 'muted small' }, `… ${lines.length - shown.length} more lines`) : null;
  return [el('div', { class: 'diff-wrap' }, table), more];
}

function body(name, r) {
  switch (name) {
    case 'readFile':
      return [el('p', {}, el('code', {}, r.path), ` lines ${r.start_line}–${r.end_line} of ${r.total_lines}`, r.truncated ? ' (cut)' : ''),
        ...codeLines(r.content, r.start_line || 1)];
    case 'writeFile': case 'replaceLines':
      return [el('p', {}, r.unchanged ? 'Unchanged: ' : r.created ? 'Created ' : 'Edited ', el('code', {}, r.path),
        r.start_line ? ` (lines ${r.start_line}–${r.end_line})` : ''),
      r.diff ? renderDiff(r.diff) : null,
      r.backup ? el('p', { class: 'muted small' }, 'Backup: ', el('code', {}, r.backup)) : null];
    case 'search':
      return [el('p', {}, `${r.count} match${r.count === 1 ? '' : 'es'}${r.truncated ? ' (more exist)' : ''} in ${r.files_searched ?? '?'} files`),
        el('ul', { class: 'hits' }, (r.matches || []).map((m) => {
          const i = m.indexOf(': ');
          return el('li', {}, el('code', {}, i > 0 ? m.slice(0, i) : m), i > 0 ? ` ${m.slice(i + 2)}` : '');
        })),
        r.hint ? el('p', { class: 'muted small' }, r.hint) : null];
    case 'listFiles':
      return [el('p', {}, `${r.count} files${r.truncated ? ' (more exist)' : ''}`),
        el('ul', { class: 'hits' }, (r.files || []).slice(0, MAX_LINES_SHOWN).map((f) => el('li', {}, el('code', {}, f))))];
    case 'noctuneStart': case 'noctuneStop':
      return [el('p', {}, 'Run ', runLink(r.run_id), `: ${r.status}`, r.stage ? ` (stage ${r.stage})` : ''), r.message ? el('p', { class: 'muted small' }, r.message) : null];
    case 'noctuneEvents':
      return [el('p', {}, 'Run ', runLink(r.run_id), `: ${r.status}, ${r.events.length} events`),
        el('ol', { class: 'events small' }, r.events.map((e) => el('li', {}, `#${e.idx} `, el('strong', {}, e.type))))];
    case 'noctuneApprovals':
      return [el('p', {}, 'Run ', runLink(r.run_id), `: ${r.approvals.length} approvals`),
        ...r.approvals.map((a) => el('div', { class: 'approval' }, el('p', {}, el('code', {}, a.file_path), ` ${a.status}, risk ${a.risk_score}`), a.diff ? renderDiff(a.diff) : null))];
    case 'noctuneDecide':
      return [el('p', {}, `${r.decision} of ${r.approval_id} in run `, runLink(r.run_id), ` by ${r.decided_by}`)];
    default:
      return [el('pre', {}, JSON.stringify(r, null, 2))];
  }
}

export function fillResult(panel, ok, result) {
  const box = clear(panel.querySelector('.tool-result'));
  const r = result && typeof result === 'object' ? result : { value: result };
  if (!ok || r.error) {
    panel.dataset.status = 'error';
    box.append(el('p', { class: 'tool-error' }, el('strong', { class: 'code' }, r.error || 'error'), ': ', r.message || JSON.stringify(r)));
    return;
  }
  panel.dataset.status = 'ok';
  try {
    box.append(...body(panel.dataset.tool, r).filter(Boolean));
  } catch {
    box.append(el('pre', {}, JSON.stringify(r, null, 2)));
  }
}
