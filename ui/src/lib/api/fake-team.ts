// The fake's duty roster, team settings, shift handover notes and
// statistics (issue 9, U2). `fake.ts` hands it what it needs of the fake
// device (the profile, the members, the clock, the language) and spreads the
// methods into its API.
//
// Like the device: only the lead's profile writes the roster and the
// settings (kind `forbidden` otherwise), a volunteer gets `forbidden` for
// statistics, and the statistics are computed from de-identified facts (here
// a fixed, generated set over the last twelve weeks).

import { isoWeek, monthKey } from '../stats';
import type {
  ApiError,
  Channel,
  DutyLine,
  Group,
  HeartbridgeApi,
  Language,
  LineKind,
  Member,
  ProfileStatus,
  Risk,
  ShiftHandover,
  Stats,
  StatsDim,
  StatsMeasures,
  StatsQuery,
  StatsRow,
  TeamSettings,
} from './types';
import { GROUPS, LINE_KINDS } from './types';

const MESSAGES = {
  leadOnly: {
    'zh-CN': '只有团队负责人可以修改值守表和团队设置。',
    en: 'Only the team lead can change the duty roster and the team settings.',
  },
  statsForbidden: {
    'zh-CN': '只有督导和团队负责人可以查看统计。',
    en: 'Only supervisors and the team lead can see the statistics.',
  },
  noTeam: { 'zh-CN': '本设备还没有加入团队。', en: 'This device has not joined a team.' },
  lineName: { 'zh-CN': '请填写线路名称。', en: 'Please enter the line’s name.' },
  lineMissing: { 'zh-CN': '找不到这条线路。', en: 'This line could not be found.' },
  slotMissing: { 'zh-CN': '找不到这个值守时段。', en: 'This duty slot could not be found.' },
  memberMissing: { 'zh-CN': '团队里没有这位成员。', en: 'No such member in the team.' },
  slotTimes: { 'zh-CN': '结束时间要晚于开始时间。', en: 'The end must be after the start.' },
  kRange: { 'zh-CN': '抑制阈值应为 1 到 50 之间的整数。', en: 'The threshold must be a whole number from 1 to 50.' },
  dateInvalid: { 'zh-CN': '日期格式应为 年-月-日。', en: 'Write the date as YYYY-MM-DD.' },
} satisfies Record<string, Record<Language, string>>;

export interface TeamFakeContext {
  profile: () => ProfileStatus;
  members: () => Member[];
  language: () => Language;
  now: () => Date;
  /** A local write: one more change waits. */
  changed: () => void;
  /** Runs `f` after the fake's latency; what it throws rejects. */
  guarded: <T>(f: () => T) => Promise<T>;
}

type TeamMethods = Pick<
  HeartbridgeApi,
  | 'teamSettingsGet'
  | 'teamSettingsSet'
  | 'teamSupervisorGroupSet'
  | 'dutyLineAdd'
  | 'dutyLineRemove'
  | 'dutyAdd'
  | 'dutyRemove'
  | 'dutyOnCall'
  | 'handoverNotes'
  | 'stats'
  | 'statsExport'
>;

export interface TeamFake {
  methods: TeamMethods;
  /** The shift ended with a handover note for its line. */
  shiftEnded(line: string | null, handover: string | undefined): void;
  /** Whether `line` is a line of the roster (shift_start checks it). */
  hasLine(line: string): boolean;
}

/** A small deterministic generator, so the sample statistics are the same on every run. */
function lcg(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

interface FakeFacts {
  opened: { case: string; at: number; group: Group; risk: Risk; channel: Channel }[];
  contacts: { case: string; at: number; channel: Channel; group: Group; risk: Risk }[];
  escalations: { case: string; at: number; group: Group; risk: Risk; channel: Channel; receiptMin: number | null }[];
  followups: { case: string; at: number; done: boolean; overdue: boolean; group: Group; risk: Risk; channel: Channel }[];
  shifts: { start: number; hours: number; channel: Channel }[];
}

function sampleFacts(now: Date): FakeFacts {
  const rnd = lcg(20261201);
  const DAY = 86_400_000;
  const end = now.getTime();
  const pick = <T>(xs: readonly T[], w?: readonly number[]) => {
    if (!w) return xs[Math.floor(rnd() * xs.length)];
    let r = rnd() * w.reduce((a, b) => a + b, 0);
    for (let i = 0; i < xs.length; i++) if ((r -= w[i]) < 0) return xs[i];
    return xs[xs.length - 1];
  };
  const f: FakeFacts = { opened: [], contacts: [], escalations: [], followups: [], shifts: [] };
  const channels: Channel[] = ['hotline', 'online', 'in-person'];
  for (let i = 0; i < 64; i++) {
    const c = `case${i}`;
    const at = end - Math.floor(rnd() * 84 * DAY);
    const group = pick(GROUPS, [9, 7, 2, 4, 8, 2, 1]);
    const risk = pick<Risk>(['none', 'low', 'medium', 'high', 'critical'], [3, 10, 7, 3, 1]);
    const channel = pick(channels, [6, 4, 2]);
    f.opened.push({ case: c, at, group, risk, channel });
    const n = 1 + Math.floor(rnd() * 4);
    for (let j = 0; j < n; j++) {
      const when = Math.min(end, at + j * Math.floor(rnd() * 6 * DAY));
      f.contacts.push({ case: c, at: when, channel: j === 0 ? channel : pick(channels, [6, 4, 2]), group, risk });
    }
    if (risk === 'high' || risk === 'critical')
      f.escalations.push({ case: c, at: at + 3_600_000, group, risk, channel, receiptMin: rnd() < 0.85 ? 4 + Math.floor(rnd() * 50) : null });
    if (rnd() < 0.6) {
      const done = rnd() < 0.7;
      f.followups.push({ case: c, at: at + DAY, done, overdue: !done && rnd() < 0.5, group, risk, channel });
    }
  }
  for (let d = 0; d < 84; d++) {
    const shifts = 1 + Math.floor(rnd() * 2);
    for (let s = 0; s < shifts; s++)
      f.shifts.push({ start: end - d * DAY - 10 * 3_600_000, hours: 2 + Math.floor(rnd() * 5) / 2, channel: pick(channels, [5, 4, 1]) });
  }
  return f;
}

function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Aggregates the facts like the device's `stats` does. */
export function computeStats(facts: FakeFacts, q: StatsQuery, k: number, now: Date): Stats {
  const dayMs = (s: string, endOfDay: boolean) => {
    const [y, m, d] = s.split('-').map(Number);
    return Date.UTC(y, m - 1, d) + (endOfDay ? 86_400_000 : 0);
  };
  const lo = q.from ? dayMs(q.from, false) : -Infinity;
  const hi = q.to ? dayMs(q.to, true) : Infinity;
  const inRange = (at: number) => at >= lo && at < hi;
  type Tagged = { at: number; channel?: Channel; group?: Group; risk?: Risk };
  const keyOf = (x: Tagged): Partial<Record<StatsDim, string>> => {
    const key: Partial<Record<StatsDim, string>> = {};
    for (const dim of q.by) {
      if (dim === 'week') key.week = isoWeek(new Date(x.at));
      else if (dim === 'month') key.month = monthKey(new Date(x.at));
      else key[dim] = x[dim] ?? '';
    }
    return key;
  };
  const empty = (): { m: StatsMeasures; cases: Set<string>; receipts: number[] } => ({
    m: { contacts: 0, distinctCases: 0, newCases: 0, escalations: 0, receipts: 0, medianReceiptMinutes: null, followupsDone: 0, followupsOverdue: 0, volunteerHours: 0 },
    cases: new Set(),
    receipts: [],
  });
  const cells = new Map<string, { key: Partial<Record<StatsDim, string>>; acc: ReturnType<typeof empty> }>();
  const total = empty();
  const into = (x: Tagged, f: (a: ReturnType<typeof empty>) => void) => {
    if (!inRange(x.at)) return;
    f(total);
    if (q.by.length === 0) return;
    // Shifts have no key group or risk: they count in the totals only there.
    if (!q.by.every((d) => d === 'week' || d === 'month' || x[d as 'channel' | 'group' | 'risk'] !== undefined)) return;
    const key = keyOf(x);
    const id = JSON.stringify(key);
    if (!cells.has(id)) cells.set(id, { key, acc: empty() });
    f(cells.get(id)!.acc);
  };
  for (const c of facts.contacts) into(c, (a) => (a.m.contacts++, a.cases.add(c.case)));
  for (const c of facts.opened) into(c, (a) => a.m.newCases++);
  for (const e of facts.escalations) into(e, (a) => (a.m.escalations++, e.receiptMin !== null && a.receipts.push(e.receiptMin)));
  for (const fu of facts.followups) into(fu, (a) => (fu.done ? a.m.followupsDone++ : fu.overdue && a.m.followupsOverdue++));
  for (const s of facts.shifts) into({ at: s.start, channel: s.channel }, (a) => (a.m.volunteerHours += s.hours));
  const finish = (a: ReturnType<typeof empty>): StatsMeasures => ({
    ...a.m,
    distinctCases: a.cases.size,
    receipts: a.receipts.length,
    medianReceiptMinutes: median(a.receipts),
  });
  const rows: StatsRow[] = [...cells.values()]
    .map(({ key, acc }) => ({ key, measures: finish(acc) }))
    .sort((a, b) => JSON.stringify(Object.values(a.key)).localeCompare(JSON.stringify(Object.values(b.key))));
  return { from: q.from ?? null, to: q.to ?? null, generatedAt: now.toISOString(), k, totals: finish(total), rows };
}

export function createTeamFake(ctx: TeamFakeContext): TeamFake {
  const error = (kind: string, id: keyof typeof MESSAGES): ApiError => ({ kind, message: MESSAGES[id][ctx.language()] });
  const rid = () => Math.random().toString(16).slice(2, 10) + Math.random().toString(16).slice(2, 10);
  const HOUR = 3_600_000;
  let settings: TeamSettings | null = null;
  const notes: ShiftHandover[] = [];
  let facts: FakeFacts | null = null;

  const team = () => {
    const t = ctx.profile().team;
    if (!t) throw error('not_enrolled', 'noTeam');
    return t;
  };
  const requireLead = () => {
    if (team().role !== 'lead') throw error('forbidden', 'leadOnly');
  };
  const memberName = (device: string) => {
    const m = ctx.members().find((x) => x.deviceId === device);
    if (!m) throw error('not_found', 'memberMissing');
    return m.name ?? '';
  };

  /** The sample team's roster, made the first time it is read. */
  function current(): TeamSettings {
    if (settings) return settings;
    const members = ctx.members().filter((m) => !m.revoked);
    const by = (role: string) => members.find((m) => m.role === role && !m.thisDevice) ?? members[0];
    const me = members.find((m) => m.thisDevice) ?? members[0];
    const lines: DutyLine[] = [
      { id: 'l-hotline', name: '心理援助热线', kind: 'hotline', phone: '400-161-9995' },
      { id: 'l-online', name: '线上咨询', kind: 'online', phone: null },
      { id: 'l-venue', name: '学校驻点', kind: 'venue', phone: null },
      { id: 'l-oncall', name: '督导值班', kind: 'on-call', phone: '138 0013 8000' },
    ];
    const start = new Date(ctx.now());
    start.setMinutes(0, 0, 0);
    start.setHours(start.getHours() - 1);
    const at = (h: number) => new Date(start.getTime() + h * HOUR).toISOString();
    const slot = (line: string, m: Member | undefined, from: number, to: number) =>
      m ? [{ id: rid(), line, device: m.deviceId, name: m.name ?? '', from: at(from), to: at(to) }] : [];
    settings = {
      onCallPhone: '400-161-9995',
      leadReadsCases: false,
      suppressionK: 5,
      supervisorGroups: {},
      lines,
      duty: [
        ...slot('l-hotline', me, 0, 4),
        ...slot('l-online', by('volunteer'), 0, 4),
        ...slot('l-oncall', by('supervisor'), 0, 8),
        ...slot('l-hotline', by('volunteer'), 4, 8),
        ...slot('l-venue', by('volunteer'), 24, 28),
        ...slot('l-oncall', me, 24, 32),
      ].sort((a, b) => a.from.localeCompare(b.from)),
    };
    return settings;
  }
  function write(f: (s: TeamSettings) => void): TeamSettings {
    requireLead();
    const s = structuredClone(current());
    f(s);
    s.duty.sort((a, b) => a.from.localeCompare(b.from));
    settings = s;
    ctx.changed();
    return s;
  }
  const date = (s: string | undefined) => {
    if (s !== undefined && !/^\d{4}-\d{2}-\d{2}$/.test(s)) throw error('invalid_input', 'dateInvalid');
  };

  const methods: TeamMethods = {
    teamSettingsGet: () =>
      ctx.guarded(() => {
        team();
        return current();
      }),
    teamSettingsSet: ({ onCallPhone, leadReadsCases, suppressionK }) =>
      ctx.guarded(() => {
        if (suppressionK !== undefined && (!Number.isInteger(suppressionK) || suppressionK < 1 || suppressionK > 50))
          throw error('invalid_input', 'kRange');
        return write((s) => {
          if (onCallPhone !== undefined) s.onCallPhone = onCallPhone.trim();
          if (leadReadsCases !== undefined) s.leadReadsCases = leadReadsCases;
          if (suppressionK !== undefined) s.suppressionK = suppressionK;
        });
      }),
    teamSupervisorGroupSet: ({ supervisor, volunteers }) =>
      ctx.guarded(() => {
        requireLead();
        memberName(supervisor);
        volunteers.forEach(memberName);
        return write((s) => {
          if (volunteers.length === 0) delete s.supervisorGroups[supervisor];
          else s.supervisorGroups[supervisor] = [...new Set(volunteers)].sort();
        });
      }),
    dutyLineAdd: ({ name, kind, phone }) =>
      ctx.guarded(() => {
        requireLead();
        if (!name.trim()) throw error('invalid_input', 'lineName');
        if (!LINE_KINDS.includes(kind as LineKind)) throw error('invalid_input', 'lineName');
        return write((s) => {
          s.lines.push({ id: rid(), name: name.trim(), kind, phone: phone?.trim() || null });
        });
      }),
    dutyLineRemove: ({ id }) =>
      ctx.guarded(() => {
        requireLead();
        if (!current().lines.some((l) => l.id === id)) throw error('not_found', 'lineMissing');
        return write((s) => {
          s.lines = s.lines.filter((l) => l.id !== id);
          s.duty = s.duty.filter((d) => d.line !== id);
        });
      }),
    dutyAdd: ({ line, member, name, from, to }) =>
      ctx.guarded(() => {
        requireLead();
        if (!current().lines.some((l) => l.id === line)) throw error('not_found', 'lineMissing');
        memberName(member);
        if (!(to > from)) throw error('invalid_input', 'slotTimes');
        return write((s) => {
          s.duty.push({ id: rid(), line, device: member, name, from: new Date(from).toISOString(), to: new Date(to).toISOString() });
        });
      }),
    dutyRemove: ({ id }) =>
      ctx.guarded(() => {
        requireLead();
        if (!current().duty.some((d) => d.id === id)) throw error('not_found', 'slotMissing');
        return write((s) => {
          s.duty = s.duty.filter((d) => d.id !== id);
        });
      }),
    dutyOnCall: (args = {}) =>
      ctx.guarded(() => {
        team();
        const s = current();
        const at = args.at ?? ctx.now().getTime();
        const onCall = s.lines.filter((l) => l.kind === 'on-call');
        const slot = s.duty.find(
          (d) => onCall.some((l) => l.id === d.line) && new Date(d.from).getTime() <= at && at < new Date(d.to).getTime(),
        );
        if (!slot) return s.onCallPhone ? { name: null, device: null, phone: s.onCallPhone } : null;
        const line = onCall.find((l) => l.id === slot.line);
        return { name: slot.name, device: slot.device, phone: line?.phone || s.onCallPhone || null };
      }),
    handoverNotes: ({ line }) =>
      ctx.guarded(() => notes.filter((n) => (line ? n.line === line : true)).slice(0, 5)),
    stats: (q) =>
      ctx.guarded(() => {
        const role = team().role;
        if (role === 'volunteer') throw error('forbidden', 'statsForbidden');
        date(q.from);
        date(q.to);
        facts ??= sampleFacts(ctx.now());
        return computeStats(facts, q, current().suppressionK, ctx.now());
      }),
    statsExport: (q) =>
      ctx.guarded(() => {
        const role = team().role;
        if (role === 'volunteer') throw error('forbidden', 'statsForbidden');
        date(q.from);
        date(q.to);
        const stamp = ctx.now().toISOString().slice(0, 10);
        return { path: `/home/volunteer/.local/share/heartbridge/profile/exports/heartbridge-stats-${stamp}.csv`, bytes: 1800 };
      }),
  };

  // A handover note from an earlier shift, so the screen has one to show.
  notes.push({
    id: rid(),
    line: 'l-hotline',
    at: new Date(ctx.now().getTime() - 14 * HOUR).toISOString(),
    byName: '王晓',
    text: '晚上来电比较多，21 点后排队较长；热线手册第 3 节的转介电话已更新。',
  });

  return {
    methods,
    shiftEnded(line, handover) {
      const text = handover?.trim();
      if (!text) return;
      notes.unshift({ id: rid(), line: line ?? '', at: ctx.now().toISOString(), byName: ctx.profile().name ?? '', text });
    },
    hasLine: (line) => current().lines.some((l) => l.id === line),
  };
}
