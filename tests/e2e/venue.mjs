// End to end (issue 10): the venue relay and the two-level receipts in the
// real app, through tauri-driver and WebKitWebDriver, with a real central
// relay and a real venue relay (`heartbridge-relay venue join` + `serve
// --upstream`) on loopback.
//
//   node tests/e2e/venue.mjs
//
// Needs target/debug/{heartbridge-app,heartbridge,heartbridge-relay} built,
// `tauri-driver` on PATH, python3 (reads the relays' SQLite files) and a
// display (starts Xvfb itself when DISPLAY is unset). The lead (CLI) claims
// the team at the central relay, invites a volunteer (the profile the app
// opens) and the venue relay (`team invite --role relay`). The venue relay
// serves HTTPS with its own certificate, first with its uplink, until its
// mirror knows the volunteer, then again with its uplink pointing nowhere
// (the venue's internet is down). In the app the volunteer adds the venue
// relay by its address and fingerprint, starts a shift, writes a note and
// ends the shift: the sync goes to the venue relay, and the shift card says
// 已送到会场中继，还没到中心中继 with 在会场中继 N 条 · 已到中心 0 条, Home's sync
// card 其中 N 条已在会场中继; the central relay has none of it. The venue
// relay serves again with its uplink, forwards, and one “立即同步” turns the
// card into 全部 N 条更改已于 HH:MM 送达中心中继 with nothing waiting; the
// lead's CLI reads the note from the central relay. Screenshots:
// docs/screenshots/app-venue-level1.png, app-venue-level2.png.
// Last line: "venue-e2e: N passed, N failed".

import { execFileSync } from 'node:child_process';
import path from 'node:path';
import {
  APP,
  HB,
  RELAY,
  work,
  expect,
  step,
  run,
  needBuilt,
  display,
  startRelay,
  createTeam,
  relayCmd,
  freePort,
  startDriver,
  open,
  waitUntil,
  hb,
} from './harness.mjs';

/** One value a query of a relay's SQLite file gives (read-only; the relay keeps serving). */
function sqlValue(db, query, params = []) {
  const py = `import sqlite3, sys, json
c = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True)
print(json.dumps(c.execute(sys.argv[2], json.loads(sys.argv[3])).fetchone()[0]))`;
  return JSON.parse(execFileSync('python3', ['-c', py, db, query, JSON.stringify(params)], { encoding: 'utf8' }));
}

async function main() {
  needBuilt(APP, HB, RELAY);
  await display();

  const central = await startRelay();
  const venueDb = path.join(work, 'venue.db');
  const lead = path.join(work, 'lead');
  const vol = path.join(work, 'volunteer');
  const note = `在会场写的记录-${Date.now()}`;
  let venue = null;
  let fp = '';
  let volId = '';
  // The central relay's envelopes: what reached it.
  const atCentral = () => sqlValue(central.db, 'SELECT count(*) FROM envelopes');
  // The venue relay's envelopes the central relay has not answered yet.
  const backlog = () =>
    sqlValue(venueDb, 'SELECT count(*) FROM envelopes e WHERE NOT EXISTS (SELECT 1 FROM venue_upstream v WHERE v.seq = e.seq)');

  await step('a team at the central relay; a venue relay joins it with a relay invite and mirrors the volunteer', async () => {
    const created = createTeam(central.db, 'e2e-venue');
    hb(lead, 'team', 'claim', '--relay', central.url, '--token', created.lead_token, '--name', '周组长');
    // The lead reads the volunteers' cases in this team: it checks the note arrived.
    hb(lead, 'team', 'settings', '--lead-reads-cases', 'true');
    hb(lead, 'sync');
    volId = hb(vol, 'join', hb(lead, 'team', 'invite', '--role', 'volunteer').code, '--name', '小王').device_id;
    const relayCode = hb(lead, 'team', 'invite', '--role', 'relay').code;
    const joined = JSON.parse(relayCmd(venueDb, 'venue', 'join', relayCode, '--upstream', central.url, '--json'));
    expect(joined && typeof joined === 'object', `venue join: ${JSON.stringify(joined)}`);
    // The lead folds the relay into the roster; the volunteer learns it.
    hb(lead, 'sync');
    hb(vol, 'sync');
    venue = await startRelay({ db: venueDb, tls: true, args: ['--upstream', central.url] });
    fp = venue.fingerprint();
    expect(fp.startsWith('sha256:') && fp !== '', `venue fingerprint ${fp}`);
    // Its forwarder pulls the team's members from upstream in its own time.
    await waitUntil(() => sqlValue(venueDb, 'SELECT count(*) FROM devices WHERE lower(hex(id)) = lower(?)', [volId]) > 0, 'the venue relay to know the volunteer', 30000);
    // The venue's internet goes down: it serves its devices, its uplink points nowhere.
    await venue.stop();
    await venue.start(['--upstream', `http://127.0.0.1:${await freePort()}`]);
  });

  const app = await open(await startDriver(), vol);

  await step('the volunteer adds the venue relay by its address and fingerprint; it is listed first, as a venue relay', async () => {
    await app.unlock('你好，小王');
    await app.nav('设置');
    await app.heading('设置');
    await app.fill('地址', venue.url);
    await app.fill('证书指纹', fp);
    await app.click('label', '这是会场中继');
    await app.click('[data-testid=relays] button[type=submit]', '添加');
    const first = async () => (await app.s.text(await app.el('[data-testid=relay-entry]'))).replace(/\s+/g, ' ');
    await waitUntil(async () => (await first()).includes(venue.url), 'the venue relay listed first', 10000);
    const entry = await first();
    expect(entry.includes('会场中继') && entry.includes(fp.slice(0, 15)), `first relay: ${entry}`);
  });

  let changes = 0;
  await step('a shift at the venue, its uplink down: the shift card says the changes are on the venue relay, not yet at the central relay', async () => {
    await app.nav('首页');
    await app.heading('你好，小王');
    await app.click('button', '开始值班');
    await app.el('p', '值班中', { exact: true });
    await app.nav('个案');
    await app.click('a', '新建个案');
    await app.heading('新建个案');
    await app.fill('化名或代号', '小海');
    await app.click('button', '建立个案');
    await app.heading('小海');
    await app.s.type(
      await app.s.waitFor(
        () => app.s.exec(`return [...document.querySelectorAll('label')].find(l => l.textContent.trim() === '记录' && l.getClientRects().length > 0)?.control ?? null`),
        10000,
        'note field',
      ),
      note,
    );
    await app.click('button', '保存记录');
    await app.el('[data-testid=timeline] li', note);
    const before = atCentral();
    await app.nav('首页');
    await app.heading('你好，小王');
    await app.click('button', '结束值班并同步');
    const said = (await app.s.text(await app.el('[data-testid=receipt-venue]', null, { timeout: 30000 }))).replace(/\s+/g, ' ');
    expect(said.includes('已送到会场中继，还没到中心中继'), `shift card: ${said}`);
    const levels = /在会场中继 (\d+) 条 · 已到中心 0 条/.exec(said);
    expect(levels && Number(levels[1]) > 0, `levels: ${said}`);
    changes = Number(levels[1]);
    expect(said.includes('下次同步时确认已到中心'), `shift card: ${said}`);
    await app.el('[data-testid=at-venue]', `其中 ${changes} 条已在会场中继，等待转送到中心中继`, { timeout: 20000 });
    expect(!(await app.present('[data-testid=receipt]')), 'the shift card says delivered while the venue relay cannot forward');
    expect(atCentral() === before, `the central relay got ${atCentral() - before} envelopes with the venue's uplink down`);
    expect(backlog() > 0, 'the venue relay holds nothing to forward');
    await app.shot('venue-level1', { scrollTo: 'top' });
  });

  await step('the venue relay’s uplink is back: it forwards, and one “立即同步” says every change reached the central relay', async () => {
    await venue.stop();
    await venue.start(['--upstream', central.url]);
    await waitUntil(() => backlog() === 0, 'the venue relay to forward its log', 30000);
    await app.click('button', '立即同步');
    const said = (await app.s.text(await app.el('[data-testid=receipt]', '送达中心中继', { timeout: 30000 }))).replace(/\s+/g, ' ');
    expect(new RegExp(`全部 ${changes} 条更改已于 \\d\\d:\\d\\d 送达中心中继`).test(said), `receipt: ${said}`);
    await app.el('[data-testid=pending]', '0 条', { exact: true, timeout: 20000 });
    expect(!(await app.present('[data-testid=at-venue]')), 'Home still counts changes on the venue relay');
    expect(!(await app.present('[data-testid=receipt-venue]')), 'the shift card still says the venue relay');
    await app.shot('venue-level2', { scrollTo: 'top' });
    // The central relay has it: the lead, who never saw the venue relay, reads the note.
    hb(lead, 'sync');
    const c = hb(lead, 'case', 'list').find((x) => x.alias === '小海');
    expect(c, 'the case did not reach the lead');
    const shown = hb(lead, 'case', 'show', c.id);
    expect(shown.contacts.some((x) => x.text === note && x.author === '小王'), 'the note did not reach the lead through the central relay');
  });
}

await run('venue-e2e', main);
