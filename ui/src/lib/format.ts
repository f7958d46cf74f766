// Dates and times in the current locale. Pure: the locale (and, for tests,
// the time zone and the clock) are arguments. Times are 24-hour in both
// languages (18:42), as volunteers in China write them.

export type Locale = 'zh-CN' | 'en';

const DATE_ONLY = /^(\d{4})-(\d{2})-(\d{2})$/;

/** A Date from an RFC 3339 timestamp or a `YYYY-MM-DD` date (local midnight). */
export function parseWhen(s: string): Date | null {
  const m = DATE_ONLY.exec(s);
  const d = m ? new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3])) : new Date(s);
  return Number.isNaN(d.getTime()) ? null : d;
}

function intlLocale(locale: Locale): string {
  return locale === 'en' ? 'en-GB' : 'zh-CN';
}

function parts(d: Date, locale: Locale, opts: Intl.DateTimeFormatOptions, timeZone?: string): string {
  return new Intl.DateTimeFormat(intlLocale(locale), { ...opts, timeZone }).format(d);
}

function sameYear(a: Date, b: Date, timeZone?: string): boolean {
  const y = (d: Date) => new Intl.DateTimeFormat('en', { year: 'numeric', timeZone }).format(d);
  return y(a) === y(b);
}

/** 18:42 */
export function formatTime(iso: string, locale: Locale, timeZone?: string): string {
  const d = parseWhen(iso);
  if (!d) return iso;
  return parts(d, locale, { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }, timeZone);
}

/** 11月29日 18:42 / 29 Nov 18:42 (with the year when it is not this year). */
export function formatDateTime(iso: string, locale: Locale, timeZone?: string, now = new Date()): string {
  const d = parseWhen(iso);
  if (!d) return iso;
  return parts(
    d,
    locale,
    {
      year: sameYear(d, now, timeZone) ? undefined : 'numeric',
      month: locale === 'en' ? 'short' : 'long',
      day: 'numeric',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    },
    timeZone,
  );
}

/** 12月1日 / 1 Dec (with the year when it is not this year). A `YYYY-MM-DD` is a calendar date, not shifted by a time zone. */
export function formatDate(when: string, locale: Locale, timeZone?: string, now = new Date()): string {
  const d = parseWhen(when);
  if (!d) return when;
  const tz = DATE_ONLY.test(when) ? undefined : timeZone;
  return parts(
    d,
    locale,
    { year: sameYear(d, now, tz) ? undefined : 'numeric', month: locale === 'en' ? 'short' : 'long', day: 'numeric' },
    tz,
  );
}

/** 3 分钟前 / 3 minutes ago; 昨天 / yesterday. */
export function formatRelative(iso: string, locale: Locale, now = new Date()): string {
  const d = parseWhen(iso);
  if (!d) return iso;
  const rtf = new Intl.RelativeTimeFormat(intlLocale(locale), { numeric: 'auto' });
  const sec = Math.round((d.getTime() - now.getTime()) / 1000);
  const abs = Math.abs(sec);
  if (abs < 45) return rtf.format(0, 'second');
  if (abs < 45 * 60) return rtf.format(Math.round(sec / 60), 'minute');
  if (abs < 22 * 3600) return rtf.format(Math.round(sec / 3600), 'hour');
  return rtf.format(Math.round(sec / 86400), 'day');
}

/** `YYYY-MM-DD` of a moment in local time. */
export function localDate(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

/** A due date (`YYYY-MM-DD` or RFC 3339) that lies before today. */
export function isOverdue(due: string | null, now = new Date()): boolean {
  if (!due) return false;
  const d = parseWhen(due);
  if (!d) return false;
  const day = DATE_ONLY.test(due) ? due : localDate(d);
  return day < localDate(now);
}

/**
 * A date as a volunteer types it, as `YYYY-MM-DD`, or null: `2026-12-01`,
 * `2026-12-1`, `2026/12/1`, `2026.12.1`, `2026年12月1日`, full-width digits
 * too. A date that does not exist (2026-02-30) is null. Empty is ''.
 */
export function parseDateInput(typed: string): string | null {
  const s = typed
    .replace(/[\uFF10-\uFF19]/g, (c) => String.fromCharCode(c.charCodeAt(0) - 0xfee0))
    .replace(/[\uFF0D\uFF0F\uFF0E]/g, '-')
    .trim();
  if (s === '') return '';
  const m = /^(\d{4})\s*(?:[-/.]|年)\s*(\d{1,2})\s*(?:[-/.]|月)\s*(\d{1,2})\s*日?$/.exec(s);
  if (!m) return null;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const date = new Date(y, mo - 1, d);
  if (date.getFullYear() !== y || date.getMonth() !== mo - 1 || date.getDate() !== d) return null;
  return localDate(date);
}

/** `YYYY-MM-DD` of the day `days` after `from` (local time). */
export function addDays(from: Date, days: number): string {
  return localDate(new Date(from.getFullYear(), from.getMonth(), from.getDate() + days));
}

/** 2026年12月1日（星期二） / Tuesday 1 December 2026: a due date read back in full. */
export function formatDateLong(day: string, locale: Locale): string {
  const d = parseWhen(day);
  if (!d) return day;
  return parts(d, locale, { year: 'numeric', month: 'long', day: 'numeric', weekday: 'long' });
}
