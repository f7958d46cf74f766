// The app lock, as the UI sees it: the back end's lock status, locking
// (by command, inactivity or the window leaving the screen) and what the UI
// forgets when it locks. While locked, App.svelte renders the lock screen
// only, so every screen (and the text it held) leaves the DOM; the shared
// state below is emptied too, so nothing decrypted stays in the webview.
import { api, type LockReason, type LockStatus } from './api';
import { collectDrafts, saveDrafts } from './drafts';
import { IdleTimer, throttle, watchActivity } from './idle';
import { session, shift, sync } from './session.svelte';
import { toasts } from './toast.svelte';

export const lock = $state<{ status: LockStatus | null; reason: LockReason | null }>({
  status: null,
  reason: null,
});

/** Whether the profile is open (the shell may show content). */
export function isUnlocked(): boolean {
  return lock.status?.state === 'unlocked';
}

/** Drops everything the UI holds of the profile. */
export function forgetContent(): void {
  session.profile = null;
  sync.status = null;
  sync.progress = null;
  sync.report = null;
  shift.current = null;
  shift.loaded = false;
  shift.outcome = null;
  shift.busy = null;
  toasts.splice(0, toasts.length);
}

let idle: IdleTimer | null = null;

/** The page's window (none outside a browser, e.g. in Vitest). */
function pageTarget(): EventTarget | null {
  return typeof window !== 'undefined' && typeof window.addEventListener === 'function' ? window : null;
}
let unwatch: (() => void) | null = null;

/** Starts the inactivity timer for an unlocked app (again, with the current setting). */
export function armIdle(target: EventTarget | null = pageTarget()): void {
  const ms = (lock.status?.lockAfterSecs ?? 300) * 1000;
  if (!idle) {
    const timer = new IdleTimer({ timeoutMs: ms, onIdle: () => void lockApp('idle') });
    idle = timer;
    // The back end keeps its own count (should this timer not run), fed a
    // quarter of the lock time apart at most.
    const report = throttle(
      () => void api.lockActivity().catch(() => {}),
      () => ((lock.status?.lockAfterSecs ?? 300) * 1000) / 4,
    );
    unwatch = target
      ? watchActivity(target, {
          activity: () => {
            timer.activity();
            if (timer.isRunning) report();
          },
        })
      : null;
  } else {
    idle.setTimeoutMs(ms);
  }
  if (!idle.isRunning) idle.start();
}

function disarmIdle(): void {
  idle?.stop();
}

/** The back end locked (or was asked to): the UI follows. */
export function noteLocked(reason: LockReason): void {
  disarmIdle();
  forgetContent();
  lock.reason = reason;
  if (lock.status && lock.status.state === 'unlocked') {
    lock.status = { ...lock.status, state: 'locked', wrongPin: false, triesLeft: null };
  }
  // Then as the back end says (a first run whose join failed after the
  // profile was made is locked too, though the UI never saw it unlocked).
  void api.lockStatus().then(
    (s) => {
      if (s.state !== 'unlocked') lock.status = s;
    },
    () => {},
  );
}

/**
 * Locks now: the store closes, the key is dropped, the sync stops. A note
 * still being typed is read first and handed to the back end, which keeps
 * it inside the encrypted profile; the form shows it again after the unlock.
 */
export async function lockApp(reason: LockReason): Promise<void> {
  if (!isUnlocked()) return;
  const drafts = collectDrafts();
  // The screen goes first: even if the call fails, no content stays shown.
  noteLocked(reason);
  const done = (async () => {
    await saveDrafts(drafts);
    try {
      lock.status = await api.lockNow({ reason });
    } catch {
      // the back end keeps its own state; the next lock_status says it
    }
  })();
  settling = done;
  await done;
}

let settling: Promise<void> = Promise.resolve();

/**
 * Resolves once the last lock the UI started has reached the back end (its
 * drafts handed over, the store closed): an unlock waits for it, so a PIN
 * typed at once is not overtaken by that lock.
 */
export function lockSettled(): Promise<void> {
  return settling;
}

/** The status after an unlock attempt or a new setting; arms the timer when unlocked. */
export function noteLockStatus(s: LockStatus): void {
  lock.status = s;
  if (s.state === 'unlocked') {
    lock.reason = null;
    armIdle();
  } else {
    disarmIdle();
  }
}

/** For tests: stop the timer and its listeners. */
export function resetLockForTests(): void {
  idle?.stop();
  unwatch?.();
  idle = null;
  unwatch = null;
  lock.status = null;
  lock.reason = null;
}
