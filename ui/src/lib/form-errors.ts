// Forms that say what is wrong, where (issue 12): each form checks its
// fields before saving and marks the invalid ones; an error from the back
// end that names a field (`ApiError.field`, heartbridge-core's field names)
// is shown at that field too. Pure.
import { toApiError } from './api/errors';
import type { MessageKey } from './i18n/translate';

/** Per field, the catalog message saying what is wrong. */
export type FieldErrors = Partial<Record<string, MessageKey>>;

const CORE_FIELDS: Record<string, string> = {
  alias: 'alias',
  'contact text': 'text',
  'follow-up text': 'text',
  minutes: 'minutes',
  'due date': 'due',
  'certificate fingerprint': 'fingerprint',
};

/** The form field a back-end error names, in the forms' own names, if any. */
export function fieldOf(e: unknown): string | null {
  const err = toApiError(e) as { field?: unknown };
  return typeof err.field === 'string' ? (CORE_FIELDS[err.field] ?? null) : null;
}

/** Minutes as typed: absent, or a whole number from 0 to 1440 (what heartbridge-core accepts). */
export function minutesValid(m: number | null | undefined): boolean {
  return m === null || m === undefined || (Number.isInteger(m) && m >= 0 && m <= 1440);
}

/** The fields with an error, in the order given (the form's order). */
export function invalidFields(errors: FieldErrors, order: readonly string[]): string[] {
  return order.filter((f) => errors[f] !== undefined);
}
