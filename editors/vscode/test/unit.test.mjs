// Client logic that does not need VS Code: binary resolution, launch settings, Markdown and the
// chat transcript.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { resolveBinary, isResolved } = require("../out/lib/binary.js");
const { serverLaunch, profileParam } = require("../out/lib/settings.js");
const { renderMarkdown, escapeHtml } = require("../out/lib/markdown.js");
const { ChatModel } = require("../out/lib/chatModel.js");

test("binary: setting, then PATH, then bundled, else a readable error", () => {
  const have = (set) => (p) => set.has(p);
  let r = resolveBinary({ setting: "/opt/n/noctune", pathEnv: "/usr/bin", bundled: "/ext/bin/noctune", probe: have(new Set(["/opt/n/noctune", "/usr/bin/noctune"])), exe: "noctune" });
  assert.deepEqual(r, { path: "/opt/n/noctune", source: "setting" });
  r = resolveBinary({ setting: "", pathEnv: "/a:/usr/bin", bundled: "/ext/bin/noctune", probe: have(new Set(["/usr/bin/noctune", "/ext/bin/noctune"])), exe: "noctune" });
  assert.deepEqual(r, { path: "/usr/bin/noctune", source: "PATH" });
  r = resolveBinary({ setting: "", pathEnv: "/a", bundled: "/ext/bin/noctune", probe: have(new Set(["/ext/bin/noctune"])), exe: "noctune" });
  assert.deepEqual(r, { path: "/ext/bin/noctune", source: "bundled" });
  r = resolveBinary({ setting: "", pathEnv: "/a", bundled: "/ext/bin/noctune", probe: () => false, exe: "noctune" });
  assert.ok(!isResolved(r));
  assert.match(r.error, /cannot find the `noctune` binary/);
  assert.match(r.error, /noctune\.path/);
  r = resolveBinary({ setting: "/nope", pathEnv: "/usr/bin", bundled: "/b", probe: (p) => p === "/usr/bin/noctune", exe: "noctune" });
  assert.ok(!isResolved(r), "a wrong setting is reported, not silently replaced");
  assert.match(r.error, /"\/nope"/);
});

test("settings: args, allowed roots and profile", () => {
  const l = serverLaunch({ repo: "/w", http: false, allowedRoots: ["/w", " /x ", ""] }, { PATH: "/bin", UNSET: undefined });
  assert.deepEqual(l.args, ["lsp", "--repo", "/w", "--no-http"]);
  assert.equal(l.env.NOCTUNE_STUDIO_ALLOWED_ROOTS, "/w:/x");
  assert.equal(l.env.PATH, "/bin");
  assert.ok(!("UNSET" in l.env));
  assert.deepEqual(serverLaunch({ repo: undefined, http: true, allowedRoots: [] }, {}).args, ["lsp"]);
  assert.equal(profileParam("  "), undefined);
  assert.equal(profileParam("local"), "local");
});

test("markdown: the usual subset, and nothing gets through unescaped", () => {
  const html = renderMarkdown("# Title\n\nSome **bold** and *it* and `x<y`.\n\n- a\n- b\n\n```py\nprint('<hi>')\n```\n[link](https://example.com)");
  assert.match(html, /<h1>Title<\/h1>/);
  assert.match(html, /<strong>bold<\/strong>/);
  assert.match(html, /<em>it<\/em>/);
  assert.match(html, /<code>x&lt;y<\/code>/);
  assert.match(html, /<ul><li>a<\/li><li>b<\/li><\/ul>/);
  assert.match(html, /<pre><code class="language-py">print\(&#39;&lt;hi&gt;&#39;\)<\/code><\/pre>/);
  assert.match(html, /<a href="https:\/\/example.com" rel="noopener noreferrer" target="_blank">link<\/a>/);
  const evil = renderMarkdown('<script>alert(1)</script> [x](javascript:alert(1)) <img src=x onerror=y>');
  assert.ok(!evil.includes("<script") && !evil.includes("<img") && !evil.includes('href="javascript'), evil);
  assert.equal(escapeHtml(`<"'&>`), "&lt;&quot;&#39;&amp;&gt;");
});

test("chat model: deltas stream into the answer, tools and errors are shown, the result wins", () => {
  const m = new ChatModel();
  const rid = m.newRequestId();
  m.addUser("hi");
  m.begin(rid);
  const d = (seq, kind, extra) => ({ session: "s1", requestId: rid, seq, kind, ...extra });
  assert.ok(m.apply(d(0, "delta", { text: "Hel" })));
  m.apply(d(1, "tool_call", { id: "c", name: "readFile", arguments: { path: "a.py" } }));
  m.apply(d(2, "delta", { text: "lo **you**" }));
  assert.ok(!m.apply({ ...d(3, "delta", { text: "x" }), requestId: "other" }));
  assert.equal(m.session, "s1");
  let html = m.renderHtml();
  assert.match(html, /Hello <strong>you<\/strong>/);
  assert.match(html, /readFile/);
  assert.match(html, /streaming/);
  m.apply(d(4, "done", { finish_reason: "stop" }));
  m.finish(rid, { session: "s1", requestId: rid, text: "Hello **you**!", finish_reason: "stop", rounds: 1, tool_calls: 1, tool_mode: "native", usage: null, timings: null, error: null });
  html = m.renderHtml();
  assert.match(html, /Hello <strong>you<\/strong>!/);
  assert.ok(!html.includes("streaming"));
  const r2 = m.newRequestId();
  m.begin(r2);
  m.apply({ session: "s1", requestId: r2, seq: 0, kind: "error", message: "cannot reach <server>" });
  assert.match(m.renderHtml(), /cannot reach &lt;server&gt;/);
});
