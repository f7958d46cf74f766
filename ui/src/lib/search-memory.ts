// What the handbook search showed when the volunteer opened a hit: the
// query, how many hits were loaded and where the list was scrolled, so that
// the reader's way back to the library brings the same list back (issue 12).
// Kept in memory only: nothing of it is written anywhere, and it is
// forgotten with the page. Handbook text only: no case data.

export interface SearchMemory {
  query: string;
  /** How many hits were loaded ("more" pressed). */
  loaded: number;
  /** window.scrollY when a hit was opened. */
  scrollY: number;
  /** The handbook of the hit opened: the reader offers the way back to the results only there. */
  handbookId: string;
}

let memory: SearchMemory | null = null;

export function rememberSearch(m: SearchMemory): void {
  memory = { ...m };
}

export function recalledSearch(): SearchMemory | null {
  return memory ? { ...memory } : null;
}

export function forgetSearch(): void {
  memory = null;
}
