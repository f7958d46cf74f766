import { describe, expect, it } from 'vitest';
import type { StatsMeasures, StatsRow } from '../src/lib/api/types';
import {
  barLengths,
  cellText,
  dimValueLabel,
  formatCount,
  formatValue,
  isoWeek,
  markText,
  measureCells,
  periodLabel,
  rangeLabel,
  sortRows,
  suppressColumn,
  totalCell,
} from '../src/lib/stats';

const zero: StatsMeasures = {
  contacts: 0,
  distinctCases: 0,
  newCases: 0,
  escalations: 0,
  receipts: 0,
  medianReceiptMinutes: null,
  followupsDone: 0,
  followupsOverdue: 0,
  volunteerHours: 0,
};
const row = (key: StatsRow['key'], m: Partial<StatsMeasures>): StatsRow => ({ key, measures: { ...zero, ...m } });

describe('suppression on the statistics screen', () => {
  it('hides counts from 1 to k, keeps 0 and counts above k', () => {
    expect(suppressColumn([0, 1, 5, 6, 40, 3], 5).map((c) => c.mark)).toEqual([null, 'primary', 'primary', null, null, 'primary']);
  });

  it('hides the next smallest cell when exactly one was hidden, so the total does not give it away', () => {
    // total 64 shown beside them: 64 − 40 − 21 would reveal the 3
    const cells = suppressColumn([40, 3, 21, 0], 5);
    expect(cells.map((c) => c.mark)).toEqual([null, 'primary', 'secondary', null]);
  });

  it('needs no secondary cell when two or more are hidden already, or none', () => {
    expect(suppressColumn([30, 2, 4], 5).map((c) => c.mark)).toEqual([null, 'primary', 'primary']);
    expect(suppressColumn([30, 12, 9], 5).map((c) => c.mark)).toEqual([null, null, null]);
  });

  it('follows the team threshold', () => {
    expect(suppressColumn([3, 9, 10], 9).map((c) => c.mark)).toEqual(['primary', 'primary', null]);
    expect(suppressColumn([3, 9, 10], 2).map((c) => c.mark)).toEqual([null, null, null]);
  });

  it('marks hidden cells “≤k” and “*”, the legend’s two signs', () => {
    expect(markText('primary', 5)).toBe('≤5');
    expect(markText('secondary', 5)).toBe('*');
    const cells = suppressColumn([40, 3, 21], 5);
    expect(cells.map((c) => cellText('contacts', c, 5, 'zh-CN'))).toEqual(['40', '≤5', '*']);
  });

  it('hides the median time to receipt with its escalations or when it stands on 1..k receipts; hours are not counts', () => {
    const rows = [
      row({ channel: 'hotline' }, { escalations: 12, receipts: 11, medianReceiptMinutes: 18, volunteerHours: 3 }),
      row({ channel: 'online' }, { escalations: 2, receipts: 2, medianReceiptMinutes: 7, volunteerHours: 2.5 }),
      row({ channel: 'in-person' }, { escalations: 9, receipts: 3, medianReceiptMinutes: 25, volunteerHours: 1 }),
      row({ channel: 'unknown' }, { escalations: 30, receipts: 30, medianReceiptMinutes: 12, volunteerHours: 0 }),
    ];
    // online: 2 escalations (hidden); in-person: 9 escalations hidden as the secondary cell, and 3 receipts anyway.
    // A hidden median is marked "*", not "≤5", which would read as minutes.
    const median = measureCells(rows, 'medianReceiptMinutes', 5);
    expect(median.map((c) => c.mark)).toEqual([null, 'secondary', 'secondary', null]);
    expect(median.map((c) => cellText('medianReceiptMinutes', c, 5, 'en'))).toEqual(['18 min', '*', '*', '12 min']);
    expect(measureCells(rows, 'volunteerHours', 5).slice(0, 2)).toEqual([
      { value: 3, mark: null },
      { value: 2.5, mark: null },
    ]);
    expect(dimValueLabel('channel', 'unknown', 'en')).toBe('Not given');
  });

  it('hides a small total too', () => {
    expect(totalCell({ ...zero, escalations: 4 }, 'escalations', 5).mark).toBe('primary');
    expect(totalCell({ ...zero, contacts: 64 }, 'contacts', 5)).toEqual({ value: 64, mark: null });
  });
});

describe('row order', () => {
  it('follows the vocabulary for channel, group and risk, time for weeks; unknown last', () => {
    const rows = ['unknown', 'online', 'hotline', 'in-person'].map((c) => row({ channel: c }, {}));
    expect(sortRows(rows, 'channel').map((r) => r.key.channel)).toEqual(['hotline', 'in-person', 'online', 'unknown']);
    const risks = ['low', 'critical', 'none', 'high'].map((r) => row({ risk: r }, {}));
    expect(sortRows(risks, 'risk').map((r) => r.key.risk)).toEqual(['critical', 'high', 'low', 'none']);
    const weeks = ['2026-W10', '2025-W52', '2026-W02'].map((w) => row({ week: w }, {}));
    expect(sortRows(weeks, 'week').map((r) => r.key.week)).toEqual(['2025-W52', '2026-W02', '2026-W10']);
  });
});

describe('bar lengths', () => {
  it('scales to the largest visible value; hidden and empty cells get no bar', () => {
    const cells = suppressColumn([40, 3, 21, 0, 10], 5);
    // 3 hidden (primary), 10 hidden (secondary: the smallest other)
    expect(barLengths(cells, 100)).toEqual([100, 0, 52.5, 0, 0]);
  });

  it('never draws a visible value thinner than the minimum', () => {
    const cells = suppressColumn([1000, 6], 5);
    expect(barLengths(cells, 100, 2)).toEqual([100, 2]);
  });

  it('has no bars when nothing is visible', () => {
    expect(barLengths(suppressColumn([0, 0], 5), 100)).toEqual([0, 0]);
    expect(barLengths([], 100)).toEqual([]);
  });
});

describe('numbers and periods in both languages', () => {
  it('groups thousands', () => {
    expect(formatCount(12345, 'zh-CN')).toBe('12,345');
    expect(formatCount(12345, 'en')).toBe('12,345');
  });

  it('writes hours with one decimal and the median with its unit', () => {
    expect(formatValue('volunteerHours', 12.25, 'zh-CN')).toBe('12.3 小时');
    expect(formatValue('volunteerHours', 12, 'en')).toBe('12 h');
    expect(formatValue('medianReceiptMinutes', 17.5, 'zh-CN')).toBe('18 分钟');
    expect(formatValue('medianReceiptMinutes', null, 'en')).toBe('—');
  });

  it('names ISO weeks and months', () => {
    expect(isoWeek(new Date('2026-12-01T00:00:00Z'))).toBe('2026-W49');
    expect(isoWeek(new Date('2027-01-01T00:00:00Z'))).toBe('2026-W53');
    expect(isoWeek(new Date('2026-01-01T00:00:00Z'))).toBe('2026-W01');
    expect(periodLabel('2026-W48', 'zh-CN')).toBe('2026年第48周');
    expect(periodLabel('2026-W48', 'en')).toBe('Week 48, 2026');
    expect(periodLabel('2026-11', 'zh-CN')).toBe('2026年11月');
    expect(periodLabel('2026-11', 'en')).toBe('Nov 2026');
  });

  it('names channel, group and risk values from the catalogs', () => {
    expect(dimValueLabel('channel', 'hotline', 'zh-CN')).toBe('热线');
    expect(dimValueLabel('group', 'left-behind', 'en')).toBe('Left-behind children');
    expect(dimValueLabel('risk', 'critical', 'zh-CN')).toBe('危急');
    expect(dimValueLabel('week', '2026-W02', 'en')).toBe('Week 2, 2026');
    expect(dimValueLabel('group', '', 'zh-CN')).toBe('未注明');
  });

  it('writes the period asked for', () => {
    const now = new Date('2026-12-01T08:00:00Z');
    expect(rangeLabel('2026-11-01', '2026-11-30', 'zh-CN', now)).toBe('11月1日至11月30日');
    expect(rangeLabel('2026-11-01', '2026-11-30', 'en', now)).toBe('1 Nov – 30 Nov');
    expect(rangeLabel('2025-11-01', null, 'en', now)).toBe('From 1 Nov 2025');
    expect(rangeLabel(null, null, 'zh-CN', now)).toBe('全部记录');
  });
});
