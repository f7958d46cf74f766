// Micro-lessons (issue 10, item 7): the pure parts of the lessons list and the
// player, unit-tested in tests/lessons.test.ts. Sizes in the volunteer's
// words (sizes: delivery.ts's formatBytes), what the download button does on a link that may be metered, when
// to save the position, when a viewing counts as watched (one 人次), and a
// small WAV tone for the browser fake.

import type { LessonFetchPlan, LessonInfo, LessonLinkPolicy } from './api/types';

/** `3:07`, `1:02:05` from milliseconds. */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms) || ms < 0) return '';
  const total = Math.floor(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const two = (v: number) => String(v).padStart(2, '0');
  return h > 0 ? `${h}:${two(m)}:${two(s)}` : `${m}:${two(s)}`;
}

/** Whole percent of a lesson on this device (0 to 100; 100 only when held). */
export function heldPercent(l: Pick<LessonInfo, 'size' | 'bytesHeld' | 'held'>): number {
  if (l.held) return 100;
  if (l.size <= 0) return 0;
  return Math.min(99, Math.floor((l.bytesHeld / l.size) * 100));
}

export type LessonState = 'held' | 'partial' | 'remote';

export function lessonState(l: Pick<LessonInfo, 'held' | 'chunksHeld'>): LessonState {
  if (l.held) return 'held';
  return l.chunksHeld > 0 ? 'partial' : 'remote';
}

/**
 * What pressing "download" does: nothing to fetch; fetch at once (the
 * venue's local Wi-Fi, or the volunteer said the link is unmetered); or ask
 * first, showing the size.
 */
export type DownloadStep = { kind: 'none' } | { kind: 'fetch' } | { kind: 'ask'; bytes: number };

export function downloadStep(plan: LessonFetchPlan, policy: LessonLinkPolicy): DownloadStep {
  if (plan.bytesMissing <= 0 || plan.chunksMissing <= 0) return { kind: 'none' };
  if (plan.metered && policy === 'ask') return { kind: 'ask', bytes: plan.bytesMissing };
  return { kind: 'fetch' };
}

/** How often the position is saved while playing. */
export const SAVE_EVERY_MS = 5000;

/**
 * Whether the position should be saved now: on pause, seek and end always
 * (`force`), while playing every SAVE_EVERY_MS of media time moved, and
 * never twice for the same whole second.
 */
export function shouldSave(positionMs: number, lastSavedMs: number | null, force = false): boolean {
  if (!Number.isFinite(positionMs) || positionMs < 0) return false;
  if (lastSavedMs !== null && Math.floor(positionMs / 1000) === Math.floor(lastSavedMs / 1000)) return false;
  if (force || lastSavedMs === null) return true;
  return Math.abs(positionMs - lastSavedMs) >= SAVE_EVERY_MS;
}

/** Share of a lesson that counts a viewing as watched. */
export const WATCHED_SHARE = 0.9;

/**
 * Counts one viewing (one 人次) once per opening of the player: when the
 * media ends, or when the volunteer has actually played 90 % of it (time
 * played, not a seek to the end).
 */
export class WatchCounter {
  private counted = false;
  private played = 0;
  private last: number | null = null;

  /** The media's time moved to `t` seconds while playing; a jump (seek) counts nothing. */
  tick(t: number): void {
    if (this.last !== null) {
      const d = t - this.last;
      if (d > 0 && d < 2) this.played += d;
    }
    this.last = t;
  }

  /** A seek: the next tick starts a new stretch. */
  seeked(t: number): void {
    this.last = t;
  }

  /** Whether to record "watched" now (true once). */
  due(durationS: number, ended: boolean): boolean {
    if (this.counted) return false;
    const enough = Number.isFinite(durationS) && durationS > 0 && this.played >= durationS * WATCHED_SHARE;
    if (ended || enough) {
      this.counted = true;
      return true;
    }
    return false;
  }
}

/** Where the player starts: the saved position, unless it is (nearly) at the end. */
export function resumeAt(positionMs: number | null, durationMs: number | null): number {
  if (positionMs === null || positionMs <= 0) return 0;
  if (durationMs !== null && durationMs > 0 && positionMs >= durationMs * 0.98) return 0;
  return positionMs / 1000;
}

/** A mono 16-bit PCM WAV of a sine tone (the fake's lesson media). */
export function toneWav(seconds: number, hz = 440, rate = 8000): Uint8Array {
  const samples = Math.max(1, Math.round(seconds * rate));
  const data = samples * 2;
  const buf = new ArrayBuffer(44 + data);
  const v = new DataView(buf);
  const ascii = (at: number, s: string) => [...s].forEach((c, i) => v.setUint8(at + i, c.charCodeAt(0)));
  ascii(0, 'RIFF');
  v.setUint32(4, 36 + data, true);
  ascii(8, 'WAVE');
  ascii(12, 'fmt ');
  v.setUint32(16, 16, true);
  v.setUint16(20, 1, true); // PCM
  v.setUint16(22, 1, true); // mono
  v.setUint32(24, rate, true);
  v.setUint32(28, rate * 2, true);
  v.setUint16(32, 2, true);
  v.setUint16(34, 16, true);
  ascii(36, 'data');
  v.setUint32(40, data, true);
  for (let i = 0; i < samples; i++) {
    v.setInt16(44 + i * 2, Math.round(Math.sin((2 * Math.PI * hz * i) / rate) * 8000), true);
  }
  return new Uint8Array(buf);
}
