// The Node scripted model server speaks llama-server's format: checked byte for byte against
// the recording in fixtures/llm/recordings/ (the same check tests/it/llm_client.rs makes of the
// Rust twin), and for the tool-call delta shape.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ScriptedLlm, Reply } from './support/llm-server.mjs';

const rec = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../fixtures/llm/recordings');

/** POSTs `body` over a raw socket and returns {head, chunks}: the exact header block and the
 *  HTTP chunk payloads. */
function rawPost(port, body) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    const payload = JSON.stringify(body);
    s.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(payload)}\r\nConnection: close\r\n\r\n${payload}`);
    const parts = [];
    s.on('data', (d) => parts.push(d));
    s.on('error', reject);
    s.on('end', () => {
      const raw = Buffer.concat(parts);
      const i = raw.indexOf('\r\n\r\n');
      const head = raw.subarray(0, i).toString('utf8');
      let rest = raw.subarray(i + 4);
      const chunks = [];
      for (;;) {
        const j = rest.indexOf('\r\n');
        const size = parseInt(rest.subarray(0, j).toString('latin1'), 16);
        if (!size) break;
        chunks.push(rest.subarray(j + 2, j + 2 + size).toString('utf8'));
        rest = rest.subarray(j + 2 + size + 2);
      }
      resolve({ head, chunks });
    });
  });
}

test('a streamed answer is the recording byte for byte, one HTTP chunk per event', async () => {
  const sse = fs.readFileSync(path.join(rec, 'plain-stream.sse'), 'utf8');
  const events = sse.split('\n\n').filter(Boolean).map((e) => `${e}\n\n`);
  const datas = events.map((e) => e.slice('data: '.length, -2)).filter((d) => d !== '[DONE]').map((d) => JSON.parse(d));
  const pieces = datas.filter((d) => d.choices[0]?.delta?.content).map((d) => d.choices[0].delta.content);
  const last = datas.at(-1);
  const reply = Reply.text(pieces).finishReason(datas.at(-2).choices[0].finish_reason)
    .usage(last.usage.prompt_tokens, last.usage.completion_tokens).timings(last.timings).identity(last.id, last.created);
  const llm = await ScriptedLlm.start();
  try {
    llm.reply(reply);
    const { head, chunks } = await rawPost(llm.port, { messages: [{ role: 'user', content: 'hi' }], stream: true, stream_options: { include_usage: true } });
    const want = fs.readFileSync(path.join(rec, 'plain-stream.headers'), 'utf8').trim().split('\n').map((l) => l.replace(/\r$/, ''));
    const got = head.split('\r\n');
    assert.deepEqual(got.filter((l) => !/^connection:/i.test(l)), want);
    // The recording's `created` varies by a second between chunks; ours is one value.
    const norm = (s) => s.replace(/"created":\d+/g, '"created":0');
    assert.deepEqual(chunks.map(norm), events.map(norm));
  } finally {
    await llm.close();
  }
});

test('tool calls stream index/id/type/name first, then arguments in small pieces', async () => {
  const llm = await ScriptedLlm.start();
  try {
    llm.reply(Reply.text(['Let me ', 'look.']).withToolCall('call_1', 'readFile', { path: 'shapes/geometry.py' }).withToolCall('call_2', 'search', { pattern: 'area' }));
    const { chunks } = await rawPost(llm.port, { messages: [{ role: 'user', content: 'x' }], stream: true });
    const datas = chunks.map((c) => c.slice(6, -2));
    assert.equal(datas.at(-1), '[DONE]');
    const objs = datas.slice(0, -1).map((d) => JSON.parse(d));
    assert.deepEqual(objs[0].choices[0].delta, { role: 'assistant', content: null });
    const calls = objs.flatMap((o) => o.choices[0]?.delta?.tool_calls ?? []);
    assert.deepEqual(calls[0], { index: 0, id: 'call_1', type: 'function', function: { name: 'readFile', arguments: '' } });
    const args0 = calls.filter((c) => c.index === 0).map((c) => c.function.arguments).join('');
    assert.deepEqual(JSON.parse(args0), { path: 'shapes/geometry.py' });
    assert.ok(calls.filter((c) => c.index === 0).length > 5, 'arguments arrive in many pieces');
    assert.ok(calls.filter((c) => c.index === 1)[0].id === 'call_2');
    const fin = objs.at(-1);
    assert.equal(fin.choices[0].finish_reason, 'tool_calls');
    assert.ok(fin.timings, 'without include_usage the timings ride on the finish chunk');
    assert.equal(llm.requests.length, 1);
  } finally {
    await llm.close();
  }
});
