// Checks of a new PIN or passphrase before it is sent (the back end checks
// the length again). Pure.
import { MIN_PIN_LENGTH } from './api/types';

export type PinProblem = 'short' | 'mismatch';

/** Characters as a person counts them (a Chinese character is one). */
export function pinLength(pin: string): number {
  return [...pin].length;
}

/** What is wrong with a new PIN typed twice, or null when it can be set. */
export function pinProblem(pin: string, again: string): PinProblem | null {
  if (pinLength(pin) < MIN_PIN_LENGTH) return 'short';
  if (pin !== again) return 'mismatch';
  return null;
}
