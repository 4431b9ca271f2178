// What every browser test needs: a real git repository made from fixtures/pyproj, the real
// `noctune studio` binary serving it (its printed URL parsed), the scripted model server, and
// real Chromium (Debian's chromium-headless-shell) driven by playwright-core.
import { chromium } from 'playwright-core';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, '../../../..');
export const SCREENSHOTS = path.resolve(here, '../screenshots');
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium-headless-shell';
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

export function noctuneBin() {
  if (process.env.NOCTUNE_BIN) return process.env.NOCTUNE_BIN;
  const target = process.env.CARGO_TARGET_DIR || path.join(os.homedir(), '.cache/noctune-target');
  return path.join(target, 'debug', 'noctune');
}

function copyDir(from, to) {
  fs.mkdirSync(to, { recursive: true });
  for (const e of fs.readdirSync(from, { withFileTypes: true })) {
    if (['__pycache__', '.pytest_cache', '.ruff_cache', '.noctune_cache'].includes(e.name)) continue;
    const s = path.join(from, e.name);
    const d = path.join(to, e.name);
    if (e.isDirectory()) copyDir(s, d); else fs.copyFileSync(s, d);
  }
}

/** A git repository (branch main, one commit) with fixtures/<name> in a temp dir. */
export function makeRepo(name = 'pyproj') {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'noctune-web-repo-')));
  copyDir(path.join(ROOT, 'fixtures', name), dir);
  const git = (...args) => execFileSync('git', ['-c', 'core.hooksPath=/dev/null', ...args], { cwd: dir, stdio: 'pipe' });
  git('init', '-q', '-b', 'main');
  git('add', '-A');
  git('-c', 'user.name=Fixture', '-c', 'user.email=fixture@example.com', 'commit', '-q', '-m', 'initial');
  return dir;
}

/** `noctune studio --repo REPO --port 0 --no-open`, with a private audit DB. */
export async function startStudio(repo, { llmBaseUrl, env = {} } = {}) {
  const dbDir = fs.mkdtempSync(path.join(os.tmpdir(), 'noctune-web-db-'));
  const childEnv = { ...process.env, NOCTUNE_STUDIO_DB: path.join(dbDir, 'audit.sqlite'), ...env };
  delete childEnv.NOCTUNE_STUDIO_ALLOWED_ROOTS;
  if (llmBaseUrl) {
    childEnv.NOCTUNE_STUDIO_LLM_BASE_URL = llmBaseUrl;
    childEnv.NOCTUNE_STUDIO_LLM_MODEL = 'tiny-qwen2-random.gguf';
  } else {
    delete childEnv.NOCTUNE_STUDIO_LLM_BASE_URL;
  }
  const child = spawn(noctuneBin(), ['studio', '--repo', repo, '--port', '0', '--no-open'], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const rl = readline.createInterface({ input: child.stdout });
  const line = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no URL from noctune studio; stderr: ${stderr}`)), 20000);
    rl.once('line', (l) => { clearTimeout(timer); resolve(l); });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`noctune studio exited ${code}: ${stderr}`)); });
  });
  const m = /^Noctune Studio: (http:\/\/127\.0\.0\.1:(\d+))\/studio\?token=([0-9a-f]{64})$/.exec(line);
  if (!m) throw new Error(`unexpected first line: ${line}`);
  const studio = {
    url: `${m[1]}/studio?token=${m[3]}`, origin: m[1], port: Number(m[2]), token: m[3], repo, db: path.join(dbDir, 'audit.sqlite'),
    stderr: () => stderr,
    /** The API with the Bearer token (a test's own view, next to the browser's). */
    async api(p, { method = 'GET', body } = {}) {
      const res = await fetch(`${m[1]}${p}`, {
        method, headers: { Authorization: `Bearer ${m[3]}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${text}`);
      return JSON.parse(text);
    },
    runJson(runId) {
      return JSON.parse(fs.readFileSync(path.join(repo, '.noctune_cache/runs', runId, 'state/run.json'), 'utf8'));
    },
    eventsJsonl(runId) {
      return fs.readFileSync(path.join(repo, '.noctune_cache/runs', runId, 'events.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    },
    /** Stops the runs still live (their workers outlive the server), then the server. */
    async stop() {
      try {
        const { runs } = await this.api('/api/runs');
        await Promise.all(runs.filter((r) => !['done', 'failed', 'stopped'].includes(r.status))
          .map((r) => this.api(`/api/runs/${r.run_id}/stop?grace_secs=2`, { method: 'POST' }).catch(() => {})));
      } catch { /* the server is gone already */ }
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => { child.once('exit', r); setTimeout(r, 3000); });
      }
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
  return studio;
}

export async function launchBrowser() {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
}

/** A page whose console errors and page errors fail the test when asserted via `errors`. */
export async function newPage(browser, { width = 1280, height = 900 } = {}) {
  const context = await browser.newContext({ viewport: { width, height } });
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') page.errors.push(`console: ${m.text()}`); });
  return { context, page };
}

export async function screenshot(page, name) {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

export async function waitFor(fn, { timeout = 30000, interval = 100, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}
