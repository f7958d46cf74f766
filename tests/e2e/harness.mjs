// What every end-to-end walk of the real app shares: the built binaries, the
// processes it starts (Xvfb, relays, tauri-driver) and stops again by pid,
// the steps and their count, the CLI on a profile, and the app's window
// driven through WebDriver (./webdriver.mjs) by what a person reads.
//
// One walk a process: importing this module makes the walk's work folder
// (hb-<file>-e2e-* in the temp dir). A walk is
//
//   await run('team-e2e', async () => {
//     await display();
//     const relay = await startRelay();
//     await step('…', async () => { … });
//     const app = await open(await startDriver(), profile);
//     …
//   });
//
// and its last line is "<label>: N passed, N failed" (exit code 1 on a failure).

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Session } from './webdriver.mjs';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = path.join(ROOT, 'target', 'debug');
export const APP = path.join(BIN, 'heartbridge-app');
export const HB = path.join(BIN, 'heartbridge');
export const RELAY = path.join(BIN, 'heartbridge-relay');
export const SHOTS = path.join(ROOT, 'docs', 'screenshots');
export const ELEMENT = 'element-6066-11e4-a52e-4f735466cecf';
/** The PIN of every profile a walk makes, the app's and the CLI's alike. */
export const PIN = '246810';
// Starting the app through WebKitWebDriver takes seconds; on a loaded 2-core machine, more.
export const SESSION_START_MS = 120_000;

const walk = path.basename(process.argv[1] ?? 'e2e', '.mjs');
/** This walk's folder: profiles, relay databases, the failure screenshot. */
export const work = mkdtempSync(path.join(os.tmpdir(), `hb-${walk}-e2e-`));
/** Every process started and not yet stopped, oldest first. */
export const children = [];

let passed = 0;
let failed = 0;
/** The app window a failing step takes a screenshot of. */
let current = null;

export function expect(cond, msg) {
  if (!cond) throw new Error(msg);
}

/** Runs one step: counts it, prints ✓ or ✗ (with a screenshot of the app), and rethrows a failure. */
export async function step(name, fn) {
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

/**
 * Runs the walk `main`, then stops everything it started and prints
 * "<label>: N passed, N failed". A failure outside a step counts as one
 * (setup) and prints the tail of every process's log.
 */
export async function run(label, main) {
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
      if (log) console.log(`--- ${c.spawnargs.slice(0, 2).join(' ')} log (tail)\n${log.slice(-2000)}`);
    }
  } finally {
    await current?.s.end();
    current = null;
    // WebKitWebDriver outlives tauri-driver: `stop` ends what each child
    // started first, by pid, then the child.
    for (const c of [...children].reverse()) await stop(c, 3000);
  }
  console.log(`${label}: ${passed} passed, ${failed} failed`);
  process.exit(code || (failed ? 1 : 0));
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Waits until `fn` returns something true (a throw is "not yet"). */
export async function waitUntil(fn, what, timeoutMs = 20000) {
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

/** Starts a process we stop again; `child.log()` is its output so far. */
export function start(cmd, args, opts = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
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

/** Stops a child we started (and what it started), by pid; resolves when it has exited. */
export async function stop(child, timeoutMs = 10000) {
  const i = children.indexOf(child);
  if (i >= 0) children.splice(i, 1);
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

/** Checks the binaries the walk needs are built. */
export function needBuilt(...bins) {
  for (const b of bins) expect(existsSync(b), `missing ${b}: build the workspace first (cargo build -p heartbridge-app -p heartbridge-cli -p heartbridge-relay)`);
}

/**
 * A display for the app: DISPLAY as it is, else an Xvfb of our own on a
 * display nobody else's Xvfb holds (other test runs may share this machine).
 * The app's XDG folders go into the work folder.
 */
export async function display() {
  if (!process.env.DISPLAY) {
    const free = [...Array(40).keys()].map((i) => 60 + i).filter((n) => !existsSync(`/tmp/.X11-unix/X${n}`) && !existsSync(`/tmp/.X${n}-lock`));
    expect(free.length > 0, 'no free X display');
    const d = `:${free[Math.floor(Math.random() * free.length)]}`;
    start('Xvfb', [d, '-screen', '0', '1280x1024x24', '-nolisten', 'tcp']);
    process.env.DISPLAY = d;
    await waitUntil(() => existsSync(`/tmp/.X11-unix/X${d.slice(1)}`), 'Xvfb', 10000);
  }
  process.env.XDG_DATA_HOME = path.join(work, 'xdg-data');
  process.env.XDG_CACHE_HOME = path.join(work, 'xdg-cache');
  process.env.XDG_CONFIG_HOME = path.join(work, 'xdg-config');
}

/** The CLI on one of its profiles, `--json`, with the walk's PIN; `{ input }` as a first argument is its standard input. */
export function hb(profile, ...args) {
  const opts = typeof args[0] === 'object' ? args.shift() : {};
  const env = { ...process.env, HEARTBRIDGE_PASSPHRASE: PIN };
  const out = execFileSync(HB, ['--profile', profile, '--json', ...args], { encoding: 'utf8', env, stdio: 'pipe', ...opts });
  return JSON.parse(out);
}

/** An operator command of the relay on its database (`relayCmd(db, 'team', 'create', 'x', '--json')`), its output. */
export function relayCmd(db, ...args) {
  return execFileSync(RELAY, [...args, '--db', db], { encoding: 'utf8', stdio: 'pipe' });
}

/** `heartbridge-relay team create NAME` on `db`: `{ team_id, lead_token, … }`. */
export function createTeam(db, name) {
  return JSON.parse(relayCmd(db, 'team', 'create', name, '--json'));
}

/** Resolves when nothing listens on 127.0.0.1:`port` any more. */
export function portClosed(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
}

/**
 * A relay on loopback: `heartbridge-relay serve` on `db` at `port` (free
 * ones unless given), HTTPS with its own certificate when `tls`, `args`
 * added. Started and waited for (it prints "listening on"); `stop()` waits
 * until its port refuses, `start()` serves again (same port, same database).
 */
export async function startRelay({ db = path.join(work, 'relay.db'), port, tls = false, args = [] } = {}) {
  port ??= await freePort();
  const relay = {
    db,
    port,
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    child: null,
    log: () => relay.child?.log() ?? '',
    async start(extra = args) {
      relay.child = start(RELAY, ['serve', '--listen', `127.0.0.1:${port}`, '--db', db, ...(tls ? ['--tls-self-signed'] : []), ...extra]);
      const ready = tls ? /certificate fingerprint: \S+\n/ : /listening on /;
      const child = relay.child;
      await waitUntil(() => {
        if (child.exitCode !== null) throw new Error(`the relay exited: ${child.log().slice(-500)}`);
        return ready.test(child.log());
      }, `the relay on port ${port}`, 30000).catch((e) => {
        if (child.exitCode !== null) throw new Error(`the relay on port ${port} exited: ${child.log().slice(-800)}`);
        throw e;
      });
    },
    async stop() {
      if (relay.child) await stop(relay.child);
      relay.child = null;
      await waitUntil(() => portClosed(port), `the relay on port ${port} to stop answering`);
    },
    /** The certificate fingerprint devices pin (sha256:…). */
    fingerprint: () => relayCmd(db, 'fingerprint').trim(),
  };
  await relay.start();
  return relay;
}

/** tauri-driver on free ports: its base URL. */
export async function startDriver() {
  const port = await freePort();
  start('tauri-driver', ['--port', String(port), '--native-port', String(await freePort())]);
  const base = `http://127.0.0.1:${port}`;
  await waitUntil(async () => (await fetch(`${base}/status`)).ok, 'tauri-driver');
  return base;
}

/** The app on `profile` (more app arguments in `args`) in a new WebDriver session; the window a failure shoots. */
export async function open(base, profile, args = [], timeoutMs = SESSION_START_MS) {
  current = new App(await Session.start(base, APP, ['--profile', profile, ...args], timeoutMs));
  return current;
}

/** Ends the app's session (its window closes). */
export async function close(app) {
  await app.s.end();
  if (current === app) current = null;
}

// ---------------------------------------------------------------- UI helpers
// Elements are found in the page by their accessible text, as a person would.
const FIND = `
  const [css, text, exact] = arguments;
  const visible = (e) => e.getClientRects().length > 0;
  const name = (e) => ((e.getAttribute('aria-label') || '') + ' ' + e.textContent).trim();
  return [...document.querySelectorAll(css)].find((e) => visible(e) && (text === null || (exact ? e.textContent.trim() === text : name(e).includes(text)))) || null;`;
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

/** The app's window, by what a person reads in it. */
export class App {
  constructor(s) {
    this.s = s;
  }
  /** The first visible `css` whose text (or aria-label) contains `text`; `opts` is a timeout in ms or `{ exact, timeout }`. */
  el(css, text = null, opts = {}) {
    const { exact = false, timeout = 15000 } = typeof opts === 'number' ? { timeout: opts } : opts;
    return this.s.waitFor(() => this.s.exec(FIND, [css, text, exact]), timeout, `${css} ${text ?? ''}`);
  }
  /** The element `el` would find, now, without waiting: null when there is none. */
  present(css, text = null, { exact = false } = {}) {
    return this.s.exec(FIND, [css, text, exact]);
  }
  /** The control of the visible label that starts with `text`. */
  label(text) {
    return this.s.waitFor(() => this.s.exec(LABEL, [text]), 15000, `control labelled ${text}`);
  }
  async click(css, text, opts) {
    await this.s.click(await this.el(css, text, opts));
  }
  async fill(labelText, value) {
    await this.s.type(await this.label(labelText), value);
  }
  /** Sets a labelled control's value as typing or choosing does. */
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
  heading(text, timeout) {
    return this.el('h1', text, { timeout });
  }
  async nav(text) {
    await this.click('nav a', text);
  }
  /** The first run's PIN form: the PIN, again, 下一步. */
  async setPin(pin = PIN, again = pin) {
    await this.fill('设置 PIN 或密码', pin);
    await this.fill('再输入一次', again);
    await this.click('button', '下一步');
  }
  /** The lock screen: the PIN, 解锁, and the home screen greets `greeting` (你好，…). */
  async unlock(greeting, pin = PIN) {
    await this.heading('心桥已锁定', 30000);
    await this.fill('PIN 或密码', pin);
    await this.click('button', '解锁');
    await this.heading(greeting, 20000);
  }
  /** The page's value of `js` (an expression). */
  val(js, args = []) {
    return this.s.exec(`return (${js});`, args);
  }
  /**
   * Closes the notices (they cover the bottom of a phone screen), checks the
   * page never scrolls sideways, and saves docs/screenshots/<prefix><name>.png.
   * `scrollTo`: 'top', or a selector to scroll to the start of.
   */
  async shot(name, { scrollTo = null, prefix = 'app-' } = {}) {
    await this.s.exec(
      `document.querySelectorAll('.toasts button.close').forEach((b) => b.click());
       const to = arguments[0];
       if (to === 'top') window.scrollTo(0, 0);
       else if (to) document.querySelector(to)?.scrollIntoView({ block: 'start' });`,
      [scrollTo],
    );
    const [sw, cw] = await this.val('[document.documentElement.scrollWidth, document.documentElement.clientWidth]');
    expect(sw <= cw, `${name}: the page is ${sw}px wide in a ${cw}px window`);
    mkdirSync(SHOTS, { recursive: true });
    writeFileSync(path.join(SHOTS, `${prefix}${name}.png`), await this.s.screenshot());
  }
}
