// The diff of a file edit's permission prompt, shown above its buttons so that the user decides
// on the change itself. The server computes it (req.preview) from the file as it is now; if the
// file changes before the call runs, the call is refused rather than applied to other content.
import { el } from './common.js';
import { renderDiff } from './diff.js';

// Longer diffs start collapsed so the buttons stay in view.
const OPEN_MAX_LINES = 40;

export function permissionPreview(req) {
  const p = req && req.preview;
  if (!p || typeof p.diff !== 'string') return null;
  if (!p.diff) return el('p', { class: 'muted perm-preview' }, 'The call would not change the file.');
  const lines = p.diff.split('\n');
  let added = 0;
  let removed = 0;
  for (const l of lines) {
    if (l.startsWith('+') && !l.startsWith('+++')) added += 1;
    else if (l.startsWith('-') && !l.startsWith('---')) removed += 1;
  }
  return el('details', { class: 'perm-preview', open: lines.length <= OPEN_MAX_LINES },
    el('summary', {}, `Change to ${p.path}: +${added} −${removed} lines`),
    el('div', { class: 'diff-wrap' }, renderDiff(p.diff)));
}
