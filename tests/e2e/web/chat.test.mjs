// M1 in the browser: /studio against the real binary, the scripted model server and a real git
// repository. Permission prompts are answered with the page's own buttons.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { makeRepo, startStudio, launchBrowser, newPage, screenshot, waitFor } from './support/harness.mjs';
import { ScriptedLlm, Reply, lastIsToolResult, lastToolResult } from './support/llm-server.mjs';

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

/** Opens the printed URL (trading the token for the cookie) in a fresh context. */
async function openStudio(b = browser, size) {
  const { context, page } = await newPage(b, size);
  await page.goto(studio.url);
  await page.locator('#profile option').first().waitFor({ state: 'attached' });
  // The first session list is in (the page fetches it on load; a later refresh must not race with it).
  await page.locator('#session-list li').first().waitFor({ state: 'attached' });
  return { context, page };
}

/** How many assistant answers the page shows (to tell `turnDone` which turn to wait for). */
const answers = (page) => page.locator('article.msg-assistant').count();

/** Sends `text` from the composer; returns the number of answers before it, for `turnDone`. */
async function sendMessage(page, text) {
  const before = await answers(page);
  await page.locator('#composer-input').fill(text);
  await page.locator('#composer-input').press('Enter');
  return before;
}

/** The assistant article of the latest turn. */
const lastTurn = (page) => page.locator('article.msg-assistant').last();

/**
 * Waits until the turn sent when the page had `before` answers is over. An enabled Send button alone says
 * nothing: the page disables it only once the session exists (after a POST), so right after Enter it is still
 * enabled and a wait on it alone passed before the turn began, and the answer was then read half streamed. The
 * page adds the turn's answer and disables Send in one step, and enables Send again only after the stream ended
 * and the whole answer is rendered.
 */
async function turnDone(page, before) {
  await waitFor(async () => (await answers(page)) > before && !(await page.locator('#send').isDisabled()), { what: 'the turn to end' });
}

test('opening /studio with the printed URL works (cookie, clean URL, no banner), and not without it', async () => {
  const { context, page } = await openStudio();
  assert.equal(page.url(), `${studio.origin}/studio`, 'the token left the address bar');
  const cookie = (await context.cookies()).find((c) => c.name === `noctune_token_${studio.port}`);
  assert.ok(cookie, 'the token cookie is set');
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Strict');
  assert.equal(await page.evaluate(() => document.cookie), '', 'scripts cannot read the token');
  await page.getByRole('button', { name: 'New chat' }).waitFor();
  await waitFor(async () => (await page.locator('#repo-root').textContent()) === repo, { what: 'the repo path' });
  // The model server answers, so no banner.
  await page.waitForTimeout(300);
  assert.equal(await page.locator('#llm-banner').isHidden(), true);
  assert.deepEqual(page.errors, []);
  await screenshot(page, 'studio-chat-empty-1280');
  await page.setViewportSize({ width: 400, height: 860 });
  await screenshot(page, 'studio-chat-empty-400');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `no horizontal scrolling at 400 px (${overflow}px)`);
  await context.close();

  // Without the token: 401, and nothing of the app.
  const { context: c2, page: p2 } = await newPage(browser);
  const res = await p2.goto(`${studio.origin}/studio`);
  assert.equal(res.status(), 401);
  assert.match(await p2.content(), /noctune studio/);
  await c2.close();
});

test('the banner says how to start llama-server when the model server is unreachable', async () => {
  const other = await startStudio(makeRepo(), { llmBaseUrl: 'http://127.0.0.1:9/v1' });
  try {
    const { context, page } = await newPage(browser);
    await page.goto(other.url);
    const banner = page.locator('#llm-banner');
    await banner.waitFor({ state: 'visible' });
    assert.match(await banner.textContent(), /not reachable/);
    assert.match(await page.locator('#llm-start-cmd').textContent(), /^llama-server .*--port 9\b/);
    assert.match(await page.locator('#llm-banner-msg').textContent(), /127\.0\.0\.1:9/);
    await screenshot(page, 'studio-chat-model-down');
    await context.close();
  } finally {
    await other.stop();
  }
});

test('without a grant a write tool returns write_not_allowed and the assistant asks', async () => {
  const before = read('shapes/util/helpers.py');
  llm.reset();
  llm.reply(Reply.text(['I will remove ', 'the unused import.']).withToolCall('call_deny', 'writeFile', { path: 'shapes/util/helpers.py', content: 'def clamp(x, lo, hi):\n    return max(lo, min(hi, x))\n' }));
  llm.when(lastIsToolResult, (req) => (lastToolResult(req)?.error === 'write_not_allowed'
    ? Reply.text(['I am not allowed to write ', '`shapes/util/helpers.py`. ', 'May I edit it? ', 'Please allow the write.'])
    : Reply.text(['Unexpected.'])));
  const { context, page } = await openStudio();
  const sent = await sendMessage(page, 'Remove the unused import in helpers.py');
  const card = page.locator('section.permission').last();
  await card.waitFor();
  assert.match(await card.textContent(), /writeFile/);
  await screenshot(page, 'studio-chat-permission-prompt');
  await card.getByRole('button', { name: 'Deny' }).click();
  const panel = page.locator('details.tool[data-call-id="call_deny"]');
  await waitFor(async () => (await panel.getAttribute('data-status')) === 'error', { what: 'the denied tool result' });
  assert.match(await panel.locator('.tool-result').textContent(), /write_not_allowed/);
  await turnDone(page, sent);
  assert.match(await lastTurn(page).locator('.md').last().textContent(), /May I edit it\?/);
  assert.equal(await lastTurn(page).locator('.md').first().textContent(), 'I will remove the unused import.', 'text before a tool call is complete');
  assert.equal(read('shapes/util/helpers.py'), before, 'nothing was written');
  const toolMsg = llm.requests.at(-1).messages.at(-1);
  assert.equal(toolMsg.role, 'tool');
  assert.equal(JSON.parse(toolMsg.content).error, 'write_not_allowed');
  assert.deepEqual(page.errors, []);
  await screenshot(page, 'studio-chat-write-denied');
  await context.close();
});

test('with Allow once a file is edited, a backup is made, the next write asks again, undo restores', async () => {
  const original = read('shapes/util/helpers.py');
  const edited = 'def clamp(x, lo, hi):\n    return max(lo, min(hi, x))\n';
  llm.reset();
  llm.reply(Reply.toolCall('call_once', 'writeFile', { path: 'shapes/util/helpers.py', content: edited }));
  llm.reply(Reply.text(['Done: ', 'removed `import sys`.']));
  llm.reply(Reply.toolCall('call_twice', 'writeFile', { path: 'shapes/util/helpers.py', content: `${edited}# again\n` }));
  llm.reply(Reply.text(['Understood, ', 'I will not.']));
  const { context, page } = await openStudio();
  const sent = await sendMessage(page, 'Remove the unused import in helpers.py');
  const card = page.locator('section.permission').last();
  await card.waitFor();
  await card.getByRole('button', { name: 'Allow once' }).click();
  const panel = page.locator('details.tool[data-call-id="call_once"]');
  await waitFor(async () => (await panel.getAttribute('data-status')) === 'ok', { what: 'the edit result' });
  assert.ok(await panel.locator('table.diff tr.del').count() >= 1, 'the diff is rendered with removed lines');
  // The permission card's preview diff and the result's diff are both in the panel; the result's comes last.
  assert.match(await panel.locator('table.diff').last().textContent(), /-import sys/);
  await turnDone(page, sent);
  assert.equal(read('shapes/util/helpers.py'), edited, 'the file was edited');
  const backups = path.join(repo, '.noctune_cache/studio_edits/backups');
  const found = [];
  const walk = (d) => { for (const e of fs.readdirSync(d, { withFileTypes: true })) { const p = path.join(d, e.name); if (e.isDirectory()) walk(p); else found.push(p); } };
  walk(backups);
  const backup = found.find((p) => p.endsWith(path.join('shapes', 'util', 'helpers.py')));
  assert.ok(backup, `a backup under .noctune_cache/studio_edits/backups/: ${found.join(', ')}`);
  assert.equal(fs.readFileSync(backup, 'utf8'), original, 'the backup holds the file before the edit');
  assert.match(await panel.locator('.tool-result').textContent(), /Backup:/);
  await screenshot(page, 'studio-chat-allow-once');

  // "Once" was one call: the next write asks again.
  const sent2 = await sendMessage(page, 'Add a comment at the end');
  const card2 = page.locator('section.permission').last();
  await waitFor(async () => (await page.locator('section.permission').count()) === 2, { what: 'a second prompt' });
  await card2.getByRole('button', { name: 'Deny' }).click();
  await turnDone(page, sent2);
  assert.equal(read('shapes/util/helpers.py'), edited);

  // Undo last edit restores the file from its backup.
  await page.getByRole('button', { name: 'Undo last edit' }).click();
  await waitFor(async () => /Undone/.test(await page.locator('#toolbar-msg').textContent()), { what: 'undo' });
  assert.equal(read('shapes/util/helpers.py'), original);
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('with Allow this session a run starts, its events tail from events.jsonl, and a later run call does not ask', async () => {
  llm.reset();
  llm.reply(Reply.text(['Starting ', 'lint_fix.']).withToolCall('call_start', 'noctuneStart', { pack: 'lint_fix' }));
  llm.when(lastIsToolResult, (req) => {
    const r = lastToolResult(req);
    return Reply.text([r?.run_id ? `Run ${r.run_id} is ${r.status}.` : `Result: ${JSON.stringify(r).slice(0, 80)}`]);
  });
  const { context, page } = await openStudio();
  const sent = await sendMessage(page, 'Run lint_fix please');
  const card = page.locator('section.permission').last();
  await card.waitFor();
  assert.match(await card.textContent(), /noctuneStart/);
  await card.getByRole('button', { name: 'Allow this session' }).click();
  const panel = page.locator('details.tool[data-call-id="call_start"]');
  await waitFor(async () => (await panel.getAttribute('data-status')) === 'ok', { what: 'the run to start' });
  await turnDone(page, sent);
  const link = panel.locator('a[href^="/studio/runs/"]');
  const runId = (await link.textContent()).trim();
  assert.ok(fs.existsSync(path.join(repo, '.noctune_cache/runs', runId, 'state/run.json')));
  const chatUrl = page.url();
  await screenshot(page, 'studio-chat-run-started');

  // The run page tails events.jsonl live.
  await link.click();
  await page.waitForURL(`**/studio/runs/${runId}`);
  await waitFor(async () => (await page.locator('#run-status').getAttribute('data-status')) === 'waiting_approval', { timeout: 90000, what: 'waiting_approval in the UI' });
  await waitFor(async () => {
    const ui = await page.locator('#events li').evaluateAll((lis) => lis.map((li) => `${li.dataset.idx}:${li.dataset.type}`));
    const file = studio.eventsJsonl(runId).map((e) => `${e.idx}:${e.type}`);
    return ui.length > 5 && JSON.stringify(ui) === JSON.stringify(file);
  }, { what: 'the UI event tail to equal events.jsonl' });
  await screenshot(page, 'studio-run-from-chat');

  // Same session, another run tool: no prompt this time.
  await page.goto(chatUrl);
  await page.locator('details.tool[data-call-id="call_start"]').waitFor();
  const prompts = await page.locator('section.permission').count();
  llm.reset();
  llm.reply(Reply.toolCall('call_stop', 'noctuneStop', { run_id: runId }));
  llm.when(lastIsToolResult, (req) => Reply.text([`Stopped: ${lastToolResult(req)?.status}`]));
  const sentStop = await sendMessage(page, 'Stop that run');
  const stopPanel = page.locator('details.tool[data-call-id="call_stop"]');
  await waitFor(async () => (await stopPanel.getAttribute('data-status')) === 'ok', { timeout: 60000, what: 'the stop' });
  await turnDone(page, sentStop);
  assert.equal(await page.locator('section.permission').count(), prompts, 'no new permission prompt');
  assert.equal(studio.runJson(runId).status, 'stopped');
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('with Always allow the grant survives a browser restart through studio_allow.json', async () => {
  llm.reset();
  llm.reply(Reply.toolCall('call_always', 'writeFile', { path: 'shapes/geometry.py', content: read('shapes/geometry.py').replace('import os\n', '') }));
  llm.reply(Reply.text(['Removed `import os`.']));
  let b = browser;
  const { context, page } = await openStudio(b);
  const sent = await sendMessage(page, 'Remove the unused import in geometry.py');
  const card = page.locator('section.permission').last();
  await card.waitFor();
  await card.getByRole('button', { name: 'Always allow' }).click();
  await waitFor(async () => (await page.locator('details.tool[data-call-id="call_always"]').getAttribute('data-status')) === 'ok', { what: 'the edit' });
  await turnDone(page, sent);
  assert.doesNotMatch(read('shapes/geometry.py'), /import os/);
  const allow = JSON.parse(fs.readFileSync(path.join(repo, '.noctune_cache/studio_allow.json'), 'utf8'));
  assert.match(JSON.stringify(allow), /"write"/, JSON.stringify(allow));
  await context.close();

  // A whole new browser (no cookies, no storage), through the printed URL again.
  await browser.close();
  browser = await launchBrowser();
  b = browser;
  llm.reset();
  llm.reply(Reply.toolCall('call_after_restart', 'writeFile', { path: 'scripts/report.py', content: '"""Report."""\n\n\ndef main():\n    print("report")\n' }));
  llm.reply(Reply.text(['Rewrote ', '`scripts/report.py`.']));
  const { context: c2, page: p2 } = await openStudio(b);
  const sent2 = await sendMessage(p2, 'Tidy scripts/report.py');
  const panel = p2.locator('details.tool[data-call-id="call_after_restart"]');
  await waitFor(async () => (await panel.getAttribute('data-status')) === 'ok', { what: 'the write without a prompt' });
  await turnDone(p2, sent2);
  assert.equal(await p2.locator('section.permission').count(), 0, 'no prompt: the always grant held');
  assert.match(read('scripts/report.py'), /"""Report\."""/);
  const grants = await studio.api('/api/chat/grants');
  assert.ok(grants.always.some((g) => g.tool_class === 'write'), JSON.stringify(grants));
  await screenshot(p2, 'studio-chat-always-after-restart');
  // Sessions sidebar: both chats are listed; export has the tool calls.
  const sessions = await studio.api('/api/chat/sessions');
  assert.ok(sessions.sessions.length >= 2);
  const sid = new URL(p2.url()).searchParams.get('session');
  const transcript = await studio.api(`/api/chat/sessions/${sid}/export`);
  assert.ok(transcript.tool_calls.some((c) => JSON.stringify(c).includes('call_after_restart')));
  await studio.api('/api/chat/grants/write', { method: 'DELETE' });
  assert.deepEqual(p2.errors, []);
  await c2.close();
});

test('sessions: new, load from the sidebar, export, keyboard only', async () => {
  llm.reset();
  llm.fallback((req) => Reply.text(['You said: ', JSON.stringify(req.messages.at(-1).content), '\n\n```diff\n-a\n+b\n```\n\n**bold** <script>alert(1)</script>']));
  const { context, page } = await openStudio();
  // Keyboard: focus the message box from the skip link, type, Enter sends.
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  await page.keyboard.type('first message');
  const before = await answers(page);
  await page.keyboard.press('Enter');
  await turnDone(page, before);
  const md = lastTurn(page).locator('.md').last();
  assert.match(await md.textContent(), /You said: "first message"/);
  assert.equal(await md.locator('script').count(), 0, 'model HTML is shown as text');
  assert.match(await md.textContent(), /<script>alert\(1\)<\/script>/);
  assert.equal(await md.locator('pre.md-diff .add').count(), 1);
  const sid = new URL(page.url()).searchParams.get('session');
  assert.ok(sid);
  // The end of the turn refreshes the sidebar (clear and rebuild); its list is in once it marks this session open.
  const entry = page.locator(`.session-list li[data-session-id="${sid}"]`);
  await entry.locator('.session-open[aria-current="true"]').waitFor();
  // New chat, then load the first one from the sidebar.
  await page.getByRole('button', { name: 'New chat' }).click();
  assert.equal(await page.locator('article').count(), 0);
  // New chat refreshes the sidebar too. Focus an entry only once that list is in (it marks no session open): a
  // button focused before would be replaced under the keyboard, and Enter would go nowhere.
  const item = entry.locator('.session-open:not([aria-current])');
  await item.waitFor();
  await item.focus();
  await page.keyboard.press('Enter');
  await waitFor(async () => (await page.locator('article.msg-user').count()) === 1, { what: 'the loaded session' });
  assert.match(await page.locator('article.msg-user').textContent(), /first message/);
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export transcript' }).click()]);
  const file = await download.path();
  const t = JSON.parse(fs.readFileSync(file, 'utf8'));
  assert.equal(t.session_id, sid);
  assert.ok(t.messages.some((m) => m.role === 'user' && m.content === 'first message'));
  await page.setViewportSize({ width: 400, height: 860 });
  await screenshot(page, 'studio-chat-session-400');
  assert.deepEqual(page.errors, []);
  llm.reset();
  await context.close();
});
