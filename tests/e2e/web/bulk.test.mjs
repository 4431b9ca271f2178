// "Approve all pending" / "Reject all pending" on the run page: a run whose pack approves
// nothing by itself waits for ten decisions; the page picks five by a glob, says how many match
// before it decides anything, approves them, then rejects the rest under a risk ceiling with a
// reason. Every decision is the server's own (decided_by web), one per approval.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { makeRepo, startStudio, launchBrowser, newPage, screenshot, waitFor } from './support/harness.mjs';

const PKG = ['a', 'b', 'c', 'd', 'e'].map((n) => `pkg/mod_${n}.py`);

let repo;
let studio;
let browser;

before(async () => {
  repo = makeRepo();
  for (const f of PKG) {
    fs.mkdirSync(path.join(repo, 'pkg'), { recursive: true });
    fs.writeFileSync(path.join(repo, f), 'import os\nimport sys\n\n\ndef f():\n    return 1\n');
  }
  fs.writeFileSync(path.join(repo, 'noctune.toml'),
    '[policy_packs.review_all]\nextends = "lint_fix"\nauto_approve = { enabled = false }\n');
  const git = (...args) => execFileSync('git', ['-c', 'core.hooksPath=/dev/null', ...args], { cwd: repo, stdio: 'pipe' });
  git('add', '-A');
  git('-c', 'user.name=Fixture', '-c', 'user.email=fixture@example.com', 'commit', '-q', '-m', 'pkg');
  studio = await startStudio(repo);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await studio?.stop();
});

test('approve the pending edits a glob picks after a confirmation with the count, then reject the rest under a risk ceiling', async () => {
  const { context, page } = await newPage(browser);
  await page.goto(studio.url);
  const { run_id: runId } = await studio.api('/api/runs', { method: 'POST', body: { pack: 'review_all' } });
  await page.goto(`${studio.origin}/studio/runs/${runId}`);
  const box = page.locator('.bulk');
  await waitFor(async () => (await page.locator('#run-status').getAttribute('data-status')) === 'waiting_approval'
    && await box.isVisible(), { timeout: 120000, what: 'the run to wait with the bulk controls shown' });
  const pending = () => studio.api(`/api/runs/${runId}/approvals`).then((r) => r.approvals.filter((a) => a.status === 'pending'));
  const all = await pending();
  assert.ok(all.length > PKG.length, JSON.stringify(all.map((a) => a.file_path)));
  await page.locator('article.approval[data-status="pending"]').nth(all.length - 1).waitFor();

  // The count comes first; nothing is decided until it is confirmed.
  await page.fill('#bulk-glob', 'pkg/*.py');
  await box.getByRole('button', { name: 'Approve all pending…' }).click();
  const confirm = page.locator('[data-testid="bulk-confirm"]');
  await confirm.waitFor();
  assert.match(await confirm.locator('p').textContent(),
    new RegExp(`^Approve 5 pending edits\\? ${all.length - 5} left pending \\(${all.length - 5} not matching pkg/\\*\\.py\\)\\.$`));
  assert.equal((await pending()).length, all.length);
  await screenshot(page, 'run-bulk-confirm-1280');
  await confirm.getByRole('button', { name: 'Approve 5' }).click();
  const msg = page.locator('[data-testid="bulk-msg"]');
  await waitFor(async () => /^Approved 5\./.test(await msg.textContent()), { what: 'the bulk result' });
  await waitFor(async () => (await page.locator('article.approval[data-status="approved"]').count()) === 5,
    { what: 'five approved cards' });
  const approved = (await studio.api(`/api/runs/${runId}/approvals`)).approvals.filter((a) => a.status === 'approved');
  assert.deepEqual(approved.map((a) => a.file_path).sort(), PKG);
  assert.ok(approved.every((a) => a.decision.decided_by === 'web'));

  // Rejecting needs a reason, as for one edit; the risk ceiling leaves the riskiest pending.
  await page.fill('#bulk-glob', '');
  const rest = await pending();
  const ceiling = Math.min(...rest.map((a) => a.risk_score));
  const under = rest.filter((a) => a.risk_score <= ceiling).length;
  await page.fill('#bulk-max-risk', String(ceiling));
  await box.getByRole('button', { name: 'Reject all pending…' }).click();
  await waitFor(async () => /Say why/.test(await msg.textContent()), { what: 'the reason hint' });
  assert.equal(await confirm.isVisible(), false);
  await page.fill('#bulk-reason', 'not in this pass');
  await box.getByRole('button', { name: 'Reject all pending…' }).click();
  await confirm.waitFor();
  assert.match(await confirm.locator('p').textContent(), new RegExp(`^Reject ${under} pending edits?\\?.*risk > ${ceiling}`));
  await confirm.getByRole('button', { name: `Reject ${under}` }).click();
  await waitFor(async () => new RegExp(`^Rejected ${under}\\.`).test(await msg.textContent()), { what: 'the reject result' });
  const rejected = (await studio.api(`/api/runs/${runId}/approvals`)).approvals.filter((a) => a.status === 'rejected');
  assert.equal(rejected.length, under);
  assert.ok(rejected.every((a) => a.decision.reason === 'not in this pass' && a.risk_score <= ceiling));
  assert.equal((await pending()).length, rest.length - under);
  assert.deepEqual(page.errors, []);
  await context.close();
});
