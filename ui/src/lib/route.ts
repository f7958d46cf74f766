// Hash routes, e.g. `#/handbooks/ID/3`. Pure functions: parse a hash into a
// Route, and build the hash of a Route. No router dependency.

import { GROUPS, RISKS, STATUSES, type Group, type Risk, type Role, type Status } from './api/types';

/** A risk filter: one level, or 'high-up' for high and critical together. */
export type RiskFilter = Risk | 'high-up';

export interface CaseFilters {
  risk: RiskFilter | null;
  status: Status | null;
  group: Group | null;
}

export type Route =
  | { name: 'home' }
  | { name: 'handbooks'; query: string; focus: boolean }
  | { name: 'reader'; id: string; section: number }
  | ({ name: 'cases' } & CaseFilters)
  | { name: 'case-new' }
  | { name: 'case'; id: string }
  | { name: 'shift' }
  | { name: 'settings' }
  // U2 (issue 9): the duty roster, statistics, team settings
  | { name: 'duty' }
  | { name: 'stats' }
  | { name: 'team-settings' }
  // U1 (issue 9): the supervisor's queue
  | { name: 'queue' }
  // issue 10, item 7: a micro-lesson's player
  | { name: 'lesson'; id: string }
  | { name: 'not-found'; path: string };

export type Tab = 'home' | 'handbooks' | 'cases' | 'shift' | 'settings' | 'duty' | 'stats' | 'team' | 'queue';

function oneOf<T extends string>(values: readonly T[], v: string | null): T | null {
  return v !== null && (values as readonly string[]).includes(v) ? (v as T) : null;
}

function decode(s: string): string | null {
  try {
    return decodeURIComponent(s);
  } catch {
    return null;
  }
}

export function parseRoute(hash: string): Route {
  const raw = hash.replace(/^#/, '');
  const [pathPart, queryPart = ''] = raw.split('?', 2);
  const q = new URLSearchParams(queryPart);
  const parts = pathPart.split('/').filter((p) => p !== '');
  const seg = parts.map(decode);
  if (seg.some((s) => s === null)) return { name: 'not-found', path: pathPart };
  const [a, b, c] = seg as string[];

  if (parts.length === 0) return { name: 'home' };
  if (a === 'search' && parts.length === 1) return { name: 'handbooks', query: q.get('q') ?? '', focus: true };
  if (a === 'handbooks') {
    if (parts.length === 1) return { name: 'handbooks', query: q.get('q') ?? '', focus: false };
    if (parts.length <= 3) {
      const section = c === undefined ? 0 : /^\d{1,6}$/.test(c) ? Number(c) : -1;
      if (section >= 0) return { name: 'reader', id: b, section };
    }
  }
  if (a === 'cases') {
    if (parts.length === 1)
      return {
        name: 'cases',
        risk: oneOf<RiskFilter>([...RISKS, 'high-up'], q.get('risk')),
        status: oneOf(STATUSES, q.get('status')),
        group: oneOf(GROUPS, q.get('group')),
      };
    if (parts.length === 2 && b === 'new') return { name: 'case-new' };
    if (parts.length === 2) return { name: 'case', id: b };
  }
  if (a === 'shift' && parts.length === 1) return { name: 'shift' };
  if (a === 'settings' && parts.length === 1) return { name: 'settings' };
  if (a === 'queue' && parts.length === 1) return { name: 'queue' };
  if (a === 'lessons' && parts.length === 2) return { name: 'lesson', id: b };
  if (a === 'duty' && parts.length === 1) return { name: 'duty' };
  if (a === 'stats' && parts.length === 1) return { name: 'stats' };
  if (a === 'settings' && b === 'team' && parts.length === 2) return { name: 'team-settings' };
  return { name: 'not-found', path: pathPart };
}

export function href(route: Route): string {
  const e = encodeURIComponent;
  switch (route.name) {
    case 'home':
      return '#/';
    case 'handbooks': {
      const base = route.focus ? '#/search' : '#/handbooks';
      return route.query ? `${base}?q=${e(route.query)}` : base;
    }
    case 'reader':
      return `#/handbooks/${e(route.id)}/${route.section}`;
    case 'cases': {
      const q = new URLSearchParams();
      if (route.risk) q.set('risk', route.risk);
      if (route.status) q.set('status', route.status);
      if (route.group) q.set('group', route.group);
      const s = q.toString();
      return s ? `#/cases?${s}` : '#/cases';
    }
    case 'case-new':
      return '#/cases/new';
    case 'case':
      return `#/cases/${e(route.id)}`;
    case 'shift':
      return '#/shift';
    case 'settings':
      return '#/settings';
    case 'duty':
      return '#/duty';
    case 'stats':
      return '#/stats';
    case 'team-settings':
      return '#/settings/team';
    case 'queue':
      return '#/queue';
    case 'lesson':
      return `#/lessons/${e(route.id)}`;
    case 'not-found':
      return `#${route.path}`;
  }
}

/** Which navigation tab a route belongs to. */
export function tabOf(route: Route): Tab | null {
  switch (route.name) {
    case 'home':
      return 'home';
    case 'handbooks':
    case 'reader':
    case 'lesson':
      return 'handbooks';
    case 'cases':
    case 'case-new':
    case 'case':
      return 'cases';
    case 'queue':
      return 'queue';
    case 'shift':
      return 'shift';
    case 'settings':
      return 'settings';
    case 'duty':
      return 'duty';
    case 'stats':
      return 'stats';
    case 'team-settings':
      return 'team';
    case 'not-found':
      return null;
  }
}

// Small helpers for links in templates.
export const to = {
  home: () => href({ name: 'home' }),
  handbooks: (query = '') => href({ name: 'handbooks', query, focus: false }),
  search: () => href({ name: 'handbooks', query: '', focus: true }),
  reader: (id: string, section = 0) => href({ name: 'reader', id, section }),
  cases: (f: Partial<CaseFilters> = {}) =>
    href({ name: 'cases', risk: f.risk ?? null, status: f.status ?? null, group: f.group ?? null }),
  newCase: () => href({ name: 'case-new' }),
  case: (id: string) => href({ name: 'case', id }),
  shift: () => href({ name: 'shift' }),
  settings: () => href({ name: 'settings' }),
  queue: () => href({ name: 'queue' }),
  lesson: (id: string) => href({ name: 'lesson', id }),
  duty: () => href({ name: 'duty' }),
  stats: () => href({ name: 'stats' }),
  teamSettings: () => href({ name: 'team-settings' }),
};

/**
 * The team screens a member may open (issue 9, U2): everyone on a team reads
 * the duty roster; supervisors and the lead see the statistics; only the
 * lead edits the team settings. Nothing of it without a team.
 */
export function teamTabs(team: { role: Role } | null | undefined): Tab[] {
  if (!team) return [];
  const tabs: Tab[] = ['duty'];
  if (team.role === 'lead' || team.role === 'supervisor') tabs.push('stats');
  if (team.role === 'lead') tabs.push('team');
  return tabs;
}
