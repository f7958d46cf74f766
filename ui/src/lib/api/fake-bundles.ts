// The fake's sneakernet bundles (issue 10). Like the device: an export
// writes a "file" (kept in memory by path), an import of a path that holds
// no bundle is refused whole (`bundle_not_a_bundle`), importing the same
// bundle twice applies nothing the second time, and a case's QR export
// gives numbered frames.

import type { ApiError, BundleExported, BundleImported, BundleQrFrames, Language } from './types';

const MESSAGES = {
  notABundle: {
    'zh-CN': '这个文件不是心桥的导出文件，没有导入任何内容。',
    en: 'This file is not a Heartbridge bundle: nothing was imported.',
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
