import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createFakeApi } from '../src/lib/api/fake';
import { translate } from '../src/lib/i18n/translate';
import { cameraProblem, FrameSet, fromBase64, openCamera, parseFrameHead, progressText, toBase64 } from '../src/lib/qr-scan';

const enc = new TextEncoder();

/** Frames as crates/core/src/bundle/qr.rs cuts them. */
function frames(bundle: Uint8Array): Uint8Array[] {
  const n = Math.max(1, Math.ceil(bundle.length / 384));
  const hash = createHash('sha256').update(bundle).digest('hex').slice(0, 8);
  return Array.from({ length: n }, (_, i) => {
    const head = enc.encode(`HBQ1 ${i + 1}/${n} ${hash}\n`);
    const body = bundle.subarray(i * 384, (i + 1) * 384);
    const f = new Uint8Array(head.length + body.length);
    f.set(head);
    f.set(body, head.length);
    return f;
  });
}

const bundle = Uint8Array.from({ length: 2000 }, (_, i) => (i * 31 + 7) % 256);
const zh = (k: string, p?: Record<string, string | number>) => translate('zh-CN', k as never, p);
const en = (k: string, p?: Record<string, string | number>) => translate('en', k as never, p);

describe('camera QR frames', () => {
  it('reads the header of a frame, and nothing else as one', () => {
    const [first] = frames(bundle);
    expect(parseFrameHead(first)).toMatchObject({ index: 1, count: 6 });
    expect(parseFrameHead(enc.encode('https://example.org'))).toBeNull();
    expect(parseFrameHead(enc.encode('HBQ1 7/6 0123abcd\n'))).toBeNull();
    expect(parseFrameHead(enc.encode('HBQ1 0/6 0123abcd\n'))).toBeNull();
    expect(parseFrameHead(enc.encode('HBQ1 1/6 0123abc\n'))).toBeNull();
    expect(parseFrameHead(enc.encode('HBQ1 1/6 0123abcd'))).toBeNull();
  });

  it('progress names the missing frames; duplicates and other codes change nothing', () => {
    const fs = frames(bundle);
    const set = new FrameSet();
    expect(progressText(set, zh, 'zh-CN')).toBe('正在寻找二维码…');
    expect(set.add(fs[0])).toBe('new');
    expect(set.add(fs[2])).toBe('new');
    expect(set.add(fs[2])).toBe('duplicate');
    expect(set.add(fs[4])).toBe('new');
    expect(set.add(enc.encode('hello'))).toBe('other');
    expect(set.add(frames(bundle.subarray(1))[1])).toBe('mixed');
    expect(progressText(set, zh, 'zh-CN')).toBe('已读 3/6 帧，缺第 2、4、6 帧');
    expect(progressText(set, en, 'en')).toBe('Read 3 of 6 frames, missing frames 2, 4, 6');
    for (const f of fs) set.add(f);
    expect(set.complete).toBe(true);
    expect(progressText(set, zh, 'zh-CN')).toBe('已读全部 6 帧，正在导入…');
    expect(set.toBase64().map(fromBase64)).toEqual(fs);
  });

  it('a long list of missing frames is cut', () => {
    const big = Uint8Array.from({ length: 384 * 20 }, (_, i) => i % 256);
    const set = new FrameSet();
    set.add(frames(big)[0]);
    expect(progressText(set, zh, 'zh-CN')).toBe('已读 1/20 帧，缺第 2、3、4、5、6、7、8、9…… 帧');
  });

  it('no camera, a refused permission and a busy camera each have their message', async () => {
    await expect(openCamera(undefined)).rejects.toMatchObject({ name: 'NoCamera' });
    expect(cameraProblem(await openCamera(undefined).catch((e) => e))).toBe('noCamera');
    expect(cameraProblem(new DOMException('x', 'NotFoundError'))).toBe('noCamera');
    expect(cameraProblem(new DOMException('x', 'NotAllowedError'))).toBe('denied');
    expect(cameraProblem(new DOMException('x', 'NotReadableError'))).toBe('failed');
    expect(zh('bundle.scanDenied')).toContain('没有获得使用摄像头的许可');
    expect(en('bundle.scanNoCamera')).toContain('no camera');
  });

  it('the fake imports a whole set, names the missing frames, and refuses a misread one', async () => {
    const api = createFakeApi({ latencyMs: 0 });
    const fs = frames(bundle).map(toBase64);
    await expect(api.bundleQrImportFrames({ frames: fs.slice(0, 4) })).rejects.toMatchObject({ kind: 'qr_missing' });
    const bad = frames(bundle);
    bad[3][40] ^= 1;
    await expect(api.bundleQrImportFrames({ frames: bad.map(toBase64) })).rejects.toMatchObject({ kind: 'qr_bad_hash' });
    const r = await api.bundleQrImportFrames({ frames: [...fs].reverse() });
    expect(r.applied).toBe(2);
  });
});
