// The permission card of a file edit shows the exact change before the user decides: the diff of
// an editFile call (the removed and added lines, the file's path and the line counts) while the file
// on disk is still untouched; Allow writes exactly what was shown; a long diff starts collapsed so
// the buttons stay on screen; a call cut off by max_tokens never reaches a card at all.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { makeRepo, startStudio, launchBrowser, newPage, screenshot, waitFor } from './support/harness.mjs';
import { ScriptedLlm, Reply, lastIsToolResult } from './support/llm-server.mjs';

const FILE = 'shapes/util/helpers.py';

let llm;
let repo;
let studio;
let browser;

before(async () => {
  llm = await ScriptedLlm.start();
  repo = makeRepo();
  studio = await startStudio(repo, { llmBaseUrl: llm.baseUrl });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await studio?.stop();
  await llm?.close();
});

const read = (rel) => fs.readFileSync(path.join(repo, rel), 'utf8');
const write = (rel, text) => fs.writeFileSync(path.join(repo, rel), text);

async function openStudio(size) {
  const { context, page } = await newPage(browser, size);
  await page.goto(studio.url);
  await page.locator('#profile option').first().waitFor({ state: 'attached' });
  await page.locator('#session-list li').first().waitFor({ state: 'attached' });
  return { context, page };
}

async function send(page, text) {
  const before = await page.locator('article.msg-assistant').count();
  await page.locator('#composer-input').fill(text);
  await page.locator('#composer-input').press('Enter');
  return before;
}

async function turnDone(page, before) {
  await waitFor(async () => (await page.locator('article.msg-assistant').count()) > before && !(await page.locator('#send').isDisabled()), { what: 'the turn to end' });
}

/** The rows of a rendered diff table as [kind, text] (the row classes of diff.js: add, del, ctx, hunk, file, meta). */
async function diffRows(table) {
  return table.locator('tr').evaluateAll((trs) => trs.map((tr) => {
    const kind = ['add', 'del', 'hunk', 'file', 'meta'].find((k) => tr.classList.contains(k)) || 'ctx';
    return [kind, tr.querySelector('td:last-child')?.textContent ?? ''];
  }));
}

test('an editFile card shows the exact diff before the decision, and Allow writes exactly that', async () => {
  const original = 'import sys\n\n\ndef clamp(x, lo, hi):\n    return max(lo, min(hi, x))\n';
  write(FILE, original);
  llm.reset();
  llm.reply(Reply.toolCall('call_edit', 'editFile', { path: FILE, old_text: '    return max(lo, min(hi, x))\n', new_text: '    """Limit x to [lo, hi]."""\n    return max(lo, min(hi, x))\n' }));
  llm.when(lastIsToolResult, Reply.text(['Added ', 'a docstring.']));
  const { context, page } = await openStudio();
  const sent = await send(page, 'Document clamp');
  const card = page.locator('section.permission').last();
  await card.waitFor();
  const preview = card.locator('details.perm-preview');
  await preview.waitFor();
  assert.equal(await preview.getAttribute('open'), '', 'a short diff is open');
  assert.equal(await preview.locator('summary').textContent(), `Change to ${FILE}: +1 −0 lines`);
  const rows = await diffRows(preview.locator('table.diff'));
  const changed = rows.filter(([k]) => k === 'add' || k === 'del');
  assert.equal(changed.length, 1, JSON.stringify(rows));
  assert.equal(changed[0][0], 'add');
  assert.match(changed[0][1], /"""Limit x to \[lo, hi\]\."""/);
  assert.ok(rows.some(([k, t]) => k === 'ctx' && /return max\(lo, min\(hi, x\)\)/.test(t)), `context lines are shown: ${JSON.stringify(rows)}`);
  // The diff comes before the buttons, and nothing is written while the card waits.
  const [diffBox, buttonBox] = [await preview.boundingBox(), await card.getByRole('button', { name: 'Allow once' }).boundingBox()];
  assert.ok(diffBox.y < buttonBox.y, 'the diff is above the buttons');
  assert.equal(read(FILE), original, 'nothing is written before the decision');
  await screenshot(page, 'studio-chat-permission-diff');
  await card.getByRole('button', { name: 'Allow once' }).click();
  await turnDone(page, sent);
  assert.equal(read(FILE), 'import sys\n\n\ndef clamp(x, lo, hi):\n    """Limit x to [lo, hi]."""\n    return max(lo, min(hi, x))\n', 'the file is what the card showed');
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('a long diff starts collapsed with its size in the summary, and the buttons stay on screen', async () => {
  const original = read(FILE);
  const long = Array.from({ length: 120 }, (_, i) => `VALUE_${i} = ${i}\n`).join('');
  llm.reset();
  llm.reply(Reply.toolCall('call_long', 'writeFile', { path: FILE, content: long }));
  llm.when(lastIsToolResult, Reply.text(['Not written.']));
  const { context, page } = await openStudio({ width: 1280, height: 860 });
  const sent = await send(page, 'Replace helpers.py with constants');
  const card = page.locator('section.permission').last();
  await card.waitFor();
  const preview = card.locator('details.perm-preview');
  await preview.waitFor();
  assert.equal(await preview.getAttribute('open'), null, 'a long diff starts collapsed');
  const removed = original.split('\n').length - 1;
  assert.equal(await preview.locator('summary').textContent(), `Change to ${FILE}: +120 −${removed} lines`);
  const deny = card.getByRole('button', { name: 'Deny' });
  await deny.scrollIntoViewIfNeeded();
  const box = await deny.boundingBox();
  assert.ok(box && box.y + box.height <= 860, `Deny is on screen: ${JSON.stringify(box)}`);
  // Opening it shows every added line.
  await preview.locator('summary').click();
  const rows = await diffRows(preview.locator('table.diff'));
  assert.equal(rows.filter(([k]) => k === 'add').length, 120);
  await deny.click();
  await turnDone(page, sent);
  assert.equal(read(FILE), original, 'denied: unchanged');
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('a writeFile cut off by max_tokens gets no permission card and is never run', async () => {
  const original = read(FILE);
  llm.reset();
  // The arguments end mid-string: what a model at its token limit sends.
  llm.reply(Reply.toolCall('call_cut', 'writeFile', `{"path": "${FILE}", "content": "def clamp(x, lo, hi):\\n    ret`).finishReason('length'));
  llm.reply(Reply.text(['Sorry, ', 'the call was too long.']));
  const { context, page } = await openStudio();
  const sent = await send(page, 'Rewrite helpers.py');
  await turnDone(page, sent);
  assert.equal(await page.locator('section.permission').count(), 0, 'no card for a call that was not whole');
  const notices = await page.locator('article.msg-assistant').last().locator('.notice').allTextContents();
  assert.ok(notices.some((n) => /writeFile call was cut off at \d+ tokens \(max_tokens\) and was not run/.test(n)), JSON.stringify(notices));
  assert.equal(read(FILE), original, 'nothing was written');
  assert.deepEqual(page.errors, []);
  await context.close();
});
