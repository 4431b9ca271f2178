// M6 in the browser: start a run from /studio/runs, watch it block on a risky edit, read the
// diff, approve (or reject with a reason) in the page, follow it to done and see its commits.
// At every step the UI's status, the API's status and run.json must agree.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { makeRepo, startStudio, launchBrowser, newPage, screenshot, waitFor } from './support/harness.mjs';

let repo;
let studio;
let browser;

before(async () => {
  repo = makeRepo();
  studio = await startStudio(repo);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await studio?.stop();
});

/** Waits until the page's status badge, GET /api/runs/{id} and run.json say the same, and
 *  returns it. */
async function agreed(page, runId, want) {
  let last = '';
  return waitFor(async () => {
    const ui = await page.locator('#run-status').getAttribute('data-status');
    const api = (await studio.api(`/api/runs/${runId}`)).status;
    const file = studio.runJson(runId).status;
    last = `ui=${ui} api=${api} run.json=${file}`;
    if (ui === api && api === file && (!want || ui === want)) return ui;
    return false;
  }, { timeout: 120000, what: `UI, API and run.json to agree${want ? ` on ${want}` : ''} (${last})` });
}

async function startFromRunsPage(page) {
  await page.goto(`${studio.origin}/studio/runs`);
  await page.locator('#pack option[value="lint_fix"]').waitFor({ state: 'attached' });
  await page.selectOption('#pack', 'lint_fix');
  await page.getByRole('button', { name: 'Start run' }).click();
  const link = page.locator('#start-msg a');
  await link.waitFor();
  const runId = (await link.textContent()).trim();
  // The list refreshes by itself and shows the run with the API's status.
  const row = page.locator(`tr[data-run-id="${runId}"]`);
  await row.waitFor();
  assert.equal(await row.locator('td[data-label="Pack"]').textContent(), 'lint_fix');
  await screenshot(page, 'runs-list-1280');
  await link.click();
  await page.waitForURL(`**/studio/runs/${runId}`);
  return runId;
}

test('a risky edit blocks the run, is approved in the browser, the run ends done with commits listed; statuses agree at each step', async () => {
  const { context, page } = await newPage(browser);
  await page.goto(studio.url);
  const runId = await startFromRunsPage(page);
  const first = await agreed(page, runId);
  assert.ok(['queued', 'running', 'waiting_approval'].includes(first), first);

  assert.equal(await agreed(page, runId, 'waiting_approval'), 'waiting_approval');
  const card = page.locator('article.approval[data-status="pending"]');
  await card.waitFor();
  assert.equal(await card.count(), 1);
  assert.equal(await card.locator('.appr-head .file').textContent(), 'shapes/render.py');
  assert.match(await card.locator('.risk').textContent(), /^risk \d+\/100$/);
  assert.match(await card.locator('.reason').textContent(), /max_risk/);
  assert.ok(await card.locator('table.diff tr.add').count() > 0, 'added lines colored');
  assert.ok(await card.locator('table.diff tr.del').count() > 0, 'removed lines colored');
  const numbers = await card.locator('table.diff tr.add td.ln').nth(1).textContent();
  assert.match(numbers, /^\d+$/, 'new line numbers shown');
  const addBg = await card.locator('table.diff tr.add').first().evaluate((tr) => getComputedStyle(tr).backgroundColor);
  const delBg = await card.locator('table.diff tr.del').first().evaluate((tr) => getComputedStyle(tr).backgroundColor);
  assert.notEqual(addBg, delBg);
  // The event tail shows the request (live, from events.jsonl).
  await page.locator('#events li[data-type="approval_requested"]').waitFor();
  await screenshot(page, 'run-waiting-approval-1280');
  await page.setViewportSize({ width: 400, height: 860 });
  await screenshot(page, 'run-waiting-approval-400');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `no horizontal page scrolling at 400 px (${overflow}px)`);
  await page.setViewportSize({ width: 1280, height: 900 });

  await card.locator('input.reason-input').fill('reviewed in the browser');
  await card.getByRole('button', { name: 'Approve' }).click();
  const decided = page.locator('article.approval[data-status="approved"]');
  await decided.waitFor();
  assert.match(await decided.locator('.decided').textContent(), /Approved by web .*: reviewed in the browser/);
  const api = (await studio.api(`/api/runs/${runId}/approvals`)).approvals.find((a) => a.file_path === 'shapes/render.py');
  assert.equal(api.status, 'approved');
  assert.equal(api.decision.decided_by, 'web');

  assert.equal(await agreed(page, runId, 'done'), 'done');
  const commits = page.locator('ul.commits li');
  await waitFor(async () => (await commits.count()) > 0, { what: 'commits in the UI' });
  const apiCommits = (await studio.api(`/api/runs/${runId}/patchsets`)).commits;
  assert.equal(await commits.count(), apiCommits.length);
  // Labels count committed patchsets: `[patchset N]`, and `[patchset N/N]` on the last one.
  for (let i = 0; i < apiCommits.length; i++) {
    const label = i + 1 === apiCommits.length ? `${i + 1}/${apiCommits.length}` : `${i + 1}`;
    assert.match(await commits.nth(i).textContent(), new RegExp(`Noctune Studio: lint_fix \\(#${runId}\\) \\[patchset ${label}\\]`));
  }
  assert.ok(await page.locator('ol.patchsets li[data-status="committed"]').count() > 0);
  await page.locator('#events li[data-type="run_done"]').waitFor();
  assert.equal(await page.locator('#ev-state').textContent(), 'run ended');
  // The closing summary is run.json's: outcome, counts, and how the checks did on the base commit.
  const rj = studio.runJson(runId);
  const summary = page.locator('#run-summary');
  await summary.waitFor();
  assert.equal(await summary.locator('[data-testid="run-outcome"]').textContent(), `${rj.commits} commit${rj.commits === 1 ? '' : 's'} on ${rj.branch}`);
  const counts = await summary.locator('[data-testid="run-counts"]').textContent();
  assert.match(counts, new RegExp(`^${rj.summary.files_proposed} files? proposed · ${rj.summary.auto_approved} auto-approved · 1 approved · 0 rejected`));
  assert.ok(rj.summary.baselines.length > 0, 'the pack runs checks, so there is a baseline');
  const baselines = await summary.locator('[data-testid="baselines"] li').allTextContents();
  assert.deepEqual(baselines.map((t) => t.split(' on the base commit: ')[0]), rj.summary.baselines.map((b) => b.tool));
  const baselineEvent = await page.locator('#events li[data-type="check_baseline"]').first().textContent();
  assert.match(baselineEvent, / on the base commit: /);
  assert.equal(await page.locator('#stop-btn').isDisabled(), true);
  await screenshot(page, 'run-done-1280');

  // The runs list agrees too.
  await page.goto(`${studio.origin}/studio/runs`);
  const row = page.locator(`tr[data-run-id="${runId}"]`);
  await waitFor(async () => (await row.locator('.badge').getAttribute('data-status')) === 'done', { what: 'done in the list' });
  await page.setViewportSize({ width: 400, height: 860 });
  await screenshot(page, 'runs-list-400');
  const listOverflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(listOverflow <= 0, `no horizontal page scrolling at 400 px (${listOverflow}px)`);
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('reject with a reason, keyboard only: the reason is in the audit (API and SQLite) and the run still ends done', async () => {
  const { context, page } = await newPage(browser);
  await page.goto(studio.url);
  const runId = await startFromRunsPage(page);
  await agreed(page, runId, 'waiting_approval');
  const card = page.locator('article.approval[data-status="pending"]');
  await card.waitFor();
  const input = card.locator('input.reason-input');
  // Reject needs a reason: the page says so and nothing is decided.
  await input.focus();
  await page.keyboard.press('Tab'); // Approve
  await page.keyboard.press('Tab'); // Reject
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Reject');
  await page.keyboard.press('Enter');
  await waitFor(async () => /Say why/.test(await card.locator('.msg').textContent()), { what: 'the reason hint' });
  assert.equal((await studio.api(`/api/runs/${runId}/approvals`)).approvals.find((a) => a.status === 'pending')?.file_path, 'shapes/render.py');
  // Now with a reason, by keyboard: focus went back to the reason box.
  assert.equal(await page.evaluate(() => document.activeElement.classList.contains('reason-input')), true);
  await page.keyboard.type('renames public API; not in a lint pass');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  const rejected = page.locator('article.approval[data-status="rejected"]');
  await rejected.waitFor();
  assert.match(await rejected.locator('.decided').textContent(), /Rejected by web .*: renames public API; not in a lint pass/);
  await screenshot(page, 'run-rejected');
  assert.equal(await agreed(page, runId, 'done'), 'done');
  // The audit: the API's approvals and the SQLite event log both carry the reason.
  const a = (await studio.api(`/api/runs/${runId}/approvals`)).approvals.find((x) => x.file_path === 'shapes/render.py');
  assert.equal(a.status, 'rejected');
  assert.equal(a.decision.reason, 'renames public API; not in a lint pass');
  assert.equal(a.decision.decided_by, 'web');
  const db = await studio.api(`/runs/${runId}/events_db?cursor=0&limit=5000`);
  const ev = db.events.find((e) => e.type === 'approval_decided');
  assert.ok(ev, 'approval_decided is in the audit DB');
  assert.equal(ev.payload.decision, 'reject');
  assert.equal(ev.payload.reason, 'renames public API; not in a lint pass');
  assert.equal(ev.payload.decided_by, 'web');
  const ps = await studio.api(`/api/runs/${runId}/patchsets`);
  assert.ok(!ps.patchsets.some((p) => p.files.includes('shapes/render.py')), 'the rejected edit was not committed');
  await waitFor(async () => /\b1 rejected\b/.test(await page.locator('[data-testid="run-counts"]').textContent().catch(() => '')), { what: 'the summary counts the rejection' });
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('stop from the run page ends the run stopped; UI, API and run.json agree', async () => {
  const { context, page } = await newPage(browser);
  await page.goto(studio.url);
  const runId = await startFromRunsPage(page);
  await agreed(page, runId, 'waiting_approval');
  await page.getByRole('button', { name: 'Stop run' }).click();
  assert.equal(await agreed(page, runId, 'stopped'), 'stopped');
  await page.locator('#events li[data-type="stopped"]').waitFor();
  assert.equal(await page.getByRole('button', { name: 'Resume run' }).isVisible(), true);
  await screenshot(page, 'run-stopped');
  assert.deepEqual(page.errors, []);
  await context.close();
});
