import { describe, expect, it } from 'vitest';
import { createFakeApi } from '../src/lib/api/fake';
import { makeSnippet } from '../src/lib/api/fake-search';
import { wrap } from '../src/lib/api/index';
import type { HeartbridgeApi, SyncProgress, SyncStatus } from '../src/lib/api/types';
import { progressFraction } from '../src/lib/sync-progress';

const fast = (o: Parameters<typeof createFakeApi>[0] = {}) => createFakeApi({ latencyMs: 0, stepMs: 0, ...o });

async function withProfile(o: Parameters<typeof createFakeApi>[0] = {}) {
  const api = fast(o);
  await api.profileCreate({ name: '陈静', pin: '123456' });
  return api;
}

describe('fake API: profile and team', () => {
  it('starts on the first-run screen, then has a profile', async () => {
    const api = fast();
    expect(await api.profileStatus()).toEqual({ initialized: false });
    const p = await api.profileCreate({ name: '  陈静 ', pin: '123456' });
    expect(p).toMatchObject({ initialized: true, name: '陈静' });
    expect(p.deviceId).toMatch(/^[0-9a-f]{32}$/);
    expect(await api.profileStatus()).toEqual(p);
  });

  it('rejects an empty name with a message for the volunteer', async () => {
    await expect(fast().profileCreate({ name: ' ', pin: '123456' })).rejects.toEqual({ kind: 'invalid', message: '请填写你的名字或称呼。' });
  });

  it('writes its messages in the language of the settings', async () => {
    const api = fast();
    await api.settingsSet({ language: 'en' });
    expect(await api.settingsGet()).toEqual({ language: 'en' });
    await expect(api.profileCreate({ name: '', pin: '123456' })).rejects.toMatchObject({ message: 'Please enter your name.' });
  });

  it('a lead claims a team, invites a supervisor, and the code joins as one', async () => {
    const lead = fast();
    const p = await lead.teamClaim({ relayUrl: 'https://relay.example.org', token: 'lead-token-123', name: '周敏', pin: '123456' });
    expect(p.team?.role).toBe('lead');
    const { code } = await lead.teamInvite({ role: 'supervisor' });
    expect(code).toMatch(/^HB3\.[A-Za-z0-9_-]{40,}$/);
    expect((await lead.teamMembers()).map((m) => m.role)).toEqual(['lead']);

    // the same fake stands for the relay here: redeeming the code gives its role
    const joined = await lead.teamJoin({ code, name: '林老师' });
    expect(joined.team?.role).toBe('supervisor');
  });

  it('refuses a mangled invite code and a claim without a relay address', async () => {
    const api = fast();
    await expect(api.teamJoin({ code: 'HB1.short', name: '王晓' })).rejects.toMatchObject({ kind: 'invalid-invite' });
    await expect(api.teamClaim({ relayUrl: 'relay', token: 'x'.repeat(10), name: '周敏' })).rejects.toMatchObject({ kind: 'invalid' });
  });

  it('a volunteer may not invite', async () => {
    const api = fast();
    await api.teamJoin({ code: `HB1.${'a'.repeat(60)}`, name: '王晓', pin: '123456' });
    await expect(api.teamInvite({ role: 'volunteer' })).rejects.toMatchObject({ kind: 'forbidden' });
  });
});

describe('fake API: handbooks', () => {
  it('has three Chinese handbooks with sections', async () => {
    const api = fast();
    const list = await api.handbookList();
    expect(list).toHaveLength(3);
    for (const h of list) {
      expect(h.language).toBe('zh-CN');
      const view = await api.handbookGet({ id: h.id });
      expect(view.sections).toHaveLength(h.sections);
      expect(view.sections.map((s) => s.index)).toEqual(view.sections.map((_, i) => i));
    }
  });

  it('finds a two-character Chinese word and marks it', async () => {
    const { hits } = await fast().handbookSearch({ query: '危机', limit: 20 });
    expect(hits.length).toBeGreaterThan(0);
    for (const h of hits) expect(h.snippet).toContain('<mark>危机</mark>');
    const scores = hits.map((h) => h.score);
    expect([...scores].sort((a, b) => b - a)).toEqual(scores);
  });

  it('opens the section a hit names', async () => {
    const api = fast();
    const {
      hits: [hit],
    } = await api.handbookSearch({ query: '惊恐发作', limit: 1 });
    const book = await api.handbookGet({ id: hit.handbookId });
    expect(book.sections[hit.section].title).toBe(hit.sectionTitle);
  });

  it('escapes the snippet and marks every term', () => {
    expect(makeSnippet('志愿者<b>要</b>倾听 Listening 并记录。', ['倾听', 'listen'], 40)).toBe(
      '志愿者&lt;b&gt;要&lt;/b&gt;<mark>倾听</mark> <mark>Listen</mark>ing 并记录。',
    );
    const s = makeSnippet('甲'.repeat(100) + '危机' + '乙'.repeat(100), ['危机'], 20);
    expect(s.startsWith('…') && s.endsWith('…') && s.includes('<mark>危机</mark>')).toBe(true);
  });

  it('returns nothing for an empty query and honours the limit', async () => {
    const api = fast();
    expect(await api.handbookSearch({ query: '  ', limit: 10 })).toEqual({ total: 0, hits: [] });
    const first = await api.handbookSearch({ query: '的', limit: 2 });
    expect(first.hits).toHaveLength(2);
    // "more" loads the rest: pages from an offset add up to the total, each hit once.
    const rest = await api.handbookSearch({ query: '的', limit: 1000, offset: 2 });
    expect(rest.total).toBe(first.total);
    const keys = [...first.hits, ...rest.hits].map((h) => `${h.handbookId}/${h.section}`);
    expect(new Set(keys).size).toBe(first.total);
  });

  it('toggles a bookmark', async () => {
    const api = fast();
    const [h] = await api.handbookList();
    expect(await api.bookmarkToggle({ handbookId: h.id, section: 2 })).toBe(true);
    expect((await api.bookmarkList()).map((b) => [b.handbookId, b.section])).toEqual([[h.id, 2]]);
    expect(await api.bookmarkToggle({ handbookId: h.id, section: 2 })).toBe(false);
    expect(await api.bookmarkList()).toEqual([]);
  });
});

describe('fake API: cases', () => {
  it('lists high and critical first, and filters', async () => {
    const api = fast();
    const all = await api.caseList();
    expect(all[0].risk).toBe('critical');
    expect(all[1].risk).toBe('high');
    const rank = ['none', 'low', 'medium', 'high', 'critical'];
    const ranks = all.map((c) => rank.indexOf(c.risk));
    expect([...ranks].sort((a, b) => b - a)).toEqual(ranks);
    expect((await api.caseList({ risk: 'critical' })).every((c) => c.risk === 'critical')).toBe(true);
    expect((await api.caseList({ group: 'migrant', status: 'open' })).map((c) => c.alias)).toEqual(['小林']);
  });

  it('creates a case, logs a contact (newest first) and counts it on the shift', async () => {
    const api = await withProfile();
    await api.shiftStart();
    const { id } = await api.caseCreate({ alias: '小北', group: 'migrant', risk: 'medium' });
    await api.caseAddContact({ id, channel: 'hotline', text: '第一次来电', minutes: 20 });
    const c = await api.caseAddContact({ id, channel: 'online', text: '第二次' });
    expect(c.contacts.map((x) => [x.text, x.minutes, x.author])).toEqual([
      ['第二次', null, '陈静'],
      ['第一次来电', 20, '陈静'],
    ]);
    expect((await api.shiftCurrent())?.contacts).toBe(2);
    expect((await api.caseList({ risk: 'medium' })).map((x) => x.alias)).toContain('小北');
  });

  it('keeps follow-ups, marks them done, and tells the history', async () => {
    const api = await withProfile();
    const { id } = await api.caseCreate({ alias: 'A12', group: 'hardship', risk: 'low' });
    let c = await api.caseAddFollowup({ id, text: '周五回访', due: '2026-12-04' });
    expect(c.followups[0]).toMatchObject({ text: '周五回访', due: '2026-12-04', done: false });
    c = await api.caseFollowupDone({ id, followupId: c.followups[0].id, done: true });
    expect(c.followups[0].done).toBe(true);
    c = await api.caseUpdate({ id, risk: 'high', status: 'referred' });
    expect([c.risk, c.status]).toEqual(['high', 'referred']);
    expect((await api.caseHistory({ id })).map((h) => h.what)).toEqual([
      'case opened (group hardship, risk low)',
      'follow-up added',
      'follow-up done',
      'risk → high, status → referred',
    ]);
  });

  it('rejects what the core would reject', async () => {
    const api = await withProfile();
    const { id } = await api.caseCreate({ alias: 'B', group: 'other', risk: 'none' });
    await expect(api.caseCreate({ alias: ' ', group: 'other', risk: 'none' })).rejects.toMatchObject({ kind: 'invalid' });
    await expect(api.caseAddContact({ id, channel: 'hotline', text: '' })).rejects.toMatchObject({ kind: 'invalid' });
    await expect(api.caseAddFollowup({ id, text: 'x', due: '12/04/2026' })).rejects.toMatchObject({ kind: 'invalid' });
    await expect(api.caseGet({ id: 'nope' })).rejects.toMatchObject({ kind: 'not-found' });
  });
});

describe('fake API: shift and sync', () => {
  function record(api: HeartbridgeApi) {
    const progress: SyncProgress[] = [];
    const status: SyncStatus[] = [];
    void api.onSyncProgress((p) => progress.push(p));
    void api.onSyncStatus((s) => status.push(s));
    return { progress, status };
  }

  it('ending a shift syncs every pending change, with progress events', async () => {
    const api = await withProfile();
    const seen = record(api);
    await api.shiftStart();
    const { id } = await api.caseCreate({ alias: '小北', group: 'migrant', risk: 'medium' });
    await api.caseAddContact({ id, channel: 'hotline', text: '来电' });
    const before = await api.syncStatus();
    expect(before.pending).toBe(3); // profile, case, contact
    expect(before.shift).toMatchObject({ changes: 2, delivered: 0, endedAt: null }); // case, contact
    // Every write says so at once.
    expect(seen.status.at(-1)?.pending).toBe(3);

    const report = await api.shiftEnd();
    expect(report.pushed).toBe(3);
    expect(report.bytesSent).toBeGreaterThan(0);
    expect(await api.shiftCurrent()).toBeNull();
    const after = await api.syncStatus();
    expect(after).toMatchObject({ pending: 0, lastError: null, syncing: false, lastSyncedAt: report.finishedAt });
    expect(after.shift).toMatchObject({ changes: 2, delivered: 2, deliveredAt: report.finishedAt });
    expect(after.connection).toMatchObject({ state: 'connected', at: report.finishedAt });
    expect(seen.progress.at(-1)?.bytesReceived).toBe(report.bytesReceived);

    const phases = seen.progress.map((p) => p.phase);
    expect(phases[0]).toBe('push');
    expect(phases.at(-1)).toBe('done');
    expect(phases.indexOf('pull')).toBeGreaterThan(phases.lastIndexOf('push'));
    const fractions = seen.progress.map(progressFraction);
    expect([...fractions].sort((a, b) => a - b)).toEqual(fractions);
    expect(fractions.at(-1)).toBe(1);
    expect(seen.status.some((s) => s.syncing)).toBe(true);
    expect(seen.status.at(-1)?.syncing).toBe(false);
  });

  it('offline: the shift ends, the sync fails with kind network, nothing is lost', async () => {
    const api = await withProfile({ offline: true });
    await api.shiftStart();
    await api.caseCreate({ alias: '小北', group: 'migrant', risk: 'medium' });
    await expect(api.shiftEnd()).rejects.toMatchObject({ kind: 'network' });
    expect(await api.shiftCurrent()).toBeNull();
    const s = await api.syncStatus();
    expect(s.pending).toBe(2);
    expect(s.lastError?.kind).toBe('network');
    expect(s.connection.state).toBe('unreachable');
    expect(s.shift).toMatchObject({ changes: 1, delivered: 0, deliveredAt: null });
    const since = s.connection.since;
    await expect(api.syncNow()).rejects.toMatchObject({ kind: 'network' });
    expect((await api.syncStatus()).connection.since).toBe(since);

    api.setOffline(false);
    const report = await api.syncNow();
    expect(report.pushed).toBe(2);
    const back = await api.syncStatus();
    expect(back.lastError).toBeNull();
    expect(back.connection.state).toBe('connected');
    expect(back.shift).toMatchObject({ changes: 1, delivered: 1, deliveredAt: report.finishedAt });
  });

  it('two syncs at once are one sync', async () => {
    const api = await withProfile();
    const [a, b] = await Promise.all([api.syncNow(), api.syncNow()]);
    expect(a).toEqual(b);
  });

  it('cannot end a shift that was not started', async () => {
    const api = await withProfile();
    await expect(api.shiftEnd()).rejects.toMatchObject({ kind: 'no-shift' });
  });
});

describe('api wrapper', () => {
  it('turns anything thrown that is not an ApiError into kind "unexpected"', async () => {
    const broken = { ...fast(), caseList: () => Promise.reject(new TypeError('x is undefined')) } as HeartbridgeApi;
    const api = wrap(async () => broken);
    const origError = console.error;
    console.error = () => {};
    try {
      await expect(api.caseList()).rejects.toEqual({ kind: 'unexpected', message: '' });
    } finally {
      console.error = origError;
    }
    await expect(api.caseGet({ id: 'nope' })).rejects.toMatchObject({ kind: 'not-found' });
  });
});
