// The chat view's renderer follows the one link rule shared with the web page
// (fixtures/markdown/links.json).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { renderMarkdown } = require("../out/lib/markdown.js");
const rules = JSON.parse(readFileSync(new URL("../../../fixtures/markdown/links.json", import.meta.url), "utf8"));

test("links follow the shared rule set", () => {
  assert.ok(rules.cases.length > 10);
  for (const c of rules.cases) {
    const html = renderMarkdown(c.md);
    const hrefs = [...html.matchAll(/<a href="([^"]*)" rel="noopener noreferrer" target="_blank">/g)].map((m) => m[1]);
    assert.deepEqual(hrefs, c.hrefs, `${c.md} -> ${html}`);
    assert.equal((html.match(/<a /g) || []).length, c.hrefs.length, html);
  }
});
