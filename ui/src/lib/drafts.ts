// Unsaved drafts of the case page's forms. A lock unmounts every screen (no
// note text may stay in the DOM), which would throw away a note the
// volunteer was still typing; so before the UI locks, it reads each open
// form's draft and hands it to the back end, which keeps it inside the
// encrypted profile. The form shows it again after the unlock.
import { api, type ContactDraft, type DraftForm, type FollowupDraft } from './api';

export type Draft = ContactDraft | FollowupDraft;

export interface DraftSource {
  caseId: string;
  form: DraftForm;
  /**
   * The form's unsaved content now: null when nothing is typed (a kept draft
   * is then forgotten), undefined while the form has not loaded its kept
   * draft yet (nothing is touched).
   */
  read: () => Draft | null | undefined;
}

export interface DraftItem {
  caseId: string;
  form: DraftForm;
  draft: Draft | null;
}

const sources = new Set<DraftSource>();

/** A form registers while it is on the screen; the returned function unregisters it. */
export function registerDraft(source: DraftSource): () => void {
  sources.add(source);
  return () => sources.delete(source);
}

/** Every open form's draft, read now (synchronously: before the screen goes). */
export function collectDrafts(): DraftItem[] {
  const out: DraftItem[] = [];
  for (const s of sources) {
    const draft = s.read();
    if (draft !== undefined) out.push({ caseId: s.caseId, form: s.form, draft });
  }
  return out;
}

/**
 * Hands the drafts to the back end. A failure is not reported with the
 * draft's text (none reaches a log); the lock goes on regardless.
 */
export async function saveDrafts(items: DraftItem[]): Promise<number> {
  let saved = 0;
  for (const item of items) {
    try {
      await api.draftSave(item);
      saved++;
    } catch {
      // e.g. the back end locked already; nothing more can be done
    }
  }
  return saved;
}

/** Whether a contact draft holds anything typed. */
export function contactDraft(d: ContactDraft): ContactDraft | null {
  return d.text.trim() === '' && d.minutes === null ? null : d;
}

/** Whether a follow-up draft holds anything typed. */
export function followupDraft(d: FollowupDraft): FollowupDraft | null {
  return d.text.trim() === '' && d.due === '' ? null : d;
}

/** For tests. */
export function resetDraftsForTests(): void {
  sources.clear();
}
