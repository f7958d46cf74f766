import type { ApiError } from './types';

export function isApiError(e: unknown): e is ApiError {
  return (
    typeof e === 'object' &&
    e !== null &&
    typeof (e as ApiError).kind === 'string' &&
    typeof (e as ApiError).message === 'string'
  );
}

/**
 * Whatever a call rejected with, as an `ApiError`. Anything that is not the
 * back end's `{kind, message}` (a bug, a Tauri IPC failure) becomes kind
 * 'unexpected' with an empty message: its text was not written for a
 * volunteer, so the UI shows its own sentence instead and nothing leaks.
 */
export function toApiError(e: unknown): ApiError {
  if (isApiError(e)) return typeof e.field === 'string' ? { kind: e.kind, message: e.message, field: e.field } : { kind: e.kind, message: e.message };
  return { kind: 'unexpected', message: '' };
}
