// Issue 9, U2: the duty roster's arithmetic, which team screens a role
// sees, and the fake's duty roster, settings, handover notes and statistics.
import { describe, expect, it } from 'vitest';
import { createFakeApi } from '../src/lib/api/fake';
import type { DutyLine, DutySlot, Role } from '../src/lib/api/types';
import { onDutyNow, slotRange, upcomingByDay } from '../src/lib/duty';
import { parseRoute, href, tabOf, teamTabs } from '../src/lib/route';

describe('duty slots from the form', () => {
  it('takes a local date and two times', () => {
    const r = slotRange('2026-12-01', '09:00', '13:30');
    expect(r).not.toBeNull();
    expect(new Date(r!.to).getTime() - new Date(r!.from).getTime()).toBe(4.5 * 3_600_000);
    expect(new Date(r!.from).getHours()).toBe(9);
  });

  it('ends a night shift on the next day', () => {
    const r = slotRange('2026-12-01', '22:00', '02:00')!;
    expect(new Date(r.to).getTime() - new Date(r.from).getTime()).toBe(4 * 3_600_000);
    expect(new Date(r.to).getDate()).toBe(2);
  });

  it('refuses what does not parse', () => {
    expect(slotRange('12/01/2026', '09:00', '10:00')).toBeNull();
    expect(slotRange('2026-12-01', '9', '10:00')).toBeNull();
  });
});

describe('who is on duty', () => {
  const lines: DutyLine[] = [
    { id: 'hotline', name: '热线', kind: 'hotline', phone: null },
    { id: 'on-call', name: '督导值班', kind: 'on-call', phone: '138' },
  ];
  const at = (h: number) => new Date(Date.UTC(2026, 11, 1, h)).toISOString();
  const slot = (id: string, line: string, name: string, from: number, to: number): DutySlot => ({
    id,
    line,
    device: id,
    name,
    from: at(from),
    to: at(to),
  });
  const duty = [slot('a', 'hotline', '王晓', 1, 5), slot('b', 'on-call', '林老师', 0, 8), slot('c', 'hotline', '小周', 5, 9), slot('d', 'hotline', '阿明', 30, 34)];

  it('lists each line with the slots covering the moment, the end excluded', () => {
    const now = onDutyNow(lines, duty, new Date(at(5)));
    expect(now.map((l) => [l.line.id, l.slots.map((s) => s.name)])).toEqual([
      ['hotline', ['小周']],
      ['on-call', ['林老师']],
    ]);
  });

  it('groups the slots not over yet by day, in time order', () => {
    const days = upcomingByDay(duty, new Date(at(6)));
    expect(days.flatMap((d) => d.slots.map((s) => s.id))).toEqual(['b', 'c', 'd']);
    expect(days.length).toBe(2);
  });
});

describe('team screens by role', () => {
  it('a volunteer reads the roster, a supervisor also sees statistics, the lead also edits the settings', () => {
    const tabs = (role: Role) => teamTabs({ role });
    expect(tabs('volunteer')).toEqual(['duty']);
    expect(tabs('supervisor')).toEqual(['duty', 'stats']);
    expect(tabs('lead')).toEqual(['duty', 'stats', 'team']);
    expect(teamTabs(null)).toEqual([]);
  });

  it('routes to the three screens and back', () => {
    for (const [hash, name, tab] of [
      ['#/duty', 'duty', 'duty'],
      ['#/stats', 'stats', 'stats'],
      ['#/settings/team', 'team-settings', 'team'],
    ] as const) {
      const r = parseRoute(hash);
      expect(r.name).toBe(name);
      expect(href(r)).toBe(hash);
      expect(tabOf(r)).toBe(tab);
    }
  });
});

const fast = (role?: Role) => createFakeApi({ latencyMs: 0, stepMs: 0, ready: true, role });

describe('fake: duty roster and team settings', () => {
  it('the lead edits the roster; a volunteer reads it and is refused a change', async () => {
    const lead = fast('lead');
    const s = await lead.teamSettingsGet();
    expect(s.lines.map((l) => l.kind)).toEqual(['hotline', 'online', 'venue', 'on-call']);
    const [member] = await lead.teamMembers();
    const from = Date.now() + 48 * 3_600_000;
    const after = await lead.dutyAdd({ line: s.lines[0].id, member: member.deviceId, name: member.name ?? '', from, to: from + 3_600_000 });
    expect(after.duty.length).toBe(s.duty.length + 1);
    await expect(lead.dutyAdd({ line: s.lines[0].id, member: member.deviceId, name: '', from, to: from })).rejects.toMatchObject({ kind: 'invalid_input' });

    const vol = fast('volunteer');
    expect((await vol.teamSettingsGet()).lines.length).toBe(4);
    await expect(vol.dutyLineAdd({ name: '新线路', kind: 'online' })).rejects.toMatchObject({ kind: 'forbidden', message: '只有团队负责人可以修改值守表和团队设置。' });
    await expect(vol.teamSettingsSet({ onCallPhone: '110' })).rejects.toMatchObject({ kind: 'forbidden' });
  });

  it('the on-call phone and threshold are saved; the on-call person comes from the roster', async () => {
    const lead = fast('lead');
    const s = await lead.teamSettingsSet({ onCallPhone: ' 400-000-1234 ', suppressionK: 3 });
    expect(s.onCallPhone).toBe('400-000-1234');
    expect(s.suppressionK).toBe(3);
    await expect(lead.teamSettingsSet({ suppressionK: 0 })).rejects.toMatchObject({ kind: 'invalid_input' });
    const onCall = await lead.dutyOnCall();
    expect(onCall?.name).toBe('林老师');
    expect(onCall?.phone).toBe('138 0013 8000');
  });

  it('a shift starts on a line and leaves its handover note for the next shift on that line', async () => {
    const api = fast('volunteer');
    const line = (await api.teamSettingsGet()).lines[1].id;
    expect((await api.shiftStart({ line })).line).toBe(line);
    await api.shiftEnd({ handover: '  晚上排队较长  ' });
    const notes = await api.handoverNotes({ line });
    expect(notes[0]).toMatchObject({ line, text: '晚上排队较长', byName: '陈静' });
    await expect(api.shiftStart({ line: 'no-such-line' })).rejects.toMatchObject({ kind: 'not-found' });
  });
});

describe('fake: statistics', () => {
  it('a volunteer is refused; a supervisor gets totals that the breakdown adds up to', async () => {
    await expect(fast('volunteer').stats({ by: ['channel'] })).rejects.toMatchObject({ kind: 'forbidden' });
    const s = await fast('supervisor').stats({ by: ['channel'] });
    expect(s.k).toBe(5);
    expect(s.totals.contacts).toBeGreaterThan(0);
    expect(s.rows.reduce((n, r) => n + r.measures.contacts, 0)).toBe(s.totals.contacts);
    expect(s.rows.every((r) => ['hotline', 'online', 'in-person'].includes(r.key.channel ?? ''))).toBe(true);
  });

  it('a period narrows the counts; a bad date is refused', async () => {
    const api = fast('lead');
    const all = await api.stats({ by: [] });
    const today = new Date().toISOString().slice(0, 10);
    const recent = await api.stats({ from: today, to: today, by: [] });
    expect(recent.totals.newCases).toBeLessThan(all.totals.newCases);
    await expect(api.stats({ from: '1/12/2026', by: [] })).rejects.toMatchObject({ kind: 'invalid_input' });
  });
});
