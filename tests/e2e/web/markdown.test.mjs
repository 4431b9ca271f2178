// The page's Markdown renderer (web/assets/markdown.js) is safe with hostile model output:
// HTML is escaped before any tag is added, links are kept only for http(s) and relative URLs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderMarkdown, escapeHtml } from '../../../web/assets/markdown.js';

test('model HTML is text, never markup', () => {
  for (const evil of ['<script>alert(1)</script>', '<img src=x onerror=alert(1)>', '<a href="javascript:x">y</a>', '"><svg onload=alert(1)>', '<iframe src=//evil>']) {
    const html = renderMarkdown(`hi ${evil} there`);
    assert.doesNotMatch(html, /<(script|img|svg|iframe|a )/i, html);
    assert.ok(html.includes(escapeHtml(evil)), html);
  }
  // Inside code, too.
  assert.equal(renderMarkdown('`<b>x</b>`'), '<p><code>&lt;b&gt;x&lt;/b&gt;</code></p>');
  assert.equal(renderMarkdown('```\n<script>\n```'), '<pre><code>&lt;script&gt;</code></pre>');
});

test('links only for http(s) and relative URLs, attributes cannot be broken out of', () => {
  assert.match(renderMarkdown('[docs](https://example.com/a?b=1&c=2)'), /<a href="https:\/\/example\.com\/a\?b=1&amp;c=2" rel="noopener noreferrer" target="_blank">docs<\/a>/);
  assert.match(renderMarkdown('[run](/studio/runs/x)'), /<a href="\/studio\/runs\/x"/);
  for (const bad of ['[x](javascript:alert(1))', '[x](JaVaScRiPt:alert(1))', '[x](data:text/html,hi)', '[x](//evil.example)', '[x](vbscript:x)']) {
    assert.doesNotMatch(renderMarkdown(bad), /<a /, bad);
  }
  const quoted = renderMarkdown('[x](https://e.com/"onmouseover="alert(1))');
  assert.doesNotMatch(quoted, /" onmouseover|"onmouseover/, quoted);
});

test('what models write renders as expected', () => {
  assert.equal(renderMarkdown('# Title'), '<h3>Title</h3>');
  assert.equal(renderMarkdown('**bold** and *it* and `code`'), '<p><strong>bold</strong> and <em>it</em> and <code>code</code></p>');
  assert.equal(renderMarkdown('- a\n- b'), '<ul><li>a</li><li>b</li></ul>');
  assert.equal(renderMarkdown('1. a\n2. b'), '<ol><li>a</li><li>b</li></ol>');
  assert.equal(renderMarkdown('snake_case_name stays'), '<p>snake_case_name stays</p>');
  assert.equal(renderMarkdown('line one\nline two'), '<p>line one<br>line two</p>');
  assert.match(renderMarkdown('```diff\n-old\n+new\n```'), /<span class="del">-old<\/span>\n<span class="add">\+new<\/span>/);
  // Mid-stream: an unclosed fence renders as code so far.
  assert.equal(renderMarkdown('```py\nx = 1'), '<pre><code class="lang-py">x = 1</code></pre>');
  assert.equal(renderMarkdown('a\u0000b'), '<p>ab</p>');
});
