// Reading a case's QR frames from a live camera (issue 10, 扫描二维码). The
// page decodes the picture (jsQR); this module keeps what was read. A frame
// is `"HBQ1 " i "/" n " " hash8 "\n"` + up to 384 bytes of the bundle
// (crates/core/src/bundle/qr.rs): read in any order, duplicates ignored, a
// frame of another export skipped. The frames go to the backend as base64
// once all are read; the core checks the hash and the bundle itself.

export interface FrameHead {
  index: number;
  count: number;
  hash: string;
}

/** The most frames one sequence has (qr.rs MAX_FRAMES). */
export const MAX_FRAMES = 1000;
/** Bundle bytes carried by one frame (qr.rs FRAME_PAYLOAD). */
export const FRAME_PAYLOAD = 384;

const PREFIX = [0x48, 0x42, 0x51, 0x31, 0x20]; // "HBQ1 "

/** A frame's header, or null when the bytes are not a Heartbridge frame. */
export function parseFrameHead(bytes: Uint8Array): FrameHead | null {
  if (bytes.length < PREFIX.length || PREFIX.some((b, i) => bytes[i] !== b)) return null;
  const nl = bytes.indexOf(0x0a, PREFIX.length);
  if (nl < 0 || nl - PREFIX.length > 40) return null;
  if (bytes.length - nl - 1 > FRAME_PAYLOAD) return null;
  const head = String.fromCharCode(...bytes.subarray(PREFIX.length, nl));
  const m = /^([1-9]\d{0,3})\/([1-9]\d{0,3}) ([0-9a-f]{8})$/.exec(head);
  if (!m) return null;
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (index > count || count > MAX_FRAMES) return null;
  return { index, count, hash: m[3] };
}

export type AddResult = 'new' | 'duplicate' | 'other' | 'mixed';

export function toBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

export function fromBase64(b64: string): Uint8Array {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** The frames read so far, of one export. */
export class FrameSet {
  private head: { count: number; hash: string } | null = null;
  private frames = new Map<number, Uint8Array>();

  /** Adds a decoded frame: new, a duplicate, not a frame, or of another export. */
  add(bytes: Uint8Array): AddResult {
    const h = parseFrameHead(bytes);
    if (!h) return 'other';
    if (this.head && (this.head.hash !== h.hash || this.head.count !== h.count)) return 'mixed';
    this.head ??= { count: h.count, hash: h.hash };
    if (this.frames.has(h.index)) return 'duplicate';
    this.frames.set(h.index, bytes.slice());
    return 'new';
  }

  /** How many frames the export has (0 before the first is read). */
  get count(): number {
    return this.head?.count ?? 0;
  }
  get have(): number {
    return this.frames.size;
  }
  get complete(): boolean {
    return this.head !== null && this.frames.size === this.head.count;
  }
  /** The frames not read yet (1-based), in order. */
  missing(): number[] {
    const out: number[] = [];
    for (let i = 1; i <= this.count; i++) if (!this.frames.has(i)) out.push(i);
    return out;
  }
  /** The frames, in order, as base64 (what `bundle_qr_import_frames` takes). */
  toBase64(): string[] {
    return [...this.frames.entries()].sort((a, b) => a[0] - b[0]).map(([, f]) => toBase64(f));
  }
  clear(): void {
    this.head = null;
    this.frames.clear();
  }
}

type Translate = (key: string, params?: Record<string, string | number>) => string;

/** "已读 3/7 帧，缺第 4、6 帧" (a long list is cut after 8). */
export function progressText(set: FrameSet, t: Translate, locale: string): string {
  if (set.count === 0) return t('bundle.scanWaiting');
  if (set.complete) return t('bundle.scanImporting', { n: set.count });
  const missing = set.missing();
  const sep = locale === 'zh-CN' ? '、' : ', ';
  const shown = missing.slice(0, 8).join(sep) + (missing.length > 8 ? (locale === 'zh-CN' ? '……' : '…') : '');
  return t('bundle.scanProgress', { have: set.have, n: set.count }) + t('bundle.scanMissing', { list: shown });
}

export type CameraProblem = 'noCamera' | 'denied' | 'failed';

/** What went wrong opening the camera, for the message to show. */
export function cameraProblem(err: unknown): CameraProblem {
  const name = typeof err === 'object' && err && 'name' in err ? String((err as { name: unknown }).name) : '';
  if (name === 'NotAllowedError' || name === 'SecurityError' || name === 'PermissionDeniedError') return 'denied';
  if (name === 'NotFoundError' || name === 'OverconstrainedError' || name === 'DevicesNotFoundError' || name === 'NoCamera')
    return 'noCamera';
  return 'failed';
}

/** The back camera where there is one (a phone), any camera otherwise. */
export const CAMERA_CONSTRAINTS: MediaStreamConstraints = {
  audio: false,
  video: { facingMode: { ideal: 'environment' }, width: { ideal: 1280 }, height: { ideal: 720 } },
};

/** Opens the camera, or throws an error `cameraProblem` names. */
export async function openCamera(md: MediaDevices | undefined = globalThis.navigator?.mediaDevices): Promise<MediaStream> {
  if (!md || typeof md.getUserMedia !== 'function') {
    const e = new Error('no camera');
    e.name = 'NoCamera';
    throw e;
  }
  return md.getUserMedia(CAMERA_CONSTRAINTS);
}

/** Stops every track (the camera's light goes off). */
export function stopCamera(stream: MediaStream | null): void {
  for (const track of stream?.getTracks() ?? []) track.stop();
}
