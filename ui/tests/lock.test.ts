import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { render } from 'svelte/server';
import { createFakeApi } from '../src/lib/api/fake';
import type { LockStatus } from '../src/lib/api/types';
import { IdleTimer, throttle, watchActivity } from '../src/lib/idle';
import { setLocale } from '../src/lib/i18n/index.svelte';
import { forgetContent, lock, noteLocked, noteLockStatus, resetLockForTests } from '../src/lib/lock.svelte';
import { pinProblem } from '../src/lib/pin';
import { session, shift, sync } from '../src/lib/session.svelte';
import { showError, toasts } from '../src/lib/toast.svelte';
import LockScreen from '../src/screens/LockScreen.svelte';

const fast = (o: Parameters<typeof createFakeApi>[0] = {}) => createFakeApi({ latencyMs: 0, stepMs: 0, ...o });
const status = (s: Partial<LockStatus>): LockStatus => ({
  state: 'locked',
  triesLeft: null,
  wrongPin: false,
  lockAfterSecs: 300,
  lockAfterFixed: false,
  ...s,
});
const html = (s: LockStatus) =>
  render(LockScreen, { props: { status: s, onunlocked: () => {}, onstartover: () => {} } }).body;

describe('the inactivity timer', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('fires once after the time without activity, not before', () => {
    const onIdle = vi.fn();
    const timer = new IdleTimer({ timeoutMs: 5 * 60_000, onIdle });
    timer.start();
    vi.advanceTimersByTime(5 * 60_000 - 1);
    expect(onIdle).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(onIdle).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(60 * 60_000);
    expect(onIdle).toHaveBeenCalledTimes(1);
    expect(timer.isRunning).toBe(false);
  });

  it('counts again from each activity', () => {
    const onIdle = vi.fn();
    const timer = new IdleTimer({ timeoutMs: 60_000, onIdle });
    timer.start();
    for (let i = 0; i < 10; i++) {
      vi.advanceTimersByTime(50_000);
      timer.activity();
    }
    expect(onIdle).not.toHaveBeenCalled();
    vi.advanceTimersByTime(59_999);
    expect(onIdle).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(onIdle).toHaveBeenCalledTimes(1);
  });

  it('feeds on key presses and pointer moves of the page', () => {
    const onIdle = vi.fn();
    const page = new EventTarget();
    const timer = new IdleTimer({ timeoutMs: 10_000, onIdle });
    const stop = watchActivity(page, timer);
    timer.start();
    vi.advanceTimersByTime(9_000);
    page.dispatchEvent(new Event('keydown'));
    vi.advanceTimersByTime(9_000);
    page.dispatchEvent(new Event('pointermove'));
    vi.advanceTimersByTime(9_000);
    expect(onIdle).not.toHaveBeenCalled();
    stop();
    vi.advanceTimersByTime(1_000);
    expect(onIdle).toHaveBeenCalledTimes(1);
  });

  it('a shorter setting applies at once; a stopped timer never fires', () => {
    const onIdle = vi.fn();
    const timer = new IdleTimer({ timeoutMs: 30 * 60_000, onIdle });
    timer.start();
    vi.advanceTimersByTime(2 * 60_000);
    timer.setTimeoutMs(60_000);
    expect(onIdle).toHaveBeenCalledTimes(1);

    const other = vi.fn();
    const t2 = new IdleTimer({ timeoutMs: 1_000, onIdle: other });
    t2.start();
    t2.stop();
    t2.activity();
    vi.advanceTimersByTime(10_000);
    expect(other).not.toHaveBeenCalled();
  });
});

describe('activity reports to the back end', () => {
  it('go at most once per interval, the first at once', () => {
    let t = 0;
    const sent: number[] = [];
    const report = throttle(() => sent.push(t), () => 75_000, () => t);
    for (t = 0; t <= 300_000; t += 1_000) report();
    expect(sent).toEqual([0, 75_000, 150_000, 225_000, 300_000]);
  });
});

describe('a new PIN', () => {
  it('needs 6 characters (a Chinese character counts as one) and the same twice', () => {
    expect(pinProblem('12345', '12345')).toBe('short');
    expect(pinProblem('', '')).toBe('short');
    expect(pinProblem('123456', '123457')).toBe('mismatch');
    expect(pinProblem('123456', '123456')).toBeNull();
    expect(pinProblem('心桥守护你我', '心桥守护你我')).toBeNull();
    expect(pinProblem('心桥守护', '心桥守护')).toBe('short');
  });
});

describe('the lock screen', () => {
  afterEach(() => setLocale('zh-CN'));

  it('asks for the PIN and says nothing of the profile', () => {
    setLocale('zh-CN');
    const out = html(status({}));
    expect(out).toContain('心桥已锁定');
    expect(out).toContain('PIN 或密码');
    expect(out).toContain('type="password"');
    expect(out).not.toContain('还可以再试');
  });

  it('after a wrong PIN says how many tries are left, in Chinese and in English', () => {
    setLocale('zh-CN');
    expect(html(status({ wrongPin: true, triesLeft: 7 }))).toContain('PIN 不对。还可以再试 7 次。');
    expect(html(status({ wrongPin: true, triesLeft: 1 }))).toContain('这是最后一次机会');
    setLocale('en');
    expect(html(status({ wrongPin: true, triesLeft: 7 }))).toContain('Wrong PIN. 7 tries left.');
    expect(html(status({ wrongPin: true, triesLeft: 2 }))).toContain('the data on this device is erased');
  });

  it('says plainly when the profile was erased and offers to start again', () => {
    setLocale('zh-CN');
    const out = html(status({ state: 'destroyed' }));
    expect(out).toContain('这台设备上的资料已被清除');
    expect(out).toContain('重新加入团队');
    expect(out).toContain('重新开始');
    expect(out).not.toContain('type="password"');
    setLocale('en');
    expect(html(status({ state: 'destroyed' }))).toContain('The data on this device was erased');
  });

  it('asks a profile made before PINs existed to set one, twice', () => {
    setLocale('zh-CN');
    const out = html(status({ state: 'needs-pin' }));
    expect(out).toContain('请设置 PIN');
    expect(out.match(/type="password"/g)?.length).toBe(2);
  });
});

describe('locking drops what the UI holds', () => {
  afterEach(() => resetLockForTests());

  it('the profile, the sync status, the shift and the notices are gone', () => {
    session.profile = { initialized: true, name: '陈静', deviceId: 'ab' };
    sync.status = {
      lastSyncedAt: null,
      pending: 4,
      lastError: null,
      syncing: false,
      connection: { state: 'unknown', since: null, at: null, kind: null },
      shift: null,
    };
    shift.current = { startedAt: '2026-12-01T10:00:00Z', contacts: 2 };
    showError({ kind: 'x', message: '第一次来电' });
    expect(toasts.length).toBe(1);
    lock.status = status({ state: 'unlocked' });
    noteLocked('idle');
    expect(session.profile).toBeNull();
    expect(sync.status).toBeNull();
    expect(shift.current).toBeNull();
    expect(toasts.length).toBe(0);
    expect(lock.status?.state).toBe('locked');
    expect(lock.reason).toBe('idle');
    forgetContent();
  });

  it('a call cut short by the lock leaves no notice on the lock screen', () => {
    toasts.splice(0, toasts.length);
    showError({ kind: 'locked', message: 'Heartbridge is locked' });
    expect(toasts.length).toBe(0);
  });

  it('an unlocked status arms the inactivity timer, which locks', () => {
    vi.useFakeTimers();
    try {
      session.profile = { initialized: true, name: '陈静' };
      noteLockStatus(status({ state: 'unlocked', lockAfterSecs: 2 }));
      vi.advanceTimersByTime(1_999);
      expect(lock.status?.state).toBe('unlocked');
      vi.advanceTimersByTime(1);
      expect(lock.status?.state).toBe('locked');
      expect(session.profile).toBeNull();
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('fake API: the lock', () => {
  it('a wrong PIN counts down; the right one opens and resets the count', async () => {
    const api = fast({ ready: true, locked: true, pin: '246810' });
    expect(await api.lockStatus()).toMatchObject({ state: 'locked', triesLeft: null });
    await expect(api.caseList()).rejects.toMatchObject({ kind: 'locked' });
    await expect(api.profileStatus()).rejects.toMatchObject({ kind: 'locked' });
    expect(await api.lockUnlock({ pin: '000000' })).toMatchObject({ state: 'locked', wrongPin: true, triesLeft: 9 });
    expect(await api.lockUnlock({ pin: '111111' })).toMatchObject({ state: 'locked', wrongPin: true, triesLeft: 8 });
    expect(await api.lockUnlock({ pin: '246810' })).toMatchObject({ state: 'unlocked', wrongPin: false });
    expect((await api.caseList()).length).toBeGreaterThan(0);
    await api.lockNow({ reason: 'command' });
    expect(await api.lockUnlock({ pin: '000000' })).toMatchObject({ triesLeft: 9 });
  });

  it('erases the profile after the last wrong PIN, then starts over', async () => {
    const api = fast({ ready: true, locked: true, maxFailed: 3 });
    await api.lockUnlock({ pin: 'wrong-1' });
    await api.lockUnlock({ pin: 'wrong-2' });
    expect(await api.lockUnlock({ pin: 'wrong-3' })).toMatchObject({ state: 'destroyed' });
    expect(await api.lockUnlock({ pin: '123456' })).toMatchObject({ state: 'destroyed' });
    expect(await api.lockForget()).toMatchObject({ state: 'no-profile' });
    expect(await api.profileStatus()).toEqual({ initialized: false });
  });

  it('a profile needs a PIN of 6 or more; the lock time is a setting', async () => {
    const api = fast();
    await expect(api.profileCreate({ name: '陈静', pin: '12345' })).rejects.toMatchObject({ kind: 'invalid' });
    await api.profileCreate({ name: '陈静', pin: '123456' });
    const events: string[] = [];
    await api.onLocked((r) => events.push(r));
    expect(await api.lockSetTimeout({ secs: 120 })).toMatchObject({ lockAfterSecs: 120, lockAfterFixed: false });
    expect(await api.lockNow({ reason: 'background' })).toMatchObject({ state: 'locked' });
    expect(events).toEqual(['background']);
    expect(fast({ lockAfterSecs: 3 }).lockStatus()).resolves.toMatchObject({ lockAfterSecs: 3, lockAfterFixed: true });
  });
});
