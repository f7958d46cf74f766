import { describe, expect, it } from 'vitest';
import en from '../src/lib/i18n/en';
import { catalogs, translate } from '../src/lib/i18n/translate';
import zhCN from '../src/lib/i18n/zh-CN';

const params = (s: string) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

describe('message catalogs', () => {
  it('zh-CN and en have exactly the same keys', () => {
    expect(Object.keys(en).sort()).toEqual(Object.keys(zhCN).sort());
  });

  it('no message is empty', () => {
    for (const [locale, cat] of Object.entries(catalogs))
      for (const [key, msg] of Object.entries(cat)) expect(msg.trim(), `${locale} ${key}`).not.toBe('');
  });

  it('both languages use the same parameters in every message', () => {
    for (const key of Object.keys(zhCN) as (keyof typeof zhCN)[]) {
      const zh = [...new Set(params(zhCN[key]))];
      for (const form of en[key].split('|')) expect([...new Set(params(form))], key).toEqual(zh);
    }
  });

  it('a message with one|other forms takes the count as {n}', () => {
    for (const cat of Object.values(catalogs))
      for (const [key, msg] of Object.entries(cat))
        if (msg.includes('|')) {
          expect(msg.split('|'), key).toHaveLength(2);
          expect(msg, key).toContain('{n}');
        }
  });
});

describe('translate', () => {
  it('fills in parameters', () => {
    expect(translate('zh-CN', 'home.greeting', { name: '陈静' })).toBe('你好，陈静');
    expect(translate('en', 'home.greeting', { name: 'Jing' })).toBe('Hello, Jing');
  });

  it('picks the singular or the plural by n', () => {
    expect(translate('en', 'cases.count', { n: 1 })).toBe('1 case');
    expect(translate('en', 'cases.count', { n: 3 })).toBe('3 cases');
    expect(translate('zh-CN', 'cases.count', { n: 3 })).toBe('共 3 个');
  });

  it('writes the shift receipt in both languages', () => {
    expect(translate('zh-CN', 'shift.receipt', { n: 12, time: '18:42' })).toBe('全部 12 条更改已于 18:42 送达中心中继');
    expect(translate('en', 'shift.receipt', { n: 12, time: '18:42' })).toBe('All 12 changes reached the central relay at 18:42');
  });

  it('leaves an unknown parameter visible rather than blank', () => {
    expect(translate('en', 'home.greeting')).toBe('Hello, {name}');
  });
});
