// Handbook search for the in-browser fake: the same contract as
// heartbridge-core's search (only sections with text are hits, the headings
// above them are context; every term must match; ranked; a page of hits and
// the total; a plain-text snippet cut at word or punctuation boundaries,
// HTML-escaped, every match in <mark>; full-width forms folded), done by
// plain substring matching over the sample sections.
import type { HandbookView, Hit, SearchPage } from './types';

export function stripTags(html: string): string {
  return html
    .replace(/<[^>]*>/g, ' ')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&')
    .replace(/\s+/g, ' ')
    .replace(/ ([，。；：！？、）」”])/g, '$1')
    .trim();
}

export function escapeHtml(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** Full-width ASCII forms as ASCII, the ideographic space as a space. */
export function halfWidth(s: string): string {
  return s.replace(/[\uFF01-\uFF5E\u3000]/g, (c) =>
    c === '\u3000' ? ' ' : String.fromCharCode(c.charCodeAt(0) - 0xfee0),
  );
}

function fold(s: string): string {
  return halfWidth(s).toLowerCase();
}

function countOf(haystack: string, needle: string): number {
  let n = 0;
  for (let i = haystack.indexOf(needle); i !== -1; i = haystack.indexOf(needle, i + needle.length)) n++;
  return n;
}

const BREAK = /[。，、；：！？）」”.,;:!?)]/;
const WORD = /[A-Za-z0-9\u00C0-\u024F]/;
const SLACK = 12;

/** `text` escaped with every match of every term in <mark>. */
export function markAll(text: string, terms: string[]): string {
  const lower = fold(text);
  let out = '';
  let i = 0;
  while (i < text.length) {
    const term = terms.find((t) => t && lower.startsWith(t, i));
    if (term) {
      out += `<mark>${escapeHtml(text.slice(i, i + term.length))}</mark>`;
      i += term.length;
    } else {
      out += escapeHtml(text[i]);
      i++;
    }
  }
  return out;
}

/**
 * Cuts about `width` characters around the first match, at punctuation or a
 * space when one is near and never inside a Latin word, HTML-escaped, every
 * match of every term in <mark> (what heartbridge-core's `snippet` does).
 */
export function makeSnippet(text: string, terms: string[], width = 80): string {
  const lower = fold(text);
  const first = Math.min(...terms.map((t) => lower.indexOf(t)).filter((i) => i >= 0));
  const at = Number.isFinite(first) ? first : -1;
  let start = 0;
  if (at > 0) {
    const want = Math.max(0, Math.min(at - Math.floor(width / 4), text.length - width));
    start = want;
    let found = false;
    for (let i = want - 1; i >= Math.max(0, want - SLACK); i--) {
      if (BREAK.test(text[i]) || text[i] === ' ') {
        start = i + 1;
        found = true;
        break;
      }
    }
    if (!found) while (start < at && start > 0 && WORD.test(text[start]) && WORD.test(text[start - 1])) start++;
  }
  const floor = at >= 0 ? at + 1 : 0;
  let end = Math.min(text.length, start + width);
  if (end < text.length) {
    let found = false;
    for (let i = end - 1; i >= Math.max(floor, end - SLACK); i--) {
      if (BREAK.test(text[i])) {
        end = i + 1;
        found = true;
        break;
      }
    }
    if (!found) {
      let e = end;
      while (e > floor && WORD.test(text[e]) && WORD.test(text[e - 1])) e--;
      end = e > floor ? e : end;
    }
  }
  const cut = text.slice(start, end).trim();
  return (start > 0 ? '…' : '') + markAll(cut, terms) + (end < text.length ? '…' : '');
}

/** The headings section `i` sits under, outermost first (not the book's title). */
function context(book: HandbookView, i: number): string[] {
  const out: string[] = [];
  let level = book.sections[i].level;
  for (let k = i - 1; k >= 0 && level > 1; k--) {
    const s = book.sections[k];
    if (s.level > 0 && s.level < level) {
      out.unshift(s.title);
      level = s.level;
    }
  }
  return out;
}

/** Sections with text that contain every term (in the text, heading or context), best first. */
export function searchHandbooks(books: HandbookView[], query: string, limit: number, offset = 0): SearchPage {
  const terms = [
    ...new Set(
      fold(query)
        .split(/[\s,.;:!?，。；：！？、]+/)
        .filter((t) => t.length > 0),
    ),
  ];
  if (terms.length === 0) return { total: 0, hits: [] };
  const hits: Hit[] = [];
  for (const book of books) {
    book.sections.forEach((s, i) => {
      const body = stripTags(s.html);
      if (!body) return;
      const ctx = context(book, i);
      const title = fold(s.title);
      const text = fold(body);
      const around = fold(ctx.join(' '));
      if (!terms.every((t) => title.includes(t) || text.includes(t) || around.includes(t))) return;
      const score = terms.reduce(
        (sum, t) => sum + 6 * countOf(title, t) + countOf(text, t) / (1 + text.length / 400) + 0.5 * countOf(around, t),
        0,
      );
      hits.push({
        handbookId: book.id,
        handbookTitle: book.title,
        section: s.index,
        sectionTitle: s.title,
        titleHtml: markAll(s.title, terms),
        contextHtml: ctx.map((c) => markAll(c, terms)),
        snippet: makeSnippet(body, terms, 90),
        score,
      });
    });
  }
  hits.sort((a, b) => b.score - a.score);
  return { total: hits.length, hits: hits.slice(Math.max(0, offset), Math.max(0, offset) + Math.max(0, limit)) };
}
