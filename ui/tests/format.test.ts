import { describe, expect, it } from 'vitest';
import { formatDate, formatDateTime, formatRelative, formatTime, isOverdue, parseWhen } from '../src/lib/format';

const TZ = 'Asia/Shanghai';
const AT = '2026-11-29T10:42:05Z'; // 18:42 in Beijing
const NOW = new Date('2026-11-29T12:00:00Z');

describe('date formatting', () => {
  it('shows the time on a 24-hour clock in both languages', () => {
    expect(formatTime(AT, 'zh-CN', TZ)).toBe('18:42');
    expect(formatTime(AT, 'en', TZ)).toBe('18:42');
  });

  it('shows date and time, without the year this year', () => {
    expect(formatDateTime(AT, 'zh-CN', TZ, NOW)).toBe('11月29日 18:42');
    expect(formatDateTime(AT, 'en', TZ, NOW)).toMatch(/^29 Nov,? 18:42$/);
  });

  it('adds the year when it is not this year', () => {
    expect(formatDateTime('2025-03-01T02:00:00Z', 'zh-CN', TZ, NOW)).toBe('2025年3月1日 10:00');
  });

  it('keeps a due date on its calendar day, whatever the time zone', () => {
    expect(formatDate('2026-12-01', 'zh-CN', 'America/Los_Angeles', NOW)).toBe('12月1日');
    expect(formatDate('2026-12-01', 'en', 'Pacific/Auckland', NOW)).toBe('1 Dec');
  });

  it('says how long ago', () => {
    expect(formatRelative('2026-11-29T11:57:00Z', 'zh-CN', NOW)).toBe('3分钟前');
    expect(formatRelative('2026-11-29T11:57:00Z', 'en', NOW)).toBe('3 minutes ago');
    expect(formatRelative('2026-11-28T12:00:00Z', 'en', NOW)).toBe('yesterday');
    expect(formatRelative('2026-11-29T11:59:50Z', 'zh-CN', NOW)).toBe('现在');
  });

  it('leaves text it cannot read as it is', () => {
    expect(formatTime('soon', 'en', TZ)).toBe('soon');
    expect(parseWhen('2026-13-45T00:00:00Z')).toBeNull();
  });

  it('knows an overdue follow-up', () => {
    const now = new Date(2026, 10, 29, 9, 0);
    expect(isOverdue('2026-11-28', now)).toBe(true);
    expect(isOverdue('2026-11-29', now)).toBe(false);
    expect(isOverdue(null, now)).toBe(false);
  });
});
