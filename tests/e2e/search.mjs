// End to end (issue 12): searching the handbooks and the forms' errors in
// the real built app, in a real WebKit window through tauri-driver and
// WebKitWebDriver, on a standalone profile (the bundled handbooks).
//
//   node tests/e2e/search.mjs
//
// Needs target/debug/heartbridge-app built and `tauri-driver` on PATH;
// starts Xvfb itself when DISPLAY is unset. Steps: search 倾听, the first
// hit is a passage with text (not a chapter heading) and opens at body
// text; the reader's back link returns to the same search at the same
// scroll position; "more" loads the rest of 自杀's hits until the count
// says; an empty alias, an empty note and −5 minutes name and mark their
// fields and keep everything typed (the contact form stays open);
// confirming a risk level keeps the page at the risk card. Saves
// docs/screenshots/ui-search-zh.png, ui-search-en.png, ui-form-error-zh.png and
// ui-form-error-en.png (ui-search.png is the Chromium walk's) at the app's phone width (420 px). Last line:
// "N passed, N failed".

import path from 'node:path';
import { APP, ELEMENT, PIN, work, expect, step, run, needBuilt, display, startDriver, open } from './harness.mjs';

const hitCount = (a) => a.val(`document.querySelectorAll('[data-testid=hits] [data-testid=hit]').length`);
const statusText = (a) => a.val(`document.querySelector('p.status')?.textContent.trim() ?? ''`);

/** Searches `query` on the handbooks screen and waits for the hits. */
async function search(a, query) {
  const input = await a.el('input[type=search]');
  await a.s.type(input, query);
  // The hits of this query (not the previous one's): the first hit has it marked.
  await a.s.waitFor(
    () => a.val(`[...(document.querySelector('[data-testid=hits] [data-testid=hit]')?.querySelectorAll('mark') ?? [])].some((m) => m.textContent.toLowerCase() === arguments[0])`, [query.toLowerCase()]),
    15000,
    `hits for ${query}`,
  );
}

async function main() {
  needBuilt(APP);
  await display();
  const app = await open(await startDriver(), path.join(work, 'profile'));

  await step('first run: a PIN and a standalone profile', async () => {
    await app.heading('欢迎使用心桥', 30000);
    await app.setPin();
    await app.el('[data-testid=pin-done]', 'PIN 已设置');
    await app.fill('你的名字或称呼', '陈静');
    await app.click('button', '开始使用');
    await app.heading('你好，陈静');
  });

  let first = null;
  await step('search 倾听: the first hit is a passage with text, grouped by handbook, every match marked', async () => {
    await app.nav('手册');
    await app.heading('手册');
    await app.el('a', '青少年心理支持热线工作守则');
    await search(app, '倾听');
    first = await app.val(`(() => {
      const a = document.querySelector('[data-testid=hits] [data-testid=hit]');
      return { title: a.querySelector('.hit-title').textContent.trim(), snippet: a.querySelector('.snippet').textContent.trim(),
               groups: [...document.querySelectorAll('[data-testid=hits] .group-title')].map((h) => h.textContent.trim()) };
    })()`);
    // 积极倾听的核心技术 and 接近与倾听 are chapter headings with no text of their own.
    expect(!['积极倾听的核心技术', '接近与倾听：如何开始一次支持性对话'].includes(first.title), `a heading-only hit: ${first.title}`);
    expect(first.snippet.length > 20 && !/\*\*|##|·\s*$/.test(first.snippet), `snippet ${JSON.stringify(first.snippet)}`);
    expect(first.groups.length >= 2 && new Set(first.groups).size === first.groups.length, `groups ${JSON.stringify(first.groups)}`);
    const marks = await app.val(`[...document.querySelectorAll('[data-testid=hits] .snippet mark')].map((m) => m.textContent)`);
    expect(marks.length > 0 && marks.every((m) => m === '倾听'), `marks ${JSON.stringify(marks)}`);
    expect(/找到 \d+ 处/.test(await statusText(app)), `status ${await statusText(app)}`);
    await app.shot('ui-search-zh', { prefix: '' });
  });

  await step('open the first hit: the section shows its body text', async () => {
    await app.click('[data-testid=hits] [data-testid=hit]', first.title);
    await app.heading(first.title);
    const body = await app.s.text(await app.el('[data-testid=section-html]'));
    expect(body.trim().length > 40, `the section shows ${body.length} characters`);
    expect(body.replace(/\s+/g, ' ').includes(first.snippet.replace(/^…|…$/g, '').slice(0, 12)), 'the body is not the text the snippet showed');
  });

  await step('back to the library keeps the search and the scroll position', async () => {
    await app.click('[data-testid=reader-back]', '倾听');
    await app.heading('手册');
    await app.s.waitFor(async () => (await app.val(`document.querySelector('input[type=search]').value`)) === '倾听' && (await hitCount(app)) > 0, 10000, 'the search back');
    // Scroll down, open a hit further down, come back: the list is where it was.
    const y = await app.val(`(() => { const hits = document.querySelectorAll('[data-testid=hits] [data-testid=hit]'); const h = hits[Math.min(6, hits.length - 1)]; h.scrollIntoView({ block: 'center' }); return window.scrollY; })()`);
    expect(y > 200, `the list is too short to scroll (${y})`);
    const title = await app.val(`(() => { const hits = document.querySelectorAll('[data-testid=hits] [data-testid=hit]'); const h = hits[Math.min(6, hits.length - 1)]; h.click(); return h.querySelector('.hit-title').textContent.trim(); })()`);
    await app.heading(title);
    await app.click('[data-testid=reader-back]', '倾听');
    await app.heading('手册');
    await app.s.waitFor(async () => Math.abs((await app.val('window.scrollY')) - y) < 40, 10000, `scrollY back at ${y}`);
  });

  await step('"more" loads the rest of the hits until the count says', async () => {
    await search(app, '自杀');
    const total = Number((await statusText(app)).match(/找到 (\d+) 处/)?.[1]);
    expect(total > 20, `自杀: ${total} hits`);
    expect((await hitCount(app)) === 20, `first page ${await hitCount(app)}`);
    let n = 20;
    while (n < total) {
      await app.click('[data-testid=more]', '再显示');
      await app.s.waitFor(async () => (await hitCount(app)) > n, 10000, 'more hits');
      n = await hitCount(app);
    }
    expect(n === total, `${n} hits shown of ${total}`);
    expect(!(await app.val(`!!document.querySelector('[data-testid=more]')`)), '"more" is still offered');
  });

  const fieldState = (id) =>
    app.val(`(() => { const e = document.getElementById(arguments[0]); const d = (e.getAttribute('aria-describedby') || '').split(' ').map((i) => document.getElementById(i)?.textContent.trim() ?? '').join(' ');
      return { invalid: e.getAttribute('aria-invalid'), value: e.value, described: d, focused: document.activeElement === e }; })()`, [id]);

  await step('an empty alias is named and marked; the case is not created', async () => {
    await app.nav('个案');
    await app.click('a', '新建个案');
    await app.heading('新建个案');
    await app.click('button', '建立个案');
    const alert = await app.s.text(await app.el('[data-testid=form-alert]'));
    expect(alert.includes('化名或代号'), `the form's alert: ${alert}`);
    const f = await fieldState('case-alias');
    expect(f.invalid === 'true' && f.described.includes('请填写化名或代号') && f.focused, `alias field ${JSON.stringify(f)}`);
    await app.heading('新建个案');
    await app.fill('化名或代号', '小北');
    await app.s.waitFor(async () => (await fieldState('case-alias')).invalid === null, 5000, 'the mark to go');
    await app.click('button', '建立个案');
    await app.heading('小北');
  });

  await step('a contact with −5 minutes and then an empty note: each field named, the text kept, the form open', async () => {
    const note = '来电者说最近睡不着，想聊聊考试的压力。';
    await app.fill('时长（分钟）', '-5');
    await app.s.type(await app.s.waitFor(() => app.s.exec(`return [...document.querySelectorAll('label')].find(l => l.textContent.trim() === '记录' && l.getClientRects().length > 0)?.control ?? null`), 10000, 'note field'), note);
    await app.click('button', '保存记录');
    const alert = await app.s.text(await app.el('[data-testid=form-alert]'));
    expect(alert.includes('时长（分钟）') && !alert.includes('记录，'), `alert ${alert}`);
    let m = await fieldState('contact-minutes');
    expect(m.invalid === 'true' && m.described.includes('0 到 1440') && m.value === '-5', `minutes ${JSON.stringify(m)}`);
    const t = await fieldState('contact-text');
    expect(t.value === note && t.invalid === null, `note ${JSON.stringify(t)}`);
    await app.shot('ui-form-error-zh', { prefix: '' });
    // Nothing was saved.
    expect(!(await app.val(`!!document.querySelector('[data-testid=timeline]')`)), 'a contact was saved');
    await app.fill('时长（分钟）', '20');
    await app.s.type(await app.label('记录'), ' ');
    await app.click('button', '保存记录');
    m = await fieldState('contact-text');
    expect(m.invalid === 'true' && m.described.includes('不能为空'), `empty note ${JSON.stringify(m)}`);
    expect((await fieldState('contact-minutes')).value === '20', 'the minutes were lost');
    expect(await app.val(`document.querySelector('details.add').open`), 'the contact form folded');
    await app.s.type(await app.label('记录'), note);
    await app.click('button', '保存记录');
    await app.el('[data-testid=timeline] li', note);
  });

  await step('a due date in month/day/year is named; year-month-day is read back in Chinese; a long note folds', async () => {
    const task = '周五回电确认考试后的情况';
    await app.fill('要做什么', task);
    await app.fill('截止日期', '12/01/2026');
    await app.click('button', '添加跟进');
    const due = await fieldState('fu-due');
    expect(due.invalid === 'true' && due.described.includes('年-月-日') && due.value === '12/01/2026', `due ${JSON.stringify(due)}`);
    expect((await fieldState('fu-text')).value === task, 'the task was lost');
    await app.fill('截止日期', '2026-12-1');
    await app.el('#fu-due-hint', '即 2026年12月1日');
    await app.click('button', '添加跟进');
    await app.el('.items li', task);
    await app.el('.items li', '截止');
    // A 5,000-character note folds in the timeline.
    const long = '长'.repeat(4990) + '记录的最后一句。';
    // (the form folded after the last save, on a case that has contacts now)
    await app.click('summary', '记录一次联系');
    // (set through the page: typing 5,000 characters over WebDriver takes minutes)
    await app.s.exec(`const e = arguments[0]; e.value = arguments[1]; e.dispatchEvent(new Event('input', { bubbles: true }));`, [
      { [ELEMENT]: await app.label('记录') },
      long,
    ]);
    await app.click('button', '保存记录');
    await app.el('[data-testid=note-folded]');
    const shown = await app.val(`document.querySelector('[data-testid=note-folded]').textContent.length`);
    expect(shown < 400, `the folded note shows ${shown} characters`);
    await app.click('button', '展开全文');
    await app.el('[data-testid=timeline] li', '记录的最后一句。');
  });

  await step('confirming a risk level keeps the page at the risk card', async () => {
    await app.click('button', '做一次筛查');
    await app.click('label', '否');
    const confirm = await app.el('button', '确认风险等级');
    await app.s.click(confirm);
    await app.el('[role=status], .toast', '风险等级已更新');
    const where = await app.val(`(() => { const l = document.querySelector('[data-testid=risk-level]'); const r = l.getBoundingClientRect();
      return { top: r.top, bottom: r.bottom, h: window.innerHeight, focused: document.activeElement === l }; })()`);
    expect(where.top >= 0 && where.bottom <= where.h && where.focused, `the risk level is not where the volunteer is: ${JSON.stringify(where)}`);
    expect(!(await app.val(`!!document.querySelector('form.screening')`)), 'the screening is still open');
  });

  await step('in English: search results and a form error', async () => {
    await app.nav('设置');
    await app.heading('设置');
    await app.click('label', 'English');
    await app.heading('Settings');
    await app.nav('Handbooks');
    await app.heading('Handbooks');
    await search(app, 'listening');
    const hit = await app.val(`document.querySelector('[data-testid=hits] [data-testid=hit] .hit-title').textContent.trim()`);
    expect(hit !== 'Core Active Listening Skills', `a heading-only hit: ${hit}`);
    expect(/^\d+ results?/.test(await statusText(app)), `status ${await statusText(app)}`);
    await app.shot('ui-search-en', { prefix: '' });
    // The snippet is the section's own text, cut between words.
    const snippet = await app.val(`document.querySelector('[data-testid=hits] [data-testid=hit] .snippet').textContent.trim()`);
    await app.click('[data-testid=hits] [data-testid=hit]', hit);
    await app.heading(hit);
    const body = (await app.s.text(await app.el('[data-testid=section-html]'))).replace(/\s+/g, ' ');
    const inner = snippet.replace(/^…|…$/g, '').trim();
    const at = body.indexOf(inner);
    expect(at >= 0, `the snippet ${JSON.stringify(snippet)} is not the section's text`);
    const word = /[A-Za-z0-9]/;
    expect(!(at > 0 && word.test(body[at - 1]) && word.test(inner[0])), `starts mid-word: ${snippet}`);
    const after = body[at + inner.length] ?? '';
    expect(!(word.test(after) && word.test(inner.at(-1))), `ends mid-word: ${snippet}`);
    await app.nav('Cases');
    await app.click('a', 'New case');
    await app.heading('New case');
    await app.click('button', 'Create case');
    const alert = await app.s.text(await app.el('[data-testid=form-alert]'));
    expect(alert.includes('Alias'), `the form's alert: ${alert}`);
    const f = await fieldState('case-alias');
    expect(f.invalid === 'true' && f.described.includes('Enter an alias'), `alias ${JSON.stringify(f)}`);
    await app.shot('ui-form-error-en', { prefix: '' });
  });
}

await run('search e2e', main);
