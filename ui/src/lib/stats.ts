// The statistics screen's arithmetic, pure: which cells are suppressed and
// how they are marked, bar lengths, and numbers and periods in the current
// language. The screen and the Vitest tests both use these.
//
// Suppression follows the export's rule (issue 9): a count from 1 to k is
// not shown (primary, marked "≤k"), and when a breakdown would then hide
// exactly one cell, the next smallest non-zero cell is hidden too
// (secondary, marked "*"), so the total shown beside them does not give the
// hidden one away.

import type { Locale } from './format';
import { translate } from './i18n/translate';
import { CHANNELS, GROUPS, RISKS, type StatsDim, type StatsMeasure, type StatsMeasures, type StatsRow } from './api/types';

export type Mark = 'primary' | 'secondary' | null;
export interface Cell {
  /** null: nothing to show (no escalation had a receipt, say). */
  value: number | null;
  mark: Mark;
}

/** The measures that count people or events (and so are suppressed); hours and the median are not counts. */
export const COUNT_MEASURES: readonly StatsMeasure[] = [
  'contacts',
  'distinctCases',
  'newCases',
  'escalations',
  'followupsDone',
  'followupsOverdue',
];
export const isCount = (m: StatsMeasure) => COUNT_MEASURES.includes(m);

const primary = (v: number | null, k: number) => v !== null && v >= 1 && v <= k;

/**
 * One measure across the cells of a breakdown (whose total is shown
 * elsewhere): primary suppression of 1..k, then secondary suppression of the
 * smallest other non-zero cell when exactly one cell was hidden.
 */
export function suppressColumn(values: readonly (number | null)[], k: number): Cell[] {
  const cells: Cell[] = values.map((value) => ({ value, mark: primary(value, k) ? 'primary' : null }));
  const hidden = cells.filter((c) => c.mark !== null).length;
  if (hidden === 1) {
    let pick = -1;
    cells.forEach((c, i) => {
      if (c.mark === null && c.value !== null && c.value > 0 && (pick < 0 || c.value < (cells[pick].value ?? 0))) pick = i;
    });
    if (pick >= 0) cells[pick] = { ...cells[pick], mark: 'secondary' };
  }
  return cells;
}

/**
 * A measure's cells for each row of a breakdown. Counts are suppressed as
 * above; the median time to receipt is hidden (primary) wherever the
 * escalations are hidden or it stands on 1..k receipts, since it would
 * describe one person's answer (marked "*": it is not a count, so "≤k"
 * would misread as minutes); hours are shown as they are.
 */
export function measureCells(rows: readonly StatsRow[], measure: StatsMeasure, k: number): Cell[] {
  const values = rows.map((r) => r.measures[measure]);
  if (isCount(measure)) return suppressColumn(values, k);
  if (measure === 'medianReceiptMinutes') {
    // Hidden with its escalations, or when it stands on 1..k receipts (as in the export).
    const escalations = suppressColumn(
      rows.map((r) => r.measures.escalations),
      k,
    );
    return rows.map((r, i) => ({
      value: r.measures.medianReceiptMinutes,
      mark:
        r.measures.medianReceiptMinutes !== null && (escalations[i].mark !== null || primary(r.measures.receipts, k))
          ? 'secondary'
          : null,
    }));
  }
  return values.map((value) => ({ value, mark: null }));
}

/**
 * The rows of a breakdown by `dim` in reading order: channels, groups and
 * risks in the vocabulary's order (risk from critical down), weeks and
 * months in time order; anything unknown last.
 */
export function sortRows(rows: readonly StatsRow[], dim: StatsDim): StatsRow[] {
  const order: readonly string[] | null =
    dim === 'channel' ? CHANNELS : dim === 'group' ? GROUPS : dim === 'risk' ? [...RISKS].reverse() : null;
  const rank = (v: string | undefined) => {
    if (v === undefined || v === '' || v === 'unknown') return [2, ''] as const;
    if (!order) return [0, v] as const;
    const i = order.indexOf(v);
    return i < 0 ? ([1, v] as const) : ([0, String(i).padStart(3, '0')] as const);
  };
  return [...rows].sort((a, b) => {
    const [ra, sa] = rank(a.key[dim]);
    const [rb, sb] = rank(b.key[dim]);
    return ra - rb || sa.localeCompare(sb);
  });
}

/** A total (no breakdown beside it): counts from 1 to k are hidden. */
export function totalCell(totals: StatsMeasures, measure: StatsMeasure, k: number): Cell {
  return measureCells([{ key: {}, measures: totals }], measure, k)[0];
}

/** The mark shown instead of a hidden number. */
export function markText(mark: Exclude<Mark, null>, k: number): string {
  return mark === 'primary' ? `≤${k}` : '*';
}

/**
 * Bar lengths in [0, full] for the visible cells, proportional to the
 * largest visible value; a hidden or empty cell has no bar, and a visible
 * value above zero is never shorter than `min` so it can be seen.
 */
export function barLengths(cells: readonly Cell[], full: number, min = 2): number[] {
  const shown = cells.map((c) => (c.mark === null && c.value !== null && c.value > 0 ? c.value : 0));
  const max = Math.max(0, ...shown);
  return shown.map((v) => (v === 0 || max === 0 ? 0 : Math.max(min, Math.round((v / max) * full * 10) / 10)));
}

function numberFormat(locale: Locale, digits: number): Intl.NumberFormat {
  return new Intl.NumberFormat(locale === 'en' ? 'en-GB' : 'zh-CN', {
    maximumFractionDigits: digits,
    minimumFractionDigits: 0,
  });
}

/** 1,234 in both languages. */
export function formatCount(n: number, locale: Locale): string {
  return numberFormat(locale, 0).format(n);
}

/** A measure's value as the screen writes it (hours with one decimal, the median with its unit). */
export function formatValue(measure: StatsMeasure, value: number | null, locale: Locale): string {
  if (value === null) return '—';
  if (measure === 'volunteerHours') return translate(locale, 'stats.hours', { n: numberFormat(locale, 1).format(value) });
  if (measure === 'medianReceiptMinutes') return translate(locale, 'stats.minutes', { n: numberFormat(locale, 0).format(value) });
  return formatCount(value, locale);
}

/** What a cell shows: its value, or the mark of a hidden one. */
export function cellText(measure: StatsMeasure, cell: Cell, k: number, locale: Locale): string {
  return cell.mark ? markText(cell.mark, k) : formatValue(measure, cell.value, locale);
}

/** The ISO 8601 week of a date (in UTC), written `2026-W48`. */
export function isoWeek(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const day = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - day); // the Thursday of this week decides the year
  const year = t.getUTCFullYear();
  const week = Math.ceil(((t.getTime() - Date.UTC(year, 0, 1)) / 86_400_000 + 1) / 7);
  return `${year}-W${String(week).padStart(2, '0')}`;
}

/** `2026-11` of a date (in UTC). */
export function monthKey(d: Date): string {
  return `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, '0')}`;
}

/** A week or month key in words: 2026年第48周 / Week 48, 2026; 2026年11月 / Nov 2026. Other keys as they are. */
export function periodLabel(key: string, locale: Locale): string {
  const w = /^(\d{4})-W(\d{2})$/.exec(key);
  if (w) return translate(locale, 'stats.week', { year: w[1], week: Number(w[2]) });
  const m = /^(\d{4})-(\d{2})$/.exec(key);
  if (m) {
    const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, 1));
    return new Intl.DateTimeFormat(locale === 'en' ? 'en-GB' : 'zh-CN', { year: 'numeric', month: locale === 'en' ? 'short' : 'long', timeZone: 'UTC' }).format(d);
  }
  return key;
}

/** The label of a breakdown row's value of `dim`: a catalog name for channel, group and risk, a period for week and month. */
export function dimValueLabel(dim: StatsDim, value: string | undefined, locale: Locale): string {
  if (value === undefined || value === '' || value === 'unknown') return translate(locale, 'stats.unknown');
  if (dim === 'week' || dim === 'month') return periodLabel(value, locale);
  const key = `${dim === 'channel' ? 'channel' : dim === 'group' ? 'group' : 'risk'}.${value}`;
  const text = translate(locale, key as Parameters<typeof translate>[1]);
  return text === key ? value : text;
}

/** The period asked for, in words: 11月1日至11月30日 / 1 Nov – 30 Nov; open ends say so. */
export function rangeLabel(from: string | null, to: string | null, locale: Locale, now = new Date()): string {
  const day = (s: string) => {
    const [y, mo, d] = s.split('-').map(Number);
    const date = new Date(Date.UTC(y, mo - 1, d));
    return new Intl.DateTimeFormat(locale === 'en' ? 'en-GB' : 'zh-CN', {
      year: y === now.getUTCFullYear() ? undefined : 'numeric',
      month: locale === 'en' ? 'short' : 'long',
      day: 'numeric',
      timeZone: 'UTC',
    }).format(date);
  };
  if (from && to) return translate(locale, 'stats.range', { from: day(from), to: day(to) });
  if (from) return translate(locale, 'stats.rangeFrom', { from: day(from) });
  if (to) return translate(locale, 'stats.rangeTo', { to: day(to) });
  return translate(locale, 'stats.rangeAll');
}
