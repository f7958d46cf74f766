// 扫描二维码 (issue 10) in Chromium with a fake camera that films a phone
// showing a case's QR frames (qr-video.mjs): every frame is read, the
// progress names the missing ones on the way, the import completes and the
// camera is off. Then, with the camera refused, the message says so (in
// English). Its own browser: the fake-camera flags stay out of the rest of
// the walk.
import path from 'node:path';
import { tmpdir } from 'node:os';
import { mkdtemp, rm } from 'node:fs/promises';
import { chromium } from 'playwright-core';
import { cutFrames, writeQrVideo } from './qr-video.mjs';

export async function cameraWalk({ CHROMIUM, origin, guard, step, shot, expect, TIMEOUT, PHONE }) {
  const dir = await mkdtemp(path.join(tmpdir(), 'hb-camera-'));
  // A case export's size: 6 frames, shown out of order as a person scanning would catch them.
  const bundle = Buffer.from(Array.from({ length: 2000 }, (_, i) => (i * 31 + 7) % 256));
  bundle.write('HBB1', 0);
  const frames = cutFrames(bundle);
  const video = path.join(dir, 'qr-frames.y4m');
  await writeQrVideo(video, frames, { order: [0, 2, 4, 1, 3, 5] });

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--headless',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--lang=zh-CN',
      '--use-fake-device-for-media-stream',
      '--use-fake-ui-for-media-stream',
      `--use-file-for-fake-video-capture=${video}`,
    ],
  });
  const phone = (locale) =>
    browser.newContext({ viewport: PHONE, deviceScaleFactor: 2, isMobile: true, hasTouch: true, locale, timezoneId: 'Asia/Shanghai' });
  try {
    await step('shift screen (phone): 扫描二维码 reads every frame from the camera, names the missing ones, imports, and turns the camera off', async () => {
      const ctx = await phone('zh-CN');
      await ctx.grantPermissions(['camera'], { origin });
      ctx.setDefaultTimeout(TIMEOUT);
      const p = await ctx.newPage();
      guard(p, origin);
      await p.goto(`${origin}/?ready#/shift`);
      await p.getByTestId('bundle').waitFor();
      await p.getByRole('button', { name: '扫描二维码' }).click();
      const progress = p.getByTestId('bundle-scan-progress');
      // Part of the set read: the frames still missing are named.
      await progress.filter({ hasText: /^\s*已读 [1-5]\/6 帧，缺第 [\d、]+ 帧\s*$/ }).waitFor({ timeout: 30_000 });
      const partial = (await progress.textContent()).trim();
      const have = Number(/已读 (\d)/.exec(partial)[1]);
      const named = /缺第 ([\d、]+) 帧/.exec(partial)[1].split('、');
      expect(named.length === 6 - have, `progress: ${partial}`);
      await p.getByTestId('bundle-scanner').scrollIntoViewIfNeeded().catch(() => {});
      await shot(p, 'bundle-scan');
      // Every frame read and imported by the (fake) backend, which checks the frames' hash.
      const status = p.getByTestId('bundle-imported');
      await status.waitFor({ timeout: 30_000 });
      expect(/2 条改动生效/.test(await status.textContent()), `import status: ${await status.textContent()}`);
      expect((await p.getByTestId('bundle-scanner').count()) === 0, 'the scanner is still open');
      const live = await p.evaluate(() => [...document.querySelectorAll('video')].filter((v) => v.srcObject).length);
      expect(live === 0, 'a video still has the camera');
      await ctx.close();
    });

    await step('shift screen (phone, English): a refused camera says so and how to go on; closing it leaves the button', async () => {
      const ctx = await phone('en');
      ctx.setDefaultTimeout(TIMEOUT);
      // The person said no to the camera (the browser answers NotAllowedError).
      await ctx.addInitScript(() => {
        localStorage.setItem('heartbridge.locale', 'en');
        navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
      });
      const p = await ctx.newPage();
      guard(p, origin);
      await p.goto(`${origin}/?ready#/shift`);
      await p.getByTestId('bundle').waitFor();
      await p.getByRole('button', { name: 'Scan QR codes' }).click();
      const alert = p.getByTestId('bundle-scan-problem');
      await alert.waitFor();
      const text = (await alert.textContent()).trim();
      expect(/not allowed to use the camera/.test(text), `message: ${text}`);
      await p.getByTestId('bundle-scan-stop').click();
      await p.getByTestId('bundle-scan').waitFor();
      await ctx.close();
    });
  } finally {
    await browser.close();
    await rm(dir, { recursive: true, force: true });
  }
}
