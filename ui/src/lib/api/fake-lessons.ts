// The fake's micro-lessons (issue 10, item 7). Like the device: the first
// sample handbook carries two lessons, none on the device at first; the
// team's relay counts as a link that may be metered, so a download of
// missing bytes is refused with `metered_link` unless confirmed (or the
// policy is `unmetered`); a download arrives chunk by chunk with
// `lesson-progress` events and fails with `network` when offline (what
// arrived is kept); progress and watched counts are kept per lesson. The
// media is a short WAV tone made in the page.

import { toneWav } from '../lessons';
import type {
  ApiError,
  Language,
  LessonFetchPlan,
  LessonFetchReport,
  LessonInfo,
  LessonLinkPolicy,
  LessonProgress,
  LessonStats,
  Unlisten,
} from './types';

const MESSAGES = {
  metered: {
    'zh-CN': '下载需要 {mb} MB，当前网络可能按流量计费：请确认后再下载。',
    en: 'The download needs {mb} MB over a link that may be metered: confirm first.',
  },
  network: {
    'zh-CN': '连不上中继。已下载的部分保存在本设备上，联网后可继续下载。',
    en: 'Could not reach the relay. What arrived is kept on this device; download again to go on.',
  },
  missing: { 'zh-CN': '找不到这节微课。', en: 'No such lesson.' },
  notHeld: { 'zh-CN': '这节微课还没有完整下载到本设备。', en: 'This lesson is not fully on this device yet.' },
} as const;

const CHUNK = 512 * 1024;

export function createLessonsFake(ctx: {
  language: () => Language;
  offline: () => boolean;
  handbookId: string;
  sleep: (ms: number) => Promise<void>;
  /** time per chunk */
  chunkMs: number;
}) {
  const error = (kind: string, id: keyof typeof MESSAGES, mb = ''): ApiError => ({
    kind,
    message: MESSAGES[id][ctx.language()].replace('{mb}', mb),
  });
  const lesson = (id: string, title: string, size: number, durationMs: number, mime: string): LessonInfo => ({
    id,
    handbook: ctx.handbookId,
    title,
    mime,
    size,
    durationMs,
    chunks: Math.ceil(size / CHUNK),
    chunksHeld: 0,
    bytesHeld: 0,
    held: false,
    positionMs: null,
    watchedCount: 0,
    addedAt: Date.parse('2026-11-20T09:00:00Z'),
  });
  const lessons: LessonInfo[] = [
    lesson('4f1c2a9e0b7d4c6e8a1f3b5d7c9e0a12', '危机来电的前三分钟', 3_800_000, 4 * 60_000 + 12_000, 'audio/wav'),
    lesson('9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d', '稳定化练习：呼吸与着陆', 12_400_000, 9 * 60_000 + 30_000, 'audio/wav'),
  ];
  let policy: LessonLinkPolicy = 'ask';
  const handlers = new Set<(p: LessonProgress) => void>();
  const urls = new Map<string, string>();

  function find(id: string): LessonInfo {
    const l = lessons.find((x) => x.id === id);
    if (!l) throw error('not_found', 'missing');
    return l;
  }
  function chosen(ids: string[]): LessonInfo[] {
    return ids.length === 0 ? lessons : ids.map(find);
  }
  function plan(ids: string[]): LessonFetchPlan {
    const ls = chosen(ids);
    return {
      lessons: ls.map((l) => l.id),
      bytesMissing: ls.reduce((n, l) => n + (l.size - l.bytesHeld), 0),
      chunksMissing: ls.reduce((n, l) => n + (l.chunks - l.chunksHeld), 0),
      metered: true,
    };
  }

  return {
    lessonList(a: { handbook?: string }): LessonInfo[] {
      return lessons.filter((l) => !a.handbook || l.handbook === a.handbook);
    },
    lessonGet(a: { id: string }): LessonInfo {
      return find(a.id);
    },
    lessonFetchPlan(a: { ids: string[] }): LessonFetchPlan {
      return plan(a.ids);
    },
    async lessonFetch(a: { ids: string[]; confirmMetered: boolean }): Promise<LessonFetchReport> {
      const p = plan(a.ids);
      if (p.bytesMissing > 0 && policy === 'ask' && !a.confirmMetered) {
        throw error('metered_link', 'metered', (p.bytesMissing / 1e6).toFixed(1));
      }
      let chunksFetched = 0;
      let bytesFetched = 0;
      for (const l of chosen(a.ids)) {
        while (l.chunksHeld < l.chunks) {
          await ctx.sleep(ctx.chunkMs);
          if (ctx.offline()) throw error('network', 'network');
          const n = Math.min(CHUNK, l.size - l.bytesHeld);
          l.chunksHeld += 1;
          l.bytesHeld += n;
          l.held = l.chunksHeld === l.chunks;
          chunksFetched += 1;
          bytesFetched += n;
          const ev: LessonProgress = {
            lessonId: l.id,
            chunks: l.chunks,
            chunksHeld: l.chunksHeld,
            bytesHeld: l.bytesHeld,
            size: l.size,
            held: l.held,
          };
          handlers.forEach((h) => h(ev));
        }
      }
      return { chunksFetched, bytesFetched, complete: chosen(a.ids).every((l) => l.held) };
    },
    lessonProgressSet(a: { id: string; positionMs: number }): void {
      find(a.id).positionMs = Math.max(0, Math.round(a.positionMs));
    },
    lessonWatched(a: { id: string }): number {
      const l = find(a.id);
      l.watchedCount += 1;
      return l.watchedCount;
    },
    lessonLinkPolicy(): LessonLinkPolicy {
      return policy;
    },
    lessonLinkPolicySet(a: { policy: LessonLinkPolicy }): void {
      policy = a.policy;
    },
    lessonMediaUrl(a: { id: string }): string {
      const l = find(a.id);
      if (!l.held) throw error('lesson_not_held', 'notHeld');
      let url = urls.get(l.id);
      if (!url) {
        const wav = toneWav(Math.min(20, (l.durationMs ?? 10_000) / 1000));
        url = URL.createObjectURL(new Blob([wav as BlobPart], { type: 'audio/wav' }));
        urls.set(l.id, url);
      }
      return url;
    },
    lessonStats(a: { from?: string; to?: string }): LessonStats {
      const byLesson = lessons
        .filter((l) => l.watchedCount > 0)
        .map((l) => ({ lesson: l.id, title: l.title, watched: l.watchedCount }))
        .sort((x, y) => y.watched - x.watched);
      const today = new Date().toISOString().slice(0, 10);
      return {
        from: a.from ?? '2026-11-20',
        to: a.to ?? today,
        lessonsWatched: byLesson.reduce((n, l) => n + l.watched, 0),
        byLesson,
      };
    },
    onLessonProgress(handler: (p: LessonProgress) => void): Unlisten {
      handlers.add(handler);
      return () => handlers.delete(handler);
    },
  };
}
