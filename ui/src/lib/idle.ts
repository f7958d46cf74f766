// The inactivity timer of the app lock (pure: no Svelte, no DOM of its own).
// `activity()` is cheap (it only notes the time), so it can be called on
// every key press and pointer move; one timeout is armed at a time, and when
// it fires early (activity came meanwhile) it re-arms for what is left.

export interface IdleTimerOptions {
  /** Inactivity before `onIdle`, in ms. */
  timeoutMs: number;
  /** Called once when the time without activity has passed. */
  onIdle: () => void;
  /** The clock (defaults to Date.now; Vitest's fake timers fake it too). */
  now?: () => number;
}

export class IdleTimer {
  private timeoutMs: number;
  private readonly onIdle: () => void;
  private readonly now: () => number;
  private last = 0;
  private handle: ReturnType<typeof setTimeout> | null = null;
  private running = false;

  constructor(opts: IdleTimerOptions) {
    this.timeoutMs = opts.timeoutMs;
    this.onIdle = opts.onIdle;
    this.now = opts.now ?? (() => Date.now());
  }

  /** Starts counting from now. */
  start(): void {
    this.running = true;
    this.last = this.now();
    this.arm(this.timeoutMs);
  }

  /** Stops; `onIdle` will not be called until `start` again. */
  stop(): void {
    this.running = false;
    if (this.handle !== null) clearTimeout(this.handle);
    this.handle = null;
  }

  /** The volunteer did something: the count starts again. */
  activity(): void {
    if (this.running) this.last = this.now();
  }

  /** A new timeout, counted from the last activity. */
  setTimeoutMs(ms: number): void {
    this.timeoutMs = ms;
    if (this.running) this.check();
  }

  get isRunning(): boolean {
    return this.running;
  }

  private arm(ms: number): void {
    if (this.handle !== null) clearTimeout(this.handle);
    this.handle = setTimeout(() => this.check(), Math.max(0, ms));
  }

  private check(): void {
    this.handle = null;
    if (!this.running) return;
    const left = this.last + this.timeoutMs - this.now();
    if (left > 0) {
      this.arm(left);
      return;
    }
    this.stop();
    this.onIdle();
  }
}

/** What counts as the volunteer using the app. */
export const ACTIVITY_EVENTS = ['pointerdown', 'pointermove', 'keydown', 'wheel', 'touchstart', 'scroll', 'input'] as const;

/** Feeds `timer.activity()` from `target`'s input events; returns the remover. */
export function watchActivity(target: EventTarget, timer: { activity(): void }): () => void {
  const on = () => timer.activity();
  for (const e of ACTIVITY_EVENTS) target.addEventListener(e, on, { capture: true, passive: true });
  return () => {
    for (const e of ACTIVITY_EVENTS) target.removeEventListener(e, on, { capture: true });
  };
}

/**
 * Calls `send` at most once per `everyMs` (the first call at once): the
 * back end hears of activity often enough, and not on every mouse move.
 */
export function throttle(send: () => void, everyMs: () => number, now: () => number = () => Date.now()): () => void {
  let last = -Infinity;
  return () => {
    const t = now();
    if (t - last >= everyMs()) {
      last = t;
      send();
    }
  };
}
