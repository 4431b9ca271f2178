// Renders a unified diff as a table: old and new line numbers, added lines green, removed red.
import { el } from './common.js';

export function renderDiff(diff) {
  const table = el('table', { class: 'diff' });
  const body = el('tbody');
  table.append(body);
  let oldNo = 0;
  let newNo = 0;
  for (const line of String(diff || '').split('\n')) {
    if (line === '') continue;
    let cls;
    let a = '';
    let b = '';
    if (line.startsWith('@@')) {
      const m = /^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@/.exec(line);
      if (m) { oldNo = Number(m[1]); newNo = Number(m[2]); }
      cls = 'hunk';
    } else if (line.startsWith('+++') || line.startsWith('---')) {
      cls = 'file';
    } else if (line.startsWith('+')) {
      cls = 'add'; b = newNo++;
    } else if (line.startsWith('-')) {
      cls = 'del'; a = oldNo++;
    } else if (line.startsWith('\\')) {
      cls = 'meta';
    } else {
      cls = 'ctx'; a = oldNo++; b = newNo++;
    }
    body.append(el('tr', { class: cls },
      el('td', { class: 'ln', 'aria-hidden': 'true' }, String(a)),
      el('td', { class: 'ln', 'aria-hidden': 'true' }, String(b)),
      el('td', { class: 'code' }, line)));
  }
  return el('div', { class: 'diff-wrap', tabindex: '0', role: 'region', 'aria-label': 'Diff' }, table);
}
