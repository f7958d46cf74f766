// Supervision on the device, as the UI shows it (pure): who may review and
// acknowledge, the supervisor's queue in the order it is shown, the receipt
// of an escalation in words, and where the crisis protocol is in the
// handbooks. No API calls here; the components pass in what they loaded.

import type {
  Case,
  CaseSummary,
  Escalation,
  EscalationEntry,
  HandbookView,
  ProfileStatus,
  Receipt,
  Risk,
} from './api/types';
import { RISKS } from './api/types';
import type { Message } from './delivery';

/**
 * Whether this profile may review, comment, acknowledge and assign: a
 * supervisor or the lead; a standalone profile (no team) does everything on
 * its own cases. The back end refuses a volunteer anyway; this only decides
 * which controls are shown.
 */
export function canSupervise(profile: ProfileStatus | null | undefined): boolean {
  const role = profile?.team?.role;
  return role === undefined || role === 'supervisor' || role === 'lead';
}

/** The newest escalation of a case (the one a receipt answers), or null. */
export function latestEscalation(c: Pick<Case, 'escalations'>): Escalation | null {
  let best: Escalation | null = null;
  for (const e of c.escalations) if (!best || e.at > best.at || (e.at === best.at && e.id > best.id)) best = e;
  return best;
}

/** How long an escalation has waited, in words: minutes under an hour, then hours and minutes. */
export function waitingMessage(minutes: number): Message {
  const n = Math.max(0, Math.floor(minutes));
  return n < 60
    ? { key: 'sup.queue.waiting', params: { n } }
    : { key: 'sup.queue.waitingHours', params: { h: Math.floor(n / 60), m: n % 60 } };
}

/** Whole minutes from `from` to `to` (RFC 3339), never negative. */
export function minutesBetween(from: string, to: string): number {
  const ms = new Date(to).getTime() - new Date(from).getTime();
  return Number.isFinite(ms) ? Math.max(0, Math.round(ms / 60_000)) : 0;
}

/**
 * A receipt in words. `time` writes a moment as the volunteer reads it.
 * A supervisor's: “林老师 于 14:05 确认（升级后 35 分钟）”; the volunteer's own
 * record of the phone call: “已电话联系值班督导（14:05）”.
 */
export function receiptMessage(receipt: Receipt, escalatedAt: string, time: (iso: string) => string): Message {
  const params = { name: receipt.byName, time: time(receipt.at), n: minutesBetween(escalatedAt, receipt.at) };
  return receipt.mode === 'phone'
    ? { key: 'sup.escalation.receiptPhone', params }
    : { key: 'sup.escalation.receiptApp', params };
}

const rank = (r: Risk) => RISKS.indexOf(r);

/**
 * The supervisor's queue as shown: escalations awaiting a receipt at the
 * top (oldest first: the longest wait is the most urgent), then the cases
 * to review (high and critical first, then oldest first, as the device's
 * queue orders them) without the ones already at the top, then the acknowledged escalations (newest first).
 */
export function queueView(
  queue: CaseSummary[],
  escalations: EscalationEntry[],
): { awaiting: EscalationEntry[]; toReview: CaseSummary[]; acknowledged: EscalationEntry[] } {
  const awaiting = escalations
    .filter((e) => e.awaitingReceipt)
    .sort((a, b) => a.escalation.at.localeCompare(b.escalation.at));
  const acknowledged = escalations
    .filter((e) => !e.awaitingReceipt)
    .sort((a, b) => b.escalation.at.localeCompare(a.escalation.at));
  const top = new Set(awaiting.map((e) => e.case));
  const hi = (r: Risk) => (rank(r) >= rank('high') ? 1 : 0);
  const toReview = queue
    .filter((c) => !top.has(c.id))
    .sort((a, b) => hi(b.risk) - hi(a.risk) || a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
  return { awaiting, toReview, acknowledged };
}

const PROTOCOL_BOOK = /危机|crisis/i;
const PROTOCOL_SECTION = /升级|紧急处置|escalat|emergenc/i;
const CRISIS_SECTION = /危机|crisis/i;

/**
 * Where the crisis protocol is: in a handbook about 危机 / crisis, its
 * section on escalation and emergencies (升级链条与紧急处置); else any
 * handbook's section on escalation; else the first section whose title
 * names 危机 / crisis; else the crisis handbook's start. Null without one.
 */
export function findCrisisSection(books: HandbookView[]): { id: string; section: number } | null {
  const crisisBooks = books.filter((b) => PROTOCOL_BOOK.test(b.title));
  const find = (list: HandbookView[], re: RegExp) => {
    for (const b of list) {
      const s = b.sections.find((x) => re.test(x.title));
      if (s) return { id: b.id, section: s.index };
    }
    return null;
  };
  return (
    find(crisisBooks, PROTOCOL_SECTION) ??
    find(books, PROTOCOL_SECTION) ??
    find(books, CRISIS_SECTION) ??
    (crisisBooks[0] ? { id: crisisBooks[0].id, section: crisisBooks[0].sections[0]?.index ?? 0 } : null)
  );
}

/** A phone number as a `tel:` link (digits and a leading +), or null when there is none. */
export function telHref(phone: string | null | undefined): string | null {
  const digits = (phone ?? '').replace(/[^\d+]/g, '').replace(/(?!^)\+/g, '');
  return /\d{3,}/.test(digits) ? `tel:${digits}` : null;
}
