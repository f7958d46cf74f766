// The real implementation: every method is one `invoke` of the command named
// in types.ts. Only this file (and nothing in components) imports @tauri-apps.
import { convertFileSrc, invoke } from '@tauri-apps/api/core';
import { listen } from '@tauri-apps/api/event';
import { toApiError } from './errors';
import type { HeartbridgeApi, LessonProgress, LockReason, SyncProgress, SyncStatus } from './types';

async function call<T>(command: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(command, args);
  } catch (e) {
    throw toApiError(e);
  }
}

/**
 * The lesson's media as a blob: URL. The app's hblesson: scheme decrypts the
 * lesson a range at a time (hblesson://localhost/ID on Linux and macOS,
 * http://hblesson.localhost/ID on Windows and Android); the ranges are kept
 * in memory, never written to a file. Not the scheme URL itself: WebKitGTK's
 * media player loads only blob, data, file and http(s) URLs.
 */
async function lessonBlobUrl(id: string): Promise<string> {
  const url = convertFileSrc(id, 'hblesson');
  const parts: ArrayBuffer[] = [];
  let at = 0;
  let total: number | null = null;
  let type = 'application/octet-stream';
  while (total === null || at < total) {
    let r: Response;
    try {
      r = await fetch(url, { headers: { Range: `bytes=${at}-` } });
    } catch (e) {
      throw toApiError(e);
    }
    if (r.status === 503) throw { kind: 'lesson_not_held', message: 'lesson_not_held' };
    if (r.status !== 206 && r.status !== 200) throw { kind: r.status === 403 ? 'locked' : 'not_found', message: `lesson ${r.status}` };
    type = r.headers.get('content-type') ?? type;
    const buf = await r.arrayBuffer();
    const range = /\/(\d+)$/.exec(r.headers.get('content-range') ?? '');
    total = r.status === 200 ? buf.byteLength : range ? Number(range[1]) : at + buf.byteLength;
    if (buf.byteLength === 0) break;
    parts.push(buf);
    at += buf.byteLength;
  }
  return URL.createObjectURL(new Blob(parts, { type }));
}

export function createTauriApi(): HeartbridgeApi {
  return {
    profileStatus: () => call('profile_status'),
    profileCreate: (a) => call('profile_create', a),
    teamClaim: (a) => call('team_claim', a),
    teamJoin: (a) => call('team_join', a),
    teamInvite: (a) => call('team_invite', a),
    teamMembers: () => call('team_members'),
    teamRevoke: (a) => call('team_revoke', a),
    draftSave: (a) => call('draft_save', a),
    draftGet: (a) => call('draft_get', a),
    draftClear: (a) => call('draft_clear', a),

    lockStatus: () => call('lock_status'),
    lockUnlock: (a) => call('lock_unlock', a),
    lockNow: (a) => call('lock_now', a),
    lockActivity: () => call('lock_activity'),
    lockSetTimeout: (a) => call('lock_set_timeout', a),
    lockForget: () => call('lock_forget'),
    onLocked: (handler) => listen<LockReason>('app-locked', (e) => handler(e.payload)),
    onLocking: (handler) => listen<LockReason>('app-locking', (e) => handler(e.payload)),

    handbookList: () => call('handbook_list'),
    handbookGet: (a) => call('handbook_get', a),
    handbookSearch: (a) => call('handbook_search', a),
    bookmarkList: () => call('bookmark_list'),
    bookmarkToggle: (a) => call('bookmark_toggle', a),

    caseList: (f) => call('case_list', { ...f }),
    caseGet: (a) => call('case_get', a),
    caseCreate: (a) => call('case_create', a),
    caseUpdate: (a) => call('case_update', { ...a }),
    caseAddContact: (a) => call('case_add_contact', a),
    caseAddFollowup: (a) => call('case_add_followup', a),
    caseFollowupDone: (a) => call('case_followup_done', a),
    caseHistory: (a) => call('case_history', a),

    shiftCurrent: () => call('shift_current'),
    shiftStart: (a) => call('shift_start', { ...a }),
    shiftEnd: (a) => call('shift_end', { ...a }),

    syncStatus: () => call('sync_status'),
    syncNow: () => call('sync_now'),

    settingsGet: () => call('settings_get'),
    settingsSet: (a) => call('settings_set', { ...a }),

    // U2 (issue 9)
    teamSettingsGet: () => call('team_settings_get'),
    teamSettingsSet: (a) => call('team_settings_set', { ...a }),
    teamSupervisorGroupSet: (a) => call('team_supervisor_group_set', a),
    dutyLineAdd: (a) => call('duty_line_add', { ...a }),
    dutyLineRemove: (a) => call('duty_line_remove', a),
    dutyAdd: (a) => call('duty_add', a),
    dutyRemove: (a) => call('duty_remove', a),
    dutyOnCall: (a) => call('duty_on_call', { ...a }),
    handoverNotes: (a) => call('handover_notes', { ...a }),
    stats: (a) => call('stats', { ...a }),
    statsExport: (a) => call('stats_export', { ...a }),

    onSyncProgress: (handler) => listen<SyncProgress>('sync-progress', (e) => handler(e.payload)),
    onSyncStatus: (handler) => listen<SyncStatus>('sync-status', (e) => handler(e.payload)),

    // supervision (issue 9, U1)
    caseReview: (a) => call('case_review', a),
    caseComment: (a) => call('case_comment', a),
    caseAck: (a) => call('case_ack', a),
    casePhoned: (a) => call('case_phoned', a),
    caseAssign: (a) => call('case_assign', a),
    caseHandoverNote: (a) => call('case_handover_note', a),
    caseDebrief: (a) => call('case_debrief', a),
    reviewQueue: () => call('review_queue'),
    escalationsList: () => call('escalations_list'),
    onCallNow: () => call('on_call_now'),
    relayList: () => call('relay_list'),
    relayAdd: (a) => call('relay_add', a),
    relayRemove: (a) => call('relay_remove', a),
    relayDiscover: (a) => call('relay_discover', a),
    bundleExport: (a) => call('bundle_export', a),
    bundleQrExport: (a) => call('bundle_qr_export', a),
    bundleImport: (a) => call('bundle_import', a),
    bundleQrImport: (a) => call('bundle_qr_import', a),
    bundleQrImportFrames: (a) => call('bundle_qr_import_frames', a),
    caseAssignees: () => call('case_assignees'),
    // micro-lessons (issue 10, item 7)
    lessonList: (a) => call('lesson_list', { ...a }),
    lessonGet: (a) => call('lesson_get', a),
    lessonFetchPlan: (a) => call('lesson_fetch_plan', a),
    lessonFetch: (a) => call('lesson_fetch', a),
    lessonProgressSet: (a) => call('lesson_progress_set', a),
    lessonWatched: (a) => call('lesson_watched', a),
    lessonLinkPolicy: () => call('lesson_link_policy'),
    lessonLinkPolicySet: (a) => call('lesson_link_policy_set', a),
    lessonMediaUrl: ({ id }) => lessonBlobUrl(id),
    lessonStats: (a) => call('lesson_stats', { ...a }),
    onLessonProgress: (handler) => listen<LessonProgress>('lesson-progress', (e) => handler(e.payload)),
  };
}
