// Handbook search for the in-browser fake: the same contract as
// heartbridge-core's search (every term must match, ranked, a snippet cut
// around the first match, HTML-escaped, matches in <mark>), done by plain
// substring matching over the sample sections.
import type { HandbookView, Hit } from './types';

export function stripTags(html: string): string {
  return html
    .replace(/<[^>]*>/g, '')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&')
    .replace(/\s+/g, ' ')
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

function countOf(haystack: string, needle: string): number {
  let n = 0;
  for (let i = haystack.indexOf(needle); i !== -1; i = haystack.indexOf(needle, i + needle.length)) n++;
  return n;
}

/**
 * Cuts about `width` characters around the first match, HTML-escaped, every
 * match of every term in <mark> (what heartbridge-core's `snippet` does).
 */
export function makeSnippet(text: string, terms: string[], width = 80): string {
  const lower = text.toLowerCase();
  const first = Math.min(...terms.map((t) => lower.indexOf(t)).filter((i) => i >= 0));
  const at = Number.isFinite(first) ? first : 0;
  const start = Math.max(0, at - Math.floor(width / 3));
  const end = Math.min(text.length, start + width);
  const cut = text.slice(start, end);
  const cutLower = cut.toLowerCase();
  let out = '';
  let i = 0;
  while (i < cut.length) {
    const term = terms.find((t) => t && cutLower.startsWith(t, i));
    if (term) {
      out += `<mark>${escapeHtml(cut.slice(i, i + term.length))}</mark>`;
      i += term.length;
    } else {
      out += escapeHtml(cut[i]);
      i++;
    }
  }
  return (start > 0 ? '…' : '') + out + (end < text.length ? '…' : '');
}

/** Sections that contain every term, best first. */
export function searchHandbooks(books: HandbookView[], query: string, limit: number): Hit[] {
  const terms = query
    .toLowerCase()
    .split(/\s+/)
    .filter((t) => t.length > 0);
  if (terms.length === 0) return [];
  const hits: Hit[] = [];
  for (const book of books) {
    for (const s of book.sections) {
      const body = stripTags(s.html);
      const title = s.title.toLowerCase();
      const text = body.toLowerCase();
      if (!terms.every((t) => title.includes(t) || text.includes(t))) continue;
      const score = terms.reduce((sum, t) => sum + 3 * countOf(title, t) + countOf(text, t), 0);
      hits.push({
        handbookId: book.id,
        handbookTitle: book.title,
        section: s.index,
        sectionTitle: s.title,
        snippet: makeSnippet(`${s.title} · ${body}`, terms),
        score,
      });
    }
  }
  hits.sort((a, b) => b.score - a.score);
  return hits.slice(0, Math.max(0, limit));
}
