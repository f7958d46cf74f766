// The one module components call. It picks the implementation once, at
// start: inside the Tauri app (`window.__TAURI_INTERNALS__` exists) every call
// is an `invoke` (tauri.ts); in a plain browser it is the in-memory fake
// (fake.ts). Both are loaded lazily, so each build path only runs its own.
import { isApiError, toApiError } from './errors';
import type { Backend, HeartbridgeApi } from './types';

export * from './types';
export { isApiError, toApiError } from './errors';

export const backend: Backend =
  typeof window !== 'undefined' && '__TAURI_INTERNALS__' in window ? 'tauri' : 'fake';

let implementation: Promise<HeartbridgeApi> | null = null;

function load(): Promise<HeartbridgeApi> {
  implementation ??=
    backend === 'tauri'
      ? import('./tauri').then((m) => m.createTauriApi())
      : import('./fake').then((m) => m.createFakeApi(m.optionsFromUrl(globalThis.location?.search ?? '')));
  return implementation;
}

// Every method of the contract; `satisfies` makes a new command a compile
// error here until it is listed.
const METHODS = {
  profileStatus: true,
  profileCreate: true,
  teamClaim: true,
  teamJoin: true,
  teamInvite: true,
  teamMembers: true,
  teamRevoke: true,
  draftSave: true,
  draftGet: true,
  draftClear: true,
  onLocking: true,
  lockStatus: true,
  lockUnlock: true,
  lockNow: true,
  lockActivity: true,
  lockSetTimeout: true,
  lockForget: true,
  onLocked: true,
  handbookList: true,
  handbookGet: true,
  handbookSearch: true,
  bookmarkList: true,
  bookmarkToggle: true,
  caseList: true,
  caseGet: true,
  caseCreate: true,
  caseUpdate: true,
  caseAddContact: true,
  caseAddFollowup: true,
  caseFollowupDone: true,
  caseHistory: true,
  shiftCurrent: true,
  shiftStart: true,
  shiftEnd: true,
  syncStatus: true,
  syncNow: true,
  settingsGet: true,
  settingsSet: true,
  // U2 (issue 9)
  teamSettingsGet: true,
  teamSettingsSet: true,
  teamSupervisorGroupSet: true,
  dutyLineAdd: true,
  dutyLineRemove: true,
  dutyAdd: true,
  dutyRemove: true,
  dutyOnCall: true,
  handoverNotes: true,
  stats: true,
  statsExport: true,
  onSyncProgress: true,
  onSyncStatus: true,
  // supervision (issue 9, U1)
  caseReview: true,
  caseComment: true,
  caseAck: true,
  casePhoned: true,
  caseAssign: true,
  caseHandoverNote: true,
  caseDebrief: true,
  reviewQueue: true,
  escalationsList: true,
  onCallNow: true,
  caseAssignees: true,
  // relays (issue 10)
  relayList: true,
  relayAdd: true,
  relayRemove: true,
  relayDiscover: true,
  // bundles (issue 10)
  bundleExport: true,
  bundleQrExport: true,
  bundleImport: true,
  bundleQrImport: true,
  bundleQrImportFrames: true,
  // micro-lessons (issue 10, item 7)
  lessonList: true,
  lessonGet: true,
  lessonFetchPlan: true,
  lessonFetch: true,
  lessonProgressSet: true,
  lessonWatched: true,
  lessonLinkPolicy: true,
  lessonLinkPolicySet: true,
  lessonMediaUrl: true,
  lessonStats: true,
  onLessonProgress: true,
} satisfies Record<keyof HeartbridgeApi, true>;

type AnyMethod = (...args: unknown[]) => Promise<unknown>;

/** Wraps an implementation so that every rejection is an `ApiError`. */
export function wrap(load: () => Promise<HeartbridgeApi>): HeartbridgeApi {
  const out: Record<string, AnyMethod> = {};
  for (const name of Object.keys(METHODS) as (keyof HeartbridgeApi)[]) {
    out[name] = async (...args) => {
      const impl = await load();
      try {
        return await (impl[name] as AnyMethod)(...args);
      } catch (e) {
        if (!isApiError(e)) console.error(`api.${name} failed unexpectedly`, e);
        throw toApiError(e);
      }
    };
  }
  return out as unknown as HeartbridgeApi;
}

export const api: HeartbridgeApi = wrap(load);
