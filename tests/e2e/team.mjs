// End to end (issue 9): the real app as a team's lead, through tauri-driver
// and WebKitWebDriver, with a real relay on loopback and the `heartbridge`
// CLI as a volunteer's device.
//
//   node tests/e2e/team.mjs
//
// Needs target/debug/{heartbridge-app,heartbridge,heartbridge-relay} built,
// `tauri-driver` on PATH and a display (starts Xvfb itself when DISPLAY is
// unset). The lead's profile is claimed with the CLI, then opened in the
// app with its PIN. A volunteer (CLI) opens three cases and logs four
// contacts; the app, after one sync, sets the team's on-call phone and the
// statistics threshold, adds an on-call line and a duty slot, sees the
// slot's person as the supervisor on call, and opens the statistics screen
// with the counts the volunteer made (from de-identified facts: the lead
// cannot read the volunteer's cases). The volunteer's next sync brings the
// roster and the settings. The CSV export lands in the profile's export folder
// without an alias, a note or a name. Screenshots:
// docs/screenshots/app-{team-settings,duty,stats}.png.
// Last line: "team-e2e: N passed, N failed".

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, existsSync, readdirSync, readFileSync } from 'node:fs';
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
const work = mkdtempSync(path.join(os.tmpdir(), 'hb-team-e2e-'));
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
  start(RELAY, ['serve', '--listen', `127.0.0.1:${relayPort}`, '--db', relayDb]);
  await waitUntil(async () => (await fetch(`${relayUrl}/healthz`)).ok, 'the relay');

  const lead = path.join(work, 'lead');
  const vol = path.join(work, 'volunteer');
  await step('a team: the lead claimed with the CLI, a volunteer (CLI) opens three cases and logs four contacts', async () => {
    const created = JSON.parse(execFileSync(RELAY, ['team', 'create', 'e2e-team', '--db', relayDb, '--json'], { encoding: 'utf8' }));
    hb(lead, 'team', 'claim', '--relay', relayUrl, '--token', created.lead_token, '--name', '周组长');
    hb(lead, 'sync');
    const code = hb(lead, 'team', 'invite', '--role', 'volunteer').code;
    hb(vol, 'join', code, '--name', '小王');
    hb(vol, 'sync');
    const ids = [
      hb(vol, 'case', 'new', '--alias', '小北', '--group', 'migrant', '--risk', 'low').id,
      hb(vol, 'case', 'new', '--alias', '小南', '--group', 'left-behind', '--risk', 'medium').id,
      hb(vol, 'case', 'new', '--alias', '小东', '--group', 'exam-stress', '--risk', 'low').id,
    ];
    for (const id of ids) hb(vol, 'case', 'contact', id, '--channel', 'hotline', '--text', '第一次来电，情况稳定。', '--minutes', '20');
    hb(vol, 'case', 'contact', ids[0], '--channel', 'online', '--text', '线上回访。');
    hb(vol, 'sync');
  });

  const driverPort = await freePort();
  const driver = start('tauri-driver', ['--port', String(driverPort), '--native-port', String(await freePort())]);
  const base = `http://127.0.0.1:${driverPort}`;
  await waitUntil(async () => (await fetch(`${base}/status`)).ok, 'tauri-driver');
  const app = (current = new App(await Session.start(base, APP, ['--profile', lead])));

  await step('the app opens the lead’s profile with its PIN and syncs the team’s facts', async () => {
    await app.el('h1', '心桥已锁定', 30000);
    await app.fill('PIN 或密码', PIN);
    await app.click('button', '解锁');
    await app.el('h1', '你好，周组长', 20000);
    await app.click('button', '立即同步');
    await app.el('[data-testid=pending]', '0 条', 30000);
  });

  await step('team settings: the lead sets the on-call phone and the statistics threshold', async () => {
    await app.click('nav a', '设置');
    await app.click('[data-testid=to-team-settings]');
    await app.el('h1', '团队设置');
    await app.fill('值班督导电话', '400-161-9995');
    await app.fill('统计抑制阈值', '2');
    await app.click('button', '保存');
    await app.el('[role=status]', '已保存在本设备');
    await app.el('p', '1 到 2 之间的数不显示');
    await app.s.exec('window.scrollTo(0, 0)');
    await app.shot('team-settings');
  });

  await step('duty roster: the lead adds an on-call line and puts itself on it; the app names it the supervisor on call', async () => {
    await app.click('a', '编辑值守表');
    await app.el('h1', '值守表');
    await app.fill('线路名称', '督导值班');
    await app.choose('类型', '值班督导');
    await app.fill('线路电话', '138 0013 8000');
    await app.click('button', '添加线路');
    await app.el('.edit-lines li', '督导值班');
    await app.choose('线路', '督导值班');
    await app.choose('成员', '周组长');
    const today = new Date();
    const p = (n) => String(n).padStart(2, '0');
    await app.set('日期', `${today.getFullYear()}-${p(today.getMonth() + 1)}-${p(today.getDate())}`);
    await app.set('开始', '00:00');
    await app.set('结束', '23:59');
    await app.click('button', '加入值守表');
    await app.el('[data-testid=duty-slots] li', '周组长');
    await app.el('[data-testid=on-call]', '周组长');
    const tel = await app.s.exec(`return document.querySelector('[data-testid=on-call] a[href^="tel:"]')?.getAttribute('href')`);
    expect(tel === 'tel:13800138000', `on-call phone link: ${tel}`);
    await app.s.exec('window.scrollTo(0, 0)');
    await app.shot('duty');
    // The roster and the settings go to the team with the next sync.
    await app.click('nav a', '首页');
    await app.click('button', '立即同步');
    await app.el('[data-testid=pending]', '0 条', 30000);
  });

  await step('statistics: the counts of the volunteer’s cases, from de-identified facts', async () => {
    await app.click('nav a', '统计');
    await app.el('h1', '统计');
    const total = (m) =>
      app.s.waitFor(
        () => app.s.exec(`return document.querySelector('[data-testid=stats-totals] [data-measure=${m}] dd')?.textContent.trim() ?? null`),
        20000,
        `the total of ${m}`,
      );
    expect((await total('contacts')) === '4', `contacts: ${await total('contacts')}`);
    expect((await total('newCases')) === '3', `new cases: ${await total('newCases')}`);
    expect((await total('distinctCases')) === '3', `cases: ${await total('distinctCases')}`);
    // By channel: 3 hotline contacts and 1 online. With k = 2 the online
    // cell is hidden (≤2), and then the hotline cell too (*), or the total
    // of 4 would give the 1 away.
    const bar = async (label) => (await app.s.text(await app.el('[data-testid=stats-chart] li', label))).replace(/\s+/g, ' ');
    expect((await bar('线上')).endsWith('≤2'), `online bar: ${await bar('线上')}`);
    expect((await bar('热线')).endsWith('*'), `hotline bar: ${await bar('热线')}`);
    await app.el('[data-testid=stats-legend]', '为保护当事人不显示具体数字');
    await app.shot('stats');
  });

  await step('statistics: “导出 CSV” writes the de-identified CSV into the profile’s export folder', async () => {
    await app.click('button', '导出 CSV');
    const said = await app.s.text(await app.el('[data-testid=stats-exported]', 'heartbridge-stats-', 20000));
    const file = said.split('\n').map((l) => l.trim()).find((l) => l.endsWith('.csv'));
    expect(file && file.startsWith(path.join(lead, 'exports')), `the export says ${said}`);
    const csv = readFileSync(file, 'utf8');
    const [first, header] = csv.split('\n');
    expect(first.startsWith('# heartbridge statistics') && first.includes('k=2'), `first line: ${first}`);
    expect(header.startsWith('week,month,channel,group,risk,'), `header: ${header}`);
    for (const secret of ['小北', '小南', '小东', '小王', '周组长', '第一次来电', '线上回访']) expect(!csv.includes(secret), `the CSV holds “${secret}”`);
  });

  await app.s.end();
  current = null;

  await step('the counts came without the cases: the lead’s device holds none of them; the volunteer’s next sync brings the roster', async () => {
    const aliases = hb(lead, 'case', 'list').map((c) => c.alias);
    for (const a of ['小北', '小南', '小东']) expect(!aliases.includes(a), `the lead's device reads the case ${a}`);
    hb(vol, 'sync');
    const shown = JSON.stringify(hb(vol, 'duty', 'show'));
    expect(shown.includes('周组长') && shown.includes('督导值班'), `duty show on the volunteer's device: ${shown.slice(0, 300)}`);
    expect(shown.includes('138 0013 8000'), `the on-call line's phone on the volunteer's device: ${shown.slice(0, 300)}`);
  });
  await stop(driver);
}

let code = 0;
try {
  await main();
} catch (e) {
  code = 1;
  if (failed === 0) {
    failed++;
    console.log(`  ✗ setup: ${e?.stack ?? e}`);
  }
  for (const c of children) {
    const log = c.log?.() ?? '';
    if (log) console.log(`--- ${c.spawnargs[0]} log (tail)\n${log.slice(-1500)}`);
  }
} finally {
  for (const c of [...children].reverse()) await stop(c, 3000);
}
console.log(`team-e2e: ${passed} passed, ${failed} failed`);
process.exit(code || (failed ? 1 : 0));
