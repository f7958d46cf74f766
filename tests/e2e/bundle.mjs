// End to end (issue 10): sneakernet bundles in the real app, through
// tauri-driver and WebKitWebDriver, with a real relay on loopback and real
// CLI profiles.
//
//   node tests/e2e/bundle.mjs
//
// Needs target/debug/{heartbridge-app,heartbridge,heartbridge-relay} built,
// `tauri-driver` on PATH and a display (starts Xvfb itself when DISPLAY is
// unset). A lead, a volunteer and a supervisor enroll with the CLI; the
// volunteer writes a case offline and exports its changes with the CLI
// (`bundle export`). The app opens the supervisor's profile: on the shift
// screen "导入" takes the file and says how many changes were applied; the
// case opens with the volunteer's note; the case page's "显示二维码" shows
// numbered QR frames one after another ("下一帧" moves on); "导出到 U 盘"
// writes an HBB1 file the CLI imports on the lead's device; a file that is
// no bundle is refused with the translated reason and nothing applied.
// The camera scan's path without a camera: a real export's frame PNGs
// decoded by the page's jsQR (in Node) go to bundle_qr_import_frames; the
// 扫描二维码 button shows the no-camera message (WebKitGTK has no camera
// under Xvfb). The file pickers are only checked to be offered: a native
// dialog cannot be driven through WebDriver, so paths are typed.
// Screenshots: docs/screenshots/app-bundle-import.png, app-bundle-qr.png.
// Last line: "bundle-e2e: N passed, N failed".
import { writeFileSync, readFileSync } from 'node:fs';
import path from 'node:path';
import jsQR from '../../ui/node_modules/jsqr/dist/jsQR.js';
import { readPng } from './png-luma.mjs';
import { APP, HB, RELAY, work, expect, step, run, needBuilt, display, startRelay, createTeam, startDriver, open, hb } from './harness.mjs';

/** Joins with the code on standard input, as a volunteer would paste it. */
function join(code, profile, name) {
  return hb(profile, { input: `${code}\n` }, 'join', '--name', name);
}

async function main() {
  needBuilt(APP, HB, RELAY);
  await display();
  const [lead, vol, sup] = ['lead', 'vol', 'sup'].map((n) => path.join(work, n));
  const bundle = path.join(work, 'vol-shift.hbb');
  const note = '第一次来电，说考试压力很大（e2e 捆包）';
  let caseId = '';

  await step('a team on a relay on loopback; the volunteer writes a case offline and exports it with the CLI', async () => {
    const relayDb = path.join(work, 'relay.db');
    const created = createTeam(relayDb, 'e2e-team');
    const { url: relayUrl } = await startRelay({ db: relayDb });
    hb(lead, 'team', 'claim', '--relay', relayUrl, '--token', created.lead_token, '--name', '周组长');
    join(hb(lead, 'team', 'invite', '--role', 'volunteer').code, vol, '小白');
    join(hb(lead, 'team', 'invite', '--role', 'supervisor').code, sup, '林督导');
    for (const p of [lead, vol, sup, lead, sup]) hb(p, 'sync');
    caseId = hb(vol, 'case', 'new', '--alias', '小林').id;
    hb(vol, 'case', 'contact', caseId, '--channel', 'hotline', '--text', note);
    const out = hb(vol, 'bundle', 'export', bundle);
    expect(out.envelopes >= 1, `exported ${JSON.stringify(out)}`);
  });

  const app = await open(await startDriver(), sup);

  await step('the shift screen imports the bundle: the changes are applied and queued for the relay', async () => {
    await app.unlock('你好，林督导');
    await app.click('nav a', '值班');
    await app.el('[data-testid=bundle] h2', '不联网带出改动');
    // The system's file picker is offered beside each path field; a native
    // dialog cannot be driven through WebDriver, so this test types paths.
    await app.el('[data-testid=bundle-import-choose]', '选择文件…');
    await app.el('[data-testid=bundle-export-choose]', '选择保存位置…');
    await app.el('[data-testid=bundle-qr-choose]', '选择图片…');
    await app.fill('要导入的文件', bundle);
    await app.click('[data-testid=bundle-import]', '导入');
    const status = await app.el('[data-testid=bundle-imported]', '已导入', 20000);
    const text = await app.s.text(status);
    expect(/[1-9]\d* 条改动生效/.test(text), `import status: ${text}`);
    await app.s.exec(`document.querySelector('[data-testid=bundle]').scrollIntoView()`);
    await app.shot('bundle-import');
  });

  await step("the case opens with the volunteer's note, before anyone synced it", async () => {
    await app.s.exec(`location.hash = '#/cases/${caseId}'`);
    await app.el('h1', '小林', 20000);
    await app.el('body *', '考试压力很大', 20000);
  });

  await step('导出 → 显示二维码: numbered frames, one after another', async () => {
    await app.click('[data-testid=case-export-qr]', '显示二维码');
    const frames = await app.el('[data-testid=qr-frames]', null, 20000);
    const count = Number(await app.s.exec(`return document.querySelector('[data-testid=qr-frames]').dataset.count`));
    expect(count >= 1, `frames ${count}`);
    expect(frames, 'frames shown');
    const src = await app.s.exec(`return document.querySelector('[data-testid=qr-frame]').getAttribute('src')`);
    expect(src.startsWith('data:image/png;base64,'), 'a PNG frame');
    await app.click('[data-testid=qr-play]', '暂停');
    await app.el('[data-testid=qr-frame-number]', `第 1/${count} 帧`);
    await app.click('[data-testid=qr-next]', '下一帧');
    await app.el('[data-testid=qr-frame-number]', `第 ${count > 1 ? 2 : 1}/${count} 帧`);
    await app.s.exec(`document.querySelector('[data-testid=case-export]').scrollIntoView()`);
    await app.shot('bundle-qr');
  });

  await step('导出到 U 盘 writes a bundle the CLI imports on another device', async () => {
    const out = path.join(work, 'sup-case.hbb');
    await app.fill('文件路径', out);
    await app.click('[data-testid=case-export-file]', '导出到 U 盘');
    await app.el('[data-testid=case-exported]', '已导出', 20000);
    const bytes = readFileSync(out);
    expect(bytes.subarray(0, 4).toString() === 'HBB1', 'an HBB1 file');
    expect(!bytes.includes(Buffer.from('考试压力')), 'plaintext in the bundle');
    const r = hb(lead, 'bundle', 'import', out);
    expect(r.envelopes >= 1, `lead import ${JSON.stringify(r)}`);
    // This case's envelopes: the lead, who does not read cases in this
    // team, keeps them sealed.
    expect(r.locked >= 1, `the lead read the case: ${JSON.stringify(r)}`);
  });

  await step('QR frames read from pictures in any order: a missing frame is named, then the set completes', async () => {
    const other = hb(vol, 'case', 'new', '--alias', '小周').id;
    hb(vol, 'case', 'contact', other, '--channel', 'online', '--text', '扫码带出的记录，'.repeat(30));
    const shown = hb(vol, 'bundle', 'qr', 'export', '--case', other, path.join(work, 'frames'));
    const files = [...shown.files].reverse();
    expect(files.length >= 2, `frames ${files.length}`);
    const n = files.length;
    const second = files.splice(n - 2, 1)[0];
    await app.click('nav a', '值班');
    await app.set('二维码图片', files.join('\n'));
    await app.click('[data-testid=bundle-qr-import]', '读取二维码');
    await app.el('[data-testid=bundle-qr-missing]', `缺第 2/${n} 帧`, 20000);
    await app.set('二维码图片', [...files, second].join('\n'));
    await app.click('[data-testid=bundle-qr-import]', '读取二维码');
    await app.el('[data-testid=bundle-imported]', '已导入', 20000);
    await app.s.exec(`location.hash = '#/cases/${other}'`);
    await app.el('body *', '扫码带出的记录', 20000);
  });

  await step("frames the core draws, read by the page's decoder (jsQR) and handed to bundle_qr_import_frames: a missing one is named, then the case arrives", async () => {
    // What the camera scan does with each picture, minus the camera: the
    // frames of a real export (CLI), decoded by the same jsQR the page uses,
    // to the app's command through its IPC.
    const third = hb(vol, 'case', 'new', '--alias', '小吴').id;
    hb(vol, 'case', 'contact', third, '--channel', 'online', '--text', '摄像头读到的记录，'.repeat(30));
    const shown = hb(vol, 'bundle', 'qr', 'export', '--case', third, path.join(work, 'frames-camera'));
    const frames = shown.files.map((f) => {
      const img = readPng(readFileSync(f));
      const code = jsQR(img.data, img.width, img.height);
      expect(code, `jsQR read no code in ${path.basename(f)}`);
      return Buffer.from(code.binaryData).toString('base64');
    });
    expect(frames.length >= 2, `frames ${frames.length}`);
    const invoke = (list) =>
      app.s.execAsync(
        `const done = arguments[arguments.length - 1];
         window.__TAURI_INTERNALS__.invoke('bundle_qr_import_frames', { frames: arguments[0] }).then((ok) => done({ ok }), (err) => done({ err }));`,
        [list],
      );
    const partial = await invoke(frames.slice(1).reverse());
    expect(partial?.err?.kind === 'qr_missing' && partial.err.message.includes(`缺第 1/${frames.length} 帧`), `partial: ${JSON.stringify(partial)}`);
    const whole = await invoke([...frames].reverse());
    expect(whole?.ok?.applied > 0, `import: ${JSON.stringify(whole)}`);
    await app.s.exec(`location.hash = '#/cases/${third}'`);
    await app.el('body *', '摄像头读到的记录', 20000);
  });

  await step('扫描二维码 in the real app: no camera under Xvfb, and the message says so and how to go on', async () => {
    // WebKitGTK under Xvfb has no camera for the page (this machine has
    // none; WebKitGTK may also refuse media capture): the scanner says which
    // and points to QR pictures or a file. Reading frames from a live camera
    // is walked in Chromium with a fake camera (ui/e2e/camera.mjs).
    await app.click('nav a', '值班');
    await app.click('[data-testid=bundle-scan]', '扫描二维码');
    const alert = await app.el('[data-testid=bundle-scan-problem]', null, 20000);
    const text = await app.s.text(alert);
    const problem = await app.s.exec(`return document.querySelector('[data-testid=bundle-scan-problem]').dataset.problem`);
    console.log(`    (WebKitGTK's camera: ${problem})`);
    expect(
      (problem === 'noCamera' && text.includes('没有可用的摄像头')) || (problem === 'denied' && text.includes('没有获得使用摄像头的许可')),
      `camera message (${problem}): ${text}`,
    );
    expect(!(await app.s.exec(`return [...document.querySelectorAll('video')].some((v) => v.srcObject)`)), 'a video holds a camera stream');
    await app.click('[data-testid=bundle-scan-stop]', '停止扫描');
    await app.el('[data-testid=bundle-scan]', '扫描二维码');
  });

  await step('a file that is no bundle is refused with the reason, and nothing is applied', async () => {
    const junk = path.join(work, 'notes.txt');
    writeFileSync(junk, 'just text');
    await app.click('nav a', '值班');
    await app.fill('要导入的文件', junk);
    await app.click('[data-testid=bundle-import]', '导入');
    await app.el('.toasts *', '不是心桥的导出文件', 20000);
    expect(!(await app.s.exec(`return !!document.querySelector('[data-testid=bundle-imported]')`)), 'an import status after a refusal');
  });
}

await run('bundle-e2e', main);
