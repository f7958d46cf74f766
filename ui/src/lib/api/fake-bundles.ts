// The fake's sneakernet bundles (issue 10). Like the device: an export
// writes a "file" (kept in memory by path), an import of a path that holds
// no bundle is refused whole (`bundle_not_a_bundle`), importing the same
// bundle twice applies nothing the second time, and a case's QR export
// gives numbered frames.

import { FrameSet, fromBase64, parseFrameHead } from '../qr-scan';
import type { ApiError, BundleExported, BundleImported, BundleQrFrames, Language } from './types';

const MESSAGES = {
  notABundle: {
    'zh-CN': '这个文件不是心桥的导出文件，没有导入任何内容。',
    en: 'This file is not a Heartbridge bundle: nothing was imported.',
  },
  badHash: {
    'zh-CN': '这组二维码和它标明的导出对不上（有一帧读错了），请全部重扫。',
    en: 'The frames do not add up to the export they name (a frame was misread): scan them all again.',
  },
  missingList: {
    'zh-CN': '缺第 {list}/{n} 帧，请再扫一次。',
    en: 'Frames {list} of {n} are missing: scan them again.',
  },
  missing: {
    'zh-CN': '缺第 {i}/{n} 帧，请再扫一次。',
    en: 'Frame {i} of {n} is missing: scan it again.',
  },
} as const;

// A 1×1 white PNG: the fake draws no real QR code.
const BLANK_PNG =
  'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGP4DwABAQEAG2mXywAAAABJRU5ErkJggg==';

export function createBundlesFake(ctx: { language: () => Language; pending: () => number }) {
  const files = new Map<string, { id: number; envelopes: number }>();
  const imported = new Set<number>();
  let next = 1;
  let exportedSinceLast = 0;

  return {
    bundleExport(a: { path: string; since?: 'last' | 'all'; caseId?: string }): BundleExported {
      const all = ctx.pending();
      const envelopes = a.since === 'all' ? all : Math.max(0, all - exportedSinceLast);
      if (a.since !== 'all') exportedSinceLast = all;
      files.set(a.path.trim(), { id: next++, envelopes });
      return { envelopes, carried: 0, alreadyExported: all - envelopes, bytes: 76 + envelopes * 420 };
    },
    bundleQrExport(a: { caseId: string }): BundleQrFrames {
      const n = 3 + (a.caseId.length % 3);
      return { frames: Array.from({ length: n }, () => BLANK_PNG), envelopes: 2, bytes: n * 384 };
    },
    bundleImport(a: { path: string }): BundleImported {
      const f = files.get(a.path.trim());
      if (!f) {
        const e: ApiError = { kind: 'bundle_not_a_bundle', message: MESSAGES.notABundle[ctx.language()] };
        throw e;
      }
      const again = imported.has(f.id);
      imported.add(f.id);
      const applied = again ? 0 : f.envelopes;
      return { envelopes: f.envelopes, applied, alreadyHere: f.envelopes - applied, locked: 0, waiting: 0, refused: 0, queued: applied };
    },
    // Camera frames (bundle_qr_import_frames): the real frame format, checked
    // as the core does (one export, none missing, the SHA-256 of the whole
    // matching the hash in the header); the fake applies 2 changes.
    async frameCheck(frames: string[]): Promise<{ missing: number[]; count: number; hashOk: boolean; notAFrame: boolean }> {
      const set = new FrameSet();
      let notAFrame = false;
      const bytes = frames.map((f) => {
        try {
          return fromBase64(f);
        } catch {
          notAFrame = true;
          return new Uint8Array();
        }
      });
      for (const b of bytes) {
        const r = set.add(b);
        if (r === 'other' || r === 'mixed') notAFrame = true;
      }
      if (notAFrame || !set.complete) return { missing: set.missing(), count: set.count, hashOk: false, notAFrame };
      const ordered = set.toBase64().map(fromBase64);
      const body = ordered.map((f) => f.subarray(f.indexOf(0x0a) + 1));
      const whole = new Uint8Array(body.reduce((n, b) => n + b.length, 0));
      let at = 0;
      for (const b of body) {
        whole.set(b, at);
        at += b.length;
      }
      const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', whole));
      const hex = [...digest.subarray(0, 4)].map((x) => x.toString(16).padStart(2, '0')).join('');
      return { missing: [], count: set.count, hashOk: hex === parseFrameHead(ordered[0])?.hash, notAFrame };
    },
    bundleQrImportFrames(c: { missing: number[]; count: number; hashOk: boolean; notAFrame: boolean }): BundleImported {
      const lang = ctx.language();
      if (c.notAFrame) throw { kind: 'qr_not_a_frame', message: MESSAGES.notABundle[lang] } satisfies ApiError;
      if (c.missing.length || c.count === 0)
        throw {
          kind: 'qr_missing',
          message: MESSAGES.missingList[lang].replace('{list}', c.missing.join(', ')).replace('{n}', String(c.count)),
        } satisfies ApiError;
      if (!c.hashOk) throw { kind: 'qr_bad_hash', message: MESSAGES.badHash[lang] } satisfies ApiError;
      return { envelopes: 2, applied: 2, alreadyHere: 0, locked: 0, waiting: 0, refused: 0, queued: 2 };
    },
    bundleQrImport(a: { paths: string[] }): BundleImported {
      const n = 3;
      const have = new Set(a.paths.map((p) => p.trim()));
      for (let i = 1; i <= n; i++) {
        if (![...have].some((p) => p.includes(`frame-${String(i).padStart(3, '0')}`))) {
          const e: ApiError = {
            kind: 'qr_missing',
            message: MESSAGES.missing[ctx.language()].replace('{i}', String(i)).replace('{n}', String(n)),
          };
          throw e;
        }
      }
      return { envelopes: 2, applied: 2, alreadyHere: 0, locked: 0, waiting: 0, refused: 0, queued: 2 };
    },
  };
}
