// Tool errors as the official MCP TypeScript SDK (`@modelcontextprotocol/sdk` from npm, pinned in
// tests/e2e/mcp/package.json) sees them, over stdio (`noctune mcp --repo R`) and over Streamable
// HTTP (`noctune studio --repo R`'s /mcp with the token as a Bearer header).
//
// For each transport:
//  - tools/list: the six tools, each with an outputSchema, and no `format` outside JSON Schema
//    2020-12's defined set anywhere in a published schema (inputSchema, outputSchema, _meta);
//  - calls that fail (unknown_run, unknown_approval, invalid_arguments, outside_allowed_roots,
//    unknown_pack, already_decided, wrong_state) must reach the SDK's caller as a result with
//    isError, no structuredContent, text `<code>: <message>` and the same code and message in
//    _meta["io.noctune/error"]; the SDK must not throw (it validates any structuredContent
//    against the tool's outputSchema and would throw -32602);
//  - calls that succeed (enqueue_run lint_fix, get_status, tail_events, list_approvals,
//    decide_approval, stop_run) return structuredContent the SDK validated.
// Two controls first: the schema walker finds planted non-standard formats, and this SDK does
// throw on an error result with structuredContent off the outputSchema (the old error shape).
//
// Usage: node tests/e2e/mcp/ts_sdk_errors.mjs [--bin $CARGO_TARGET_DIR/debug/noctune]
// The lint_fix runs need ruff on PATH and pytest for python3. Uses $NOCTUNE_STUDIO_DB when set,
// else an audit DB in a temp dir; fixture repositories in a temp dir (kept with
// NOCTUNE_TS_SDK_KEEP=1). Prints one line per check and finally `N passed, M failed`; exits 1
// when any check failed.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { CallToolRequestSchema, ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "../../..");
const CLIENT_NAME = "ts-sdk-errors";
const ERROR_META_KEY = "io.noctune/error";
const TOOLS = ["decide_approval", "enqueue_run", "get_status", "list_approvals", "stop_run", "tail_events"];
// Well formed (see server/core/src/ids.rs: `YYYYMMDDTHHMMSSZ-<8 hex>`) but never made.
const UNKNOWN_RUN = "20260101T000000Z-deadbeef";
const UNKNOWN_APPROVAL = "0123456789abcdef0123456789abcdef";
const TERMINAL = new Set(["done", "failed", "stopped"]);
// Runs started by the test (stopped at the end if still going).
const started = [];
// JSON Schema 2020-12, Validation, section 7.3: the defined formats.
const STANDARD_FORMATS = new Set([
  "date-time", "date", "time", "duration", "email", "idn-email", "hostname", "idn-hostname",
  "ipv4", "ipv6", "uri", "uri-reference", "iri", "iri-reference", "uuid", "uri-template",
  "json-pointer", "relative-json-pointer", "regex",
]);

// ------------------------------------------------------------------------------------------
// Checks

let passed = 0;
let failed = 0;
const failures = [];

function check(name, problems) {
  const list = (Array.isArray(problems) ? problems : [problems]).filter(Boolean);
  if (list.length === 0) {
    passed++;
    console.log(`ok    ${name}`);
  } else {
    failed++;
    failures.push(name);
    console.log(`FAIL  ${name}`);
    for (const p of list) console.log(`        ${p}`);
  }
}

const show = (v) => {
  const s = JSON.stringify(v);
  return s && s.length > 600 ? `${s.slice(0, 600)}...` : s;
};

// ------------------------------------------------------------------------------------------
// Schemas: every `format` keyword, wherever it is, must be a standard one.

// Keywords whose value maps names to subschemas (the names are not keywords).
const SCHEMA_MAPS = new Set(["properties", "patternProperties", "$defs", "definitions", "dependentSchemas"]);
// Keywords whose value is data, not a schema.
const DATA = new Set(["enum", "const", "default", "examples", "example", "description", "title", "required"]);

function formatOffenders(schema, where) {
  const out = [];
  const walk = (node, at) => {
    if (Array.isArray(node)) {
      node.forEach((n, i) => walk(n, `${at}[${i}]`));
      return;
    }
    if (!node || typeof node !== "object") return;
    if ("format" in node && !(typeof node.format === "string" && STANDARD_FORMATS.has(node.format))) {
      out.push(`${at}.format = ${JSON.stringify(node.format)}`);
    }
    for (const [k, v] of Object.entries(node)) {
      if (DATA.has(k) || k === "format") continue;
      if (SCHEMA_MAPS.has(k) && v && typeof v === "object" && !Array.isArray(v)) {
        for (const [name, sub] of Object.entries(v)) walk(sub, `${at}.${k}.${name}`);
      } else {
        walk(v, `${at}.${k}`);
      }
    }
  };
  walk(schema, where);
  return out;
}

// ------------------------------------------------------------------------------------------
// Calls

function textOf(result) {
  return (result?.content ?? []).filter((c) => c.type === "text").map((c) => c.text).join("\n");
}

// Calls a tool; never throws. Returns {result} or {thrown}.
async function call(client, tool, args) {
  try {
    return { result: await client.callTool({ name: tool, arguments: args }) };
  } catch (e) {
    return { thrown: e };
  }
}

// A call that must fail with `code`.
async function expectError(client, label, tool, args, code) {
  const { result, thrown } = await call(client, tool, args);
  const name = `${label}: ${tool}(${show(args)}) -> ${code}`;
  if (thrown) {
    check(name, `the SDK threw ${thrown?.code ?? ""} ${thrown?.message ?? thrown}`);
    return;
  }
  const p = [];
  if (result.isError !== true) p.push(`isError is ${show(result.isError)}, not true`);
  if (result.structuredContent !== undefined) {
    p.push(`an error result carries structuredContent ${show(result.structuredContent)}`);
  }
  const text = textOf(result);
  if (!text.startsWith(`${code}: `)) p.push(`text ${show(text)} does not start with "${code}: "`);
  const meta = result._meta?.[ERROR_META_KEY];
  if (!meta || typeof meta !== "object") {
    p.push(`no _meta["${ERROR_META_KEY}"] in ${show(result._meta)}`);
  } else {
    if (meta.error !== code) p.push(`_meta error is ${show(meta.error)}, not ${code}`);
    if (typeof meta.message !== "string" || meta.message.length === 0) {
      p.push(`_meta message is ${show(meta.message)}`);
    } else if (text !== `${meta.error}: ${meta.message}`) {
      p.push(`text ${show(text)} is not "<_meta error>: <_meta message>" (${show(meta)})`);
    }
  }
  if (p.length) p.push(`result: ${show(result)}`);
  else console.log(`        ${text.length > 160 ? `${text.slice(0, 160)}...` : text}`);
  check(name, p);
}

// A call that must succeed; returns its structuredContent (or undefined after a failed check).
async function expectSuccess(client, label, tool, args, validate = () => []) {
  const { result, thrown } = await call(client, tool, args);
  const name = `${label}: ${tool}(${show(args)}) succeeds with valid structuredContent`;
  if (thrown) {
    check(name, `the SDK threw ${thrown?.code ?? ""} ${thrown?.message ?? thrown}`);
    return undefined;
  }
  const p = [];
  if (result.isError) p.push(`isError: ${textOf(result)}`);
  const sc = result.structuredContent;
  if (!sc || typeof sc !== "object") p.push(`no structuredContent: ${show(result)}`);
  else p.push(...validate(sc));
  check(name, p);
  return p.length ? undefined : sc;
}

// Tails a run's events until one of `types` appears or the run is over; returns
// {cursor, status, events}. Throws on a failed call or a timeout.
async function tailUntil(client, runId, types, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let cursor = 0;
  const events = [];
  for (;;) {
    const r = await client.callTool({ name: "tail_events", arguments: { run_id: runId, cursor, limit: 200 } });
    if (r.isError) throw new Error(`tail_events failed: ${textOf(r)}`);
    const page = r.structuredContent;
    events.push(...page.events);
    cursor = page.next_cursor;
    if (page.events.some((e) => types.includes(e.type))) return { cursor, status: page.status, events };
    if (TERMINAL.has(page.status) && !page.more) return { cursor, status: page.status, events };
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${types} in run ${runId}; status ${page.status}`);
    }
    if (!page.more) await new Promise((res) => setTimeout(res, 200));
  }
}

// ------------------------------------------------------------------------------------------
// One transport, start to end.

async function exercise(label, client, repo, outside) {
  // tools/list and the schemas it publishes.
  let tools = [];
  try {
    tools = (await client.listTools()).tools;
  } catch (e) {
    check(`${label}: tools/list`, `the SDK threw ${e?.message ?? e}`);
    return;
  }
  const names = tools.map((t) => t.name).sort();
  check(`${label}: tools/list has the six tools`, show(names) === show(TOOLS) ? [] : `tools ${show(names)}`);
  for (const t of tools) {
    const p = [];
    if (!t.outputSchema) p.push("no outputSchema");
    if (!t._meta?.[ERROR_META_KEY]) p.push(`no error schema in _meta["${ERROR_META_KEY}"]`);
    p.push(...formatOffenders(t.inputSchema, `${t.name}.inputSchema`));
    p.push(...formatOffenders(t.outputSchema, `${t.name}.outputSchema`));
    p.push(...formatOffenders(t._meta, `${t.name}._meta`));
    check(`${label}: ${t.name} publishes schemas with standard formats only`, p);
  }

  // Errors on runs that do not exist.
  await expectError(client, label, "get_status", { run_id: UNKNOWN_RUN }, "unknown_run");
  await expectError(client, label, "tail_events", { run_id: UNKNOWN_RUN }, "unknown_run");
  await expectError(client, label, "tail_events", { run_id: UNKNOWN_RUN, cursor: 3, limit: 10 }, "unknown_run");
  await expectError(client, label, "list_approvals", { run_id: UNKNOWN_RUN }, "unknown_run");
  await expectError(client, label, "stop_run", { run_id: UNKNOWN_RUN }, "unknown_run");
  await expectError(
    client, label, "decide_approval",
    { run_id: UNKNOWN_RUN, approval_id: UNKNOWN_APPROVAL, decision: "approve", reason: "ts sdk test" },
    "unknown_run",
  );

  // Errors on enqueue_run.
  await expectError(client, label, "enqueue_run", { repo_root: outside, pack: "lint_fix" }, "outside_allowed_roots");
  await expectError(client, label, "enqueue_run", { repo_root: repo, pack: "no_such_pack" }, "unknown_pack");

  // Arguments of the wrong type or shape.
  await expectError(client, label, "get_status", { run_id: 42 }, "invalid_arguments");
  await expectError(client, label, "get_status", {}, "invalid_arguments");
  await expectError(client, label, "tail_events", { run_id: UNKNOWN_RUN, cursor: "abc" }, "invalid_arguments");
  await expectError(client, label, "tail_events", { run_id: UNKNOWN_RUN, limit: 0 }, "invalid_arguments");
  await expectError(client, label, "stop_run", { run_id: UNKNOWN_RUN, grace_secs: "soon" }, "invalid_arguments");
  await expectError(client, label, "enqueue_run", { repo_root: repo, pack: 7 }, "invalid_arguments");
  await expectError(client, label, "enqueue_run", { repo_root: repo, pack: "lint_fix", colour: "red" }, "invalid_arguments");

  // Successes validate against the outputSchema; errors on a run that does exist.
  const run = await expectSuccess(client, label, "enqueue_run", { repo_root: repo, pack: "lint_fix" }, (sc) =>
    typeof sc.run_id === "string" && sc.pack === "lint_fix" ? [] : [`unexpected run ${show(sc)}`],
  );
  if (!run) return;
  const runId = run.run_id;
  started.push(runId);
  await expectSuccess(client, label, "get_status", { run_id: runId }, (sc) =>
    sc.run_id === runId ? [] : [`get_status of ${runId} returned ${show(sc)}`],
  );
  await expectError(
    client, label, "decide_approval",
    { run_id: runId, approval_id: UNKNOWN_APPROVAL, decision: "approve", reason: "ts sdk test" },
    "unknown_approval",
  );

  // Wait for the run's approval, decide it, then decide it again.
  let pending;
  try {
    const t = await tailUntil(client, runId, ["approval_requested"], 120_000);
    if (!t.events.some((e) => e.type === "approval_requested")) {
      const st = (await call(client, "get_status", { run_id: runId })).result?.structuredContent;
      const last = t.events.slice(-3).map((e) => `${e.type} ${show(e.payload)}`);
      throw new Error(`run ended ${t.status} without an approval: ${st?.error ?? ""}; last events: ${last.join(" | ")}`);
    }
  } catch (e) {
    check(`${label}: run ${runId} asks for an approval`, e.message);
    return;
  }
  const listing = await expectSuccess(client, label, "list_approvals", { run_id: runId }, (sc) =>
    sc.approvals.filter((a) => a.status === "pending").length === 1 ? [] : [`not one pending approval: ${show(sc)}`],
  );
  if (!listing) return;
  pending = listing.approvals.find((a) => a.status === "pending");
  await expectError(
    client, label, "decide_approval",
    { run_id: runId, approval_id: pending.approval_id, decision: "maybe", reason: "ts sdk test" },
    "invalid_arguments",
  );
  await expectSuccess(
    client, label, "decide_approval",
    { run_id: runId, approval_id: pending.approval_id, decision: "reject", reason: "ts sdk test" },
  );
  await expectError(
    client, label, "decide_approval",
    { run_id: runId, approval_id: pending.approval_id, decision: "approve", reason: "ts sdk test, again" },
    "already_decided",
  );
  // Nothing was approved, so the run ends done; then its decisions can no longer change and
  // there is nothing to stop.
  try {
    const t = await tailUntil(client, runId, [], 120_000);
    check(`${label}: run ${runId} ends done after the rejection`, t.status === "done" ? [] : `it ended ${t.status}`);
  } catch (e) {
    check(`${label}: run ${runId} ends after the rejection`, e.message);
    return;
  }
  await expectError(
    client, label, "decide_approval",
    { run_id: runId, approval_id: pending.approval_id, decision: "approve", reason: "ts sdk test, too late" },
    "wrong_state",
  );
  await expectError(client, label, "stop_run", { run_id: runId }, "wrong_state");

  // A second run, stopped while it waits for its approval.
  const second = await expectSuccess(client, label, "enqueue_run", { repo_root: repo, pack: "lint_fix" }, (sc) =>
    typeof sc.run_id === "string" ? [] : [`unexpected run ${show(sc)}`],
  );
  if (!second) return;
  started.push(second.run_id);
  try {
    await tailUntil(client, second.run_id, ["approval_requested"], 120_000);
  } catch (e) {
    check(`${label}: run ${second.run_id} asks for an approval`, e.message);
    return;
  }
  await expectSuccess(client, label, "stop_run", { run_id: second.run_id, grace_secs: 5 }, (sc) =>
    sc.status === "stopped" ? [] : [`stop_run left the run ${sc.status}`],
  );
  await expectError(client, label, "stop_run", { run_id: second.run_id, grace_secs: 5 }, "wrong_state");
}

// Stops the runs `exercise` started that are still going, so no worker outlives the test.
async function stopLeftovers(client) {
  for (const id of started.splice(0)) {
    const st = (await call(client, "get_status", { run_id: id })).result?.structuredContent?.status;
    if (st && !TERMINAL.has(st)) await call(client, "stop_run", { run_id: id, grace_secs: 1 });
  }
}

// ------------------------------------------------------------------------------------------
// Setup: fixture repositories, the server processes.

function gitRepo(dir, fromFixture) {
  if (fromFixture) {
    fs.cpSync(path.join(ROOT, "fixtures/pyproj"), dir, { recursive: true });
    fs.rmSync(path.join(dir, ".noctune_cache"), { recursive: true, force: true });
  } else {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, "README.md"), "not in the allowed roots\n");
  }
  const git = (...a) => execFileSync("git", ["-C", dir, ...a], { stdio: ["ignore", "ignore", "inherit"] });
  git("init", "-q", "-b", "main");
  git("add", "-A");
  git("-c", "user.name=Fixture", "-c", "user.email=fixture@example.com", "-c", "core.hooksPath=/dev/null",
    "commit", "-q", "-m", "initial");
  return dir;
}

async function withClient(label, transport, stderrText, fn) {
  const client = new Client({ name: CLIENT_NAME, version: "1.0.0" });
  try {
    await client.connect(transport);
  } catch (e) {
    check(`${label}: connect`, [`${e?.message ?? e}`, `server stderr: ${stderrText()}`]);
    return;
  }
  const proto = transport.protocolVersion ? `, protocol ${transport.protocolVersion}` : "";
  console.log(`${label}: connected to ${show(client.getServerVersion())}${proto}`);
  const before = failed;
  try {
    await fn(client);
  } catch (e) {
    check(`${label}: no unexpected exception`, `${e?.stack ?? e}`);
  } finally {
    await stopLeftovers(client).catch(() => {});
    await client.close().catch(() => {});
  }
  if (failed > before) console.log(`${label}: server stderr (last 4000 chars):\n${stderrText().slice(-4000)}`);
}

function studioUrl(proc, timeoutMs) {
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`noctune studio printed no URL in ${timeoutMs} ms: ${out}`)), timeoutMs);
    proc.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/^Noctune Studio: (\S+)$/m);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`noctune studio exited ${code} before printing its URL: ${out}`));
    });
  });
}

// The walker itself: it must find a planted non-standard format at any depth and must not take a
// property named "format" for the keyword.
function checkWalker() {
  const planted = {
    type: "object",
    properties: {
      format: { type: "string", format: "uri" },
      n: { type: "integer", format: "uint32" },
      deep: { type: "array", items: { anyOf: [{ $ref: "#/$defs/x" }, { type: "number", format: "double" }] } },
    },
    $defs: { x: { type: "object", additionalProperties: { type: "string", format: "date-time" } } },
    examples: [{ format: "not-a-schema" }],
  };
  const found = formatOffenders(planted, "planted");
  const want = ['planted.properties.n.format = "uint32"', 'planted.properties.deep.items.anyOf[1].format = "double"'];
  check("schema walker finds exactly the planted non-standard formats", show(found) === show(want) ? [] : `found ${show(found)}`);
}

// The premise, on an in-memory server: this SDK throws (-32602) for an error result whose
// structuredContent does not match the tool's outputSchema (what our server used to send), and
// passes the same error through when it has no structuredContent (what it sends now).
async function checkPremise() {
  const server = new Server({ name: "control", version: "1.0.0" }, { capabilities: { tools: {} } });
  const outputSchema = { type: "object", properties: { run_id: { type: "string" } }, required: ["run_id"] };
  server.setRequestHandler(ListToolsRequestSchema, async () => ({
    tools: ["old", "new"].map((name) => ({ name, inputSchema: { type: "object" }, outputSchema })),
  }));
  server.setRequestHandler(CallToolRequestSchema, async (req) => {
    const error = { error: "unknown_run", message: "no such run" };
    const r = { isError: true, content: [{ type: "text", text: "unknown_run: no such run" }] };
    return req.params.name === "old" ? { ...r, structuredContent: error } : { ...r, _meta: { [ERROR_META_KEY]: error } };
  });
  const [a, b] = InMemoryTransport.createLinkedPair();
  await server.connect(a);
  const client = new Client({ name: CLIENT_NAME, version: "1.0.0" });
  await client.connect(b);
  await client.listTools();
  const old = await call(client, "old", {});
  const now = await call(client, "new", {});
  await client.close();
  await server.close();
  check("control: the SDK throws -32602 on an error result with structuredContent off its outputSchema", old.thrown?.code === -32602 ? [] : `got ${show(old.result ?? String(old.thrown))}`);
  check("control: the SDK returns an error result without structuredContent as is", now.result?.isError === true ? [] : `got ${show(now.result ?? String(now.thrown))}`);
}

async function main() {
  checkWalker();
  await checkPremise();
  const argv = process.argv.slice(2);
  const i = argv.indexOf("--bin");
  const bin = path.resolve(
    i >= 0 ? argv[i + 1] : path.join(process.env.CARGO_TARGET_DIR ?? path.join(os.homedir(), ".cache/noctune-target"), "debug/noctune"),
  );
  if (!fs.existsSync(bin)) {
    console.error(`ts_sdk_errors: no noctune binary at ${bin} (pass --bin)`);
    process.exit(2);
  }
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "noctune-ts-sdk-"));
  const env = { ...process.env };
  delete env.NOCTUNE_STUDIO_ALLOWED_ROOTS;
  if (!env.NOCTUNE_STUDIO_DB) env.NOCTUNE_STUDIO_DB = path.join(work, "audit.sqlite");
  let studio;
  try {
    // stdio: `noctune mcp --repo R`.
    {
      const repo = gitRepo(path.join(work, "repo-stdio"), true);
      const outside = gitRepo(path.join(work, "outside-stdio"), false);
      let stderr = "";
      const transport = new StdioClientTransport({ command: bin, args: ["mcp", "--repo", repo], env, stderr: "pipe" });
      transport.stderr?.on("data", (d) => { stderr += d; });
      await withClient("stdio", transport, () => stderr, (c) => exercise("stdio", c, repo, outside));
    }
    // Streamable HTTP: `noctune studio --repo R --port 0 --no-open`, /mcp with the token.
    {
      const repo = gitRepo(path.join(work, "repo-http"), true);
      const outside = gitRepo(path.join(work, "outside-http"), false);
      let stderr = "";
      studio = spawn(bin, ["studio", "--repo", repo, "--port", "0", "--no-open"], { env, stdio: ["ignore", "pipe", "pipe"] });
      studio.stderr.on("data", (d) => { stderr += d; });
      let url;
      try {
        url = await studioUrl(studio, 30_000);
      } catch (e) {
        check("http: noctune studio starts", [e.message, `stderr: ${stderr}`]);
      }
      if (url) {
        const u = new URL(url);
        const token = u.searchParams.get("token");
        check("http: studio URL carries a token", token ? [] : `no token in ${url}`);
        const endpoint = new URL("/mcp", u.origin);
        const transport = new StreamableHTTPClientTransport(endpoint, {
          requestInit: { headers: { Authorization: `Bearer ${token}` } },
        });
        await withClient("http", transport, () => stderr, (c) => exercise("http", c, repo, outside));
      }
    }
  } finally {
    if (studio && studio.exitCode === null) studio.kill("SIGTERM");
    if (!process.env.NOCTUNE_TS_SDK_KEEP) fs.rmSync(work, { recursive: true, force: true });
  }
  if (failed) console.log(`\nfailed checks:\n${failures.map((f) => `  ${f}`).join("\n")}`);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.error(`ts_sdk_errors: ${e?.stack ?? e}`);
  process.exit(1);
});
