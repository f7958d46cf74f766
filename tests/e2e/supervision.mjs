// End to end, supervision (issue 9): the real built app in a real WebKit
// window as a team's supervisor, driven through tauri-driver, with a real
// relay on loopback and the `heartbridge` CLI as the lead and a volunteer.
//
//   node tests/e2e/supervision.mjs
//
// A CLI lead claims a team and invites a supervisor (the app joins with the
// code) and a volunteer (the CLI). The volunteer opens a case, and while the
// relay is down raises it to high: an escalation, awaiting a receipt; the
// relay comes back and the volunteer syncs (its shift's end). In the app the
// supervisor syncs, finds the escalation at the top of the queue marked
// 未获督导确认, reviews the case and acknowledges it with instructions, and
// syncs. The volunteer syncs, and `case show --json` carries the receipt
// (who, when, the instructions) and the comment, and no longer awaits. The
// escalation names the supervisor the lead put on call (duty roster), and
// the app's panel gives that line's phone as a tel: link. Last, the
// supervisor hands the case to a second CLI volunteer with a note: that
// device reads the case after its sync, with the whole assignment history.
// Then the app as a volunteer, with the relay down: a raise by the screening
// opens the panel (the on-call phone from the duty roster, the crisis
// protocol at its escalation section in the reader), and “已电话联系值班督导”
// is the volunteer's own receipt, in the store with the raise's source.
// Screenshots also app-escalation.png, app-escalation-protocol.png,
// app-receipt-phone.png.
//
// Needs target/debug/{heartbridge-app,heartbridge,heartbridge-relay} built
// (the app after `npm run build` in ui/), `tauri-driver` on PATH and a
// display (starts Xvfb itself when DISPLAY is unset). Screenshots:
// docs/screenshots/app-queue.png, app-ack.png. Last line: "N passed, N failed".

import path from 'node:path';
import { ROOT, APP, HB, RELAY, work, expect, step, run, needBuilt, display, startRelay, createTeam, startDriver, open, close, waitUntil, hb } from './harness.mjs';

async function main() {
  needBuilt(APP, HB, RELAY);
  await display();

  // A relay and a team: the lead is the CLI.
  const relay = await startRelay();
  const { url: relayUrl, db: relayDb } = relay;
  const created = createTeam(relayDb, 'e2e-supervision');
  const lead = path.join(work, 'lead');
  const vol = path.join(work, 'volunteer');
  const vol2 = path.join(work, 'volunteer-2');
  hb(lead, 'team', 'claim', '--relay', relayUrl, '--token', created.lead_token, '--name', '林组长');
  hb(lead, 'handbook', 'import', path.join(ROOT, 'handbooks'));
  hb(lead, 'sync');
  const supCode = hb(lead, 'team', 'invite', '--role', 'supervisor').code;
  const volCode = hb(lead, 'team', 'invite', '--role', 'volunteer').code;
  hb(vol, 'join', volCode, '--name', '小白');
  hb(vol2, 'join', hb(lead, 'team', 'invite', '--role', 'volunteer').code, '--name', '小陈');

  const base = await startDriver();
  const profile = path.join(work, 'app-supervisor');
  const app = await open(base, profile);
  // "Sync now" on Home, and wait for that sync to finish: the last sync's
  // time (to the millisecond) changes and nothing waits to be sent.
  const lastSynced = () =>
    app.s.exec(`const p = document.querySelector('[data-testid=pending]');
      const t = p && p.closest('dl').querySelector('time[datetime]');
      return t ? t.getAttribute('datetime') : '';`);
  const syncNow = async () => {
    await app.nav('首页');
    await app.heading('你好，王督导');
    await app.el('[data-testid=pending]');
    // (a background sync may be running: its button says so until it ends)
    const button = await app.el('button', '立即同步', { exact: true, timeout: 60000 });
    const before = await lastSynced();
    await app.s.click(button);
    await waitUntil(async () => (await lastSynced()) !== before, 'the sync to finish', 30000);
    await app.el('[data-testid=pending]', '0 条', { timeout: 30000 });
  };

  await step('the app joins the team as a supervisor with the invite code', async () => {
    await app.heading('欢迎使用心桥', 30000);
    await app.setPin();
    await app.click('label', '用邀请码加入团队');
    await app.fill('邀请码', supCode);
    await app.fill('你的名字或称呼', '王督导');
    await app.click('button', '加入团队');
    await app.heading('你好，王督导', 30000);
    const role = (await app.s.text(await app.el('[data-testid=team-state]'))).trim();
    expect(role.includes('督导'), `team state: ${role}`);
    // The lead puts the app's supervisor on call now, on a line with its phone.
    hb(lead, 'duty', 'line', 'add', '--name', '督导值班', '--kind', 'on-call', '--phone', '13800000000');
    const iso = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
    hb(lead, 'duty', 'add', '--line', '督导值班', '--member', '王督导', '--from', iso(Date.now() - 3600_000), '--to', iso(Date.now() + 8 * 3600_000));
    // Everyone learns everyone (the roster), so the volunteer's case key reaches the supervisor.
    await syncNow();
    hb(lead, 'sync');
    hb(vol, 'sync');
    hb(vol2, 'sync');
    await syncNow();
  });

  let caseId = '';
  await step('the CLI volunteer opens a case, then raises it to high while the relay is down, and syncs when it is back', async () => {
    caseId = hb(vol, 'case', 'new', '--alias', '小雨', '--risk', 'low').id;
    hb(vol, 'case', 'contact', caseId, '--channel', 'hotline', '--text', '第一次来电，说最近睡不着。');
    hb(vol, 'sync');
    await relay.stop();
    hb(vol, 'case', 'set', caseId, '--risk', 'high');
    const c = hb(vol, 'case', 'show', caseId);
    expect(c.escalation === 'awaiting' && c.awaiting_receipt === true, `after the raise: ${c.escalation} ${c.awaiting_receipt}`);
    expect(c.escalations.length === 1 && c.escalations[0].level === 'high' && c.escalations[0].receipt === null, 'no escalation awaiting');
    expect(c.escalations[0].on_call_name === '王督导', `the escalation names ${c.escalations[0].on_call_name || 'nobody'} on call`);
    const offline = (() => {
      try {
        hb(vol, 'sync');
        return 'synced';
      } catch (e) {
        return JSON.parse(String(e.stdout || e.stderr || '{}').trim().split('\n').pop() || '{}').error ?? String(e.status);
      }
    })();
    expect(offline === 'network', `the volunteer's sync with the relay down: ${offline}`);
    expect(hb(vol, 'status').sync.pending > 0, 'the raise is not waiting to be sent');
    await relay.start();
    hb(vol, 'sync');
    expect(hb(vol, 'status').sync.pending === 0, 'the raise was not delivered');
  });

  await step('the supervisor syncs: the escalation is at the top of the queue, 未获督导确认', async () => {
    await syncNow();
    await app.click('[data-testid=home-queue]', '督导队列', { timeout: 20000 });
    await app.heading('督导队列');
    const top = await app.s.text(await app.el('[data-testid=queue-escalations] a', null, { timeout: 20000 }));
    expect(top.includes('小雨') && top.includes('未获督导确认') && top.includes('小白'), `top of the queue: ${top}`);
    expect(/已等待 (\d+ 小时 )?\d+ 分钟/.test(top), `no waiting time: ${top}`);
    await app.shot('queue', { scrollTo: 'top' });
  });

  const instructions = '今晚每小时回拨一次，明早我联系班主任；她若提到农药，立即拨打 120。';
  const comment = '问到了具体计划，也确认了手段，判断准确。';
  await step('the supervisor reviews the case, acknowledges the escalation with instructions and comments', async () => {
    await app.click('[data-testid=queue-escalations] a', '小雨');
    await app.heading('小雨');
    await app.el('[data-testid=escalation-panel]', '已升级，等待督导确认');
    // The panel gives the on-call line's phone from the duty roster, read on this device.
    await app.el('[data-testid=on-call]', '值班督导：王督导');
    const tel = await app.s.exec(`return document.querySelector('[data-testid=on-call-phone]').getAttribute('href')`);
    expect(tel === 'tel:13800000000', `on-call phone link: ${tel}`);
    await app.click('button', '标记为已审阅');
    await app.el('[data-testid=review-state]', '王督导 于');
    await app.fill('给志愿者的指示', instructions);
    await app.click('button', '确认并发送指示');
    const receipt = await app.s.text(await app.el('[data-testid=receipt]', '确认', { timeout: 20000 }));
    expect(/王督导 于 \d\d:\d\d 确认（升级后 \d+ 分钟）/.test(receipt), `receipt: ${receipt}`);
    expect(receipt.includes(instructions), `instructions missing: ${receipt}`);
    expect(!(await app.s.exec(`return !!document.querySelector('[data-testid=escalation-panel]')`)), 'the panel stayed after the receipt');
    await app.shot('ack', { scrollTo: 'top' });
    await app.fill('写一条意见', comment);
    await app.click('button', '添加意见');
    await app.el('[data-testid=comments] li', comment);
    await syncNow();
  });

  await step('the CLI volunteer syncs: the case carries the receipt (who, when, instructions) and the comment, and no longer awaits', async () => {
    hb(vol, 'sync');
    const c = hb(vol, 'case', 'show', caseId);
    expect(c.escalation === 'acknowledged' && c.awaiting_receipt === false, `after the receipt: ${c.escalation} ${c.awaiting_receipt}`);
    const r = c.escalations[c.escalations.length - 1].receipt;
    expect(r && r.by_name === '王督导' && r.mode === 'app', `receipt: ${JSON.stringify(r && { by: r.by_name, mode: r.mode })}`);
    expect(r.instructions === instructions, 'the instructions did not arrive intact');
    expect(Number.isFinite(Date.parse(r.at)) && Date.parse(r.at) >= Date.parse(c.escalations[0].at), `receipt time: ${r.at}`);
    expect(c.review_state === 'reviewed' && c.review_by === '王督导', `review: ${c.review_state} by ${c.review_by}`);
    const said = c.comments.find((x) => x.text === comment);
    expect(said && said.author_name === '王督导', 'the supervisor’s comment did not reach the volunteer');
    const listed = hb(vol, 'case', 'list').find((x) => x.id === caseId);
    expect(listed && listed.awaiting_receipt === false, 'the list still says awaiting');
  });

  await step('the supervisor hands the case to another volunteer with a note; that device reads it after its sync', async () => {
    await app.nav('个案');
    await app.click('[data-testid=case-list] a', '小雨', { timeout: 20000 });
    await app.heading('小雨');
    const select = { 'element-6066-11e4-a52e-4f735466cecf': await app.label('转交给') };
    await app.s.waitFor(
      () => app.s.exec(`return [...arguments[0].options].some((o) => o.textContent.includes('小陈')) || null`, [select]),
      20000,
      'the member list',
    );
    await app.s.exec(
      `const s = arguments[0]; s.value = [...s.options].find((o) => o.textContent.includes('小陈')).value; s.dispatchEvent(new Event('change', { bubbles: true }));`,
      [select],
    );
    await app.fill('交接说明', '小白这周下班早，由小陈接着每天回访。');
    await app.click('button', '转交个案');
    await app.el('[data-testid=assignee]', '当前由 小陈 负责', { timeout: 20000 });
    await syncNow();
    hb(vol2, 'sync');
    const c = hb(vol2, 'case', 'show', caseId);
    expect(c.assignee_name === '小陈', `assignee on the new device: ${c.assignee_name}`);
    const a = c.assignments[c.assignments.length - 1];
    expect(a.from_name === '小白' && a.to_name === '小陈' && a.by_name === '王督导' && a.note.includes('由小陈接着每天回访'), 'the assignment history is not complete');
    expect(c.contacts.some((x) => x.author === '小白'), 'the first contact is no longer credited to its writer');
  });

  await close(app);

  // A second supervisor, on the CLI, in the roster before the app volunteer
  // joins: the volunteer's cases are sealed to it too.
  const sup2 = path.join(work, 'supervisor-cli');
  hb(sup2, 'join', hb(lead, 'team', 'invite', '--role', 'supervisor').code, '--name', '周督导');
  hb(sup2, 'sync');
  hb(lead, 'sync');

  // ------------------------------------- the app as a volunteer, offline
  const volProfile = path.join(work, 'app-volunteer');
  const volApp = await open(base, volProfile);
  const volCode2 = hb(lead, 'team', 'invite', '--role', 'volunteer').code;
  let ownCase = '';
  const answer = async (legend, choice) => {
    const label = await volApp.s.waitFor(
      () =>
        volApp.s.exec(
          `const [legend, choice] = arguments;
           const f = [...document.querySelectorAll('fieldset')].find((f) => f.querySelector('legend')?.textContent.trim().startsWith(legend));
           return f ? [...f.querySelectorAll('label')].find((l) => l.textContent.trim() === choice) || null : null;`,
          [legend, choice],
        ),
      15000,
      `the answer ${choice} to ${legend}`,
    );
    await volApp.s.click(label);
  };
  await step('a volunteer in the app raises a case to high by the screening with the relay down: the panel gives the on-call phone and the crisis protocol', async () => {
    await volApp.heading('欢迎使用心桥', 30000);
    await volApp.setPin();
    await volApp.click('label', '用邀请码加入团队');
    await volApp.fill('邀请码', volCode2);
    await volApp.fill('你的名字或称呼', '小周');
    await volApp.click('button', '加入团队');
    await volApp.heading('你好，小周', 30000);
    // The team's handbooks and duty roster arrive by sync.
    await volApp.nav('手册');
    await volApp.el('a', '危机风险评估与转介规程', { timeout: 30000 });
    await volApp.nav('个案');
    await volApp.click('a', '新建个案');
    await volApp.fill('化名或代号', '阿明');
    await volApp.click('button', '建立个案');
    await volApp.heading('阿明');
    ownCase = await volApp.s.exec(`return decodeURIComponent(location.hash.split('/')[2] || '')`);
    // what a volunteer may not do is not there
    for (const text of ['标记为已审阅', '确认并发送指示', '转交个案', '添加意见'])
      expect(!(await volApp.present('button', text)), `a volunteer is offered “${text}”`);
    await relay.stop();
    await volApp.click('button', '做一次筛查');
    for (const [q, a] of [['自杀想法', '是'], ['具体计划', '是'], ['可用手段', '是'], ['时间', '否'], ['既往尝试', '否'], ['自伤行为', '否'], ['保护因素', '是']]) await answer(q, a);
    await volApp.click('button', '确认风险等级');
    await volApp.el('[data-testid=escalation-panel]', '已升级，等待督导确认', { timeout: 20000 });
    await volApp.el('[data-testid=on-call]', '值班督导：王督导');
    const tel = await volApp.s.exec(`return document.querySelector('[data-testid=on-call-phone]').getAttribute('href')`);
    expect(tel === 'tel:13800000000', `on-call phone link: ${tel}`);
    await volApp.el('.case-head [data-testid=awaiting]', '未获督导确认');
    await volApp.shot('escalation', { scrollTo: '[data-testid=escalation-panel]' });
    await volApp.click('[data-testid=crisis-protocol]', '打开危机处置规程');
    await volApp.heading('九、升级链条与紧急处置', 20000);
    await volApp.shot('escalation-protocol', { scrollTo: 'top' });
    await volApp.s.exec('history.back()');
    await volApp.heading('阿明', 20000);
  });

  await step('offline, “已电话联系值班督导” is the volunteer’s own receipt; the store has it and the raise, from the screening', async () => {
    await volApp.fill('通话要点', '王督导让我陪他联系班主任。');
    await volApp.click('button', '已电话联系值班督导');
    const said = await volApp.s.text(await volApp.el('[data-testid=receipt]', '已电话联系值班督导', { timeout: 20000 }));
    expect(/小周 于 \d\d:\d\d 记录：已电话联系值班督导/.test(said), `receipt: ${said}`);
    expect(!(await volApp.s.exec(`return !!document.querySelector('.case-head [data-testid=awaiting]')`)), 'the case still says 未获督导确认');
    await volApp.shot('receipt-phone', { scrollTo: '[data-testid=receipts]' });
    const c = hb(volProfile, 'case', 'show', ownCase);
    const e = c.escalations[0];
    expect(e && e.source === 'screening' && e.level === 'high' && e.on_call_name === '王督导', `escalation: ${JSON.stringify(e && { source: e.source, level: e.level, on_call: e.on_call_name })}`);
    expect(e.receipt && e.receipt.mode === 'phone' && e.receipt.by_name === '小周' && e.receipt.instructions === '王督导让我陪他联系班主任。', 'the phone receipt is not in the store');
    expect(c.awaiting_receipt === false, 'the store still says awaiting');
    await relay.start();
  });

  await step('online again, a new escalation in the app waits for its receipt; a supervisor acknowledges it on the CLI; after its next sync the app shows the receipt and no longer says 未获督导确认', async () => {
    await volApp.nav('个案');
    await volApp.click('a', '新建个案');
    await volApp.fill('化名或代号', '阿杰');
    await volApp.click('button', '建立个案');
    await volApp.heading('阿杰');
    const second = await volApp.s.exec(`return decodeURIComponent(location.hash.split('/')[2] || '')`);
    await volApp.click('button', '做一次筛查');
    for (const [q, a] of [['自杀想法', '是'], ['具体计划', '是'], ['可用手段', '是'], ['时间', '否'], ['既往尝试', '否'], ['自伤行为', '否'], ['保护因素', '是']]) await answer(q, a);
    await volApp.click('button', '确认风险等级');
    await volApp.el('.case-head [data-testid=awaiting]', '未获督导确认', { timeout: 20000 });
    const volSync = async () => {
      await volApp.nav('首页');
      await volApp.heading('你好，小周');
      const button = await volApp.el('button', '立即同步', { exact: true, timeout: 60000 });
      await volApp.s.click(button);
      await volApp.el('[data-testid=pending]', '0 条', { timeout: 30000 });
    };
    await volSync();
    hb(sup2, 'sync');
    const queued = hb(sup2, 'case', 'show', second);
    expect(queued.awaiting_receipt === true, 'the supervisor does not see the escalation awaiting');
    const told = '先稳住情绪，今晚十点前再回访一次。';
    hb(sup2, 'case', 'ack', second, '--instructions', told);
    hb(sup2, 'sync');
    await waitUntil(async () => {
      await volSync();
      await volApp.nav('个案');
      await volApp.click('[data-testid=case-list] a', '阿杰', { timeout: 20000 });
      await volApp.heading('阿杰');
      return volApp.present('[data-testid=receipt]', told);
    }, 'the receipt on the volunteer’s device', 60000);
    const said = await volApp.s.text(await volApp.el('[data-testid=receipt]', told));
    expect(said.includes('周督导'), `the receipt does not name the supervisor: ${said}`);
    expect(!(await volApp.s.exec(`return !!document.querySelector('.case-head [data-testid=awaiting]')`)), 'the case still says 未获督导确认 after the receipt');
    await volApp.shot('receipt-app', { scrollTo: '[data-testid=receipts]' });
  });
}

await run('supervision-e2e', main);
