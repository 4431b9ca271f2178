// A scripted OpenAI-compatible model server for the browser tests: the Node twin of
// tests/it/support/llm_server.rs. It speaks llama-server's wire format the same way:
// llama-server's headers, one HTTP chunk per SSE event, chunks with id/object/created/model/
// system_fingerprint in llama-server's key order, a role chunk first, content (and
// reasoning_content) deltas, tool_calls deltas split in pieces (index/id/type/name first with
// empty arguments, then 4-character argument pieces), a finish chunk, then (with
// stream_options.include_usage) a `"choices": []` chunk carrying usage and timings, then
// `data: [DONE]`. Without include_usage the timings ride on the finish chunk.
//
// Scripting, per test: replies are consumed one per chat request in this order: the first
// matching rule (`when`), else the queue (`reply`), else the fallback, else a 500 naming the
// unscripted request. Every chat request body is recorded (`requests`).
//
//   const llm = await ScriptedLlm.start();
//   llm.reply(Reply.toolCall('call_1', 'writeFile', { path: 'a.py', content: 'x' }));
//   llm.when(lastIsToolResult, Reply.text(['Done', '.']));
//   ... llm.baseUrl  // http://127.0.0.1:PORT/v1
//   await llm.close();
import http from 'node:http';

export const MODEL = 'tiny-qwen2-random.gguf';
export const FINGERPRINT = 'b0-unknown';
const ARG_PIECE_CHARS = 4;

function pieces(s) {
  const chars = Array.from(s);
  const out = [];
  for (let i = 0; i < chars.length; i += ARG_PIECE_CHARS) out.push(chars.slice(i, i + ARG_PIECE_CHARS).join(''));
  return out;
}

const js = (v) => JSON.stringify(v);

function errorBody(code, message, type) {
  return `{"error":{"code":${code},"message":${js(message)},"type":${js(type)}}}`;
}

export class Reply {
  constructor() {
    this.content = [];
    this.reasoning = [];
    this.calls = [];
    this.httpError = null;
    this.delayMs = 0;
    this.gapMs = 0;
    this.finish = null;
    this.usageOverride = null;
    this.timingsOverride = null;
    this.identityOverride = null;
    this.cutAfterEvents = null;
  }
  /** A plain answer streamed as these content pieces. */
  static text(parts) { const r = new Reply(); r.content = [...parts]; return r; }
  /** One native tool call; `args` is an object or a JSON string. */
  static toolCall(id, name, args) { return new Reply().withToolCall(id, name, args); }
  static httpError(status, message) { const r = new Reply(); r.httpError = { status, body: errorBody(status, message, 'server_error') }; return r; }
  withText(parts) { this.content.push(...parts); return this; }
  withReasoning(parts) { this.reasoning.push(...parts); return this; }
  withToolCall(id, name, args) { this.calls.push({ id, name, arguments: typeof args === 'string' ? args : js(args) }); return this; }
  delay(ms) { this.delayMs = ms; return this; }
  /** Default: `tool_calls` when the reply has calls, else `stop`. */
  finishReason(reason) { this.finish = reason; return this; }
  /** Default: the prompt's characters / 4 and one token per streamed piece. */
  usage(promptTokens, completionTokens) { this.usageOverride = [promptTokens, completionTokens]; return this; }
  /** llama-server's timings object, keys in its order. */
  timings(t) { this.timingsOverride = t; return this; }
  /** Fixes the completion id and created (e.g. to reproduce a recording byte for byte). */
  identity(id, created) { this.identityOverride = { id, created }; return this; }
  gap(ms) { this.gapMs = ms; return this; }
  /** Drops the connection after `n` events (the role chunk counts): no finish chunk, no [DONE], no
   * end of the chunked body, as when llama-server crashes or is restarted mid-answer. */
  cutAfter(n) { this.cutAfterEvents = n; return this; }
}

// ---- request predicates ----
const messages = (req) => (Array.isArray(req?.messages) ? req.messages : []);
const text = (m) => (typeof m?.content === 'string' ? m.content : Array.isArray(m?.content) ? m.content.map((p) => p.text || '').join('') : '');
export const lastIsToolResult = (req) => messages(req).at(-1)?.role === 'tool';
export const lastUserText = (req) => text([...messages(req)].reverse().find((m) => m.role === 'user'));
/** The content of the last tool result, parsed (or the raw string). */
export function lastToolResult(req) {
  const m = messages(req).at(-1);
  if (m?.role !== 'tool') return null;
  try { return JSON.parse(text(m)); } catch { return text(m); }
}

const ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

class Ctx {
  constructor(req, reply) {
    // `chatcmpl-` and 32 letters/digits, like llama-server's ids.
    this.id = reply.identityOverride?.id ?? `chatcmpl-${Array.from({ length: 32 }, () => ALPHABET[Math.floor(Math.random() * ALPHABET.length)]).join('')}`;
    this.created = reply.identityOverride?.created ?? Math.floor(Date.now() / 1000);
    this.includeUsage = req?.stream_options?.include_usage === true;
    const chars = messages(req).reduce((n, m) => n + text(m).length, 0);
    this.promptTokens = Math.max(1, Math.floor(chars / 4));
  }
  chunk(choices, tail = '') {
    return `{"choices":${choices},"created":${this.created},"id":${js(this.id)},"model":${js(MODEL)},"system_fingerprint":${js(FINGERPRINT)},"object":"chat.completion.chunk"${tail}}`;
  }
  delta(d) { return this.chunk(`[{"finish_reason":null,"index":0,"delta":${d}}]`); }
  tokens(r) {
    if (r.usageOverride) return r.usageOverride;
    const n = r.reasoning.length + r.content.length + r.calls.reduce((a, c) => a + 1 + pieces(c.arguments).length, 0);
    return [this.promptTokens, Math.max(1, n)];
  }
  usage(r) {
    const [p, c] = this.tokens(r);
    return `{"completion_tokens":${c},"prompt_tokens":${p},"total_tokens":${p + c},"prompt_tokens_details":{"cached_tokens":0}}`;
  }
  timings(r) {
    if (r.timingsOverride) return js(r.timingsOverride);
    const [p, c] = this.tokens(r);
    return js({ cache_n: 0, prompt_n: p, prompt_ms: p * 2.5, prompt_per_token_ms: 2.5, prompt_per_second: 400.0,
      predicted_n: c, predicted_ms: c * 7.5, predicted_per_token_ms: 7.5, predicted_per_second: 1000 / 7.5 });
  }
  events(r) {
    const out = [this.delta('{"role":"assistant","content":null}')];
    for (const p of r.reasoning) out.push(this.delta(`{"reasoning_content":${js(p)}}`));
    for (const p of r.content) out.push(this.delta(`{"content":${js(p)}}`));
    r.calls.forEach((c, index) => {
      out.push(this.delta(`{"tool_calls":[{"index":${index},"id":${js(c.id)},"type":"function","function":{"name":${js(c.name)},"arguments":""}}]}`));
      for (const p of pieces(c.arguments)) out.push(this.delta(`{"tool_calls":[{"index":${index},"function":{"arguments":${js(p)}}}]}`));
    });
    const finish = `[{"finish_reason":${js(r.finish ?? (r.calls.length ? 'tool_calls' : 'stop'))},"index":0,"delta":{}}]`;
    if (this.includeUsage) {
      out.push(this.chunk(finish));
      out.push(this.chunk('[]', `,"usage":${this.usage(r)},"timings":${this.timings(r)}`));
    } else {
      out.push(this.chunk(finish, `,"timings":${this.timings(r)}`));
    }
    out.push('[DONE]');
    return out;
  }
}

function models() {
  return js({
    models: [{ name: MODEL, model: MODEL, modified_at: '', size: '', digest: '', type: 'model', description: '', tags: [''], capabilities: ['completion'], parameters: '',
      details: { parent_model: '', format: 'gguf', family: '', families: [''], parameter_size: '', quantization_level: '' } }],
    object: 'list',
    data: [{ id: MODEL, aliases: [MODEL], tags: [], object: 'model', created: Math.floor(Date.now() / 1000), owned_by: 'llamacpp',
      meta: { vocab_type: 2, n_vocab: 151936, n_ctx: 16384, n_ctx_train: 16384, n_embd: 64, n_params: 9806144, size: 19612928, ftype: 'F16' } }],
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class ScriptedLlm {
  constructor() {
    this.queue = [];
    this.rules = [];
    this.fallbackFn = null;
    this.requests = [];
    this.server = null;
    this.port = 0;
  }

  static async start() {
    const s = new ScriptedLlm();
    s.server = http.createServer((req, res) => s.handle(req, res));
    s.server.keepAliveTimeout = 5000;
    await new Promise((resolve) => s.server.listen(0, '127.0.0.1', resolve));
    s.port = s.server.address().port;
    return s;
  }

  get baseUrl() { return `http://127.0.0.1:${this.port}/v1`; }

  reply(r) { this.queue.push(r); return this; }
  /** Answers every matching request (or only `times` of them) with `r`. */
  when(pred, r, times = Infinity) { this.rules.push({ pred, reply: r, left: times }); return this; }
  fallback(fn) { this.fallbackFn = fn; return this; }
  /** Forgets the script (not the recorded requests). */
  reset() { this.queue = []; this.rules = []; this.fallbackFn = null; return this; }

  next(req, n) {
    for (const rule of this.rules) {
      if (rule.left > 0 && rule.pred(req)) { rule.left -= 1; return typeof rule.reply === 'function' ? rule.reply(req) : rule.reply; }
    }
    if (this.queue.length) return this.queue.shift();
    if (this.fallbackFn) return this.fallbackFn(req);
    return Reply.httpError(500, `scripted LLM: no reply scripted for chat request #${n} (last user message: ${js(lastUserText(req))})`);
  }

  async handle(req, res) {
    res.sendDate = false;
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const raw = Buffer.concat(chunks).toString('utf8');
    const path = (req.url || '/').split('?')[0];
    const json = (status, body, close) => {
      res.writeHead(status, { Server: 'llama.cpp', 'Access-Control-Allow-Origin': '', 'Content-Type': 'application/json; charset=utf-8',
        'Content-Length': Buffer.byteLength(body), ...(close ? { Connection: 'close' } : { 'Keep-Alive': 'timeout=5, max=100' }) });
      res.end(body);
    };
    const isChat = req.method === 'POST' && (path === '/v1/chat/completions' || path === '/chat/completions');
    if (!isChat) {
      if (req.method === 'GET' && (path === '/v1/models' || path === '/models')) return json(200, models(), false);
      if (req.method === 'GET' && (path === '/health' || path === '/v1/health')) return json(200, '{"status":"ok"}', false);
      return json(404, errorBody(404, 'File Not Found', 'not_found_error'), true);
    }
    let body;
    try { body = JSON.parse(raw); } catch (e) { return json(400, errorBody(400, `invalid JSON body: ${e.message}`, 'invalid_request_error'), true); }
    if (!Array.isArray(body.messages)) return json(400, errorBody(400, "Expected 'messages' to be an array", 'invalid_request_error'), true);
    this.requests.push(body);
    const reply = this.next(body, this.requests.length);
    if (reply.delayMs) await sleep(reply.delayMs);
    if (reply.httpError) return json(reply.httpError.status, reply.httpError.body, true);
    const ctx = new Ctx(body, reply);
    if (body.stream !== true) {
      const message = { role: 'assistant', content: reply.content.join('') };
      if (reply.calls.length) message.tool_calls = reply.calls.map((c) => ({ type: 'function', function: { name: c.name, arguments: c.arguments }, id: c.id }));
      return json(200, `{"choices":[{"finish_reason":${js(reply.finish ?? (reply.calls.length ? 'tool_calls' : 'stop'))},"index":0,"message":${js(message)}}],"created":${ctx.created},"model":${js(MODEL)},"system_fingerprint":${js(FINGERPRINT)},"object":"chat.completion","usage":${ctx.usage(reply)},"id":${js(ctx.id)},"timings":${ctx.timings(reply)}}`, false);
    }
    res.writeHead(200, { Server: 'llama.cpp', 'Access-Control-Allow-Origin': '', 'X-Accel-Buffering': 'no', 'Content-Type': 'text/event-stream',
      'Transfer-Encoding': 'chunked', 'Keep-Alive': 'timeout=5, max=100' });
    const events = ctx.events(reply);
    for (let i = 0; i < events.length; i++) {
      if (reply.cutAfterEvents === i) {
        // Let the written chunks reach the client, then break the connection.
        await new Promise((r) => res.write('', r));
        res.socket?.destroy();
        return;
      }
      if (i > 0 && reply.gapMs) await sleep(reply.gapMs);
      res.write(`data: ${events[i]}\n\n`);
    }
    res.end();
  }

  async close() {
    this.server.closeAllConnections?.();
    await new Promise((r) => this.server.close(() => r()));
  }
}
