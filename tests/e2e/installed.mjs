// The app as a volunteer installs it: the .deb that `npx tauri build
// --bundles deb` made (scripts/test builds it), checked, installed with
// dpkg, the INSTALLED /usr/bin/heartbridge-app started under Xvfb through
// WebDriver with a throw-away HOME and XDG folders, its first run walked to
// the home screen (the profile lands where the README says), and the package
// removed again (also when a step fails). Needs root (dpkg) and tauri-driver.
//
//   node tests/e2e/installed.mjs [path/to/Heartbridge_0.1.0_amd64.deb]
//
// Without a path: the newest .deb under $CARGO_TARGET_DIR (else target/),
// debug/bundle/deb or release/bundle/deb.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { ROOT, PIN, work, expect, step, run, display, startDriver, SESSION_START_MS } from './harness.mjs';
import { App } from './harness.mjs';
import { Session } from './webdriver.mjs';

const PKG = 'heartbridge';
const INSTALLED = '/usr/bin/heartbridge-app';

function findDeb() {
  if (process.argv[2]) return path.resolve(process.argv[2]);
  const target = process.env.CARGO_TARGET_DIR ?? path.join(ROOT, 'target');
  const debs = ['debug', 'release']
    .map((p) => path.join(target, p, 'bundle', 'deb'))
    .filter((d) => existsSync(d))
    .flatMap((d) => readdirSync(d).filter((f) => f.endsWith('.deb')).map((f) => path.join(d, f)));
  expect(debs.length > 0, `no .deb under ${target}/{debug,release}/bundle/deb: build it first (cd ui && npx tauri build --debug --bundles deb)`);
  return debs.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
}

const sh = (cmd, args) => execFileSync(cmd, args, { encoding: 'utf8', stdio: 'pipe' });
const installed = () => {
  try {
    return sh('dpkg-query', ['-W', '-f=${Status}', PKG]).includes('install ok installed');
  } catch {
    return false;
  }
};

async function main() {
  expect(process.getuid?.() === 0, 'installing the .deb needs root: run this as root (CI does) or with sudo');
  const deb = findDeb();
  console.log(`  package: ${deb}`);
  expect(!installed(), `${PKG} is installed on this machine already: remove it first (dpkg -r ${PKG}), this test installs and removes its own`);

  await step('the .deb holds the app, its desktop entry, its icon, and says what it needs', async () => {
    const files = sh('dpkg-deb', ['-c', deb]);
    for (const f of ['usr/bin/heartbridge-app', 'usr/share/applications/Heartbridge.desktop', 'usr/share/icons/hicolor/256x256/apps/heartbridge-app.png']) {
      expect(files.split('\n').some((l) => l.endsWith(' ' + f)), `the .deb has no ${f}:\n${files}`);
    }
    const field = (f) => sh('dpkg-deb', ['-f', deb, f]).trim();
    expect(field('Package') === PKG, `package name ${field('Package')}`);
    for (const d of ['libwebkit2gtk-4.1-0', 'libgtk-3-0']) expect(field('Depends').includes(d), `Depends lacks ${d}: ${field('Depends')}`);
    expect(field('Description').includes('psychological-support volunteers'), `Description: ${field('Description')}`);
    expect(field('Maintainer') !== '', 'no Maintainer');
    const x = path.join(work, 'deb');
    sh('dpkg-deb', ['-x', deb, x]);
    const desktop = sh('cat', [path.join(x, 'usr/share/applications/Heartbridge.desktop')]);
    for (const line of ['Name=心桥 Heartbridge', 'Exec=heartbridge-app', 'Icon=heartbridge-app', 'Categories=Office;', 'Type=Application']) {
      expect(desktop.split('\n').includes(line), `the desktop entry has no “${line}”:\n${desktop}`);
    }
  });

  let session = null;
  try {
    await step('dpkg -i installs it: /usr/bin/heartbridge-app, the menu entry and the icon', async () => {
      try {
        sh('dpkg', ['-i', deb]);
      } catch (e) {
        throw new Error(`dpkg -i failed (missing dependencies? apt install ./${path.basename(deb)} fetches them): ${e.stderr ?? e}`);
      }
      expect(installed(), `${PKG} is not installed after dpkg -i`);
      for (const f of [INSTALLED, '/usr/share/applications/Heartbridge.desktop', '/usr/share/icons/hicolor/256x256/apps/heartbridge-app.png']) expect(existsSync(f), `${f} missing after install`);
    });

    await display();
    // A home of its own: the installed app must not see (or write) real data.
    const home = path.join(work, 'home');
    mkdirSync(home, { recursive: true });
    process.env.HOME = home;
    const base = await startDriver();
    let app;
    await step('the installed app opens its window on the first-run screen, in Simplified Chinese', async () => {
      session = await Session.start(base, INSTALLED, [], SESSION_START_MS).catch((e) => {
        throw new Error(`the installed ${INSTALLED} did not start through WebDriver: ${e.message ?? e}`);
      });
      app = new App(session);
      await app.heading('欢迎使用心桥', 30000);
      expect((await app.val('document.documentElement.lang')) === 'zh-CN', 'the page is not zh-CN');
    });

    await step('its first run makes a profile in ~/.local/share (XDG_DATA_HOME)/org.heartbridge.app/profile and opens the handbooks it ships', async () => {
      await app.setPin(PIN, PIN);
      await app.el('[data-testid=pin-done]', 'PIN 已设置');
      await app.fill('你的名字或称呼', '陈静');
      await app.click('button', '开始使用');
      await app.heading('你好，陈静', 30000);
      const db = path.join(process.env.XDG_DATA_HOME, 'org.heartbridge.app', 'profile', 'heartbridge.db');
      expect(existsSync(db), `no profile at ${db}`);
      await app.nav('手册');
      await app.heading('手册');
      await app.el('a, button', '热线', 15000);
    });
  } finally {
    await session?.end();
    if (installed()) sh('dpkg', ['-r', PKG]);
  }
  await step('dpkg -r removes it again', async () => {
    expect(!installed(), `${PKG} is still installed`);
    expect(!existsSync(INSTALLED), `${INSTALLED} is still there`);
  });
}

run('installed-e2e', main);
