// The supervision part of the Chromium walk (issue 9), at phone width, in
// zh-CN and English, against the fake (`?ready&role=…`): the supervisor's
// queue with the escalation awaiting a receipt at the top, the review, a
// comment and the acknowledgement with instructions; a volunteer's raise by
// the screening opening the escalation panel (the on-call phone as a tel:
// link, the crisis protocol in the reader, “已电话联系值班督导”), the
// receipt, the debrief offered after a high-risk contact; a handover.
// Screenshots: docs/screenshots/ui-queue*.png, ui-escalation*.png,
// ui-receipt*.png, ui-case-supervisor.png, ui-assign.png, ui-home-awaiting.png.

/** Runs the steps; `t` carries the walk's helpers (run.mjs). */
export async function supervisionWalk(t) {
  const { browser, origin, phoneContext, guard, step, shot, auditLabels, expect, TIMEOUT } = t;

  const open = async (query, { en = false } = {}) => {
    const ctx = await phoneContext();
    ctx.setDefaultTimeout(TIMEOUT);
    if (en) await ctx.addInitScript(() => localStorage.setItem('heartbridge.locale', 'en'));
    const page = await ctx.newPage();
    guard(page, origin);
    await page.goto(`${origin}/${query}`);
    return page;
  };
  const closeNotices = async (page) => {
    for (const close of await page.getByRole('button', { name: /关闭提示|Dismiss/ }).all()) await close.click().catch(() => {});
  };
  const noSideScroll = async (page, where) => {
    const [sw, cw] = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
    expect(sw <= cw, `${where}: the page is ${sw}px wide in a ${cw}px window`);
  };

  // ------------------------------------------------------ the supervisor
  const sup = await open('?ready&role=supervisor#/queue');
  await step('supervision: the queue puts the escalation awaiting a receipt at the top, then the cases to review', async () => {
    await sup.getByRole('heading', { level: 1, name: '督导队列' }).waitFor();
    const top = sup.getByTestId('queue-escalations').getByRole('link').first();
    await top.waitFor();
    const text = await top.textContent();
    expect(text.includes('小雨') && text.includes('未获督导确认'), `top of the queue: ${text}`);
    expect(/已等待 (\d+ 小时 )?\d+ 分钟/.test(text), `no waiting time: ${text}`);
    const review = await sup.getByTestId('queue-review').getByRole('link').allTextContents();
    expect(review.length > 0 && !review.some((r) => r.includes('小雨')), `cases to review: ${JSON.stringify(review)}`);
    // high and critical first among the cases to review
    const firstLow = review.findIndex((r) => !/高风险|危急/.test(r));
    expect(firstLow === -1 || review.slice(firstLow).every((r) => !/高风险|危急/.test(r)), `order: ${JSON.stringify(review)}`);
    await auditLabels(sup, 'queue');
    await noSideScroll(sup, 'queue');
    await shot(sup, 'queue');
  });

  await step('supervision: the supervisor acknowledges with instructions, reviews and comments; the receipt says who and when', async () => {
    await sup.getByTestId('queue-escalations').getByRole('link').first().click();
    await sup.getByRole('heading', { level: 1, name: '小雨' }).waitFor();
    const panel = sup.getByTestId('escalation-panel');
    await panel.waitFor();
    expect((await panel.textContent()).includes('已升级，等待督导确认'), 'no escalation panel title');
    // a supervisor answers in the app; the phone record is the volunteer's
    expect((await panel.getByRole('button', { name: '已电话联系值班督导' }).count()) === 0, 'the supervisor is offered the phone record');
    await sup.getByLabel('给志愿者的指示').fill('马上联系村支书上门陪伴；今晚每小时回拨一次，我 21:00 前给你电话。');
    await auditLabels(sup, 'case (supervisor)');
    await panel.scrollIntoViewIfNeeded();
    await closeNotices(sup);
    await shot(sup, 'escalation-ack');
    await sup.getByRole('button', { name: '确认并发送指示' }).click();
    const receipt = sup.getByTestId('receipt').first();
    await receipt.waitFor();
    const said = await receipt.textContent();
    expect(/陈静 于 \d\d:\d\d 确认（升级后 \d+ 分钟）/.test(said), `receipt: ${said}`);
    expect(said.includes('马上联系村支书上门陪伴'), `instructions missing: ${said}`);
    expect((await sup.getByTestId('escalation-panel').count()) === 0, 'the panel is still there after the receipt');
    expect((await sup.locator('.case-head').getByTestId('awaiting').count()) === 0, 'the case still shows 未获督导确认');
    await sup.getByRole('button', { name: '标记为已审阅' }).click();
    await sup.getByTestId('review-state').filter({ hasText: '已审阅' }).filter({ hasText: '陈静' }).waitFor();
    await sup.getByLabel('写一条意见').fill('判断及时，保持通话做得很好。');
    await sup.getByRole('button', { name: '添加意见' }).click();
    await sup.getByTestId('comments').getByText('判断及时，保持通话做得很好。').waitFor();
    await closeNotices(sup);
    await receipt.scrollIntoViewIfNeeded();
    await noSideScroll(sup, 'case (supervisor)');
    await shot(sup, 'receipt-ack');
    await sup.getByTestId('review').scrollIntoViewIfNeeded();
    await shot(sup, 'case-supervisor');
  });

  await step('supervision: acknowledged, the case leaves the top of the queue and is listed as acknowledged', async () => {
    await sup.evaluate(() => (location.hash = '#/queue'));
    await sup.getByRole('heading', { level: 1, name: '督导队列' }).waitFor();
    await sup.getByText('没有等待确认的升级。').waitFor();
    const acked = await sup.getByTestId('queue-acknowledged').textContent();
    expect(acked.includes('小雨') && /陈静 于 \d\d:\d\d 确认/.test(acked), `acknowledged: ${acked}`);
    await shot(sup, 'queue-acknowledged');
  });

  await step('supervision: a supervisor hands a case over with a note; the history keeps from, to, who and why', async () => {
    await sup.evaluate(() => (location.hash = '#/cases'));
    await sup.getByTestId('case-list').getByRole('link').filter({ hasText: '小林' }).click();
    await sup.getByRole('heading', { level: 1, name: '小林' }).waitFor();
    const card = sup.getByTestId('assignment');
    await card.scrollIntoViewIfNeeded();
    await sup.getByLabel('转交给').selectOption({ label: '林老师 · 督导' });
    await sup.getByLabel('交接说明').fill('林老师这周值周三晚班，由他接着回访。');
    await sup.getByRole('button', { name: '转交个案' }).click();
    await card.getByTestId('assignee').filter({ hasText: '当前由 林老师 负责' }).waitFor();
    const hist = await card.textContent();
    expect(hist.includes('王晓 → 林老师') && hist.includes('陈静 于') && hist.includes('由他接着回访'), `history: ${hist}`);
    await closeNotices(sup);
    await card.scrollIntoViewIfNeeded();
    await shot(sup, 'assign');
  });
  await sup.context().close();

  // ----------------------------------------------- the supervisor in English
  const supEn = await open('?ready&role=supervisor#/queue', { en: true });
  await step('supervision (English): the queue and the acknowledgement', async () => {
    await supEn.getByRole('heading', { level: 1, name: 'Supervision queue' }).waitFor();
    const top = await supEn.getByTestId('queue-escalations').getByRole('link').first().textContent();
    expect(top.includes('Not yet confirmed by a supervisor') && /Waiting for (\d+ minutes?|\d+ h \d+ min)/.test(top), `top: ${top}`);
    await auditLabels(supEn, 'queue (en)');
    await shot(supEn, 'queue-en');
    await supEn.getByTestId('queue-escalations').getByRole('link').first().click();
    await supEn.getByLabel('Instructions for the volunteer').fill('Stay on the line; I will call you in ten minutes.');
    await supEn.getByRole('button', { name: 'Acknowledge and send instructions' }).click();
    const said = await supEn.getByTestId('receipt').first().textContent();
    expect(/Confirmed by 陈静 at \d\d:\d\d \(\d+ min after the escalation\)/.test(said), `receipt: ${said}`);
    await closeNotices(supEn);
    await supEn.getByTestId('receipt').first().scrollIntoViewIfNeeded();
    await shot(supEn, 'receipt-ack-en');
    await supEn.getByRole('button', { name: 'Mark as reviewed' }).click();
    await supEn.getByTestId('review-state').filter({ hasText: 'Reviewed' }).filter({ hasText: '陈静' }).waitFor();
    await supEn.getByLabel('Write a comment').fill('You called it early and stayed on the line: well done.');
    await supEn.getByRole('button', { name: 'Add comment' }).click();
    await supEn.getByTestId('comments').getByText('You called it early and stayed on the line: well done.').waitFor();
    await auditLabels(supEn, 'case (supervisor, en)');
    await closeNotices(supEn);
    await supEn.getByTestId('review').scrollIntoViewIfNeeded();
    await noSideScroll(supEn, 'case (supervisor, en)');
    await shot(supEn, 'case-supervisor-en');
  });

  await step('supervision (English): a handover with a note, and its history', async () => {
    await supEn.evaluate(() => (location.hash = '#/cases'));
    await supEn.getByTestId('case-list').getByRole('link').filter({ hasText: '小林' }).click();
    await supEn.getByRole('heading', { level: 1, name: '小林' }).waitFor();
    const card = supEn.getByTestId('assignment');
    await card.scrollIntoViewIfNeeded();
    const select = supEn.getByLabel('Hand over to');
    const option = await select.evaluate((s) => [...s.options].find((o) => o.textContent.includes('林老师'))?.value ?? '');
    expect(option !== '', '林老师 is not offered in English');
    await select.selectOption(option);
    await supEn.getByLabel('Note for the new assignee').fill('林老师 takes the Wednesday evening shift and follows up from now on.');
    await supEn.getByRole('button', { name: 'Hand over the case' }).click();
    await card.getByTestId('assignee').filter({ hasText: 'Carried by 林老师' }).waitFor();
    const hist = await card.textContent();
    expect(hist.includes('王晓 → 林老师') && hist.includes('follows up from now on'), `history (en): ${hist}`);
    await closeNotices(supEn);
    await card.scrollIntoViewIfNeeded();
    await shot(supEn, 'assign-en');
  });
  await supEn.context().close();

  // ------------------------------------------------------- the volunteer
  const vol = await open('?ready&role=volunteer#/');
  await step('volunteer: Home and the case list say 未获督导确认 for the case awaiting a receipt; no queue', async () => {
    await vol.getByRole('heading', { level: 1, name: '你好，陈静' }).waitFor();
    const card = vol.getByTestId('home-awaiting');
    await card.waitFor();
    expect((await card.textContent()).includes('小雨'), 'Home does not list the case awaiting a receipt');
    expect((await vol.getByTestId('home-queue').count()) === 0, 'a volunteer is offered the queue');
    await shot(vol, 'home-awaiting');
    await vol.getByRole('navigation', { name: '主导航' }).getByRole('link', { name: '个案' }).click();
    const rain = vol.getByTestId('case-list').getByRole('link').filter({ hasText: '小雨' });
    expect((await rain.textContent()).includes('未获督导确认'), 'the list does not say 未获督导确认');
    expect((await vol.getByRole('link', { name: '督导队列' }).count()) === 0, 'a volunteer sees the queue link');
  });

  await step('volunteer: a raise to high by the screening opens the escalation panel with the on-call phone, the crisis protocol and “已电话联系值班督导”', async () => {
    await vol.getByTestId('case-list').getByRole('link').filter({ hasText: '小林' }).click();
    await vol.getByRole('heading', { level: 1, name: '小林' }).waitFor();
    // what a volunteer may not do is not shown
    for (const name of ['标记为已审阅', '添加意见', '转交个案', '确认并发送指示'])
      expect((await vol.getByRole('button', { name }).count()) === 0, `a volunteer sees “${name}”`);
    await vol.getByRole('button', { name: '做一次筛查' }).click();
    const q = (name) => vol.getByRole('group', { name });
    await q(/^自杀想法/).getByRole('radio', { name: '是' }).check();
    await q(/^具体计划/).getByRole('radio', { name: '是' }).check();
    await q(/^可用手段/).getByRole('radio', { name: '是' }).check();
    await q(/^时间/).getByRole('radio', { name: '否' }).check();
    await q(/^既往尝试/).getByRole('radio', { name: '否' }).check();
    await q(/^自伤行为/).getByRole('radio', { name: '否' }).check();
    await q(/^保护因素/).getByRole('radio', { name: '是' }).check();
    await vol.getByRole('button', { name: '确认风险等级' }).click();
    const panel = vol.getByTestId('escalation-panel');
    await panel.waitFor();
    const phone = panel.getByTestId('on-call-phone');
    await phone.waitFor();
    expect((await phone.getAttribute('href')) === 'tel:13800000000', `tel: ${await phone.getAttribute('href')}`);
    expect((await phone.textContent()).includes('138-0000-0000'), 'the number is not written out');
    expect((await panel.textContent()).includes('值班督导：林老师'), 'the on-call supervisor is not named');
    await panel.getByTestId('crisis-protocol').waitFor();
    await panel.getByRole('button', { name: '已电话联系值班督导' }).waitFor();
    expect((await panel.getByRole('button', { name: '确认并发送指示' }).count()) === 0, 'a volunteer can acknowledge');
    await vol.locator('.case-head').getByTestId('awaiting').waitFor();
    // the panel came into view by itself
    const inView = await panel.evaluate((el) => {
      const r = el.getBoundingClientRect();
      return r.top < window.innerHeight && r.bottom > 0;
    });
    expect(inView, 'the escalation panel is not in view after the raise');
    await auditLabels(vol, 'escalation');
    await noSideScroll(vol, 'escalation');
    await closeNotices(vol);
    await panel.evaluate((el) => el.scrollIntoView({ block: 'start' }));
    await shot(vol, 'escalation');
  });

  await step('volunteer: the crisis protocol opens at its escalation section in the reader, and back', async () => {
    await vol.getByTestId('crisis-protocol').click();
    await vol.getByRole('heading', { level: 1, name: '九、升级链条与紧急处置' }).waitFor();
    await shot(vol, 'escalation-protocol');
    await vol.goBack();
    await vol.getByTestId('escalation-panel').waitFor();
  });

  await step('volunteer: “已电话联系值班督导” is a receipt of its own; the case no longer awaits', async () => {
    await vol.getByLabel('通话要点').fill('林老师让我今晚陪她打给班主任。');
    await vol.getByRole('button', { name: '已电话联系值班督导' }).click();
    const receipt = vol.getByTestId('receipt').first();
    await receipt.waitFor();
    const said = await receipt.textContent();
    expect(/陈静 于 \d\d:\d\d 记录：已电话联系值班督导/.test(said), `receipt: ${said}`);
    expect((await vol.getByTestId('escalation-panel').count()) === 0, 'the panel is still there');
    expect((await vol.locator('.case-head').getByTestId('awaiting').count()) === 0, 'still 未获督导确认');
    await closeNotices(vol);
    await receipt.scrollIntoViewIfNeeded();
    await shot(vol, 'receipt-phone');
  });

  await step("volunteer: a supervisor's receipt, instructions and comments arrive on the case; a debrief is offered after a high-risk contact", async () => {
    await vol.evaluate(() => (location.hash = '#/cases'));
    await vol.getByTestId('case-list').getByRole('link').filter({ hasText: '阿杰' }).click();
    await vol.getByRole('heading', { level: 1, name: '阿杰' }).waitFor();
    const receipt = vol.getByTestId('receipt').first();
    const said = await receipt.textContent();
    expect(/林老师 于 \d\d:\d\d 确认（升级后 35 分钟）/.test(said) && said.includes('安全计划写在纸上'), `receipt: ${said}`);
    await vol.getByTestId('comments').getByText('问得很直接').waitFor();
    expect((await vol.getByLabel('写一条意见').count()) === 0, 'a volunteer gets the comment form');
    await receipt.scrollIntoViewIfNeeded();
    await shot(vol, 'receipt');
    await vol.locator('summary').filter({ hasText: '记录一次联系' }).click();
    await vol.getByLabel('记录', { exact: true }).fill('他说按安全计划给表哥打了电话，今晚睡得着。');
    await vol.getByRole('button', { name: '保存记录' }).click();
    const offer = vol.getByTestId('debrief');
    await offer.getByText('要不要和督导做一次简短的复盘').waitFor();
    expect((await offer.textContent()).includes('不计入团队统计'), 'the debrief does not say it is not counted');
    await closeNotices(vol);
    await offer.scrollIntoViewIfNeeded();
    await shot(vol, 'debrief');
    await offer.getByRole('button', { name: '这次不需要' }).click();
    await vol.getByRole('button', { name: '这次不需要' }).waitFor({ state: 'detached' });
    await vol.getByLabel('交接备注').fill('周五前要确认学校心理老师已接手。');
    await vol.getByRole('button', { name: '保存交接备注' }).click();
    await vol.getByTestId('handover-notes').getByText('周五前要确认学校心理老师已接手。').waitFor();
  });
  await vol.context().close();

  // --------------------------------------------------- the volunteer in English
  const volEn = await open('?ready&role=volunteer#/cases', { en: true });
  await step('volunteer (English): the escalation panel and the receipt', async () => {
    await volEn.getByRole('heading', { level: 1, name: 'Cases' }).waitFor();
    const rain = volEn.getByTestId('case-list').getByRole('link').filter({ hasText: '小雨' });
    expect((await rain.textContent()).includes('Not yet confirmed by a supervisor'), 'the list does not say it in English');
    await rain.click();
    const panel = volEn.getByTestId('escalation-panel');
    await panel.getByText('Escalated — waiting for a supervisor').waitFor();
    await panel.getByText('A sync is not a live channel').waitFor();
    await panel.getByTestId('on-call-phone').filter({ hasText: 'Call the on-call phone 138-0000-0000' }).waitFor();
    await panel.getByRole('link', { name: 'Open the crisis protocol' }).waitFor();
    await panel.getByRole('button', { name: 'I reached the on-call supervisor by phone' }).waitFor();
    await auditLabels(volEn, 'escalation (en)');
    await closeNotices(volEn);
    await panel.evaluate((el) => el.scrollIntoView({ block: 'start' }));
    await shot(volEn, 'escalation-en');
    await volEn.evaluate(() => (location.hash = '#/cases'));
    await volEn.getByTestId('case-list').getByRole('link').filter({ hasText: '阿杰' }).click();
    const said = await volEn.getByTestId('receipt').first().textContent();
    expect(/Confirmed by 林老师 at \d\d:\d\d \(35 min after the escalation\)/.test(said), `receipt: ${said}`);
    await volEn.getByTestId('receipt').first().scrollIntoViewIfNeeded();
    await shot(volEn, 'receipt-en');
    await volEn.locator('summary').filter({ hasText: 'Log a contact' }).click();
    await volEn.getByLabel('Note', { exact: true }).fill('He called his cousin as the safety plan says and can sleep tonight.');
    await volEn.getByRole('button', { name: 'Save contact' }).click();
    const offer = volEn.getByTestId('debrief');
    await offer.getByText('Would you like a short debrief with a supervisor?').waitFor();
    expect((await offer.textContent()).includes('never counted in the team’s statistics'), 'the debrief does not say (in English) it is not counted');
    await closeNotices(volEn);
    await offer.scrollIntoViewIfNeeded();
    await shot(volEn, 'debrief-en');
  });
  await volEn.context().close();

  // ------------------------------------------------------------- desktop
  const desk = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: 'zh-CN', timezoneId: 'Asia/Shanghai' });
  desk.setDefaultTimeout(TIMEOUT);
  const d = await desk.newPage();
  guard(d, origin);
  await step('desktop: a supervisor reaches the queue from the sidebar; a volunteer has no such entry', async () => {
    await d.goto(`${origin}/?ready&role=supervisor`);
    await d.getByRole('navigation', { name: '主导航' }).getByRole('link', { name: '督导队列' }).click();
    await d.getByRole('heading', { level: 1, name: '督导队列' }).waitFor();
    await d.getByTestId('queue-escalations').getByRole('link').first().waitFor();
    expect(
      (await d.getByRole('navigation', { name: '主导航' }).getByRole('link', { name: '督导队列' }).getAttribute('aria-current')) === 'page',
      'the sidebar does not mark the queue as the current page',
    );
    await shot(d, 'desktop-queue');
    await d.goto(`${origin}/?ready&role=volunteer&v`);
    await d.getByRole('heading', { level: 1, name: '你好，陈静' }).waitFor();
    expect((await d.getByRole('navigation', { name: '主导航' }).getByRole('link', { name: '督导队列' }).count()) === 0, 'a volunteer has the queue in the sidebar');
  });
  await desk.close();
}
