// Non-blocking notices: errors from the API (in the words the back end
// chose) and "Saved on this device" confirmations.
import { toApiError } from './api';
import { isMessageKey, t, type MessageKey } from './i18n/index.svelte';

/**
 * An error keeps the back end's words (`text`); a confirmation is a message
 * key, so it follows a change of language while it is on screen.
 */
export type Toast = { id: number } & (
  | { kind: 'error'; text: string }
  | { kind: 'success'; key: MessageKey }
);

export const toasts = $state<Toast[]>([]);
let nextId = 1;

export function dismiss(id: number): void {
  const i = toasts.findIndex((x) => x.id === id);
  if (i >= 0) toasts.splice(i, 1);
}

function push(toast: Toast, ms: number): void {
  // The same error twice in a row stays one notice.
  const last = toasts.at(-1);
  if (last?.kind === 'error' && toast.kind === 'error' && last.text === toast.text) dismiss(last.id);
  // A new confirmation replaces the previous one; errors stay until read or timed out.
  if (toast.kind === 'success') for (const old of toasts.filter((x) => x.kind === 'success')) dismiss(old.id);
  toasts.push(toast);
  if (toasts.length > 3) toasts.shift();
  setTimeout(() => dismiss(toast.id), ms);
}

/** Shows an API error (or anything thrown) without blocking the screen. */
/** The volunteer's words for an error: the catalog's for a known kind, else the back end's message. */
export function errorText(e: unknown): string {
  const err = toApiError(e);
  const key = `error.kind.${err.kind}`;
  if (isMessageKey(key)) return t(key);
  return err.message || t('error.unexpected');
}

export function showError(e: unknown): void {
  // A call cut short by the lock: the lock screen already says so.
  if (toApiError(e).kind === 'locked') return;
  push({ id: nextId++, kind: 'error', text: errorText(e) }, 12_000);
}

/** "Saved on this device", or another short confirmation. */
export function showSaved(key: MessageKey = 'common.saved'): void {
  push({ id: nextId++, kind: 'success', key }, 4_000);
}
