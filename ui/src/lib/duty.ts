// The duty roster's arithmetic, pure: a slot's times from a form, who is on
// which line now, and the upcoming slots by day (issue 9, U2).

import type { DutyLine, DutySlot } from './api/types';
import { localDate } from './format';

/**
 * A slot's start and end (RFC 3339) from a local date and two `HH:MM`
 * times; an end at or before the start is on the next day (a night shift).
 * null when a field does not parse.
 */
export function slotRange(date: string, from: string, to: string): { from: string; to: string } | null {
  const d = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  const f = /^(\d{2}):(\d{2})$/.exec(from);
  const t = /^(\d{2}):(\d{2})$/.exec(to);
  if (!d || !f || !t) return null;
  const start = new Date(Number(d[1]), Number(d[2]) - 1, Number(d[3]), Number(f[1]), Number(f[2]));
  const end = new Date(Number(d[1]), Number(d[2]) - 1, Number(d[3]), Number(t[1]), Number(t[2]));
  if (end.getTime() <= start.getTime()) end.setDate(end.getDate() + 1);
  if (Number.isNaN(start.getTime()) || Number.isNaN(end.getTime())) return null;
  return { from: start.toISOString(), to: end.toISOString() };
}

const ms = (s: string) => new Date(s).getTime();

/** Whether the slot covers `at`. */
export const isOn = (slot: DutySlot, at: Date) => ms(slot.from) <= at.getTime() && at.getTime() < ms(slot.to);

/** Each line with the slots that cover `at` (in the roster's order). */
export function onDutyNow(lines: readonly DutyLine[], duty: readonly DutySlot[], at: Date): { line: DutyLine; slots: DutySlot[] }[] {
  return lines.map((line) => ({ line, slots: duty.filter((s) => s.line === line.id && isOn(s, at)) }));
}

/** The slots not over yet, by local day of their start, days and slots in time order. */
export function upcomingByDay(duty: readonly DutySlot[], at: Date): { day: string; slots: DutySlot[] }[] {
  const days = new Map<string, DutySlot[]>();
  for (const s of [...duty].filter((s) => ms(s.to) > at.getTime()).sort((a, b) => ms(a.from) - ms(b.from))) {
    const day = localDate(new Date(s.from));
    days.set(day, [...(days.get(day) ?? []), s]);
  }
  return [...days].map(([day, slots]) => ({ day, slots }));
}
