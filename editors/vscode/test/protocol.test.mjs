// Checks src/protocol.ts (the TypeScript mirror of the noctune/* methods) against the real
// `noctune lsp`, spoken to through vscode-jsonrpc as the language client does. Needs the binary:
// NOCTUNE_BIN, else $CARGO_TARGET_DIR/debug/noctune (or ~/.cache/noctune-target/debug/noctune).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { spawn, execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as http from "node:http";

const require = createRequire(import.meta.url);
const P = require("../out/lib/protocol.js");
const rpc = require("vscode-jsonrpc/node");

const here = path.dirname(new URL(import.meta.url).pathname);
const repoRoot = path.resolve(here, "../../..");

function findBinary() {
  if (process.env.NOCTUNE_BIN) {
    assert.ok(fs.existsSync(process.env.NOCTUNE_BIN), `NOCTUNE_BIN=${process.env.NOCTUNE_BIN} does not exist`);
    return process.env.NOCTUNE_BIN;
  }
  const target = process.env.CARGO_TARGET_DIR ?? path.join(os.homedir(), ".cache/noctune-target");
  const p = path.join(target, "debug", "noctune");
  return fs.existsSync(p) ? p : undefined;
}

function copyDir(from, to) {
  fs.mkdirSync(to, { recursive: true });
  for (const e of fs.readdirSync(from, { withFileTypes: true })) {
    if ([".noctune_cache", "__pycache__", ".ruff_cache", ".pytest_cache"].includes(e.name)) continue;
    const a = path.join(from, e.name), b = path.join(to, e.name);
    if (e.isDirectory()) copyDir(a, b); else fs.copyFileSync(a, b);
  }
}

/** An OpenAI-compatible stand-in: streams "Hello from node" in three pieces. */
function startLlm() {
  const requests = [];
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      if (req.method !== "POST" || !req.url.endsWith("/chat/completions")) {
        res.writeHead(404, { "Content-Type": "application/json" }).end("{}");
        return;
      }
      requests.push(JSON.parse(body));
      res.writeHead(200, { "Content-Type": "text/event-stream" });
      const chunk = (delta, finish = null) =>
        `data: ${JSON.stringify({ id: "c1", object: "chat.completion.chunk", created: 1, model: "m", choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
      res.write(chunk({ role: "assistant", content: null }));
      for (const piece of ["Hello", " from", " node"]) res.write(chunk({ content: piece }));
      res.write(chunk({}, "stop"));
      res.end("data: [DONE]\n\n");
    });
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ server, requests, url: `http://127.0.0.1:${server.address().port}/v1` })));
}

const bin = findBinary();
const cleanups = [];
after(() => cleanups.forEach((f) => f()));

test("the TypeScript protocol mirror matches the server", { skip: bin ? false : "no noctune binary (set NOCTUNE_BIN)", timeout: 120_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "noctune-vscode-"));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  const repo = path.join(dir, "repo");
  copyDir(path.join(repoRoot, "fixtures/pyproj"), repo);
  const git = (...a) => execFileSync("git", ["-c", "user.name=t", "-c", "user.email=t@e", "-c", "core.hooksPath=/dev/null", ...a], { cwd: repo, stdio: "pipe" });
  git("init", "-q", "-b", "main");
  git("add", "-A");
  git("commit", "-q", "-m", "init");
  const llm = await startLlm();
  cleanups.push(() => llm.server.close());

  const proc = spawn(bin, ["lsp", "--repo", repo], {
    cwd: repo,
    env: { ...process.env, NOCTUNE_STUDIO_DB: path.join(dir, "audit.sqlite"), NOCTUNE_STUDIO_LLM_BASE_URL: llm.url, NOCTUNE_STUDIO_ALLOWED_ROOTS: "" },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stderr = "";
  proc.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise((resolve) => proc.on("exit", (code) => resolve(code)));
  cleanups.push(() => proc.kill("SIGKILL"));
  const conn = rpc.createMessageConnection(new rpc.StreamMessageReader(proc.stdout), new rpc.StreamMessageWriter(proc.stdin));
  const deltas = [];
  const progress = [];
  conn.onNotification(P.Notifications.chatDelta, (d) => deltas.push(d));
  conn.onNotification("$/progress", (p) => progress.push(p));
  conn.onRequest("window/workDoneProgress/create", () => null);
  conn.onRequest("window/showMessageRequest", (p) => ({ title: p.actions.at(-1).title }));
  conn.onRequest("window/showDocument", () => ({ success: true }));
  conn.onRequest("workspace/applyEdit", () => ({ applied: true }));
  conn.onNotification(() => {});
  conn.listen();

  const uri = `file://${repo}`;
  const init = await conn.sendRequest("initialize", {
    processId: process.pid,
    rootUri: uri,
    workspaceFolders: [{ uri, name: "repo" }],
    clientInfo: { name: "vscode-jsonrpc-test" },
    capabilities: { window: { workDoneProgress: true, showDocument: { support: true } }, workspace: { applyEdit: true } },
  });
  conn.sendNotification("initialized", {});
  const ext = init.capabilities.experimental.noctune;
  assert.equal(ext.protocolVersion, P.ProtocolVersion);
  assert.deepEqual([...ext.requests].sort(), Object.values(P.Methods).sort(), "requests");
  assert.deepEqual([...ext.notifications].sort(), Object.values(P.Notifications).sort(), "notifications");
  assert.deepEqual([...ext.commands].sort(), Object.values(P.Commands).sort(), "commands");
  for (const c of Object.values(P.Commands)) assert.ok(init.capabilities.executeCommandProvider.commands.includes(c), c);
  assert.equal(init.capabilities.textDocumentSync.change, 2);

  const keysOf = (method, result) => {
    for (const k of P.ResultKeys[method]) assert.ok(k in result, `${method}: result has no "${k}": ${JSON.stringify(result)}`);
  };
  // Chat: the answer streams as chatDelta notifications of the mirrored shape.
  const chat = await conn.sendRequest(P.Methods.chat, { message: "hello?", requestId: "ts-1" });
  keysOf(P.Methods.chat, chat);
  assert.equal(chat.text, "Hello from node");
  assert.equal(chat.requestId, "ts-1");
  assert.ok(deltas.length >= 4, JSON.stringify(deltas));
  for (const d of deltas) {
    for (const k of P.DeltaKeys) assert.ok(k in d, `delta without ${k}: ${JSON.stringify(d)}`);
    assert.ok(P.ChatDeltaKinds.includes(d.kind), d.kind);
    assert.equal(d.requestId, "ts-1");
  }
  assert.equal(deltas.filter((d) => d.kind === "delta").map((d) => d.text).join(""), "Hello from node");
  assert.equal(deltas.at(-1).kind, "done");
  keysOf(P.Methods.chatCancel, await conn.sendRequest(P.Methods.chatCancel, { requestId: "nothing-running" }));

  // Packs, runs, approvals, studio URL.
  const packs = await conn.sendRequest(P.Methods.packs);
  keysOf(P.Methods.packs, packs);
  assert.ok(packs.packs.includes("lint_fix"));
  const rec = await conn.sendRequest(P.Methods.runsStart, { pack: "lint_fix" });
  keysOf(P.Methods.runsStart, rec);
  const list = await conn.sendRequest(P.Methods.runsList, {});
  keysOf(P.Methods.runsList, list);
  assert.equal(list.runs[0].run_id, rec.run_id);
  keysOf(P.Methods.approvals, await conn.sendRequest(P.Methods.approvals, { run_id: rec.run_id, all: true }));
  const stopped = await conn.sendRequest(P.Methods.runsStop, { run_id: rec.run_id, grace_secs: 5 });
  keysOf(P.Methods.runsStop, stopped);
  assert.equal(stopped.status, "stopped");
  const url = await conn.sendRequest(P.Methods.studioUrl, { open: false });
  keysOf(P.Methods.studioUrl, url);
  assert.match(url.url ?? "", /^http:\/\/127\.0\.0\.1:\d+\/studio\?token=/, JSON.stringify(url));
  assert.ok(progress.some((p) => p.value.kind === "begin" && p.value.title === "Noctune: lint_fix"));

  // The commands: a bad argument is a protocol error, not a crash.
  await assert.rejects(conn.sendRequest("workspace/executeCommand", { command: P.Commands.approve, arguments: [] }), (e) => e.code === -32602);

  await conn.sendRequest("shutdown");
  conn.sendNotification("exit");
  assert.equal(await exited, 0, stderr);
  conn.dispose();
});
