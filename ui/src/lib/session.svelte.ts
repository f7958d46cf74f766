// What the whole app shares: the profile, the sync status (kept current by
// the 'sync-status' and 'sync-progress' events) and the shift.
import {
  api,
  toApiError,
  type ApiError,
  type ProfileStatus,
  type Shift,
  type SyncProgress,
  type SyncReport,
  type SyncStatus,
} from './api';
import { showError } from './toast.svelte';

export const session = $state<{ profile: ProfileStatus | null }>({ profile: null });

export const sync = $state<{
  status: SyncStatus | null;
  progress: SyncProgress | null;
  report: SyncReport | null;
  /** Grows each time a sync finishes: screens that show synced data reload on it. */
  generation: number;
}>({ status: null, progress: null, report: null, generation: 0 });

/** Records a new status; a finished sync bumps `generation`. */
export function noteStatus(s: SyncStatus): void {
  const before = sync.status;
  if (!s.syncing && s.lastSyncedAt && (before === null || before.syncing || s.lastSyncedAt !== before.lastSyncedAt)) {
    if (before !== null) sync.generation++;
  }
  sync.status = s;
}

/**
 * How ending the shift (or the retry after it) went: `error` is the sync's
 * failure, if it failed. What of the shift was delivered is not here but in
 * `sync.status.shift`, which follows the store after every sync, whichever
 * sync delivered it.
 */
export interface ShiftOutcome {
  error: ApiError | null;
}

export const shift = $state<{
  loaded: boolean;
  current: Shift | null;
  busy: 'starting' | 'ending' | null;
  outcome: ShiftOutcome | null;
}>({ loaded: false, current: null, busy: null, outcome: null });

let listening = false;
/** `sync-status` events seen: a polled status that an event overtook is stale. */
let statusEvents = 0;

/** Follows the sync events (once) and reads the sync status and shift (again after an unlock). */
export async function startListening(): Promise<void> {
  if (!listening) {
    listening = true;
    // While locked (no profile in the UI) the events are not kept.
    await api.onSyncStatus((s) => {
      statusEvents++;
      if (session.profile) noteStatus(s);
    });
    await api.onSyncProgress((p) => {
      if (session.profile) sync.progress = p;
    });
  }
  await Promise.all([refreshSync(), refreshShift()]);
}

export async function refreshSync(): Promise<void> {
  const seen = statusEvents;
  try {
    const s = await api.syncStatus();
    // An event that arrived meanwhile is newer than this answer (else a
    // sync that ended while it was on its way would stay "syncing").
    if (statusEvents === seen) noteStatus(s);
  } catch (e) {
    showError(e);
  }
}

export async function refreshShift(): Promise<void> {
  try {
    shift.current = await api.shiftCurrent();
    shift.loaded = true;
  } catch (e) {
    showError(e);
  }
}

/** Runs a sync now; the outcome shows in the sync card (and errors as a notice). */
export async function syncNow(): Promise<SyncReport | null> {
  sync.progress = null;
  sync.report = null;
  try {
    const report = await api.syncNow();
    sync.report = report;
    // A sync that delivered what the shift left waiting clears its failure.
    if (shift.outcome) shift.outcome = { error: null };
    return report;
  } catch (e) {
    showError(e);
    if (shift.outcome) shift.outcome = { error: toApiError(e) };
    return null;
  } finally {
    await refreshSync();
  }
}

/** Starts a shift, on `line` of the duty roster when one is chosen. */
export async function startShift(line?: string): Promise<void> {
  shift.busy = 'starting';
  shift.outcome = null;
  try {
    shift.current = await api.shiftStart(line ? { line } : {});
  } catch (e) {
    showError(e);
  } finally {
    shift.busy = null;
    void refreshSync();
  }
}

/** Ends the shift and syncs; the receipt or the "not delivered" note stays on the shift card. */
export async function endShift(handover?: string): Promise<void> {
  shift.busy = 'ending';
  shift.outcome = null;
  sync.progress = null;
  try {
    sync.report = await api.shiftEnd(handover?.trim() ? { handover: handover.trim() } : {});
    shift.outcome = { error: null };
  } catch (e) {
    shift.outcome = { error: toApiError(e) };
  } finally {
    shift.busy = null;
    await Promise.all([refreshShift(), refreshSync()]);
  }
}

/** A retry after a shift end that could not deliver. */
export async function retryDelivery(): Promise<void> {
  shift.busy = 'ending';
  sync.progress = null;
  try {
    sync.report = await api.syncNow();
    shift.outcome = { error: null };
  } catch (e) {
    shift.outcome = { error: toApiError(e) };
  } finally {
    shift.busy = null;
    await refreshSync();
  }
}
