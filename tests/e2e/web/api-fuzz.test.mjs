// The API survives a property-based fuzz run against its own OpenAPI document (schemathesis):
// no 5xx, every status and content type documented, answers fit their schemas, and requests
// that break the schema are refused. run-web.sh installs schemathesis (pinned, from PyPI) and
// passes its path in SCHEMATHESIS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeRepo, startStudio } from './support/harness.mjs';
import { ScriptedLlm, Reply } from './support/llm-server.mjs';

const ST = process.env.SCHEMATHESIS || 'st';

test('schemathesis finds no 5xx and no contract violation in /api/openapi.json', async () => {
  const probe = spawnSync(ST, ['--version'], { encoding: 'utf8' });
  assert.equal(probe.status, 0, `schemathesis is needed (tests/e2e/run-web.sh installs it): ${probe.error || probe.stderr}`);
  const llm = await ScriptedLlm.start();
  llm.fallback(() => Reply.text(['Fuzzed ', 'answer.']));
  const studio = await startStudio(makeRepo(), { llmBaseUrl: llm.baseUrl });
  try {
    const checks = ['not_a_server_error', 'status_code_conformance', 'content_type_conformance', 'response_schema_conformance', 'negative_data_rejection'];
    // Not spawnSync: the scripted model server lives in this process's event loop.
    const r = await new Promise((resolve) => {
      // schemathesis keeps a cache in its working directory: not in the repository.
      const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'noctune-fuzz-'));
      const child = spawn(ST, ['run', `${studio.origin}/api/openapi.json`, '-H', `Authorization: Bearer ${studio.token}`,
        '--checks', checks.join(','), '--max-examples', process.env.FUZZ_EXAMPLES || '20', '--seed', '1', '--no-color'], { cwd });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => { stdout += d; });
      child.stderr.on('data', (d) => { stderr += d; });
      const timer = setTimeout(() => child.kill('SIGKILL'), 600000);
      child.on('close', (status) => { clearTimeout(timer); resolve({ status, stdout, stderr }); });
    });
    const out = `${r.stdout}\n${r.stderr}`;
    const summary = out.split('\n').filter((l) => /generated|passed|failed|ST\d{3}/.test(l)).join('\n');
    console.log(summary);
    assert.equal(r.status, 0, `schemathesis found problems:\n${out.slice(-6000)}`);
    assert.match(out, /\d+ generated, \d+ passed/);
    assert.doesNotMatch(studio.stderr(), /panicked/);
  } finally {
    await studio.stop();
    await llm.close();
  }
});
