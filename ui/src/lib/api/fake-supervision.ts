// The fake device's supervision (issue 9): review, comments, escalations and
// their receipts, assignment and handover notes, debriefs, the review queue
// and the escalations view. It follows the contract in types.ts and the
// rules of the design: a volunteer is refused (kind `forbidden`) what only a
// supervisor or the lead may do; raising risk to high or critical (or high
// to critical) adds an escalation; "awaiting" = the newest escalation has no
// receipt; a contact on a high or critical case offers a debrief.

import type {
  Assignee,
  ApiError,
  Case,
  CaseSummary,
  EscalationEntry,
  HistoryEntry,
  Language,
  Member,
  OnCall,
  ProfileStatus,
  Risk,
} from './types';
import { RISKS } from './types';

export interface StoredCaseLike {
  c: Case;
  updatedAt: string;
  history: HistoryEntry[];
}

export interface SupervisionContext {
  cases: Map<string, StoredCaseLike>;
  getCase(id: string): StoredCaseLike;
  /** A local write on a case: history, pending count. */
  touch(s: StoredCaseLike, what: string): void;
  profile(): ProfileStatus;
  members(): Member[];
  language(): Language;
  iso(msAgo?: number): string;
  randomHex(bytes: number): string;
}

const MESSAGES = {
  forbidden: {
    'zh-CN': '只有督导或团队负责人可以这样做。',
    en: 'Only a supervisor or the team lead can do this.',
  },
  textEmpty: { 'zh-CN': '内容不能为空。', en: 'Please write something first.' },
  noEscalation: { 'zh-CN': '这个个案没有等待确认的升级。', en: 'This case has no escalation awaiting a receipt.' },
  memberMissing: { 'zh-CN': '团队里没有这位成员。', en: 'No such member in the team.' },
  contactMissing: { 'zh-CN': '找不到这次联系。', en: 'This contact could not be found.' },
} satisfies Record<string, Record<Language, string>>;

/** What a new case starts with: unreviewed, carried by its creator. */
export function supervisionDefaults(byName: string, byDevice: string): Pick<
  Case,
  | 'createdByDevice'
  | 'assigneeDevice'
  | 'assigneeName'
  | 'assignments'
  | 'reviewState'
  | 'reviewBy'
  | 'reviewAt'
  | 'comments'
  | 'escalations'
  | 'debriefs'
  | 'handoverNotes'
  | 'escalation'
  | 'awaitingReceipt'
> {
  return {
    createdByDevice: byDevice,
    assigneeDevice: byDevice,
    assigneeName: byName,
    assignments: [],
    reviewState: 'unreviewed',
    reviewBy: '',
    reviewAt: null,
    comments: [],
    escalations: [],
    debriefs: [],
    handoverNotes: [],
    escalation: '',
    awaitingReceipt: false,
  };
}

/** The summary fields the list, the queue and Home need. */
export function supervisionSummary(c: Case): Pick<
  CaseSummary,
  'reviewState' | 'assigneeName' | 'escalation' | 'awaitingReceipt' | 'createdAt'
> {
  return {
    reviewState: c.reviewState,
    assigneeName: c.assigneeName,
    escalation: c.escalation,
    awaitingReceipt: c.awaitingReceipt,
    createdAt: c.createdAt,
  };
}

function newest(c: Case) {
  return [...c.escalations].sort((a, b) => b.at.localeCompare(a.at) || b.id.localeCompare(a.id))[0] ?? null;
}

/** `escalation` and `awaitingReceipt` from the list, as the device derives them. */
function derive(c: Case) {
  const e = newest(c);
  c.escalation = e ? (e.receipt ? 'acknowledged' : 'awaiting') : '';
  c.awaitingReceipt = e !== null && e.receipt === null;
}

const rank = (r: Risk) => RISKS.indexOf(r);

export function createSupervisionFake(ctx: SupervisionContext) {
  const err = (kind: string, id: keyof typeof MESSAGES): ApiError => ({ kind, message: MESSAGES[id][ctx.language()] });
  const me = () => ({ name: ctx.profile().name ?? '', device: ctx.profile().deviceId ?? '' });
  const supervises = () => {
    const role = ctx.profile().team?.role;
    return role === undefined || role === 'supervisor' || role === 'lead';
  };
  const requireSupervisor = () => {
    if (!supervises()) throw err('forbidden', 'forbidden');
  };
  const requireText = (text: string) => {
    if (!text.trim()) throw err('invalid', 'textEmpty');
    return text.trim();
  };
  const onCall = (): OnCall => {
    const sup = ctx.members().find((m) => m.role === 'supervisor' && !m.revoked && !m.thisDevice);
    return { name: sup?.name ?? '林老师', device: sup?.deviceId ?? '', phone: '138-0000-0000' };
  };

  /** Called by case_update when the risk changed. */
  function riskChanged(s: StoredCaseLike, before: Risk, after: Risk, source: 'hand' | 'screening') {
    const raised = rank(after) >= rank('high') && rank(after) > rank(before);
    if (!raised) return;
    const who = me();
    const duty = onCall();
    s.c.escalations.push({
      id: ctx.randomHex(8),
      at: ctx.iso(),
      level: after as 'high' | 'critical',
      byDevice: who.device,
      byName: who.name,
      source,
      onCallName: duty.name ?? '',
      onCallDevice: duty.device ?? '',
      receipt: null,
    });
    derive(s.c);
  }

  /** Called by case_add_contact: a contact on a high or critical case offers a debrief. */
  function contactAdded(s: StoredCaseLike, contactId: string) {
    if (rank(s.c.risk) < rank('high')) return;
    s.c.debriefs.push({ id: ctx.randomHex(8), contact: contactId, at: ctx.iso(), state: 'offered', byDevice: me().device });
  }

  /** The sample cases' supervision: one escalation awaiting, one acknowledged, a comment, review states. */
  function seedSamples() {
    const MIN = 60_000;
    const HOUR = 60 * MIN;
    const byAlias = (a: string) => [...ctx.cases.values()].find((s) => s.c.alias === a);
    const sup = ctx.members().find((m) => m.role === 'supervisor');
    const supName = sup?.name ?? '林老师';
    const supDevice = sup?.deviceId ?? ctx.randomHex(16);
    const vol = ctx.members().find((m) => m.role === 'volunteer' && !m.revoked);
    for (const s of ctx.cases.values()) {
      const author = s.c.createdBy;
      const device = ctx.members().find((m) => m.name === author)?.deviceId ?? ctx.randomHex(16);
      Object.assign(s.c, supervisionDefaults(author, device));
    }
    const rain = byAlias('小雨');
    if (rain) {
      rain.c.escalations.push({
        id: ctx.randomHex(8),
        at: ctx.iso(3 * HOUR - 5 * MIN),
        level: 'critical',
        byDevice: rain.c.createdByDevice,
        byName: rain.c.createdBy,
        source: 'screening',
        onCallName: supName,
        onCallDevice: supDevice,
        receipt: null,
      });
      derive(rain.c);
    }
    const jie = byAlias('阿杰');
    if (jie) {
      const at = ctx.iso(26 * HOUR);
      jie.c.escalations.push({
        id: ctx.randomHex(8),
        at,
        level: 'high',
        byDevice: jie.c.createdByDevice,
        byName: jie.c.createdBy,
        source: 'hand',
        onCallName: supName,
        onCallDevice: supDevice,
        receipt: {
          byDevice: supDevice,
          byName: supName,
          at: ctx.iso(26 * HOUR - 35 * MIN),
          instructions: '今晚和他一起把安全计划写在纸上；明天上午我给班主任打电话。',
          mode: 'app',
        },
      });
      jie.c.reviewState = 'needs-follow-up';
      jie.c.reviewBy = supName;
      jie.c.reviewAt = ctx.iso(25 * HOUR);
      jie.c.comments.push({
        id: ctx.randomHex(8),
        authorDevice: supDevice,
        authorName: supName,
        at: ctx.iso(25 * HOUR),
        contact: jie.c.contacts[jie.c.contacts.length - 1]?.id ?? '',
        text: '问得很直接，也很温和，做得好。下次记得确认表哥的电话他手机里有。',
      });
      if (vol?.name) {
        jie.c.assignments.push({
          id: ctx.randomHex(8),
          fromDevice: jie.c.createdByDevice,
          fromName: jie.c.createdBy,
          toDevice: vol.deviceId,
          toName: vol.name,
          byDevice: supDevice,
          byName: supName,
          at: ctx.iso(24 * HOUR),
          note: '周敏下周出差，由王晓接手。',
        });
        jie.c.assigneeDevice = vol.deviceId;
        jie.c.assigneeName = vol.name;
      }
      derive(jie.c);
    }
    for (const alias of ['星星', '志愿者 K']) {
      const s = byAlias(alias);
      if (s) {
        s.c.reviewState = 'reviewed';
        s.c.reviewBy = supName;
        s.c.reviewAt = s.c.createdAt;
      }
    }
  }

  const methods = {
    caseReview({ id, state }: { id: string; state: 'reviewed' | 'needs-follow-up' }): Case {
      const s = ctx.getCase(id);
      requireSupervisor();
      s.c.reviewState = state;
      s.c.reviewBy = me().name;
      s.c.reviewAt = ctx.iso();
      ctx.touch(s, `review → ${state}`);
      return s.c;
    },
    caseComment({ id, text, contact }: { id: string; text: string; contact?: string }): Case {
      const s = ctx.getCase(id);
      requireSupervisor();
      const body = requireText(text);
      if (contact && !s.c.contacts.some((x) => x.id === contact)) throw err('not-found', 'contactMissing');
      s.c.comments.push({ id: ctx.randomHex(8), authorDevice: me().device, authorName: me().name, at: ctx.iso(), contact: contact ?? null, text: body });
      ctx.touch(s, 'comment added');
      return s.c;
    },
    caseAck({ id, instructions }: { id: string; instructions: string }): Case {
      const s = ctx.getCase(id);
      requireSupervisor();
      const body = requireText(instructions);
      const e = newest(s.c);
      if (!e || e.receipt) throw err('conflict', 'noEscalation');
      e.receipt = { byDevice: me().device, byName: me().name, at: ctx.iso(), instructions: body, mode: 'app' };
      derive(s.c);
      ctx.touch(s, 'escalation acknowledged');
      return s.c;
    },
    casePhoned({ id, note }: { id: string; note?: string }): Case {
      const s = ctx.getCase(id);
      const e = newest(s.c);
      if (!e || e.receipt) throw err('conflict', 'noEscalation');
      e.receipt = { byDevice: me().device, byName: me().name, at: ctx.iso(), instructions: note?.trim() ?? '', mode: 'phone' };
      derive(s.c);
      ctx.touch(s, 'on-call supervisor reached by phone');
      return s.c;
    },
    caseAssign({ id, to, note }: { id: string; to: string; note: string }): Case {
      const s = ctx.getCase(id);
      requireSupervisor();
      const body = requireText(note);
      const target = ctx.members().find((m) => m.deviceId === to && !m.revoked);
      if (!target) throw err('not-found', 'memberMissing');
      s.c.assignments.push({
        id: ctx.randomHex(8),
        fromDevice: s.c.assigneeDevice,
        fromName: s.c.assigneeName,
        toDevice: target.deviceId,
        toName: target.name ?? '',
        byDevice: me().device,
        byName: me().name,
        at: ctx.iso(),
        note: body,
      });
      s.c.assigneeDevice = target.deviceId;
      s.c.assigneeName = target.name ?? '';
      ctx.touch(s, 'assigned');
      return s.c;
    },
    caseHandoverNote({ id, text }: { id: string; text: string }): Case {
      const s = ctx.getCase(id);
      const body = requireText(text);
      s.c.handoverNotes.push({ id: ctx.randomHex(8), at: ctx.iso(), byDevice: me().device, byName: me().name, text: body });
      ctx.touch(s, 'handover note added');
      return s.c;
    },
    caseDebrief({ id, contact, state }: { id: string; contact: string; state: 'held' | 'declined' }): Case {
      const s = ctx.getCase(id);
      if (!s.c.contacts.some((x) => x.id === contact)) throw err('not-found', 'contactMissing');
      const d = s.c.debriefs.find((x) => x.contact === contact);
      if (d) {
        d.state = state;
        d.at = ctx.iso();
      } else s.c.debriefs.push({ id: ctx.randomHex(8), contact, at: ctx.iso(), state, byDevice: me().device });
      ctx.touch(s, `debrief ${state}`);
      return s.c;
    },
    reviewQueue(): CaseSummary[] {
      requireSupervisor();
      return [...ctx.cases.values()]
        .filter((s) => s.c.reviewState === 'unreviewed')
        .sort((a, b) => {
          const hi = (r: Risk) => (rank(r) >= rank('high') ? 1 : 0);
          return hi(b.c.risk) - hi(a.c.risk) || a.c.createdAt.localeCompare(b.c.createdAt) || a.c.id.localeCompare(b.c.id);
        })
        .map((s) => summaryOf(s));
    },
    escalationsList(): EscalationEntry[] {
      requireSupervisor();
      const out: EscalationEntry[] = [];
      for (const s of ctx.cases.values()) {
        const e = newest(s.c);
        if (e)
          out.push({
            case: s.c.id,
            alias: s.c.alias,
            risk: s.c.risk,
            assigneeName: s.c.assigneeName,
            state: e.receipt ? 'acknowledged' : 'awaiting',
            awaitingReceipt: e.receipt === null,
            escalation: e,
          });
      }
      return out.sort(
        (a, b) =>
          Number(b.awaitingReceipt) - Number(a.awaitingReceipt) ||
          (a.awaitingReceipt ? a.escalation.at.localeCompare(b.escalation.at) : b.escalation.at.localeCompare(a.escalation.at)),
      );
    },
    onCallNow(): OnCall {
      return onCall();
    },
    caseAssignees(): Assignee[] {
      return ctx
        .members()
        .filter((m) => !m.revoked)
        .map((m) => ({ deviceId: m.deviceId, name: m.name ?? '', role: m.role, thisDevice: m.thisDevice ?? false }));
    },
  };

  function summaryOf(s: StoredCaseLike): CaseSummary {
    const c = s.c;
    return {
      id: c.id,
      alias: c.alias,
      group: c.group,
      risk: c.risk,
      status: c.status,
      contacts: c.contacts.length,
      openFollowups: c.followups.filter((f) => !f.done).length,
      updatedAt: s.updatedAt,
      ...supervisionSummary(c),
    };
  }

  return { methods, riskChanged, contactAdded, seedSamples };
}
