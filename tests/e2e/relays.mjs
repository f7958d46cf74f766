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
// Last, the app claims a second team on that relay by its fingerprint (a
// mistyped one is named at its field first) and syncs over the pinned HTTPS.
// Screenshots: docs/screenshots/app-relays.png, app-relay-found.png,
// app-claim-fingerprint-error.png.
// Last line: "relays-e2e: N passed, N failed".
import { existsSync, copyFileSync } from 'node:fs';
import path from 'node:path';
import { APP, HB, RELAY, work, expect, step, run, needBuilt, display, startRelay, createTeam, startDriver, open, close, hb } from './harness.mjs';

async function main() {
  needBuilt(APP, HB, RELAY);
  await display();

  const relayDb = path.join(work, 'relay.db');
  let relayUrl = '';
  const venueDb = path.join(work, 'venue.db');
  const lead = path.join(work, 'lead');
  let fp = '';
  let venueFp = '';
  let venuePort = 0;

  await step('a team on a relay serving its own certificate: the lead claims it with the CLI by the fingerprint', async () => {
    const created = createTeam(relayDb, 'e2e-team');
    const relay = await startRelay({ db: relayDb, tls: true });
    relayUrl = relay.url;
    fp = relay.fingerprint();
    expect(fp.startsWith('sha256:') && relay.log().includes(fp), `fingerprint ${fp}`);
    hb(lead, 'team', 'claim', '--relay', relayUrl, '--token', created.lead_token, '--name', '周组长', '--pin', fp);
    hb(lead, 'sync');
    // The venue relay: the same team (a copy of the database, taken with the
    // relay stopped so the file is whole), its own certificate.
    await relay.stop();
    copyFileSync(relayDb, venueDb);
    if (existsSync(`${relayDb}-wal`)) copyFileSync(`${relayDb}-wal`, `${venueDb}-wal`);
    await relay.start();
    const venue = await startRelay({ db: venueDb, tls: true, args: ['--advertise'] });
    venuePort = venue.port;
    venueFp = venue.fingerprint();
    expect(venueFp !== fp, 'the venue relay has a certificate of its own');
  });

  const base = await startDriver();
  const app = await open(base, lead);

  await step('the app syncs with the team relay over the pinned HTTPS', async () => {
    await app.unlock('你好，周组长');
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

  await close(app);
  const created2 = createTeam(relayDb, 'e2e-team-app');
  const leadApp = path.join(work, 'app-lead');
  const app2 = await open(base, leadApp);
  await step('the app claims a team on the relay serving its own certificate: a mistyped fingerprint is named at its field, the right one claims and syncs', async () => {
    await app2.heading('欢迎使用心桥', 30000);
    await app2.setPin();
    await app2.click('label', '认领团队（负责人）');
    await app2.fill('中继服务器地址', relayUrl);
    await app2.fill('证书指纹', fp.slice(0, -3));
    await app2.fill('负责人令牌', created2.lead_token);
    await app2.fill('你的名字或称呼', '周组长');
    await app2.click('button', '认领团队');
    await app2.el('[data-testid=field-error]', '证书指纹应是 sha256: 加 43 个字符');
    const field = await app2.val(`(() => { const e = document.getElementById('claim-fingerprint'); return [e.getAttribute('aria-invalid'), e.getAttribute('aria-describedby'), document.activeElement === e]; })()`);
    expect(field[0] === 'true' && field[1].includes('claim-fingerprint-error') && field[2], `the fingerprint field: ${JSON.stringify(field)}`);
    expect(!existsSync(path.join(leadApp, 'heartbridge.db')), 'a profile was made with a mistyped fingerprint');
    await app2.shot('claim-fingerprint-error', { scrollTo: '#claim-fingerprint' });
    await app2.fill('证书指纹', fp);
    expect(!(await app2.present('[data-testid=field-error]')), 'the error stays after the fingerprint was corrected');
    await app2.click('button', '认领团队');
    await app2.el('[role=status]', '团队已建立', 30000);
    await app2.click('button', '进入心桥');
    await app2.heading('你好，周组长', 20000);
    await app2.click('button', '立即同步');
    await app2.el('[data-testid=pending]', '0 条', 30000);
    await app2.el('[data-testid=connection]', '团队已连接', 20000);
    await app2.nav('设置');
    const first = (await app2.s.text(await app2.el('[data-testid=relay-entry]', relayUrl))).replace(/\s+/g, ' ');
    expect(first.includes('团队中继') && first.includes(fp.slice(0, 15)), `the team relay's entry: ${first}`);
  });
}

await run('relays-e2e', main);
