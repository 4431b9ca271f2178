// A tiny, safe Markdown renderer for model answers. The source is HTML-escaped FIRST; only
// our own tags are added afterwards, and links are kept only for http(s) and relative URLs.
// Handles what models write: fenced code, inline code, headings, lists, quotes, bold/italic,
// links, rules, tables are shown as text. An unclosed fence (mid-stream) renders as code.

const ESC = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ESC[c]);
}

function inline(text) {
  // `text` is already escaped.
  const codes = [];
  let s = text.replace(/`([^`\n]+)`/g, (_, c) => { codes.push(c); return `\u0000${codes.length - 1}\u0000`; });
  s = s.replace(/\[([^\]\n]+)\]\(([^)\s]+)\)/g, (m, label, url) => {
    const ok = /^(https?:\/\/|\/(?!\/)|\.{1,2}\/|#)/i.test(url) && !/^javascript:/i.test(url);
    return ok ? `<a href="${url}" rel="noopener noreferrer" target="_blank">${label}</a>` : m;
  });
  s = s.replace(/\*\*([^*\n]+)\*\*/g, '<strong>$1</strong>')
    .replace(/__([^_\n]+)__/g, '<strong>$1</strong>')
    .replace(/(^|[^*\w])\*([^*\s][^*\n]*?)\*(?!\w)/g, '$1<em>$2</em>')
    .replace(/(^|[^_\w])_([^_\s][^_\n]*?)_(?!\w)/g, '$1<em>$2</em>')
    .replace(/~~([^~\n]+)~~/g, '<del>$1</del>');
  return s.replace(/\u0000(\d+)\u0000/g, (_, i) => `<code>${codes[Number(i)]}</code>`);
}

export function renderMarkdown(src) {
  const lines = escapeHtml(String(src || '').replace(/\u0000/g, '')).replace(/\r\n?/g, '\n').split('\n');
  const out = [];
  let para = [];
  let list = null; // {tag, items}
  const flushPara = () => {
    if (para.length) out.push(`<p>${para.map(inline).join('<br>')}</p>`);
    para = [];
  };
  const flushList = () => {
    if (list) out.push(`<${list.tag}>${list.items.map((i) => `<li>${inline(i)}</li>`).join('')}</${list.tag}>`);
    list = null;
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const fence = /^\s*(```|~~~)\s*([\w+-]*)\s*$/.exec(line);
    if (fence) {
      flushPara(); flushList();
      const code = [];
      i++;
      while (i < lines.length && !new RegExp(`^\\s*${fence[1]}\\s*$`).test(lines[i])) code.push(lines[i++]);
      const lang = fence[2] ? ` class="lang-${fence[2]}"` : '';
      if (fence[2] === 'diff') {
        const rows = code.map((c) => {
          const cls = c.startsWith('+') ? 'add' : c.startsWith('-') ? 'del' : c.startsWith('@@') ? 'hunk' : '';
          return `<span class="${cls}">${c}</span>`;
        });
        out.push(`<pre class="md-diff"><code${lang}>${rows.join('\n')}</code></pre>`);
      } else {
        out.push(`<pre><code${lang}>${code.join('\n')}</code></pre>`);
      }
      continue;
    }
    const h = /^(#{1,6})\s+(.*)$/.exec(line);
    const li = /^\s*(?:([-*+])|(\d+)[.)])\s+(.*)$/.exec(line);
    if (h) {
      flushPara(); flushList();
      const n = Math.min(h[1].length + 2, 6);
      out.push(`<h${n}>${inline(h[2])}</h${n}>`);
    } else if (li) {
      flushPara();
      const tag = li[1] ? 'ul' : 'ol';
      if (!list || list.tag !== tag) { flushList(); list = { tag, items: [] }; }
      list.items.push(li[3]);
    } else if (/^\s*&gt;\s?/.test(line)) {
      flushPara(); flushList();
      out.push(`<blockquote>${inline(line.replace(/^\s*&gt;\s?/, ''))}</blockquote>`);
    } else if (/^\s*([-*_])\s*\1\s*\1[\s\1]*$/.test(line)) {
      flushPara(); flushList();
      out.push('<hr>');
    } else if (!line.trim()) {
      flushPara(); flushList();
    } else {
      flushList();
      para.push(line);
    }
  }
  flushPara(); flushList();
  return out.join('');
}
