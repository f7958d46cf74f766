// Issue 12: dates typed in the volunteer's form, minutes, and the fields a
// back-end error names.
import { describe, expect, it } from 'vitest';
import { addDays, formatDateLong, parseDateInput } from '../src/lib/format';
import { fieldOf, invalidFields, minutesValid } from '../src/lib/form-errors';
import { searchHandbooks, makeSnippet } from '../src/lib/api/fake-search';

describe('a due date as typed', () => {
  it('reads the forms volunteers type, full-width digits too', () => {
    for (const typed of ['2026-12-01', '2026-12-1', '2026/12/1', '2026.12.01', '2026年12月1日', ' 2026 年 12 月 1 日 ', '２０２６－１２－０１']) {
      expect(parseDateInput(typed), typed).toBe('2026-12-01');
    }
    expect(parseDateInput('')).toBe('');
  });
  it('refuses what is not a date, and days that do not exist', () => {
    for (const typed of ['12/01/2026', '2026-02-30', '2026-13-01', 'tomorrow', '2026-12']) {
      expect(parseDateInput(typed), typed).toBeNull();
    }
  });
  it('reads a date back in the locale’s words, year-month-day in Chinese', () => {
    expect(formatDateLong('2026-12-01', 'zh-CN')).toMatch(/^2026年12月1日/);
    expect(formatDateLong('2026-12-01', 'en')).toMatch(/1 December 2026/);
    expect(addDays(new Date(2026, 11, 31), 1)).toBe('2027-01-01');
  });
});

describe('form fields', () => {
  it('minutes are absent or a whole number from 0 to 1440', () => {
    expect([null, 0, 20, 1440].every(minutesValid)).toBe(true);
    expect([-5, 1441, 2.5, Number.NaN].some(minutesValid)).toBe(false);
  });
  it('maps the field a back-end error names to the form’s field', () => {
    expect(fieldOf({ kind: 'invalid_input', message: 'x', field: 'contact text' })).toBe('text');
    expect(fieldOf({ kind: 'invalid_input', message: 'x', field: 'due date' })).toBe('due');
    expect(fieldOf({ kind: 'invalid_input', message: 'x' })).toBeNull();
    expect(fieldOf(new Error('boom'))).toBeNull();
    expect(invalidFields({ text: 'form.textEmpty', minutes: 'form.minutesInvalid' }, ['minutes', 'text'])).toEqual(['minutes', 'text']);
  });
});

describe('the fake’s search keeps the contract', () => {
  it('cuts English at word boundaries and folds full-width queries', () => {
    const text = 'When a caller mentions suicide, ask directly and calmly about thoughts, plans and means; never argue.';
    const s = makeSnippet(text, ['plans'], 40);
    const inner = s.replace(/<\/?mark>/g, '').replace(/…/g, '');
    const at = text.indexOf(inner);
    expect(at).toBeGreaterThan(0);
    expect(/\w/.test(text[at - 1]) && /\w/.test(inner[0])).toBe(false);
    expect(/\w/.test(text[at + inner.length] ?? '') && /\w$/.test(inner)).toBe(false);
  });
  it('has no heading-only hits and pages add up', () => {
    const books = [
      {
        id: 'b',
        title: '手册',
        language: 'zh-CN',
        version: '1',
        sections: [
          { index: 0, level: 2, title: '第一章 倾听', html: '' },
          { index: 1, level: 3, title: '复述', html: '<p>倾听时复述。</p>' },
          { index: 2, level: 3, title: '沉默', html: '<p><strong>沉默</strong>也是倾听。</p>' },
        ],
      },
    ];
    const page = searchHandbooks(books, '倾听', 1);
    expect(page.total).toBe(2);
    expect(page.hits[0].section).not.toBe(0);
    expect(page.hits[0].contextHtml).toEqual(['第一章 <mark>倾听</mark>']);
    const rest = searchHandbooks(books, 'ＰＦＡ 倾听', 10, 1);
    expect(rest.total).toBe(0);
  });
});
