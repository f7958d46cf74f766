import { describe, expect, it } from 'vitest';
import { createFakeApi } from '../src/lib/api/fake';
import type { LessonProgress } from '../src/lib/api/types';
import {
  WatchCounter,
  downloadStep,
  formatDuration,
  heldPercent,
  lessonState,
  resumeAt,
  shouldSave,
  toneWav,
} from '../src/lib/lessons';
import { href, parseRoute, tabOf } from '../src/lib/route';
import { translate } from '../src/lib/i18n/translate';

const plan = (bytesMissing: number, metered: boolean) => ({
  lessons: ['a'],
  bytesMissing,
  chunksMissing: Math.ceil(bytesMissing / 524288),
  metered,
});

describe('lessons: what download does', () => {
  it('asks first, with the size, on a link that may be metered', () => {
    expect(downloadStep(plan(12_400_000, true), 'ask')).toEqual({ kind: 'ask', bytes: 12_400_000 });
  });
  it('fetches at once at the venue relay or when the volunteer said the link is unmetered', () => {
    expect(downloadStep(plan(12_400_000, false), 'ask')).toEqual({ kind: 'fetch' });
    expect(downloadStep(plan(12_400_000, true), 'unmetered')).toEqual({ kind: 'fetch' });
  });
  it('does nothing when everything is here', () => {
    expect(downloadStep(plan(0, true), 'ask')).toEqual({ kind: 'none' });
  });
});

describe('lessons: words and numbers', () => {
  it('shows durations as a player does', () => {
    expect(formatDuration(0)).toBe('0:00');
    expect(formatDuration(252_000)).toBe('4:12');
    expect(formatDuration(3_725_000)).toBe('1:02:05');
    expect(formatDuration(null)).toBe('');
  });
  it('counts a lesson held only when every chunk is here', () => {
    expect(heldPercent({ size: 1000, bytesHeld: 999, held: false })).toBe(99);
    expect(heldPercent({ size: 1000, bytesHeld: 1000, held: true })).toBe(100);
    expect(heldPercent({ size: 0, bytesHeld: 0, held: false })).toBe(0);
    expect(lessonState({ held: false, chunksHeld: 0 })).toBe('remote');
    expect(lessonState({ held: false, chunksHeld: 3 })).toBe('partial');
    expect(lessonState({ held: true, chunksHeld: 8 })).toBe('held');
  });
  it('has English plurals and Chinese without', () => {
    expect(translate('en', 'lessons.watched', { n: 1 })).toBe('Watched 1 time');
    expect(translate('en', 'lessons.watched', { n: 3 })).toBe('Watched 3 times');
    expect(translate('zh-CN', 'lessons.watched', { n: 3 })).toBe('已看完 3 次');
  });
});

describe('lessons: progress and watched', () => {
  it('saves the position every few seconds while playing, and always on pause or end', () => {
    expect(shouldSave(0, null)).toBe(true);
    expect(shouldSave(3_000, 0)).toBe(false);
    expect(shouldSave(5_200, 0)).toBe(true);
    expect(shouldSave(3_000, 0, true)).toBe(true);
    // never twice for the same second
    expect(shouldSave(5_400, 5_200, true)).toBe(false);
    expect(shouldSave(Number.NaN, 0, true)).toBe(false);
  });
  it('opens where the volunteer stopped, unless that was the end', () => {
    expect(resumeAt(null, 60_000)).toBe(0);
    expect(resumeAt(30_000, 60_000)).toBe(30);
    expect(resumeAt(59_500, 60_000)).toBe(0);
  });
  it('counts one viewing when the lesson ends, once', () => {
    const c = new WatchCounter();
    expect(c.due(60, false)).toBe(false);
    expect(c.due(60, true)).toBe(true);
    expect(c.due(60, true)).toBe(false);
  });
  it('counts 90 % actually played, not a seek to the end', () => {
    const skip = new WatchCounter();
    skip.tick(0);
    skip.seeked(58);
    skip.tick(58.5);
    expect(skip.due(60, false)).toBe(false);
    const played = new WatchCounter();
    for (let s = 0; s <= 54; s += 0.25) played.tick(s);
    expect(played.due(60, false)).toBe(true);
  });
});

describe('lessons: the tone the fake plays', () => {
  it('is a valid PCM WAV', () => {
    const w = toneWav(1, 440, 8000);
    const v = new DataView(w.buffer);
    expect(new TextDecoder().decode(w.subarray(0, 4))).toBe('RIFF');
    expect(new TextDecoder().decode(w.subarray(8, 12))).toBe('WAVE');
    expect(v.getUint32(24, true)).toBe(8000);
    expect(v.getUint32(40, true)).toBe(16000);
    expect(w.length).toBe(44 + 16000);
  });
});

describe('lessons: the route', () => {
  it('parses and builds #/lessons/ID under the handbooks tab', () => {
    const r = parseRoute('#/lessons/4f1c2a9e0b7d4c6e8a1f3b5d7c9e0a12');
    expect(r).toEqual({ name: 'lesson', id: '4f1c2a9e0b7d4c6e8a1f3b5d7c9e0a12' });
    expect(href(r)).toBe('#/lessons/4f1c2a9e0b7d4c6e8a1f3b5d7c9e0a12');
    expect(tabOf(r)).toBe('handbooks');
  });
});

describe('fake API: lessons', () => {
  const ready = () => createFakeApi({ latencyMs: 0, stepMs: 0, ready: true });

  it('refuses a download on a metered link until confirmed, then fetches every chunk with progress', async () => {
    const api = ready();
    const [first] = await api.lessonList({});
    expect(first.held).toBe(false);
    const plan = await api.lessonFetchPlan({ ids: [first.id] });
    expect(plan).toMatchObject({ bytesMissing: first.size, metered: true });
    await expect(api.lessonFetch({ ids: [first.id], confirmMetered: false })).rejects.toMatchObject({ kind: 'metered_link' });
    expect((await api.lessonGet({ id: first.id })).chunksHeld).toBe(0);
    const seen: LessonProgress[] = [];
    await api.onLessonProgress((p) => seen.push(p));
    const r = await api.lessonFetch({ ids: [first.id], confirmMetered: true });
    expect(r).toMatchObject({ complete: true, bytesFetched: first.size, chunksFetched: first.chunks });
    expect(seen.length).toBe(first.chunks);
    expect(seen.at(-1)).toMatchObject({ held: true, bytesHeld: first.size });
    expect((await api.lessonFetchPlan({ ids: [first.id] })).bytesMissing).toBe(0);
  });

  it('keeps what arrived when the network goes, and goes on from there', async () => {
    const api = createFakeApi({ latencyMs: 0, stepMs: 0, ready: true });
    await api.lessonLinkPolicySet({ policy: 'unmetered' });
    const [first] = await api.lessonList({});
    let n = 0;
    await api.onLessonProgress(() => {
      if (++n === 3) api.setOffline(true);
    });
    await expect(api.lessonFetch({ ids: [first.id], confirmMetered: false })).rejects.toMatchObject({ kind: 'network' });
    const partial = await api.lessonGet({ id: first.id });
    expect(partial).toMatchObject({ chunksHeld: 3, held: false });
    await expect(api.lessonMediaUrl({ id: first.id })).rejects.toMatchObject({ kind: 'lesson_not_held' });
    api.setOffline(false);
    const r = await api.lessonFetch({ ids: [first.id], confirmMetered: false });
    expect(r.chunksFetched).toBe(first.chunks - 3);
    expect((await api.lessonGet({ id: first.id })).held).toBe(true);
  });

  it('keeps the position and counts viewings', async () => {
    const api = ready();
    const [first] = await api.lessonList({});
    await api.lessonProgressSet({ id: first.id, positionMs: 61_400 });
    expect((await api.lessonGet({ id: first.id })).positionMs).toBe(61_400);
    expect(await api.lessonWatched({ id: first.id })).toBe(1);
    expect(await api.lessonWatched({ id: first.id })).toBe(2);
    expect((await api.lessonGet({ id: first.id })).watchedCount).toBe(2);
  });
});

describe('fake API: lessons watched in the statistics', () => {
  it('counts every viewing for a lead, and refuses a volunteer', async () => {
    const lead = createFakeApi({ latencyMs: 0, stepMs: 0, ready: true, role: 'lead' });
    const [first] = await lead.lessonList({});
    expect((await lead.lessonStats({})).lessonsWatched).toBe(0);
    await lead.lessonWatched({ id: first.id });
    await lead.lessonWatched({ id: first.id });
    const s = await lead.lessonStats({});
    expect(s.lessonsWatched).toBe(2);
    expect(s.byLesson).toEqual([{ lesson: first.id, title: first.title, watched: 2 }]);
    const vol = createFakeApi({ latencyMs: 0, stepMs: 0, ready: true, role: 'volunteer' });
    await expect(vol.lessonStats({})).rejects.toMatchObject({ kind: 'forbidden' });
  });
  it('says 人次 in Chinese and viewings in English', () => {
    expect(translate('zh-CN', 'lessonStats.total', { n: 12 })).toBe('12 人次');
    expect(translate('en', 'lessonStats.total', { n: 1 })).toBe('1 viewing');
    expect(translate('en', 'lessonStats.total', { n: 12 })).toBe('12 viewings');
  });
});
