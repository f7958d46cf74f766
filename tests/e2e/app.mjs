// End to end: the real built app in a real WebKit window, driven through
// tauri-driver and WebKitWebDriver, with a real relay on loopback and the
// `heartbridge` CLI as a second device.
//
//   node tests/e2e/app.mjs
//
// Needs target/debug/{heartbridge-app,heartbridge,heartbridge-relay} built,
// `tauri-driver` on PATH (cargo install tauri-driver), and a display
// (starts Xvfb itself when DISPLAY is unset). Saves screenshots of the main
// screens to docs/screenshots/app-*.png. Last line: "N passed, N failed".
//
// The app lock: the PIN is set on the first run (twice), "Lock now" and
// Ctrl+L lock, a locked page holds none of the profile, a wrong PIN says the
// tries left, the right one brings the note back, and with `--lock-after 3`
// the app locks itself when left alone, and the window losing the X focus
// (moved by tests/e2e/xfocus.py: Xvfb has no window manager) locks it too.
//
// The app as a team's lead (a second team on the same relay): its invite
// card says until when the code is valid; it removes the CLI member in
// Settings after a confirmation, and that device erases itself at its next
// sync. A note typed and not saved survives Ctrl+L and the window losing the
// focus: it is back in the form after the PIN, and never in the locked DOM.
//
// The relay is stopped and started again (same port, same database) to show
// what the app says while it cannot be reached: changes wait and are
// counted, the shift is "not delivered yet", the connection state says so,
// and one "Sync now" after the relay is back delivers and says so.

import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT, APP, HB, RELAY, PIN, work, expect, step, run, needBuilt, display, startRelay, createTeam, startDriver, open as openApp, waitUntil, hb } from './harness.mjs';

/** Nothing of the profile is in the page: not in the DOM, its text, inputs, or the title. */
async function expectNothingShown(app, secrets) {
  const page = await app.s.exec(
    `return [document.documentElement.outerHTML, document.body.innerText, document.title,
             [...document.querySelectorAll('input, textarea')].map((e) => e.value).join(' ')].join('\\n')`,
  );
  for (const s of secrets) expect(!page.includes(s), `the locked page still holds “${s}”`);
  expect(!(await app.s.exec(`return !!document.querySelector('nav, [data-testid=timeline], [data-testid=case-list]')`)), 'the shell is still in the DOM');
}

async function main() {
  needBuilt(APP, HB, RELAY);
  await display();

  // A relay with a team; the lead is the CLI.
  const relay = await startRelay();
  const { url: relayUrl, db: relayDb } = relay;
  const created = createTeam(relayDb, 'e2e');
  const lead = path.join(work, 'lead');
  hb(lead, 'team', 'claim', '--relay', relayUrl, '--token', created.lead_token, '--name', '林老师');
  // This walk has the lead read the volunteer's cases (the team setting;
  // by default a lead sees statistics only: tests/e2e/team.mjs).
  hb(lead, 'team', 'settings', '--lead-reads-cases', 'true');
  hb(lead, 'handbook', 'import', path.join(ROOT, 'handbooks'));
  hb(lead, 'sync');

  const base = await startDriver();
  const open = (profile, args = []) => openApp(base, profile, args);
  const solo = path.join(work, 'app-solo');
  const note = '第一次来电，刚转学两个月，说同学笑她口音。否认自杀想法。';

  // ------------------------------------------------ a standalone profile
  let app = await open(solo);
  await step('first run: set a PIN (twice), then create the profile', async () => {
    await app.heading('欢迎使用心桥', 30000);
    await app.shot('first-run');
    // Too short, then two different ones: refused before anything is created.
    await app.setPin('12345', '12345');
    await app.el('[role=alert]', 'PIN 或密码至少要 6 位');
    await app.setPin(PIN, '135791');
    await app.el('[role=alert]', '两次输入的不一样');
    expect(!existsSync(path.join(solo, 'heartbridge.db')), 'a profile was created before the PIN was set');
    await app.setPin(PIN, PIN);
    await app.el('[data-testid=pin-done]', 'PIN 已设置');
    await app.fill('你的名字或称呼', '陈静');
    await app.click('button', '开始使用');
    await app.heading('你好，陈静');
    await app.shot('home');
  });

  let hitTitle = '';
  await step('handbooks: search 危机 in Chinese and open the hit', async () => {
    await app.nav('手册');
    await app.heading('手册');
    await app.el('a', '危机风险评估与转介规程');
    await app.s.type(await app.el('input[type=search]'), '危机');
    const hit = await app.el('[data-testid=hits] a');
    const marks = await app.s.exec(`return [...document.querySelectorAll('[data-testid=hits] mark')].map(m => m.textContent)`);
    expect(marks.length > 0 && marks.every((m) => m === '危机'), `marks ${JSON.stringify(marks)}`);
    hitTitle = (await app.s.exec(`return document.querySelector('[data-testid=hits] .hit-title').textContent.trim()`)) ?? '';
    await app.shot('search');
    await app.s.click(hit);
    await app.heading(hitTitle);
    const html = await app.s.text(await app.el('[data-testid=section-html]'));
    expect(html.length > 20, 'the section is empty');
    await app.shot('reader');
  });

  await step('cases: create a case and add a contact', async () => {
    await app.nav('个案');
    await app.heading('个案');
    await app.click('a', '新建个案');
    await app.heading('新建个案');
    await app.fill('化名或代号', '小北');
    const group = await app.label('群体');
    await app.s.click(await app.s.exec(`return arguments[0].querySelector('option[value=migrant]')`, [{ 'element-6066-11e4-a52e-4f735466cecf': group }]));
    expect((await app.s.exec('return arguments[0].value', [{ 'element-6066-11e4-a52e-4f735466cecf': group }])) === 'migrant', 'group not chosen');
    await app.click('label', '中风险');
    await app.click('button', '建立个案');
    await app.heading('小北');
    await app.fill('时长（分钟）', '25');
    await app.s.type(await app.s.waitFor(() => app.s.exec(`return [...document.querySelectorAll('label')].find(l => l.textContent.trim() === '记录')?.control ?? null`), 10000, 'note field'), note);
    await app.click('button', '保存记录');
    await app.el('[data-testid=timeline] li', note);
    await app.shot('case');
  });

  await step('lock now: the lock screen shows, the note and the profile leave the DOM, the store is closed', async () => {
    await app.click('[data-testid=lock-now]');
    await app.heading('心桥已锁定');
    await expectNothingShown(app, [note, '小北', '陈静', '第一次来电']);
    // The back end closed the store: a command that reads it is refused.
    const kind = await app.s.execAsync(
      `const done = arguments[arguments.length - 1];
       window.__TAURI_INTERNALS__.invoke('case_list', {}).then(() => done('read'), (e) => done(e && e.kind));`,
    );
    expect(kind === 'locked', `case_list while locked: ${kind}`);
    // On disk the note is only ciphertext, beside the keys file.
    expect(existsSync(path.join(solo, 'heartbridge.keys')), 'no keys file beside the database');
    for (const f of readdirSync(solo).filter((f) => f.startsWith('heartbridge.db'))) {
      const bytes = readFileSync(path.join(solo, f));
      for (const secret of [note, '小北', '陈静']) expect(!bytes.includes(Buffer.from(secret)), `${f} holds “${secret}” in clear`);
    }
    await app.shot('locked');
  });

  await step('a wrong PIN says how many tries are left', async () => {
    await app.fill('PIN 或密码', '000000');
    await app.click('button', '解锁');
    const tries = await app.s.text(await app.el('[data-testid=tries-left]'));
    expect(tries.includes('还可以再试 9 次'), `tries left: ${tries}`);
    await expectNothingShown(app, [note, '小北', '陈静']);
    await app.shot('wrong-pin');
  });

  await step('the right PIN unlocks, and the note is back', async () => {
    await app.fill('PIN 或密码', PIN);
    await app.click('button', '解锁');
    await app.heading('小北', 20000);
    await app.el('[data-testid=timeline] li', note);
  });

  await step('Ctrl+L locks too, and unlocking again starts the count afresh', async () => {
    await app.s.chord('\uE009', 'l');
    await app.heading('心桥已锁定');
    await expectNothingShown(app, [note, '小北']);
    await app.fill('PIN 或密码', '111111');
    await app.click('button', '解锁');
    await app.el('[data-testid=tries-left]', '还可以再试 9 次');
    await app.fill('PIN 或密码', PIN);
    await app.click('button', '解锁');
    await app.heading('小北', 20000);
  });

  await step('restart the app: it opens locked, and the PIN opens everything as it was', async () => {
    await app.s.end();
    app = await open(solo);
    await app.heading('心桥已锁定', 30000);
    await expectNothingShown(app, [note, '小北', '陈静']);
    await app.fill('PIN 或密码', PIN);
    await app.click('button', '解锁');
    await app.heading('你好，陈静', 30000);
    await app.nav('个案');
    await app.click('[data-testid=case-list] a', '小北');
    await app.heading('小北');
    await app.el('[data-testid=timeline] li', note);
    await app.nav('手册');
    await app.s.type(await app.el('input[type=search]'), '安全计划');
    await app.el('[data-testid=hits] a');
  });
  await app.s.end();

  // The inactivity lock, with the time set short for this run by the flag
  // (the setting's shortest is 1 minute; the default 5).
  app = await open(solo, ['--lock-after', '3']);
  await step('inactivity: with --lock-after 3 the app locks itself when left alone, and drops the note', async () => {
    await app.heading('心桥已锁定', 30000);
    await app.fill('PIN 或密码', PIN);
    await app.click('button', '解锁');
    await app.heading('你好，陈静', 30000);
    await app.nav('个案');
    await app.click('[data-testid=case-list] a', '小北');
    await app.el('[data-testid=timeline] li', note);
    // Nothing touches the window now; the lock comes by itself.
    await app.heading('心桥已锁定', 20000);
    await app.el('p', '因长时间无操作已自动锁定');
    await expectNothingShown(app, [note, '小北', '陈静']);
    await app.fill('PIN 或密码', PIN);
    await app.click('button', '解锁');
    await app.heading('小北', 20000);
    await app.nav('设置');
    await app.el('[data-testid=lock-settings] p', '本次运行由启动参数设为 3 秒');
  });
  await app.s.end();

  // ------------------------------------------ a team device and the CLI lead
  const code = hb(lead, 'team', 'invite', '--role', 'volunteer').code;
  const member = path.join(work, 'app-member');
  app = await open(member);
  const marker = `来自应用的记录-${Date.now()}`;
  await step('join the team with an invite code; handbooks arrive by sync', async () => {
    await app.heading('欢迎使用心桥', 30000);
    await app.setPin(PIN, PIN);
    await app.click('label', '用邀请码加入团队');
    await app.fill('邀请码', code);
    await app.fill('你的名字或称呼', '小王');
    await app.click('button', '加入团队');
    await app.heading('你好，小王', 20000);
    await app.nav('手册');
    await app.el('a', '闭环场馆志愿者心理急救手册', { timeout: 30000 });
  });

  await step('a note written in the app reaches the lead', async () => {
    await app.nav('个案');
    await app.click('a', '新建个案');
    await app.fill('化名或代号', '阿杰');
    await app.click('button', '建立个案');
    await app.heading('阿杰');
    await app.s.type(await app.s.waitFor(() => app.s.exec(`return [...document.querySelectorAll('label')].find(l => l.textContent.trim() === '记录')?.control ?? null`), 10000, 'note field'), marker);
    await app.click('button', '保存记录');
    await app.el('[data-testid=timeline] li', marker);
    await app.nav('首页');
    await app.click('button', '立即同步');
    await app.el('[data-testid=pending]', '0 条', { timeout: 30000 });
    await app.shot('home-synced');
    hb(lead, 'sync');
    const cases = hb(lead, 'case', 'list');
    const c = cases.find((x) => x.alias === '阿杰');
    expect(c, `the lead did not receive the case: ${JSON.stringify(cases)}`);
    const shown = hb(lead, 'case', 'show', c.id);
    expect(shown.contacts.some((x) => x.text === marker && x.author === '小王'), 'the note did not arrive intact');
    hb(lead, 'case', 'contact', c.id, '--channel', 'in-person', '--text', '督导已阅，明天回访。');
    hb(lead, 'case', 'set', c.id, '--risk', 'high');
    hb(lead, 'sync');
  });

  await step("the app shows the lead's change after its next sync", async () => {
    await app.click('button', '立即同步');
    await app.nav('个案');
    await app.click('[data-testid=case-list] a', '阿杰', { timeout: 20000 });
    await app.el('[data-testid=timeline] li', '督导已阅，明天回访。', { timeout: 20000 });
    await app.el('*', '高风险');
    await app.shot('case-synced');
  });

  // ------------------------------------------- the relay goes away and back
  const offlineNote = `断网时写的记录-${Date.now()}`;
  const teamState = async () => (await app.s.text(await app.el('[data-testid=team-state]'))).trim();
  const pendingIs = async (n) => app.el('[data-testid=pending]', `${n} 条`, { exact: true, timeout: 20000 });
  // Notices cover the bottom of a phone screen: close them before a screenshot.
  const clearView = async ({ top = true } = {}) => {
    await app.s.exec(`document.querySelectorAll('.toasts button.close').forEach((b) => b.click()); if (arguments[0]) window.scrollTo(0, 0);`, [top]);
  };

  await step('relay down: a contact written now waits, and Home and Settings count it like the store does', async () => {
    await app.nav('首页');
    await app.heading('你好，小王');
    await app.click('button', '开始值班');
    await app.el('p', '值班中', { exact: true });
    await pendingIs(0);
    await relay.stop();
    await app.nav('个案');
    await app.click('[data-testid=case-list] a', '阿杰');
    await app.heading('阿杰');
    await app.click('summary', '记录一次联系');
    await app.s.type(await app.s.waitFor(() => app.s.exec(`return [...document.querySelectorAll('label')].find(l => l.textContent.trim() === '记录' && l.getClientRects().length > 0)?.control ?? null`), 10000, 'note field'), offlineNote);
    await app.click('button', '保存记录');
    await app.el('[data-testid=timeline] li', offlineNote);
    const stored = hb(member, 'status').sync.pending;
    expect(stored === 1, `the store has ${stored} changes waiting, not 1`);
    await app.nav('首页');
    await app.heading('你好，小王');
    await pendingIs(1);
    await app.el('dt', '待发送的更改');
    await clearView();
    await app.shot('home-waiting');
    await app.nav('设置');
    await app.heading('设置');
    await pendingIs(1);
    await app.el('dt', '待发送的更改');
  });

  await step('relay down: ending the shift says “not delivered yet”, and the team is not “connected”', async () => {
    await app.nav('首页');
    await app.heading('你好，小王');
    await app.click('button', '结束值班并同步');
    const note = await app.s.text(await app.el('[data-testid=not-delivered]', null, { timeout: 30000 }));
    expect(note.includes('尚未送达'), `not delivered: ${note}`);
    expect(note.includes('本班的 1 条更改都还在本设备上等待发送'), `not delivered: ${note}`);
    await waitUntil(async () => /无法连接中继服务器（自 \d\d:\d\d 起）/.test(await teamState()), 'the state to say the relay cannot be reached');
    expect(!(await teamState()).includes('团队已连接'), `team state: ${await teamState()}`);
    await app.el('[data-testid=connection]', '无法连接中继服务器');
    await pendingIs(1);
    await clearView();
    await app.shot('shift-not-delivered');
  });

  await step('relay back: one “Sync now” delivers the shift’s change, says so, and the team is connected again', async () => {
    await relay.start();
    await app.click('button', '立即同步');
    const receipt = await app.s.text(await app.el('[data-testid=receipt]', null, { timeout: 30000 }));
    expect(/全部 1 条更改已于 \d\d:\d\d 送达中心中继/.test(receipt), `receipt: ${receipt}`);
    await pendingIs(0);
    await waitUntil(async () => (await teamState()).includes('团队已连接'), 'the state to say connected');
    await app.el('[data-testid=connection]', '团队已连接');
    await clearView();
    await app.shot('home-delivered');
    hb(lead, 'sync');
    const c = hb(lead, 'case', 'list').find((x) => x.alias === '阿杰');
    const shown = hb(lead, 'case', 'show', c.id);
    expect(shown.contacts.some((x) => x.text === offlineNote && x.author === '小王'), 'the offline note did not reach the lead');
  });

  await step('relay down again: the state says the relay cannot be reached', async () => {
    await relay.stop();
    await app.click('button', '立即同步');
    await waitUntil(async () => /无法连接中继服务器（自 \d\d:\d\d 起）/.test(await teamState()), 'the state to say the relay cannot be reached');
    await app.el('[data-testid=connection]', '无法连接中继服务器');
    await clearView({ top: false });
    await app.shot('home-relay-down');
  });

  await step('the window losing the focus (another window in front) locks the app at once', async () => {
    // Xvfb has no window manager: the focus is moved as one would move it.
    const focus = (how) => execFileSync('python3', [path.join(ROOT, 'tests', 'e2e', 'xfocus.py'), how], { encoding: 'utf8' });
    await app.heading('你好，小王');
    focus('in');
    // Give the window the focus first; it must still be unlocked then.
    await app.heading('你好，小王');
    focus('out');
    await app.heading('心桥已锁定', 20000);
    await app.el('p', '窗口离开屏幕时已自动锁定');
    // The page itself stayed visible: the lock came from the window's focus event.
    expect((await app.s.exec('return document.visibilityState')) === 'visible', 'the page was hidden');
    await expectNothingShown(app, [marker, offlineNote, '小王', '阿杰']);
    focus('in');
    await app.fill('PIN 或密码', PIN);
    await app.click('button', '解锁');
    await app.heading('你好，小王', 20000);
  });
  await app.s.end();

  // ------------------------- the app as a team's lead: invite, remove, drafts
  // (the relay was left stopped above)
  await relay.start();
  const created2 = createTeam(relayDb, 'e2e-app-lead');
  const leadApp = path.join(work, 'app-lead');
  const cliMember = path.join(work, 'cli-member');
  let inviteCode = '';
  app = await open(leadApp);
  await step('the app claims a team; its invite card says until when the code is valid, and that it carries the key and works once', async () => {
    await app.heading('欢迎使用心桥', 30000);
    await app.setPin(PIN, PIN);
    await app.click('label', '认领团队（负责人）');
    await app.fill('中继服务器地址', relayUrl);
    await app.fill('负责人令牌', created2.lead_token);
    await app.fill('你的名字或称呼', '周组长');
    await app.click('button', '认领团队');
    // The claim's answer: the team is made, or a notice says why not.
    const said = await app.s.waitFor(
      () =>
        app.s.exec(
          `const text = (css) => [...document.querySelectorAll(css)].map((e) => e.textContent.trim()).filter(Boolean).join(' | ');
           const made = text('[role=status]');
           if (made.includes('团队已建立')) return made;
           return text('[role=alert], .toasts li') || null;`,
        ),
      30000,
      'an answer to the claim',
    );
    expect(said.includes('团队已建立'), `the claim: ${said}`);
    await app.click('button', '生成邀请码');
    const expiry = await app.s.text(await app.el('[data-testid=invite-expiry]', '有效期至', { timeout: 20000 }));
    // 24 hours from now, in local time: tomorrow's date is in it.
    const tomorrow = new Date(Date.now() + 24 * 3600 * 1000);
    expect(expiry.includes(`${tomorrow.getMonth() + 1}月${tomorrow.getDate()}日`), `expiry: ${expiry}`);
    await app.el('[data-testid=invite] p', '只能使用一次');
    await app.el('[data-testid=invite] p', '带有团队当前的密钥');
    inviteCode = await app.s.exec(`return document.getElementById('invite-code').value`);
    expect(/^HB3\./.test(inviteCode), `invite code: ${inviteCode.slice(0, 4)}…`);
    await app.shot('invite-expiry');
    await app.click('button', '进入心桥');
    await app.heading('你好，周组长', 20000);
  });

  await step('the lead removes a member in Settings after a confirmation; the removed device erases itself at its next sync', async () => {
    hb(cliMember, 'join', inviteCode, '--name', '小周');
    hb(cliMember, 'sync');
    await app.click('button', '立即同步');
    await app.el('[data-testid=pending]', '0 条', { timeout: 30000 });
    await app.nav('设置');
    await app.heading('设置');
    await app.el('.members li', '小周', { timeout: 20000 });
    // Only other members can be removed: the lead's own entry has no button.
    const buttons = await app.s.exec(`return [...document.querySelectorAll('.members li')].map((li) => [li.querySelector('strong').textContent, !!li.querySelector('button')])`);
    expect(JSON.stringify(buttons) === JSON.stringify([['周组长', false], ['小周', true]]) || JSON.stringify(buttons) === JSON.stringify([['小周', true], ['周组长', false]]), `members: ${JSON.stringify(buttons)}`);
    await app.click('button', '把小周移出团队');
    const ask = await app.s.text(await app.el('[data-testid=remove-confirm]'));
    for (const words of ['中继服务器会立即拒绝这台设备', '新的团队密钥', '下次同步', '清除它上面的资料']) expect(ask.includes(words), `the confirmation does not say “${words}”: ${ask}`);
    await app.shot('remove-confirm');
    await app.click('button', '确认移出');
    await app.el('[data-testid=removal]', '已将“小周”移出团队，新的团队密钥已随同步发出', { timeout: 30000 });
    await app.el('.members li.revoked', '已停用', { timeout: 20000 });
    // The removed device: refused by the relay, then erased on the lead's signed record.
    let out = '';
    try {
      hb(cliMember, 'sync');
      out = 'synced';
    } catch (e) {
      out = String(e.stderr ?? '') + String(e.stdout ?? '');
    }
    expect(out !== 'synced', 'the removed device could still sync');
    const left = existsSync(cliMember) ? readdirSync(cliMember).filter((f) => f === 'heartbridge.db' || f === 'heartbridge.keys') : [];
    expect(left.length === 0, `the removed device still holds ${left.join(', ')} (${out.slice(0, 200)})`);
  });

  const draft = `还没写完的记录-${Date.now()}：她说最近睡不着，`;
  const noteField = () => app.s.waitFor(() => app.s.exec(`return [...document.querySelectorAll('label')].find(l => l.textContent.trim() === '记录')?.control ?? null`), 10000, 'note field');
  await step('a note still being typed survives Ctrl+L: handed over before the lock, not in the DOM while locked, restored after the PIN', async () => {
    await app.nav('个案');
    await app.click('a', '新建个案');
    await app.fill('化名或代号', '小安');
    await app.click('button', '建立个案');
    await app.heading('小安');
    await app.s.type(await noteField(), draft);
    await app.s.chord('\uE009', 'l');
    await app.heading('心桥已锁定');
    await expectNothingShown(app, [draft, '小安']);
    for (const f of readdirSync(leadApp).filter((f) => f.startsWith('heartbridge.db'))) {
      expect(!readFileSync(path.join(leadApp, f)).includes(Buffer.from(draft)), `${f} holds the draft in clear`);
    }
    await app.fill('PIN 或密码', PIN);
    await app.click('button', '解锁');
    await app.heading('小安', 20000);
    await app.el('[data-testid=draft-restored]', '已恢复未保存的记录', { timeout: 20000 });
    const value = await app.s.exec(`return document.getElementById('contact-text').value`);
    expect(value === draft, `the form holds “${value}”`);
    await app.shot('draft-restored');
  });

  await step('a draft survives the window losing the focus too; once saved it is no longer offered', async () => {
    const focus = (how) => execFileSync('python3', [path.join(ROOT, 'tests', 'e2e', 'xfocus.py'), how], { encoding: 'utf8' });
    focus('in');
    await app.heading('小安');
    const more = '第二次说到考试。';
    await app.s.type(await noteField(), draft + more);
    focus('out');
    await app.heading('心桥已锁定', 20000);
    await expectNothingShown(app, [draft, more, '小安']);
    focus('in');
    await app.fill('PIN 或密码', PIN);
    await app.click('button', '解锁');
    await app.heading('小安', 20000);
    await app.el('[data-testid=draft-restored]', '已恢复未保存的记录', { timeout: 20000 });
    const value = await app.s.exec(`return document.getElementById('contact-text').value`);
    expect(value === draft + more, `the form holds “${value}”`);
    await app.click('button', '保存记录');
    await app.el('[data-testid=timeline] li', more);
    await app.s.chord('\uE009', 'l');
    await app.heading('心桥已锁定');
    await app.fill('PIN 或密码', PIN);
    await app.click('button', '解锁');
    await app.heading('小安', 20000);
    await app.el('[data-testid=timeline] li', more);
    expect(!(await app.s.exec(`return !!document.querySelector('[data-testid=draft-restored]')`)), 'a saved note is offered again as a draft');
    expect((await app.s.exec(`return document.getElementById('contact-text').value`)) === '', 'the note field is not empty');
  });
  await app.s.end();

  // ------------------------------------- too many wrong PINs erase a profile
  const doomed = path.join(work, 'app-doomed');
  app = await open(doomed);
  await step('ten wrong PINs in a row erase the profile; the app says so and starts again', async () => {
    await app.heading('欢迎使用心桥', 30000);
    await app.setPin(PIN, PIN);
    await app.fill('你的名字或称呼', '小李');
    await app.click('button', '开始使用');
    await app.heading('你好，小李');
    await app.click('[data-testid=lock-now]');
    await app.heading('心桥已锁定');
    for (let left = 9; left >= 1; left--) {
      await app.fill('PIN 或密码', `wrong-${left}`);
      await app.click('button', '解锁');
      const want = left === 1 ? '这是最后一次机会' : `还可以再试 ${left} 次`;
      await app.el('[data-testid=tries-left]', want, { timeout: 20000 });
    }
    await app.fill('PIN 或密码', 'wrong-0');
    await app.click('button', '解锁');
    await app.heading('这台设备上的资料已被清除', 20000);
    await app.el('[data-testid=destroyed]', '无法恢复');
    const left = existsSync(doomed) ? readdirSync(doomed).filter((f) => f.startsWith('heartbridge.')) : [];
    expect(!left.includes('heartbridge.db') && !left.includes('heartbridge.keys'), `left on disk: ${left.join(', ')}`);
    await app.shot('erased');
    await app.click('button', '重新开始');
    await app.heading('欢迎使用心桥');
    await app.label('设置 PIN 或密码');
  });
  await app.s.end();
}

await run('app-e2e', main);
