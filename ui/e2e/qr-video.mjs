// A camera's view of a phone showing a case's QR frames (issue 10,
// 扫描二维码), for Chromium's fake camera (--use-file-for-fake-video-capture):
// a Y4M file (raw 4:2:0 frames, no encoder needed). The frames are cut as
// crates/core/src/bundle/qr.rs cuts a bundle ("HBQ1 i/n hash8\n" + 384
// bytes, hash8 the first 8 hex digits of the SHA-256 of the whole) and drawn
// as QR codes at error correction M, as the app draws them.
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import QRCode from 'qrcode';

/** The frames' bytes, as qr::frames makes them. */
export function cutFrames(bundle) {
  const n = Math.max(1, Math.ceil(bundle.length / 384));
  const hash = createHash('sha256').update(bundle).digest('hex').slice(0, 8);
  return Array.from({ length: n }, (_, i) =>
    Buffer.concat([Buffer.from(`HBQ1 ${i + 1}/${n} ${hash}\n`), bundle.subarray(i * 384, (i + 1) * 384)]),
  );
}

/** One grey picture (w×h, 0..255) of a frame's QR code, centred, quiet zone around. */
function qrPicture(frame, w, h) {
  const { modules } = QRCode.create([{ data: frame, mode: 'byte' }], { errorCorrectionLevel: 'M' });
  const size = modules.size;
  const scale = Math.floor(Math.min(w, h) / (size + 8));
  const left = Math.floor((w - size * scale) / 2);
  const top = Math.floor((h - size * scale) / 2);
  const y = Buffer.alloc(w * h, 235); // a lit phone screen, not pure white
  for (let r = 0; r < size; r++)
    for (let c = 0; c < size; c++)
      if (modules.get(r, c))
        for (let dy = 0; dy < scale; dy++) y.fill(20, (top + r * scale + dy) * w + left + c * scale, (top + r * scale + dy) * w + left + (c + 1) * scale);
  return y;
}

/**
 * Writes `file`: each frame of `order` (indexes into `frames`) held for
 * `hold` pictures at `fps`. Chromium plays it in a loop.
 */
export async function writeQrVideo(file, frames, { order = frames.map((_, i) => i), hold = 3, fps = 5, w = 480, h = 480 } = {}) {
  const chroma = Buffer.alloc((w / 2) * (h / 2) * 2, 128);
  const parts = [Buffer.from(`YUV4MPEG2 W${w} H${h} F${fps}:1 Ip A1:1 C420jpeg\n`)];
  for (const i of order) {
    const y = qrPicture(frames[i], w, h);
    for (let k = 0; k < hold; k++) parts.push(Buffer.from('FRAME\n'), y, chroma);
  }
  await writeFile(file, Buffer.concat(parts));
}
