// End to end (issue 10): the relays a device knows, in the real app,
// through tauri-driver and WebKitWebDriver, with real relays on loopback
// serving HTTPS with self-signed certificates.
//
//   node tests/e2e/relays.mjs
//
// Needs target/debug/{heartbridge-app,heartbridge,heartbridge-relay} built,
// `tauri-driver` on PATH and a display (starts Xvfb itself when DISPLAY is
// unset). The team's relay serves `--tls-self-signed`; the lead claims it
// with the CLI by its fingerprint (`heartbridge-relay fingerprint`). A venue
// relay (a copy of that relay's database, so the same team, with a
// certificate of its own) serves `--tls-self-signed --advertise`. The app
// opens the lead's profile, syncs over the pinned HTTPS, lists the team's
// relay with its fingerprint (not removable), finds the venue relay on the
// local network ("查找会场中继") and asks before using it ("发现会场中继 …
// 使用吗？"); "不用" adds nothing, "使用" adds it first in the list as a
// venue relay pinned to the announced fingerprint; it can be removed again.
// Screenshots: docs/screenshots/app-relays.png, app-relay-found.png.
// Last line: "relays-e2e: N passed, N failed".
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
const work = mkdtempSync(path.join(os.tmpdir(), 'hb-relays-e2e-'));
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

function relayServe(db, port, extra = []) {
  return start(RELAY, ['serve', '--listen', `127.0.0.1:${port}`, '--db', db, '--tls-self-signed', ...extra]);
}

/** Waits until the relay process says it listens. */
async function listening(child, what) {
  await waitUntil(() => child.log().includes('serving HTTPS; certificate fingerprint'), what, 30000);
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
  const relayUrl = `https://127.0.0.1:${relayPort}`;
  const relayDb = path.join(work, 'relay.db');
  const venueDb = path.join(work, 'venue.db');
  const lead = path.join(work, 'lead');
  let fp = '';
  let venueFp = '';
  let venuePort = 0;

  await step('a team on a relay serving its own certificate: the lead claims it with the CLI by the fingerprint', async () => {
    const created = JSON.parse(execFileSync(RELAY, ['team', 'create', 'e2e-team', '--db', relayDb, '--json'], { encoding: 'utf8' }));
    let relay = relayServe(relayDb, relayPort);
    await listening(relay, 'the relay');
    fp = execFileSync(RELAY, ['fingerprint', '--db', relayDb], { encoding: 'utf8' }).trim();
    expect(fp.startsWith('sha256:') && relay.log().includes(fp), `fingerprint ${fp}`);
    hb(lead, 'team', 'claim', '--relay', relayUrl, '--token', created.lead_token, '--name', '周组长', '--pin', fp);
    hb(lead, 'sync');
    // The venue relay: the same team (a copy of the database, taken with the
    // relay stopped so the file is whole), its own certificate.
    await stop(relay);
    copyFileSync(relayDb, venueDb);
    if (existsSync(`${relayDb}-wal`)) copyFileSync(`${relayDb}-wal`, `${venueDb}-wal`);
    relay = relayServe(relayDb, relayPort);
    await listening(relay, 'the relay again');
    venuePort = await freePort();
    const venue = relayServe(venueDb, venuePort, ['--advertise']);
    await listening(venue, 'the venue relay');
    venueFp = execFileSync(RELAY, ['fingerprint', '--db', venueDb], { encoding: 'utf8' }).trim();
    expect(venueFp !== fp, 'the venue relay has a certificate of its own');
  });

  const driverPort = await freePort();
  start('tauri-driver', ['--port', String(driverPort), '--native-port', String(await freePort())]);
  const base = `http://127.0.0.1:${driverPort}`;
  await waitUntil(async () => (await fetch(`${base}/status`)).ok, 'tauri-driver');
  const app = (current = new App(await Session.start(base, APP, ['--profile', lead])));

  await step('the app syncs with the team relay over the pinned HTTPS', async () => {
    await app.el('h1', '心桥已锁定', 30000);
    await app.fill('PIN 或密码', PIN);
    await app.click('button', '解锁');
    await app.el('h1', '你好，周组长', 20000);
    await app.click('button', '立即同步');
    await app.el('[data-testid=pending]', '0 条', 30000);
  });

  const entries = () =>
    app.s.exec(`return [...document.querySelectorAll('[data-testid=relay-entry]')].map((li) => li.textContent.replace(/\\s+/g, ' ').trim())`);

  await step('settings: the relay list shows the team relay with its fingerprint, not removable', async () => {
    await app.click('nav a', '设置');
    await app.el('h1', '设置');
    await app.el('[data-testid=relay-entry]', relayUrl);
    const list = await entries();
    expect(list.length === 1, `relays ${JSON.stringify(list)}`);
    expect(list[0].includes('团队中继') && list[0].includes('中心中继') && list[0].includes(fp.slice(0, 15)), `entry ${list[0]}`);
    expect(list[0].includes('上次响应'), `no answer noted: ${list[0]}`);
    expect(!(await app.s.exec(`return !!document.querySelector('[data-testid=relay-entry] button')`)), 'the team relay offers removal');
    await app.s.exec(`document.querySelector('[data-testid=relays]').scrollIntoView()`);
    await app.shot('relays');
  });

  await step('查找会场中继: the venue relay heard on the network is shown and the volunteer is asked', async () => {
    await app.click('[data-testid=relay-discover]', '查找会场中继');
    const dialog = await app.el('[data-testid=relay-found]', '发现会场中继', 20000);
    const text = await app.s.text(dialog);
    expect(text.includes(`:${venuePort}`) && text.includes(venueFp) && text.includes('使用吗'), `dialog ${text}`);
    expect((await entries()).length === 1, 'added before the volunteer said yes');
    await app.s.exec(`document.querySelector('[data-testid=relay-found]').scrollIntoView({ block: 'center' })`);
    await app.shot('relay-found');
    await app.click('[data-testid=relay-found] button', '不用');
    expect((await entries()).length === 1, '"不用" added it');
  });

  await step('使用: the venue relay is added first, as a venue relay pinned to the announced fingerprint; then removed', async () => {
    await app.click('[data-testid=relay-discover]', '查找会场中继');
    await app.click('[data-testid=relay-use]', '使用');
    await app.s.waitFor(async () => (await entries()).length === 2, 10000, 'two relays');
    const list = await entries();
    expect(list[0].includes(`:${venuePort}`) && list[0].includes('会场中继') && list[0].includes(venueFp.slice(0, 15)), `first ${list[0]}`);
    expect(list[1].includes(relayUrl), `second ${list[1]}`);
    await app.click('[data-testid=relay-entry] button', '移除');
    await app.s.waitFor(async () => (await entries()).length === 1, 10000, 'one relay again');
    expect((await entries())[0].includes(relayUrl), 'the team relay is left');
  });
}

try {
  await main();
} catch {
  /* counted */
} finally {
  await current?.s.end();
  for (const c of [...children].reverse()) await stop(c);
  console.log(`relays-e2e: ${passed} passed, ${failed} failed`);
  process.exitCode = failed > 0 ? 1 : 0;
}
