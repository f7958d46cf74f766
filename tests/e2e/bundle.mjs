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
// Screenshots: docs/screenshots/app-bundle-import.png, app-bundle-qr.png.
// Last line: "bundle-e2e: N passed, N failed".
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, existsSync, readdirSync, readFileSync, copyFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Session } from './webdriver.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = path.join(ROOT, 'target', 'debug');
const APP = path.join(BIN, 'heartbridge-app');
const HB = path.join(BIN, 'heartbridge');
const RELAY = path.join(BIN, 'heartbridge-relay');
const SHOTS = path.join(ROOT, 'docs', 'screenshots');
const ELEMENT = 'element-6066-11e4-a52e-4f735466cecf';
const PIN = '246810';
const work = mkdtempSync(path.join(os.tmpdir(), 'hb-bundle-e2e-'));
const children = [];

let passed = 0;
let failed = 0;
let current = null;

async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    console.log(`  ✓ ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    if (current) {
      try {
        writeFileSync(path.join(work, 'failure.png'), await current.s.screenshot());
        console.log(`    screenshot of the failure: ${path.join(work, 'failure.png')}`);
      } catch {
        /* no window */
      }
    }
    console.log(`  ✗ ${name}\n    ${String(e?.stack ?? e).split('\n').slice(0, 8).join('\n    ')}`);
    throw e;
  }
}

function expect(cond, msg) {
  if (!cond) throw new Error(msg);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function start(cmd, args) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout.on('data', (d) => (log += d));
  child.stderr.on('data', (d) => (log += d));
  child.log = () => log;
  children.push(child);
  return child;
}

/** The processes started by `pid`, and theirs (Linux /proc). */
function descendants(pid) {
  const out = [];
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const kids = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
      for (const k of kids) out.push(...descendants(k), k);
    }
  } catch {
    /* gone already */
  }
  return out;
}

/** Stops a child we started (and what it started), by pid. */
async function stop(child, timeoutMs = 5000) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  for (const pid of descendants(child.pid)) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* gone already */
    }
  }
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  await exited;
  clearTimeout(timer);
}

async function waitUntil(fn, what, timeoutMs = 20000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    try {
      if (await fn()) return;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function hb(profile, ...args) {
  const env = { ...process.env, HEARTBRIDGE_PASSPHRASE: PIN };
  return JSON.parse(execFileSync(HB, ['--profile', profile, '--json', ...args], { encoding: 'utf8', env }));
}

// Elements by their visible text, as a person finds them.
const FIND = `
  const [css, text] = arguments;
  const name = (e) => ((e.getAttribute('aria-label') || '') + ' ' + e.textContent).trim();
  return [...document.querySelectorAll(css)].find((e) => e.getClientRects().length > 0 && (text === null || name(e).includes(text))) || null;`;
const LABEL = `
  const [text] = arguments;
  const l = [...document.querySelectorAll('label')].find((l) => l.getClientRects().length > 0 && l.textContent.trim().startsWith(text));
  return l ? (l.control || null) : null;`;
// Sets a form control's value the way typing or choosing does (time inputs
// and selects do not take WebDriver keys reliably in WebKit).
const SET = `
  const [el, value] = arguments;
  el.value = value;
  el.dispatchEvent(new Event(el.tagName === 'SELECT' ? 'change' : 'input', { bubbles: true }));
  return el.value;`;

class App {
  constructor(s) {
    this.s = s;
  }
  el(css, text = null, timeout = 15000) {
    return this.s.waitFor(() => this.s.exec(FIND, [css, text]), timeout, `${css} ${text ?? ''}`);
  }
  label(text) {
    return this.s.waitFor(() => this.s.exec(LABEL, [text]), 15000, `control labelled ${text}`);
  }
  async click(css, text) {
    await this.s.click(await this.el(css, text));
  }
  async fill(labelText, value) {
    await this.s.type(await this.label(labelText), value);
  }
  async set(labelText, value) {
    const got = await this.s.exec(SET, [{ [ELEMENT]: await this.label(labelText) }, value]);
    expect(got === value, `${labelText}: ${got} instead of ${value}`);
  }
  /** Chooses the option whose text contains `text`. */
  async choose(labelText, text) {
    const el = await this.label(labelText);
    const value = await this.s.waitFor(
      () => this.s.exec(`return [...arguments[0].options].find((o) => o.textContent.includes(arguments[1]))?.value ?? null`, [{ [ELEMENT]: el }, text]),
      15000,
      `option ${text} of ${labelText}`,
    );
    await this.s.exec(SET, [{ [ELEMENT]: el }, value]);
  }
  async shot(name) {
    const [sw, cw] = await this.s.exec('return [document.documentElement.scrollWidth, document.documentElement.clientWidth]');
    expect(sw <= cw, `${name}: the page is ${sw}px wide in a ${cw}px window`);
    // Notices cover the bottom of a phone screen.
    await this.s.exec(`document.querySelectorAll('.toasts button.close').forEach((b) => b.click())`);
    mkdirSync(SHOTS, { recursive: true });
    writeFileSync(path.join(SHOTS, `app-${name}.png`), await this.s.screenshot());
  }
}


/** Joins with the code on standard input, as a volunteer would paste it. */
function join(code, profile, name) {
  const env = { ...process.env, HEARTBRIDGE_PASSPHRASE: PIN };
  return JSON.parse(
    execFileSync(HB, ['--profile', profile, '--json', 'join', '--name', name], { encoding: 'utf8', env, input: `${code}\n` }),
  );
}

async function main() {
  for (const b of [APP, HB, RELAY]) expect(existsSync(b), `missing ${b}: build the workspace first`);
  if (!process.env.DISPLAY) {
    const d = `:${80 + Math.floor(Math.random() * 9)}`;
    start('Xvfb', [d, '-screen', '0', '1280x1024x24', '-nolisten', 'tcp']);
    process.env.DISPLAY = d;
    await waitUntil(() => existsSync(`/tmp/.X11-unix/X${d.slice(1)}`), 'Xvfb');
  }
  process.env.XDG_DATA_HOME = path.join(work, 'xdg-data');
  process.env.XDG_CACHE_HOME = path.join(work, 'xdg-cache');
  process.env.XDG_CONFIG_HOME = path.join(work, 'xdg-config');

  const relayPort = await freePort();
  const relayUrl = `http://127.0.0.1:${relayPort}`;
  const relayDb = path.join(work, 'relay.db');
  const [lead, vol, sup] = ['lead', 'vol', 'sup'].map((n) => path.join(work, n));
  const bundle = path.join(work, 'vol-shift.hbb');
  const note = '第一次来电，说考试压力很大（e2e 捆包）';
  let caseId = '';

  await step('a team on a relay on loopback; the volunteer writes a case offline and exports it with the CLI', async () => {
    const created = JSON.parse(execFileSync(RELAY, ['team', 'create', 'e2e-team', '--db', relayDb, '--json'], { encoding: 'utf8' }));
    const relay = start(RELAY, ['serve', '--listen', `127.0.0.1:${relayPort}`, '--db', relayDb]);
    await waitUntil(() => relay.log().includes('listening on'), 'the relay', 30000);
    hb(lead, 'team', 'claim', '--relay', relayUrl, '--token', created.lead_token, '--name', '周组长');
    join(hb(lead, 'team', 'invite', '--role', 'volunteer').code, vol, '小白');
    join(hb(lead, 'team', 'invite', '--role', 'supervisor').code, sup, '林督导');
    for (const p of [lead, vol, sup, lead, sup]) hb(p, 'sync');
    caseId = hb(vol, 'case', 'new', '--alias', '小林').id;
    hb(vol, 'case', 'contact', caseId, '--channel', 'hotline', '--text', note);
    const out = hb(vol, 'bundle', 'export', bundle);
    expect(out.envelopes >= 1, `exported ${JSON.stringify(out)}`);
  });

  const driverPort = await freePort();
  start('tauri-driver', ['--port', String(driverPort), '--native-port', String(await freePort())]);
  const base = `http://127.0.0.1:${driverPort}`;
  await waitUntil(async () => (await fetch(`${base}/status`)).ok, 'tauri-driver');
  const app = (current = new App(await Session.start(base, APP, ['--profile', sup])));

  await step('the shift screen imports the bundle: the changes are applied and queued for the relay', async () => {
    await app.el('h1', '心桥已锁定', 30000);
    await app.fill('PIN 或密码', PIN);
    await app.click('button', '解锁');
    await app.el('h1', '你好，林督导', 20000);
    await app.click('nav a', '值班');
    await app.el('[data-testid=bundle] h2', '不联网带出改动');
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

try {
  await main();
} catch {
  /* counted */
} finally {
  await current?.s.end();
  for (const c of [...children].reverse()) await stop(c);
  console.log(`bundle-e2e: ${passed} passed, ${failed} failed`);
  process.exitCode = failed > 0 ? 1 : 0;
}
