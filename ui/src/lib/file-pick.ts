// The system's file picker for sneakernet bundles and QR pictures (issue 10),
// through Tauri's dialog plugin (`@tauri-apps/plugin-dialog`; the window's
// capability allows only its open and save dialogs). The dialog answers a
// path; the app's own commands read or write it, as for a typed path. The
// path field stays beside the button: in a plain browser (the fake) there is
// no dialog, and native dialogs cannot be driven by WebDriver, so the
// end-to-end tests type paths.
import { backend } from './api';

export type PickKind = 'bundle' | 'pictures';

export interface DialogFilter {
  name: string;
  extensions: string[];
}

/** The part of the dialog plugin this module uses (a stub in unit tests). */
export interface Dialog {
  open(o: { multiple?: boolean; directory?: boolean; filters?: DialogFilter[]; title?: string }): Promise<unknown>;
  save(o: { defaultPath?: string; filters?: DialogFilter[]; title?: string }): Promise<string | null>;
}

export const FILTERS: Record<PickKind, DialogFilter[]> = {
  bundle: [{ name: 'Heartbridge bundle (.hbb)', extensions: ['hbb'] }],
  pictures: [{ name: 'QR pictures', extensions: ['png', 'jpg', 'jpeg'] }],
};

/** Whether a file picker exists here (inside the app, not in a browser). */
export const pickerAvailable = (): boolean => backend === 'tauri';

let dialog: Promise<Dialog> | null = null;
function loadDialog(): Promise<Dialog> {
  dialog ??= import('@tauri-apps/plugin-dialog').then((m) => ({ open: m.open, save: m.save }) as Dialog);
  return dialog;
}

/** The dialog's answer as a list of paths: nothing when cancelled. */
export function toPaths(answer: unknown): string[] {
  if (answer == null) return [];
  const list = Array.isArray(answer) ? answer : [answer];
  return list
    .map((p) => (typeof p === 'string' ? p : typeof p === 'object' && p && 'path' in p ? String((p as { path: unknown }).path) : ''))
    .map((p) => p.trim())
    .filter(Boolean);
}

/** A save path with the bundle's extension (some systems' dialogs leave it off). */
export function withExtension(path: string, ext: string): string {
  const p = path.trim();
  if (!p) return p;
  return p.toLowerCase().endsWith(`.${ext}`) ? p : `${p}.${ext}`;
}

/** Files to read: one bundle, or several QR pictures. Empty when cancelled. */
export async function pickOpen(kind: PickKind, title: string, d?: Dialog): Promise<string[]> {
  const dl = d ?? (await loadDialog());
  const answer = await dl.open({ multiple: kind === 'pictures', directory: false, filters: FILTERS[kind], title });
  const paths = toPaths(answer);
  return kind === 'pictures' ? paths : paths.slice(0, 1);
}

/** Where to write a bundle; null when cancelled. */
export async function pickSave(defaultName: string, title: string, d?: Dialog): Promise<string | null> {
  const dl = d ?? (await loadDialog());
  const answer = await dl.save({ defaultPath: defaultName, filters: FILTERS.bundle, title });
  const path = toPaths(answer)[0];
  return path ? withExtension(path, 'hbb') : null;
}

/** A default file name for an export: `heartbridge-2026-12-01-1930.hbb`. */
export function defaultBundleName(now: Date, what = 'shift'): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `heartbridge-${what}-${now.getFullYear()}-${p(now.getMonth() + 1)}-${p(now.getDate())}-${p(now.getHours())}${p(now.getMinutes())}.hbb`;
}
