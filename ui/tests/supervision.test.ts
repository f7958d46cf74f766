import { describe, expect, it } from 'vitest';
import { createFakeApi } from '../src/lib/api/fake';
import type { CaseSummary, EscalationEntry, HandbookView, Receipt } from '../src/lib/api/types';
import { translate, type MessageKey, type Params } from '../src/lib/i18n/translate';
import { href, parseRoute, tabOf } from '../src/lib/route';
import {
  canSupervise,
  findCrisisSection,
  latestEscalation,
  minutesBetween,
  waitingMessage,
  queueView,
  receiptMessage,
  telHref,
} from '../src/lib/supervision';

const zh = (k: MessageKey, p?: Params) => translate('zh-CN', k, p);
const en = (k: MessageKey, p?: Params) => translate('en', k, p);
const hhmm = (iso: string) => iso.slice(11, 16);

function summary(id: string, risk: CaseSummary['risk'], createdAt: string): CaseSummary {
  return {
    id,
    alias: id,
    group: 'other',
    risk,
    status: 'open',
    contacts: 0,
    openFollowups: 0,
    updatedAt: createdAt,
    reviewState: 'unreviewed',
    assigneeName: '',
    escalation: '',
    awaitingReceipt: false,
    createdAt,
  };
}
function entry(caseId: string, at: string, awaiting: boolean): EscalationEntry {
  return {
    case: caseId,
    alias: caseId,
    risk: 'high',
    assigneeName: '',
    state: awaiting ? 'awaiting' : 'acknowledged',
    awaitingReceipt: awaiting,
    escalation: {
      id: `e-${caseId}`,
      at,
      level: 'high',
      byDevice: 'v',
      byName: '小王',
      source: 'hand',
      onCallName: '',
      onCallDevice: '',
      receipt: awaiting ? null : { byDevice: 's', byName: '林老师', at, instructions: '', mode: 'app' },
    },
  };
}

describe('the queue route', () => {
  it('parses, builds and has its own tab', () => {
    expect(parseRoute('#/queue')).toEqual({ name: 'queue' });
    expect(href({ name: 'queue' })).toBe('#/queue');
    expect(tabOf(parseRoute('#/queue'))).toBe('queue');
    expect(parseRoute('#/queue/x').name).toBe('not-found');
  });
});

describe('canSupervise', () => {
  it('lets supervisors, the lead and a standalone profile review; not a volunteer', () => {
    const team = (role: 'volunteer' | 'supervisor' | 'lead') => ({ initialized: true, team: { teamId: 't', relayUrl: 'u', role } });
    expect(canSupervise(team('supervisor'))).toBe(true);
    expect(canSupervise(team('lead'))).toBe(true);
    expect(canSupervise(team('volunteer'))).toBe(false);
    expect(canSupervise({ initialized: true })).toBe(true);
  });
});

describe('queueView', () => {
  it('puts escalations awaiting a receipt first (the longest wait first), then unreviewed cases high and critical first, then oldest first', () => {
    const queue = [
      summary('medium-old', 'medium', '2026-11-01T08:00:00Z'),
      summary('low-older', 'low', '2026-10-01T08:00:00Z'),
      summary('high-new', 'high', '2026-11-30T08:00:00Z'),
      summary('critical-new', 'critical', '2026-11-30T09:00:00Z'),
      summary('high-old', 'high', '2026-11-20T08:00:00Z'),
      summary('waiting', 'critical', '2026-11-29T08:00:00Z'),
    ];
    const esc = [
      entry('acked-old', '2026-11-10T08:00:00Z', false),
      entry('waiting', '2026-11-30T10:00:00Z', true),
      entry('waiting-longer', '2026-11-30T07:00:00Z', true),
      entry('acked-new', '2026-11-28T08:00:00Z', false),
    ];
    const v = queueView(queue, esc);
    expect(v.awaiting.map((e) => e.case)).toEqual(['waiting-longer', 'waiting']);
    // the case at the top is not listed twice; high and critical before the rest, oldest first within each
    expect(v.toReview.map((c) => c.id)).toEqual(['high-old', 'high-new', 'critical-new', 'low-older', 'medium-old']);
    expect(v.acknowledged.map((e) => e.case)).toEqual(['acked-new', 'acked-old']);
  });

  it('keeps an old low case below a new high one, and breaks ties by id', () => {
    const v = queueView(
      [summary('n', 'none', '2026-10-01T00:00:00Z'), summary('h2', 'high', '2026-11-01T00:00:00Z'), summary('h1', 'critical', '2026-11-01T00:00:00Z')],
      [],
    );
    expect(v.toReview.map((c) => c.id)).toEqual(['h1', 'h2', 'n']);
  });
});

describe('receiptMessage', () => {
  const r = (mode: Receipt['mode']): Receipt => ({ byDevice: 's', byName: '林老师', at: '2026-12-01T14:05:00Z', instructions: '', mode });
  it('says who confirmed, when, and how long after the escalation', () => {
    const m = receiptMessage(r('app'), '2026-12-01T13:30:00Z', hhmm);
    expect(zh(m.key, m.params)).toBe('林老师 于 14:05 确认（升级后 35 分钟）');
    expect(en(m.key, m.params)).toBe('Confirmed by 林老师 at 14:05 (35 min after the escalation)');
  });
  it('says the on-call supervisor was reached by phone when the volunteer recorded it', () => {
    const m = receiptMessage(r('phone'), '2026-12-01T14:00:00Z', hhmm);
    expect(zh(m.key, m.params)).toBe('林老师 于 14:05 记录：已电话联系值班督导（升级后 5 分钟）');
  });
  it('says how long an escalation has waited: minutes, then hours and minutes', () => {
    const say = (n: number, tr = zh) => {
      const m = waitingMessage(n);
      return tr(m.key, m.params);
    };
    expect(say(0)).toBe('已等待 0 分钟');
    expect(say(59)).toBe('已等待 59 分钟');
    expect(say(60)).toBe('已等待 1 小时 0 分钟');
    expect(say(175)).toBe('已等待 2 小时 55 分钟');
    expect(say(1, en)).toBe('Waiting for 1 minute');
    expect(say(175, en)).toBe('Waiting for 2 h 55 min');
  });
  it('never counts negative minutes', () => {
    expect(minutesBetween('2026-12-01T14:00:00Z', '2026-12-01T13:00:00Z')).toBe(0);
  });
});

describe('findCrisisSection', () => {
  const book = (id: string, title: string, sections: string[]): HandbookView => ({
    id,
    title,
    language: 'zh-CN',
    version: '1',
    sections: sections.map((t, index) => ({ index, level: 2, title: t, html: '' })),
  });
  it("opens the crisis handbook's section on escalation, not the first one that says 危机", () => {
    const books = [
      book('rules', '热线工作守则', ['总则', '与督导的交接']),
      book('crisis', '危机风险评估与转介规程', ['一、规程目的', '附录一：危机风险筛查表', '九、升级链条与紧急处置']),
    ];
    expect(findCrisisSection(books)).toEqual({ id: 'crisis', section: 2 });
  });
  it('falls back to a section titled 危机 / crisis, then to the crisis handbook, then to nothing', () => {
    expect(findCrisisSection([book('a', 'Rules', ['Intro', 'When a caller is in crisis'])])).toEqual({ id: 'a', section: 1 });
    expect(findCrisisSection([book('c', 'Crisis protocol', ['Intro'])])).toEqual({ id: 'c', section: 0 });
    expect(findCrisisSection([book('x', 'Sleep', ['Intro'])])).toBeNull();
  });
});

describe('telHref', () => {
  it('keeps digits and a leading +', () => {
    expect(telHref('138-0000 0000')).toBe('tel:13800000000');
    expect(telHref('+86 10 6000 0000')).toBe('tel:+861060000000');
    expect(telHref('')).toBeNull();
    expect(telHref(null)).toBeNull();
  });
});

describe('fake API: supervision', () => {
  const fast = (role?: 'volunteer' | 'supervisor' | 'lead') => createFakeApi({ latencyMs: 0, stepMs: 0, ready: true, role });

  it('a raise to high makes an escalation that awaits a receipt until a supervisor acknowledges it', async () => {
    const api = fast('supervisor');
    const { id } = await api.caseCreate({ alias: '小北', group: 'migrant', risk: 'medium' });
    let c = await api.caseGet({ id });
    expect(c.awaitingReceipt).toBe(false);
    c = await api.caseUpdate({ id, risk: 'high', source: 'screening' });
    expect(c.awaitingReceipt).toBe(true);
    expect(latestEscalation(c)).toMatchObject({ level: 'high', source: 'screening', receipt: null });
    expect((await api.caseList()).find((s) => s.id === id)?.awaitingReceipt).toBe(true);
    const top = await api.escalationsList();
    // awaiting first, oldest first: the sample case waiting for hours, then this one, then the acknowledged
    expect(top.map((e) => e.awaitingReceipt)).toEqual([true, true, false]);
    expect(top[1]).toMatchObject({ case: id, alias: '小北', state: 'awaiting' });
    c = await api.caseAck({ id, instructions: '今晚陪着她，明早我打电话。' });
    expect(c.awaitingReceipt).toBe(false);
    expect(latestEscalation(c)?.receipt).toMatchObject({ byName: '陈静', mode: 'app', instructions: '今晚陪着她，明早我打电话。' });
    // high to critical is another escalation
    c = await api.caseUpdate({ id, risk: 'critical' });
    expect(c.escalations).toHaveLength(2);
    expect(c.awaitingReceipt).toBe(true);
  });

  it('refuses a volunteer review, comments, acknowledgement and assignment, but takes its phone record', async () => {
    const api = fast('volunteer');
    const { id } = await api.caseCreate({ alias: '小北', group: 'migrant', risk: 'low' });
    for (const call of [
      () => api.caseReview({ id, state: 'reviewed' }),
      () => api.caseComment({ id, text: '好' }),
      () => api.caseAck({ id, instructions: '好' }),
      () => api.reviewQueue(),
    ]) {
      await expect(call()).rejects.toMatchObject({ kind: 'forbidden' });
    }
    await api.caseUpdate({ id, risk: 'critical' });
    const c = await api.casePhoned({ id });
    expect(c.awaitingReceipt).toBe(false);
    expect(latestEscalation(c)?.receipt?.mode).toBe('phone');
  });

  it('the queue lists unreviewed cases with high and critical first; a review takes a case off it', async () => {
    const api = fast('lead');
    const q = await api.reviewQueue();
    expect(q.length).toBeGreaterThan(0);
    const ranks = q.map((c) => (c.risk === 'high' || c.risk === 'critical' ? 1 : 0));
    expect([...ranks].sort((a, b) => b - a)).toEqual(ranks);
    await api.caseReview({ id: q[0].id, state: 'reviewed' });
    expect((await api.reviewQueue()).map((c) => c.id)).not.toContain(q[0].id);
  });
});
