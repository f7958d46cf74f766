import type { SyncProgress } from './api/types';

/**
 * How far a sync has come, 0..1, for a progress bar: sending takes the
 * first 70 % (by changes sent), receiving the next 15 %, done is 100 %.
 */
export function progressFraction(p: SyncProgress | null): number {
  if (!p) return 0;
  switch (p.phase) {
    case 'push': {
      const total = p.pushed + p.pending;
      return total === 0 ? 0.7 : 0.05 + 0.65 * (p.pushed / total);
    }
    case 'pull':
      return 0.85;
    case 'done':
      return 1;
  }
}
