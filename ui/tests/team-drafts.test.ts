import { afterEach, describe, expect, it } from 'vitest';
import { render } from 'svelte/server';
import { api } from '../src/lib/api';
import { createFakeApi } from '../src/lib/api/fake';
import type { LockStatus } from '../src/lib/api/types';
import { collectDrafts, contactDraft, followupDraft, registerDraft, resetDraftsForTests } from '../src/lib/drafts';
import { setLocale } from '../src/lib/i18n/index.svelte';
import { lock, lockApp, noteLockStatus, resetLockForTests } from '../src/lib/lock.svelte';
import LockScreen from '../src/screens/LockScreen.svelte';
import SyncCard from '../src/components/SyncCard.svelte';
import { sync } from '../src/lib/session.svelte';

const fast = (o: Parameters<typeof createFakeApi>[0] = {}) => createFakeApi({ latencyMs: 0, stepMs: 0, ...o });
const status = (s: Partial<LockStatus>): LockStatus => ({
  state: 'locked',
  triesLeft: null,
  wrongPin: false,
  lockAfterSecs: 300,
  lockAfterFixed: false,
  ...s,
});
const html = (s: LockStatus) =>
  render(LockScreen, { props: { status: s, onunlocked: () => {}, onstartover: () => {} } }).body;

describe('a draft typed before a lock', () => {
  afterEach(() => {
    resetDraftsForTests();
    resetLockForTests();
  });

  it('is handed to the back end before the lock, and comes back after the PIN', async () => {
    // The app's `api` (the fake, in a browser-less run).
    await api.profileCreate({ name: '陈静', pin: '246810' });
    const { id } = await api.caseCreate({ alias: '小北', group: 'migrant', risk: 'medium' });
    noteLockStatus(await api.lockStatus());
    const note = '她说最近睡不着，还没说完';
    let text = note;
    let minutes: number | null = 12;
    registerDraft({ caseId: id, form: 'contact', read: () => contactDraft({ channel: 'hotline', minutes, text }) });
    // A form still loading its kept draft is left alone.
    registerDraft({ caseId: id, form: 'followup', read: () => undefined });

    await lockApp('command');
    expect(lock.status?.state).toBe('locked');
    expect((await api.lockStatus()).state).toBe('locked');
    await expect(api.draftGet({ caseId: id })).rejects.toMatchObject({ kind: 'locked' });

    noteLockStatus(await api.lockUnlock({ pin: '246810' }));
    expect(await api.draftGet({ caseId: id })).toEqual({
      contact: { channel: 'hotline', minutes: 12, text: note },
      followup: null,
    });

    // Emptied before the next lock: the kept draft is forgotten.
    text = '';
    minutes = null;
    await lockApp('idle');
    noteLockStatus(await api.lockUnlock({ pin: '246810' }));
    expect((await api.draftGet({ caseId: id })).contact).toBeNull();
  });

  it('only forms with something typed count as a draft', () => {
    expect(contactDraft({ channel: 'hotline', minutes: null, text: '  ' })).toBeNull();
    expect(contactDraft({ channel: 'online', minutes: 5, text: '' })).not.toBeNull();
    expect(followupDraft({ text: '', due: '' })).toBeNull();
    expect(followupDraft({ text: '明天回访', due: '' })).toEqual({ text: '明天回访', due: '' });
    const stop = registerDraft({ caseId: 'c', form: 'followup', read: () => null });
    expect(collectDrafts()).toEqual([{ caseId: 'c', form: 'followup', draft: null }]);
    stop();
    expect(collectDrafts()).toEqual([]);
  });
});

describe('fake API: removing a member and invites', () => {
  it('the lead removes another member: revoked, and the team key goes up an epoch', async () => {
    const lead = fast({ ready: true });
    const p = await lead.profileStatus();
    expect(p.team?.isLead).toBe(true);
    const members = await lead.teamMembers();
    const other = members.find((m) => !m.thisDevice && !m.revoked)!;
    const r = await lead.teamRevoke({ deviceId: other.deviceId });
    expect(r).toMatchObject({ deviceId: other.deviceId, epoch: 2, synced: true, syncError: null });
    expect((await lead.teamMembers()).find((m) => m.deviceId === other.deviceId)?.revoked).toBe(true);
    expect((await lead.profileStatus()).team?.epoch).toBe(2);
    await expect(lead.teamRevoke({ deviceId: p.deviceId! })).rejects.toMatchObject({ kind: 'invalid_input' });
  });

  it('a member who is not the lead cannot remove anyone', async () => {
    const lead = fast();
    await lead.teamClaim({ relayUrl: 'https://relay.example.org', token: 'lead-token-123', name: '周敏', pin: '123456' });
    const { code } = await lead.teamInvite({ role: 'volunteer' });
    const vol = fast();
    await vol.teamJoin({ code: `HB1.${'a'.repeat(60)}`, name: '王晓', pin: '123456' });
    expect((await vol.profileStatus()).team?.isLead).toBe(false);
    const someone = (await vol.teamMembers()).find((m) => !m.thisDevice)!;
    await expect(vol.teamRevoke({ deviceId: someone.deviceId })).rejects.toMatchObject({ kind: 'forbidden' });
    expect(code).toMatch(/^HB3\./);
  });

  it('an invite says when it expires: a day from now', async () => {
    const at = new Date('2026-12-01T11:00:00Z');
    const lead = fast({ ready: true, now: () => at });
    const r = await lead.teamInvite({ role: 'volunteer' });
    expect(new Date(r.expiresAt).getTime() - at.getTime()).toBe(24 * 3600 * 1000);
    expect(r.epoch).toBe(1);
  });
});

describe('the lock screen after a removal', () => {
  afterEach(() => {
    setLocale('zh-CN');
    resetLockForTests();
  });

  it('says the relay removed this device and the notes are still here', () => {
    setLocale('zh-CN');
    lock.reason = 'revoked';
    const out = html(status({}));
    expect(out).toContain('中继服务器说此设备已被移出团队，已停止同步；笔记仍在本设备上。如有误，请联系组长。');
    expect(out).toContain('type="password"');
    setLocale('en');
    expect(html(status({}))).toContain('removed from the team, so syncing has stopped');
  });

  it("says the team's lead removed this device when the profile was erased for it", () => {
    setLocale('zh-CN');
    const out = html(status({ state: 'destroyed', erasedBy: 'revoked' }));
    expect(out).toContain('这台设备已被移出团队');
    expect(out).toContain('团队的组长已将这台设备移出团队');
    expect(out).not.toContain('连续输错 PIN');
    expect(html(status({ state: 'destroyed', erasedBy: 'wrong-pins' }))).toContain('连续输错 PIN');
  });
});

describe('the sync card of a device the relay removed', () => {
  afterEach(() => {
    sync.status = null;
  });

  it('says syncing stopped and the notes are still on this device', () => {
    setLocale('zh-CN');
    sync.status = {
      lastSyncedAt: null,
      pending: 2,
      lastError: { kind: 'device_revoked', message: 'x' },
      syncing: false,
      connection: { state: 'refused', since: null, at: null, kind: 'device_revoked' },
      shift: null,
      stopped: true,
    };
    const out = render(SyncCard).body;
    expect(out).toContain('data-testid="sync-stopped"');
    expect(out).toContain('已停止同步；笔记仍在本设备上。如有误，请联系组长。');
    sync.status = { ...sync.status, stopped: false, lastError: null };
    expect(render(SyncCard).body).not.toContain('sync-stopped');
  });
});

describe('the sync card of a device whose carried changes the central relay refused', () => {
  afterEach(() => {
    sync.status = null;
    setLocale('zh-CN');
  });

  it('says how many, that they stay on this device, and whom to tell, in both languages', () => {
    setLocale('zh-CN');
    sync.status = {
      lastSyncedAt: null,
      pending: 0,
      lastError: null,
      syncing: false,
      connection: { state: 'connected', since: null, at: null, kind: null },
      shift: null,
      carriedRefused: 2,
    };
    const out = render(SyncCard).body;
    expect(out).toContain('data-testid="carried-refused"');
    expect(out).toContain('替队友带出的 2 条更改被中心中继拒收');
    expect(out).toContain('请告诉组长');
    setLocale('en');
    expect(render(SyncCard).body).toContain('The central relay refused 2 changes you carried for teammates');
    sync.status = { ...sync.status, carriedRefused: 0 };
    expect(render(SyncCard).body).not.toContain('carried-refused');
  });
});
