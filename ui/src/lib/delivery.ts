// What the app says about delivery, as messages of the catalogs (pure: the
// caller translates them and formats times). The shift receipt counts the
// shift's own changes and how many a relay has acknowledged, whichever sync
// delivered them; the connection state follows the last sync attempt.

import type { ApiError, Connection, ShiftDelivery } from './api/types';
import type { MessageKey, Params } from './i18n/translate';

export interface Message {
  key: MessageKey;
  params?: Params;
}

/** 0 B, 512 B, 9.5 KB, 120 KB, 1.2 MB (1 KB = 1024 bytes), the same in both languages. */
export function formatBytes(bytes: number): string {
  const n = Math.max(0, Math.round(bytes));
  if (n < 1024) return `${n} B`;
  const units = ['KB', 'MB', 'GB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  // One decimal below 10 (9.5 KB), none above (120 KB); never "10.0".
  const text = v < 9.95 ? String(Math.round(v * 10) / 10) : String(Math.round(v));
  return `${text} ${units[u]}`;
}

/**
 * The connection state in words. `time` writes an RFC 3339 moment as the
 * volunteer reads it (18:42). `retrying`: a sync is running right now.
 */
export function connectionMessage(c: Connection | null | undefined, retrying: boolean, time: (iso: string) => string): Message {
  switch (c?.state) {
    case 'connected':
      return { key: 'connection.connected' };
    case 'syncing':
      return { key: 'connection.syncing' };
    case 'unreachable':
      return {
        key: retrying ? 'connection.unreachableRetrying' : 'connection.unreachable',
        params: { time: time(c.since ?? c.at ?? '') },
      };
    case 'refused':
      return { key: 'connection.refused' };
    default:
      return { key: 'connection.unknown' };
  }
}

export interface Receipt {
  /**
   * `ok`: the central relay has all of the shift (level 2); `venue`: what it
   * lacks is on a venue relay (level 1); `warn`: some of it is only here.
   */
  tone: 'ok' | 'venue' | 'warn';
  main: Message;
  detail: Message | null;
}

/**
 * The receipt of an ended shift. `error` is how the sync at its end (or the
 * retry) failed, if it did; `lastSyncedAt` stands in for the delivery time
 * when the device did not see the moment itself.
 */
export function receiptMessage(
  d: ShiftDelivery,
  error: ApiError | null,
  lastSyncedAt: string | null,
  time: (iso: string) => string,
): Receipt {
  if (d.changes === 0) return { tone: 'ok', main: { key: 'shift.receiptNone' }, detail: null };
  if (d.delivered >= d.changes) {
    const at = d.deliveredAt ?? lastSyncedAt;
    return {
      tone: 'ok',
      main: at ? { key: 'shift.receipt', params: { n: d.changes, time: time(at) } } : { key: 'shift.receiptNoTime', params: { n: d.changes } },
      detail: null,
    };
  }
  const left = d.changes - d.delivered;
  // Level 1: a venue relay holds every change the central relay lacks; it
  // forwards them once its uplink is back, and a later sync confirms.
  if (d.atVenue > 0 && d.atVenue >= left) {
    return { tone: 'venue', main: { key: 'shift.atVenue' }, detail: { key: 'shift.atVenueHint' } };
  }
  const detail: Message =
    d.delivered === 0
      ? { key: 'shift.waitingAll', params: { n: d.changes } }
      : { key: 'shift.waitingSome', params: { n: d.changes, delivered: d.delivered, left } };
  const offline = error === null || error.kind === 'network' || error.kind === 'partial';
  return { tone: 'warn', main: { key: offline ? 'shift.notDelivered' : 'shift.notFinished' }, detail };
}
