// Markdown from a model or a user, rendered safely. Two layers:
//  1. marked never passes raw HTML through: an HTML token is rendered as escaped text;
//  2. DOMPurify sanitizes the result (allow-list of tags and attributes; only http(s), mailto
//     and relative URLs survive, so a `javascript:` link loses its href).
// Code blocks are highlighted by highlight.js (a fixed set of common languages).
import { Marked, type Tokens } from "marked";
import DOMPurify from "dompurify";
import hljs from "highlight.js/lib/core";
import bash from "highlight.js/lib/languages/bash";
import javascript from "highlight.js/lib/languages/javascript";
import typescript from "highlight.js/lib/languages/typescript";
import python from "highlight.js/lib/languages/python";
import json from "highlight.js/lib/languages/json";
import sql from "highlight.js/lib/languages/sql";
import xml from "highlight.js/lib/languages/xml";
import css from "highlight.js/lib/languages/css";
import yaml from "highlight.js/lib/languages/yaml";

for (const [name, lang] of Object.entries({ bash, javascript, typescript, python, json, sql, xml, css, yaml })) {
  hljs.registerLanguage(name, lang);
}

function escape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

const SAFE_URL = /^(?:https?:|mailto:|\/|#|\.)/i;

const marked = new Marked({
  gfm: true,
  breaks: true,
  renderer: {
    html(token: Tokens.HTML | Tokens.Tag): string {
      return escape(token.text);
    },
    code(token: Tokens.Code): string {
      const lang = (token.lang ?? "").split(/\s/)[0].toLowerCase();
      const body =
        lang && hljs.getLanguage(lang)
          ? hljs.highlight(token.text, { language: lang, ignoreIllegals: true }).value
          : escape(token.text);
      const cls = lang ? ` class="hljs language-${escape(lang)}"` : ' class="hljs"';
      return `<pre><code${cls}>${body}</code></pre>`;
    },
  },
});

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    const href = node.getAttribute("href") ?? "";
    if (!SAFE_URL.test(href.trim())) node.removeAttribute("href");
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
  if (node.tagName === "IMG") {
    // no remote images either: they would leak the reader's address to whoever wrote the link
    node.remove();
  }
});

const PURIFY = {
  ALLOWED_TAGS: [
    "a", "p", "br", "strong", "em", "del", "code", "pre", "span", "blockquote", "ul", "ol", "li",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "table", "thead", "tbody", "tr", "th", "td", "input",
  ],
  ALLOWED_ATTR: ["href", "class", "type", "checked", "disabled", "align", "start"],
  ALLOW_DATA_ATTR: false,
};

export function renderMarkdown(text: string): string {
  const html = marked.parse(text, { async: false }) as string;
  return DOMPurify.sanitize(html, PURIFY) as unknown as string;
}
