import { describe, expect, it } from 'vitest';
import { href, parseRoute, tabOf, to, type Route } from '../src/lib/route';

describe('parseRoute', () => {
  it.each<[string, Route]>([
    ['', { name: 'home' }],
    ['#', { name: 'home' }],
    ['#/', { name: 'home' }],
    ['#/handbooks', { name: 'handbooks', query: '', focus: false }],
    ['#/handbooks?q=%E5%8D%B1%E6%9C%BA', { name: 'handbooks', query: '危机', focus: false }],
    ['#/search', { name: 'handbooks', query: '', focus: true }],
    ['#/handbooks/abc123', { name: 'reader', id: 'abc123', section: 0 }],
    ['#/handbooks/abc123/3', { name: 'reader', id: 'abc123', section: 3 }],
    ['#/handbooks/abc123/3/', { name: 'reader', id: 'abc123', section: 3 }],
    ['#/cases', { name: 'cases', risk: null, status: null, group: null }],
    ['#/cases?risk=high-up&status=open&group=migrant', { name: 'cases', risk: 'high-up', status: 'open', group: 'migrant' }],
    ['#/cases?risk=extreme&group=aliens', { name: 'cases', risk: null, status: null, group: null }],
    ['#/cases/new', { name: 'case-new' }],
    ['#/cases/0f3a', { name: 'case', id: '0f3a' }],
    ['#/shift', { name: 'shift' }],
    ['#/settings', { name: 'settings' }],
  ])('%s', (hash, route) => {
    expect(parseRoute(hash)).toEqual(route);
  });

  it.each(['#/handbooks/abc/-1', '#/handbooks/abc/x', '#/handbooks/abc/1/2', '#/nope', '#/cases/a/b', '#/handbooks/%E0%A4%A'])(
    '%s is not found',
    (hash) => {
      expect(parseRoute(hash).name).toBe('not-found');
    },
  );
});

describe('href', () => {
  const routes: Route[] = [
    { name: 'home' },
    { name: 'handbooks', query: '', focus: false },
    { name: 'handbooks', query: '心理 危机', focus: false },
    { name: 'handbooks', query: '', focus: true },
    { name: 'reader', id: 'a/b c', section: 12 },
    { name: 'cases', risk: 'critical', status: null, group: 'left-behind' },
    { name: 'cases', risk: null, status: null, group: null },
    { name: 'case-new' },
    { name: 'case', id: 'e5f83a1c' },
    { name: 'shift' },
    { name: 'settings' },
  ];
  it.each(routes)('round-trips %o', (route) => {
    expect(parseRoute(href(route))).toEqual(route);
  });

  it('builds the links the screens use', () => {
    expect(to.reader('ID', 3)).toBe('#/handbooks/ID/3');
    expect(to.cases({ risk: 'high-up' })).toBe('#/cases?risk=high-up');
    expect(to.newCase()).toBe('#/cases/new');
  });

  it('knows each route’s tab', () => {
    expect(tabOf(parseRoute('#/handbooks/x/1'))).toBe('handbooks');
    expect(tabOf(parseRoute('#/cases/new'))).toBe('cases');
    expect(tabOf(parseRoute('#/zzz'))).toBeNull();
  });
});
