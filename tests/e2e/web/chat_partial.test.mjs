// The chat page when a turn does not end well, and while it waits: a stream broken mid-answer
// keeps the question and the partial answer (also after a reload) and offers Retry, which
// replaces the failed turn; a typing indicator from send to the first words; readFile panels
// numbered once; the model-down banner leaves the message box on screen at 1280x860.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { makeRepo, startStudio, launchBrowser, newPage, screenshot, waitFor, SCREENSHOTS } from './support/harness.mjs';
import { ScriptedLlm, Reply, lastIsToolResult } from './support/llm-server.mjs';

const QUESTION = 'What does shapes/render.py do?';

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

test('a stream broken mid-answer keeps the question and the partial answer, after a reload too, and Retry replaces the turn', async () => {
  llm.reset();
  // The role chunk and two pieces of text, then the connection breaks (a crashed model server).
  llm.reply(Reply.text(['It renders ', 'shapes ', 'as text.']).cutAfter(3));
  llm.reply(Reply.text(['It renders ', 'shapes as text, ', 'one per line.']));
  const { context, page } = await openStudio();
  const sent = await send(page, QUESTION);
  await turnDone(page, sent);
  const failed = page.locator('article.msg-assistant').last();
  assert.match(await failed.locator('.md').textContent(), /^It renders shapes\s*$/);
  assert.match(await failed.locator('.turn-error').textContent(), /ended before the answer was complete/);
  const retry = failed.getByRole('button', { name: 'Retry' });
  await retry.waitFor();
  await screenshot(page, 'studio-chat-broken-stream');

  // A reload shows the same: the question, what had streamed, the error, Retry.
  await page.reload();
  await page.locator('article.msg-user').first().waitFor();
  assert.equal(await page.locator('article.msg-user').count(), 1);
  assert.equal(await page.locator('article.msg-user').textContent(), `You${QUESTION}`);
  const reloaded = page.locator('article.msg-assistant.failed').last();
  assert.match(await reloaded.locator('.md').textContent(), /^It renders shapes\s*$/);
  assert.match(await reloaded.locator('.turn-error').textContent(), /ended before the answer was complete/);
  const sid = new URL(page.url()).searchParams.get('session');
  const saved = await studio.api(`/api/chat/sessions/${sid}`);
  assert.equal(saved.failed_turns[0].error.code, 'stream_cut');

  // Retry: the failed answer is replaced, the question is not repeated, in the page or in the session.
  const before = await page.locator('article.msg-assistant').count();
  await reloaded.getByRole('button', { name: 'Retry' }).click();
  await waitFor(async () => /one per line/.test(await page.locator('article.msg-assistant').last().textContent()) && !(await page.locator('#send').isDisabled()), { what: 'the retried answer' });
  assert.equal(await page.locator('article.msg-assistant').count(), before, 'the failed answer was replaced');
  assert.equal(await page.locator('article.msg-user').count(), 1);
  assert.equal(await page.locator('.turn-error').count(), 0);
  assert.equal(await page.getByRole('button', { name: 'Retry' }).count(), 0);
  const after = await studio.api(`/api/chat/sessions/${sid}`);
  assert.deepEqual(after.messages.map((m) => [m.role, m.content]), [['user', QUESTION], ['assistant', 'It renders shapes as text, one per line.']]);
  assert.equal(after.failed_turns, undefined);
  const sentToModel = llm.requests.at(-1).messages.filter((m) => m.role === 'user' && m.content.includes(QUESTION));
  assert.equal(sentToModel.length, 1, 'the question went to the model once');
  assert.deepEqual(page.errors, []);
  await screenshot(page, 'studio-chat-retried');
  await context.close();
});

test('a typing indicator shows from send until the first words, with the seconds waited', async () => {
  llm.reset();
  llm.reply(Reply.text(['Hello ', 'there.']).delay(2600));
  const { context, page } = await openStudio();
  const sent = await send(page, 'hi');
  const typing = page.locator('article.msg-assistant .typing');
  await typing.waitFor({ state: 'visible', timeout: 2000 });
  assert.match(await typing.textContent(), /waiting for the model/);
  assert.equal(await typing.getAttribute('role'), 'status');
  await waitFor(async () => /\b[12] s\b/.test(await typing.textContent()), { timeout: 2500, what: 'the seconds waited' });
  await screenshot(page, 'studio-chat-typing');
  await turnDone(page, sent);
  assert.equal(await page.locator('.typing').count(), 0, 'the indicator is gone once the answer came');
  assert.equal(await page.locator('article.msg-assistant').last().locator('.md').textContent(), 'Hello there.');
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('a readFile panel numbers each line once', async () => {
  llm.reset();
  llm.reply(Reply.toolCall('call_read', 'readFile', { path: 'shapes/render.py', start_line: 2, end_line: 6 }));
  llm.when(lastIsToolResult, Reply.text(['Read it.']));
  const { context, page } = await openStudio();
  const sent = await send(page, 'Read lines 2-6 of shapes/render.py');
  await turnDone(page, sent);
  const panel = page.locator('details.tool[data-call-id="call_read"]');
  await waitFor(async () => (await panel.getAttribute('data-status')) === 'ok', { what: 'the read result' });
  const rows = await panel.locator('table.code-lines tr').evaluateAll((trs) => trs.map((tr) => [tr.querySelector('.ln').textContent, tr.querySelector('.code').textContent]));
  const file = fs.readFileSync(path.join(repo, 'shapes/render.py'), 'utf8').split('\n');
  assert.deepEqual(rows, [2, 3, 4, 5, 6].map((n) => [String(n), file[n - 1]]));
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('with the model server down, the banner and the message box are both on screen at 1280x860', async () => {
  const down = await startStudio(makeRepo(), { llmBaseUrl: 'http://127.0.0.1:9/v1' });
  try {
    const { context, page } = await newPage(browser, { width: 1280, height: 860 });
    await page.goto(down.url);
    const banner = page.locator('#llm-banner');
    await banner.waitFor({ state: 'visible' });
    await page.locator('#session-list li').first().waitFor({ state: 'attached' });
    const inView = async (sel) => {
      const b = await page.locator(sel).boundingBox();
      return b && b.y >= 0 && b.y + b.height <= 860 && b.x >= 0 && b.x + b.width <= 1280 ? b : null;
    };
    assert.ok(await inView('#llm-banner'), 'the banner is on screen');
    assert.ok(await inView('#composer-input'), `the message box is on screen: ${JSON.stringify(await page.locator('#composer-input').boundingBox())}`);
    assert.ok(await inView('#send'), 'Send is on screen');
    const scroll = await page.evaluate(() => document.documentElement.scrollHeight - document.documentElement.clientHeight);
    assert.ok(scroll <= 0, `the page does not scroll (${scroll}px)`);
    // The whole message is there for those who want it.
    assert.match(await page.locator('#llm-banner-msg').getAttribute('title'), /127\.0\.0\.1:9.*--port 9 /);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'studio-chat-banner-1280x860.png') });
    assert.deepEqual(page.errors, []);
    await context.close();
  } finally {
    await down.stop();
  }
});
