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

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { APP, HB, RELAY, PIN, work, expect, step, run, needBuilt, display, startRelay, createTeam, startDriver, open, close, hb } from './harness.mjs';

async function main() {
  needBuilt(APP, HB, RELAY);
  await display();
  const { url: relayUrl, db: relayDb } = await startRelay();

  const lead = path.join(work, 'lead');
  const vol = path.join(work, 'volunteer');
  await step('a team: the lead claimed with the CLI, a volunteer (CLI) opens three cases and logs four contacts', async () => {
    const created = createTeam(relayDb, 'e2e-team');
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

  const app = await open(await startDriver(), lead);

  await step('the app opens the lead’s profile with its PIN and syncs the team’s facts', async () => {
    await app.unlock('你好，周组长');
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

  await close(app);

  await step('the counts came without the cases: the lead’s device holds none of them; the volunteer’s next sync brings the roster', async () => {
    const aliases = hb(lead, 'case', 'list').map((c) => c.alias);
    for (const a of ['小北', '小南', '小东']) expect(!aliases.includes(a), `the lead's device reads the case ${a}`);
    hb(vol, 'sync');
    const shown = JSON.stringify(hb(vol, 'duty', 'show'));
    expect(shown.includes('周组长') && shown.includes('督导值班'), `duty show on the volunteer's device: ${shown.slice(0, 300)}`);
    expect(shown.includes('138 0013 8000'), `the on-call line's phone on the volunteer's device: ${shown.slice(0, 300)}`);
  });
}

await run('team-e2e', main);
