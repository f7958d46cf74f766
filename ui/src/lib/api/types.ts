// The command contract between the UI and src-tauri.
//
// Every command name below (in the comments) is the Tauri command name; its
// arguments are one camelCase object. Every call returns a Promise that
// rejects with an `ApiError` whose `message` is already fit to show a
// volunteer. Timestamps are RFC 3339 strings; a follow-up's `due` is a date
// written `YYYY-MM-DD` (that is what heartbridge-core stores and validates).

export type Risk = 'none' | 'low' | 'medium' | 'high' | 'critical';
export type Status = 'open' | 'referred' | 'closed';
export type Group =
  | 'left-behind'
  | 'migrant'
  | 'disability'
  | 'hardship'
  | 'exam-stress'
  | 'event-volunteer'
  | 'other';
export type Channel = 'hotline' | 'in-person' | 'online';
export type Role = 'volunteer' | 'supervisor' | 'lead' | 'relay';
export type Language = 'zh-CN' | 'en';

export const RISKS: readonly Risk[] = ['none', 'low', 'medium', 'high', 'critical'];
export const STATUSES: readonly Status[] = ['open', 'referred', 'closed'];
export const GROUPS: readonly Group[] = [
  'left-behind',
  'migrant',
  'disability',
  'hardship',
  'exam-stress',
  'event-volunteer',
  'other',
];
export const CHANNELS: readonly Channel[] = ['hotline', 'in-person', 'online'];
export const ROLES: readonly Role[] = ['volunteer', 'supervisor', 'lead'];

export interface ApiError {
  kind: string;
  message: string;
  /** The form field an `invalid_input` error is about (heartbridge-core's name: `alias`, `contact text`, `minutes`, `follow-up text`, `due date`). */
  field?: string;
}

export interface TeamInfo {
  teamId: string;
  relayUrl: string;
  role: Role;
  /** This device is the team's lead (its signing key is the team's root of trust): it may remove members. */
  isLead?: boolean;
  /** The team key's epoch (it goes up by one for each member removed). */
  epoch?: number;
}
export interface ProfileStatus {
  initialized: boolean;
  name?: string;
  deviceId?: string;
  team?: TeamInfo;
}

export interface HandbookSummary {
  id: string;
  slug: string;
  title: string;
  language: string;
  version: string;
  sections: number;
  chars: number;
}
export interface SectionView {
  index: number;
  level: number;
  title: string;
  /** Already sanitized by the back end: render with {@html}. */
  html: string;
}
export interface HandbookView {
  id: string;
  title: string;
  language: string;
  version: string;
  sections: SectionView[];
}
export interface Hit {
  handbookId: string;
  handbookTitle: string;
  section: number;
  sectionTitle: string;
  /** The section's heading, HTML-escaped, the matches in `<mark>`. */
  titleHtml: string;
  /** The headings the section sits under, outermost first, escaped and marked. */
  contextHtml: string[];
  /** Plain text from the section, HTML-escaped, the matches in `<mark>`. */
  snippet: string;
  score: number;
}
/** handbook_search: how many sections match in all, and one page of them. */
export interface SearchPage {
  total: number;
  hits: Hit[];
}
export interface Bookmark {
  handbookId: string;
  section: number;
  handbookTitle: string;
  sectionTitle: string;
  createdAt: string;
}

export interface Contact {
  id: string;
  at: string;
  channel: Channel;
  minutes: number | null;
  text: string;
  author: string;
}
export interface Followup {
  id: string;
  text: string;
  due: string | null;
  done: boolean;
}
export interface Case {
  id: string;
  alias: string;
  group: Group;
  risk: Risk;
  riskConflict: boolean;
  status: Status;
  tags: string[];
  contacts: Contact[];
  followups: Followup[];
  createdAt: string;
  createdBy: string;
}
export interface CaseSummary {
  id: string;
  alias: string;
  group: Group;
  risk: Risk;
  status: Status;
  contacts: number;
  openFollowups: number;
  updatedAt: string;
}
export interface HistoryEntry {
  at: string;
  author: string;
  /** What changed, as heartbridge-core writes it: "risk → high", "contact logged (hotline)"… */
  what: string;
  /** The change's id (a short hash). */
  change: string;
}

export interface Shift {
  startedAt: string;
  contacts: number;
  /** The duty line the shift started on (issue 9: its id, name and kind then), null when none was chosen. */
  line?: string | null;
  lineName?: string | null;
  lineKind?: LineKind | null;
}
/**
 * How the last sync attempt went, for "团队已连接" and its opposites:
 * `syncing` a sync runs (and none failed before it); `connected` the relay
 * answered at `at`; `unreachable` no relay reached since `since` (the first
 * failure in a row; a retry may be running); `refused` the relay answered
 * with an error of `kind` at `at`; `unknown` no attempt yet.
 */
export interface Connection {
  state: 'syncing' | 'connected' | 'unreachable' | 'refused' | 'unknown';
  since: string | null;
  at: string | null;
  kind: string | null;
}
/** The latest shift's local changes and how many of them a relay has acknowledged. */
export interface ShiftDelivery {
  startedAt: string;
  endedAt: string | null;
  changes: number;
  /** How many of them the central relay has (they left this device). */
  delivered: number;
  /** Of the rest, how many a venue relay holds (level 1, not yet confirmed at the central relay). */
  atVenue: number;
  /** When the last of them was delivered (null while some wait). */
  deliveredAt: string | null;
}
export interface SyncStatus {
  lastSyncedAt: string | null;
  /** Local changes no relay has acknowledged yet (the store's outbox). */
  pending: number;
  lastError: ApiError | null;
  syncing: boolean;
  connection: Connection;
  /** null before the first shift on this device. */
  shift: ShiftDelivery | null;
  /** Of `pending`, how many a venue relay holds (level 1: not yet confirmed at the central relay). */
  atVenue?: number;
  /** Changes of other members this device carried (from a bundle) that the central relay refused; kept sealed here. */
  carriedRefused?: number;
  /** The relay said this device was removed from the team: syncing stopped. */
  stopped?: boolean;
}
export interface SyncReport {
  /** Envelopes pushed (one per document per request). */
  pushed: number;
  /** Local changes those envelopes delivered: what the receipt counts. */
  changesDelivered: number;
  /** Local changes still waiting after the sync (0 when all were delivered). */
  pending: number;
  pulled: number;
  cursor: number;
  requests: number;
  bytesSent: number;
  bytesReceived: number;
  refused: number;
  finishedAt: string;
}
export interface SyncProgress {
  phase: 'push' | 'pull' | 'done';
  requests: number;
  pushed: number;
  pulled: number;
  pending: number;
  bytesSent: number;
  bytesReceived: number;
}
export interface Member {
  deviceId: string;
  name: string | null;
  role: Role;
  lastSyncAt: string | null;
  revoked: boolean;
  /** This device. */
  thisDevice?: boolean;
}
/** team_invite's answer: the code, its expiry (RFC 3339) and the key epoch it carries. */
export interface InviteCode {
  code: string;
  expiresAt: string;
  epoch: number;
}
/** team_revoke's answer. */
export interface RevokeResult {
  deviceId: string;
  /** The new team key's epoch. */
  epoch: number;
  /** The relay's last sequence number when it refused the device. */
  cutoffSeq: number;
  /** Whether the sync right after it delivered the new roster (else the next sync does). */
  synced: boolean;
  syncError: ApiError | null;
}
/** The case page's forms that keep an unsaved draft across a lock. */
export type DraftForm = 'contact' | 'followup';
export interface ContactDraft {
  channel: Channel | null;
  minutes: number | null;
  text: string;
}
export interface FollowupDraft {
  text: string;
  due: string;
}
export interface CaseDrafts {
  contact: ContactDraft | null;
  followup: FollowupDraft | null;
}

export interface CaseFilter {
  risk?: Risk;
  status?: Status;
  group?: Group;
}
export interface CaseUpdate {
  id: string;
  alias?: string;
  risk?: Risk;
  status?: Status;
  group?: Group;
}
export interface Settings {
  language: Language;
}

/**
 * The app lock. `no-profile`: nothing on this device yet (first run: a PIN is
 * set before the profile is made). `needs-pin`: a profile made before the
 * app had a PIN; setting one encrypts it. `locked`: the profile is closed and
 * its key dropped; only the PIN opens it. `unlocked`: the store is open.
 * `destroyed`: too many wrong PINs, the keys and the database were erased.
 *
 * Nothing here says anything about the profile's content (no name, no case
 * count, no team): it is what the lock screen may show.
 */
export type LockState = 'no-profile' | 'needs-pin' | 'locked' | 'unlocked' | 'destroyed';
export interface LockStatus {
  state: LockState;
  /** After a wrong PIN: how many more tries before the profile is erased. */
  triesLeft: number | null;
  /** Set when the last unlock was refused for a wrong PIN. */
  wrongPin: boolean;
  /** Inactivity before the app locks itself, in seconds (read after unlock). */
  lockAfterSecs: number;
  /** Whether `lockAfterSecs` was set for this run (flag or environment) rather than in settings. */
  lockAfterFixed: boolean;
  /** Why a `destroyed` profile was erased: too many wrong PINs, or the team's lead removed this device. */
  erasedBy?: 'wrong-pins' | 'revoked' | null;
}
/** The shortest PIN or passphrase the app accepts (the back end checks it too). */
export const MIN_PIN_LENGTH = 6;
/** The inactivity times settings offers, in minutes. */
export const LOCK_AFTER_MINUTES: readonly number[] = [1, 2, 5, 10, 15, 30];
/** Why the app locked: the volunteer's command, inactivity, or the window left the screen. */
export type LockReason = 'command' | 'idle' | 'background' | 'revoked';

// ---- U2 (issue 9): the duty roster, team settings, statistics ----------------

/** A duty line's kind (四线值守: hotline, online, venue, the on-call supervisor). */
export type LineKind = 'hotline' | 'online' | 'venue' | 'on-call';
export const LINE_KINDS: readonly LineKind[] = ['hotline', 'online', 'venue', 'on-call'];
export interface DutyLine {
  id: string;
  name: string;
  kind: LineKind;
  /** The line's own phone (the on-call line's number, say); null when it has none. */
  phone: string | null;
}
/** Who is on a line when: `from` and `to` are RFC 3339. */
export interface DutySlot {
  id: string;
  line: string;
  device: string;
  name: string;
  from: string;
  to: string;
}
/** The team's settings document: only the lead's device writes it; everyone reads it. */
export interface TeamSettings {
  onCallPhone: string;
  leadReadsCases: boolean;
  /** Counts from 1 to k are suppressed in exports (and marked on the statistics screen). */
  suppressionK: number;
  /** supervisor device → the volunteer devices they supervise; empty = every supervisor supervises everyone. */
  supervisorGroups: Record<string, string[]>;
  lines: DutyLine[];
  /** Sorted by `from`. */
  duty: DutySlot[];
}
export interface TeamSettingsUpdate {
  onCallPhone?: string;
  leadReadsCases?: boolean;
  suppressionK?: number;
}
/** A shift-end note for the next shift on the same line (team-wide: no case details). */
export interface ShiftHandover {
  id: string;
  /** The line's id ('' for a shift on no line). */
  line: string;
  at: string;
  byName: string;
  text: string;
}
export type StatsDim = 'channel' | 'group' | 'risk' | 'week' | 'month';
export const STATS_DIMS: readonly StatsDim[] = ['channel', 'group', 'risk', 'week', 'month'];
export interface StatsMeasures {
  /** 服务人次 */
  contacts: number;
  distinctCases: number;
  newCases: number;
  escalations: number;
  /** Escalations with a receipt (what the median is taken over). */
  receipts: number;
  /** null when no escalation in the period had a receipt. */
  medianReceiptMinutes: number | null;
  followupsDone: number;
  followupsOverdue: number;
  volunteerHours: number;
}
export type StatsMeasure = keyof StatsMeasures;
export const STATS_MEASURES: readonly StatsMeasure[] = [
  'contacts',
  'distinctCases',
  'newCases',
  'escalations',
  'medianReceiptMinutes',
  'followupsDone',
  'followupsOverdue',
  'volunteerHours',
];
/** One cell of a breakdown: `key` holds the value of each dimension asked for (a week is `2026-W48`, a month `2026-11`). */
export interface StatsRow {
  key: Partial<Record<StatsDim, string>>;
  measures: StatsMeasures;
}
export interface StatsQuery {
  /** `YYYY-MM-DD`, inclusive; absent = from the first fact. */
  from?: string;
  /** `YYYY-MM-DD`, inclusive; absent = up to now. */
  to?: string;
  by: StatsDim[];
  /** Where days begin: minutes east of UTC (480 in China); default 0. */
  utcOffsetMinutes?: number;
}
export interface Stats {
  from: string | null;
  to: string | null;
  generatedAt: string;
  /** The team's suppression threshold. */
  k: number;
  totals: StatsMeasures;
  rows: StatsRow[];
}
/** Where stats_export wrote the de-identified CSV. */
export interface StatsExport {
  path: string;
  bytes: number;
}

export type Unlisten = () => void;

/**
 * What the UI can ask of the device. `tauri.ts` maps each method to the
 * command named in its comment; `fake.ts` implements it in memory.
 */
export interface HeartbridgeApi {
  /** profile_status */
  profileStatus(): Promise<ProfileStatus>;
  /** profile_create: `pin` protects the new profile (at least MIN_PIN_LENGTH characters) */
  profileCreate(args: { name: string; pin: string }): Promise<ProfileStatus>;
  /**
   * team_claim: `pin` (the app lock's) when this creates the profile (first
   * run); `fingerprint`: the relay's certificate (sha256:…) when it serves a
   * self-signed one, like `heartbridge team claim --pin`.
   */
  teamClaim(args: { relayUrl: string; token: string; name: string; pin?: string; fingerprint?: string }): Promise<ProfileStatus>;
  /** team_join: `pin` when this creates the profile (first run) */
  teamJoin(args: { code: string; name: string; pin?: string }): Promise<ProfileStatus>;

  /** lock_status */
  lockStatus(): Promise<LockStatus>;
  /**
   * lock_unlock: opens the profile with the PIN. A wrong PIN is not a
   * rejection: the status comes back `locked` with `wrongPin` and
   * `triesLeft`, or `destroyed`. On `needs-pin` it sets this PIN.
   */
  lockUnlock(args: { pin: string }): Promise<LockStatus>;
  /** lock_now: closes the store, drops the key, stops the sync; emits 'app-locked' */
  lockNow(args: { reason: LockReason }): Promise<LockStatus>;
  /**
   * lock_activity: the volunteer did something (sent at most every quarter
   * of the lock time); the back end's own inactivity check counts from it
   */
  lockActivity(): Promise<void>;
  /** lock_set_timeout: the inactivity time, in seconds (stored in the profile) */
  lockSetTimeout(args: { secs: number }): Promise<LockStatus>;
  /** lock_forget: after `destroyed`, back to the first run (no profile) */
  lockForget(): Promise<LockStatus>;
  /** event 'app-locked': the back end locked (window in the background, inactivity, command, revoked) */
  onLocked(handler: (reason: LockReason) => void): Promise<Unlisten>;
  /**
   * event 'app-locking': the back end is about to lock (the window left the
   * screen, the relay refused this device); the UI hands over its drafts and
   * locks itself within half a second, else the back end locks anyway
   */
  onLocking(handler: (reason: LockReason) => void): Promise<Unlisten>;
  /** team_invite: valid 24 hours, once; carries the team's current key */
  teamInvite(args: { role: Role }): Promise<InviteCode>;
  /** team_members */
  teamMembers(): Promise<Member[]>;
  /** team_revoke: lead only; the relay refuses the device at once, a new team key goes to the others */
  teamRevoke(args: { deviceId: string }): Promise<RevokeResult>;
  /** draft_save: keeps a case form's unsaved draft inside the encrypted profile; null forgets it */
  draftSave(args: { caseId: string; form: DraftForm; draft: ContactDraft | FollowupDraft | null }): Promise<void>;
  /** draft_get */
  draftGet(args: { caseId: string }): Promise<CaseDrafts>;
  /** draft_clear: the draft was saved as a record */
  draftClear(args: { caseId: string; form: DraftForm }): Promise<void>;

  /** handbook_list */
  handbookList(): Promise<HandbookSummary[]>;
  /** handbook_get */
  handbookGet(args: { id: string }): Promise<HandbookView>;
  /** handbook_search */
  handbookSearch(args: { query: string; limit: number; offset?: number }): Promise<SearchPage>;
  /** bookmark_list */
  bookmarkList(): Promise<Bookmark[]>;
  /** bookmark_toggle: resolves true when the section is now bookmarked */
  bookmarkToggle(args: { handbookId: string; section: number }): Promise<boolean>;

  /** case_list: high and critical first */
  caseList(filter?: CaseFilter): Promise<CaseSummary[]>;
  /** case_get */
  caseGet(args: { id: string }): Promise<Case>;
  /** case_create */
  caseCreate(args: { alias: string; group: Group; risk: Risk }): Promise<{ id: string }>;
  /** case_update */
  caseUpdate(args: CaseUpdate): Promise<Case>;
  /** case_add_contact */
  caseAddContact(args: { id: string; channel: Channel; text: string; minutes?: number }): Promise<Case>;
  /** case_add_followup */
  caseAddFollowup(args: { id: string; text: string; due?: string }): Promise<Case>;
  /** case_followup_done */
  caseFollowupDone(args: { id: string; followupId: string; done: boolean }): Promise<Case>;
  /** case_history */
  caseHistory(args: { id: string }): Promise<HistoryEntry[]>;

  /** shift_current */
  shiftCurrent(): Promise<Shift | null>;
  /** shift_start: `line` the duty line it starts on (issue 9) */
  shiftStart(args?: { line?: string }): Promise<Shift>;
  /**
   * shift_end: ends the shift and syncs; rejects with kind 'network' when the
   * relay can't be reached. What of the shift was delivered is in
   * `SyncStatus.shift`, whichever sync delivered it.
   */
  shiftEnd(args?: { handover?: string }): Promise<SyncReport>;

  /** sync_status */
  syncStatus(): Promise<SyncStatus>;
  /** sync_now */
  syncNow(): Promise<SyncReport>;

  /** settings_get */
  settingsGet(): Promise<Settings>;
  /** settings_set */
  settingsSet(args: Settings): Promise<void>;

  // ---- U2 (issue 9): duty roster, team settings, statistics
  /** team_settings_get: defaults when the team has none yet; everyone on the team reads it */
  teamSettingsGet(): Promise<TeamSettings>;
  /** team_settings_set: lead only (kind `forbidden` otherwise) */
  teamSettingsSet(args: TeamSettingsUpdate): Promise<TeamSettings>;
  /** team_supervisor_group_set: lead only; an empty list removes the supervisor's group */
  teamSupervisorGroupSet(args: { supervisor: string; volunteers: string[] }): Promise<TeamSettings>;
  /** duty_line_add: lead only */
  dutyLineAdd(args: { name: string; kind: LineKind; phone?: string }): Promise<TeamSettings>;
  /** duty_line_remove: lead only */
  dutyLineRemove(args: { id: string }): Promise<TeamSettings>;
  /** duty_add: lead only; `member` a device id shown as `name`; `from`/`to` Unix ms (`to` excluded) */
  dutyAdd(args: { line: string; member: string; name: string; from: number; to: number }): Promise<TeamSettings>;
  /** duty_remove: lead only */
  dutyRemove(args: { id: string }): Promise<TeamSettings>;
  /** duty_on_call: who is on call at `at` (Unix ms, default now), from the roster on this device; `OnCall` is U1's type */
  dutyOnCall(args?: { at?: number }): Promise<OnCall | null>;
  /** handover_notes: the latest shift-end notes left for `line` (newest first) */
  handoverNotes(args: { line?: string }): Promise<ShiftHandover[]>;
  /** stats: supervisors and the lead only (kind `forbidden` for a volunteer) */
  stats(args: StatsQuery): Promise<Stats>;
  /** stats_export: writes the de-identified CSV into the profile's export folder */
  statsExport(args: StatsQuery): Promise<StatsExport>;

  /** event 'sync-progress' */
  onSyncProgress(handler: (p: SyncProgress) => void): Promise<Unlisten>;
  /** event 'sync-status' */
  onSyncStatus(handler: (s: SyncStatus) => void): Promise<Unlisten>;
}

/** Which implementation is behind `api`. */
export type Backend = 'tauri' | 'fake';

// ---- Supervision (issue 9, helper U1): review, comments, escalation with a
// receipt, assignment and handover, debrief. The interfaces below merge into
// `Case`, `CaseSummary` and `HeartbridgeApi` above (TypeScript declaration
// merging), so each part's additions stay in their own block.

/** A supervisor's review of a case; new cases start `unreviewed`. */
export type ReviewState = 'unreviewed' | 'reviewed' | 'needs-follow-up';
export const REVIEW_STATES: readonly ReviewState[] = ['unreviewed', 'reviewed', 'needs-follow-up'];
/** `awaiting`: the newest escalation has no receipt yet; '' when never escalated. */
export type EscalationState = '' | 'awaiting' | 'acknowledged';
export type EscalationLevel = 'high' | 'critical';
/** `app`: a supervisor acknowledged it in the app; `phone`: the volunteer reached the on-call supervisor by phone. */
export type ReceiptMode = 'app' | 'phone';
export type DebriefState = 'offered' | 'held' | 'declined';

export interface Receipt {
  id?: string;
  byDevice: string;
  byName: string;
  at: string;
  /** What to do (a supervisor's), or the volunteer's note of the call (phone). */
  instructions: string;
  mode: ReceiptMode;
}
export interface Escalation {
  id: string;
  at: string;
  level: EscalationLevel;
  byDevice: string;
  byName: string;
  source: 'hand' | 'screening';
  /** The supervisor on call when it was raised (from the duty roster), '' when none. */
  onCallName: string;
  onCallDevice: string;
  /** The first receipt: it ends the wait. */
  receipt: Receipt | null;
  /** Every receipt, oldest first (a supervisor may answer after the volunteer recorded a call). */
  receipts?: Receipt[];
  msToReceipt?: number | null;
}
export interface CaseComment {
  id: string;
  authorDevice: string;
  authorName: string;
  at: string;
  /** The contact it is about, or null (or '') for the whole case. */
  contact: string | null;
  text: string;
}
export interface Assignment {
  id: string;
  fromDevice: string;
  fromName: string;
  toDevice: string;
  toName: string;
  byDevice: string;
  byName: string;
  at: string;
  note: string;
}
export interface Debrief {
  id: string;
  contact: string;
  at: string;
  state: DebriefState;
  byDevice: string;
}
export interface HandoverNote {
  id: string;
  at: string;
  byDevice: string;
  byName: string;
  text: string;
}

export interface Case {
  createdByDevice: string;
  assigneeDevice: string;
  assigneeName: string;
  assignments: Assignment[];
  reviewState: ReviewState;
  reviewBy: string;
  reviewAt: string | null;
  comments: CaseComment[];
  escalations: Escalation[];
  debriefs: Debrief[];
  handoverNotes: HandoverNote[];
  escalation: EscalationState;
  /** Until a receipt exists: the case shows “未获督导确认” everywhere it appears. */
  awaitingReceipt: boolean;
}
export interface CaseSummary {
  reviewState: ReviewState;
  assigneeName: string;
  escalation: EscalationState;
  awaitingReceipt: boolean;
  createdAt: string;
}
/** One escalated case in the supervisor's view (its newest escalation): awaiting first (oldest first), then acknowledged. */
export interface EscalationEntry {
  /** The case's id. */
  case: string;
  alias: string;
  risk: Risk;
  assigneeName: string;
  state: Exclude<EscalationState, ''>;
  awaitingReceipt: boolean;
  escalation: Escalation;
}
/** Who to call now: the on-call line's person and phone, else the team's on-call phone. */
export interface OnCall {
  name: string | null;
  device: string | null;
  phone: string | null;
}
/** A member a case can be assigned to (from the roster on this device). */
export interface Assignee {
  deviceId: string;
  name: string;
  role: Role;
  thisDevice: boolean;
}

export interface HeartbridgeApi {
  /** case_review: supervisor or lead */
  caseReview(args: { id: string; state: Exclude<ReviewState, 'unreviewed'> }): Promise<Case>;
  /** case_comment: supervisor or lead; `contact` ties it to one contact */
  caseComment(args: { id: string; text: string; contact?: string }): Promise<Case>;
  /** case_ack: a supervisor's acknowledgement of the newest escalation, with instructions */
  caseAck(args: { id: string; instructions: string }): Promise<Case>;
  /** case_phoned: the volunteer reached the on-call supervisor by phone */
  casePhoned(args: { id: string; note?: string }): Promise<Case>;
  /** case_assign: supervisor or lead; `to` is a device id, `toName` the name shown for it */
  caseAssign(args: { id: string; to: string; toName?: string; note: string }): Promise<Case>;
  /** case_handover_note: a note for the next shift on this case */
  caseHandoverNote(args: { id: string; text: string }): Promise<Case>;
  /** case_debrief: after a contact on a high or critical case */
  caseDebrief(args: { id: string; contact: string; state: Exclude<DebriefState, 'offered'> }): Promise<Case>;
  /** review_queue: unreviewed cases, high and critical first, then oldest first */
  reviewQueue(): Promise<CaseSummary[]>;
  /** escalations_list: awaiting first (oldest first), then acknowledged */
  escalationsList(): Promise<EscalationEntry[]>;
  /** on_call_now: from the team settings and the duty roster, read on this device (no network) */
  onCallNow(): Promise<OnCall>;
  /** case_assignees: the team's members on this device's roster */
  caseAssignees(): Promise<Assignee[]>;
}
export interface CaseUpdate {
  /** With a raise of risk: whether the volunteer set it by hand or confirmed the screening. */
  source?: 'hand' | 'screening';
}

// issue 10: the relays this device knows, and venue relays heard on the
// local network (relay_cmds.rs).
export type RelayKind = 'central' | 'venue';

export interface RelayEntry {
  url: string;
  /** `sha256:` + base64url of the relay's certificate; null: checked by public authorities */
  pin: string | null;
  kind: RelayKind;
  label: string | null;
  insecure: boolean;
  addedAt: number;
  lastOkAt: number | null;
  lastRttMs: number | null;
  /** the team's own relay (from the invite): cannot be removed */
  teamRelay: boolean;
  /** the relay the last sync used */
  active: boolean;
}

export interface FoundRelay {
  instance: string;
  url: string;
  pin: string | null;
  teamTag: string | null;
  /** announced with this device's team's tag */
  thisTeam: boolean;
}

export interface HeartbridgeApi {
  /** relay_list: in the order a sync tries them (venue first, then by round trip) */
  relayList(): Promise<RelayEntry[]>;
  /** relay_add: the list afterwards */
  relayAdd(args: { url: string; pin?: string; venue: boolean }): Promise<RelayEntry[]>;
  /** relay_remove: not the team's relay (`central_relay`); the list afterwards */
  relayRemove(args: { url: string }): Promise<RelayEntry[]>;
  /** relay_discover: listens on the local network (mDNS) for a few seconds; adds nothing */
  relayDiscover(args: { seconds?: number }): Promise<FoundRelay[]>;
}

// issue 10: sneakernet bundles (bundle_cmds.rs). A bundle is sealed: the file
// holds no readable note, only envelopes the team's devices can open.
export interface BundleExported {
  /** sealed changes written */
  envelopes: number;
  /** of them, other members' changes this device carries */
  carried: number;
  /** left out: written by an earlier export of this shift (`since: 'last'`) */
  alreadyExported: number;
  bytes: number;
}

export interface BundleImported {
  envelopes: number;
  applied: number;
  alreadyHere: number;
  /** cases this device does not read: kept sealed, still carried to the relay */
  locked: number;
  waiting: number;
  refused: number;
  /** sent to the relay with this device's next sync */
  queued: number;
}

export interface BundleQrFrames {
  /** PNG data URLs, frame 1 first */
  frames: string[];
  envelopes: number;
  bytes: number;
}

export interface HeartbridgeApi {
  /** bundle_export: this shift's changes (`last`), everything not yet acknowledged (`all`) or one case's (`caseId`) into a file */
  bundleExport(args: { path: string; since?: 'last' | 'all'; caseId?: string }): Promise<BundleExported>;
  /** bundle_qr_export: a case's undelivered changes as QR frames */
  bundleQrExport(args: { caseId: string }): Promise<BundleQrFrames>;
  /** bundle_import: a bundle file; refused whole (`bundle_*` kinds) if anything is wrong */
  bundleImport(args: { path: string }): Promise<BundleImported>;
  /** bundle_qr_import: frame images in any order; `qr_missing` names the frames still to scan */
  bundleQrImport(args: { paths: string[] }): Promise<BundleImported>;
  /** bundle_qr_import_frames: frames read by the camera (each frame's bytes as base64), any order; `qr_missing` names the frames still to scan */
  bundleQrImportFrames(args: { frames: string[] }): Promise<BundleImported>;
}

// issue 10, item 7: micro-lessons (lesson_cmds.rs). A lesson is a sealed,
// chunked media file a handbook carries; its chunks are fetched from the
// relay, kept sealed on the device and decrypted only for the player.
export interface LessonInfo {
  /** content address: 32 hex digits */
  id: string;
  handbook: string;
  title: string;
  /** e.g. audio/wav, video/mp4 */
  mime: string;
  /** bytes of the media file */
  size: number;
  durationMs: number | null;
  chunks: number;
  chunksHeld: number;
  bytesHeld: number;
  /** every chunk is on this device: plays with no network */
  held: boolean;
  /** where the volunteer stopped, if they started */
  positionMs: number | null;
  /** completed viewings on this device */
  watchedCount: number;
  addedAt: number;
}

/** lesson_fetch_plan: what a download would cost, before anything is fetched */
export interface LessonFetchPlan {
  lessons: string[];
  bytesMissing: number;
  chunksMissing: number;
  /** the relay is not the venue's local one: the link may be metered */
  metered: boolean;
}

export interface LessonFetchReport {
  chunksFetched: number;
  bytesFetched: number;
  /** every asked-for lesson is now whole on this device */
  complete: boolean;
}

/** event 'lesson-progress': after every chunk stored */
export interface LessonProgress {
  lessonId: string;
  chunks: number;
  chunksHeld: number;
  bytesHeld: number;
  size: number;
  held: boolean;
}

export type LessonLinkPolicy = 'ask' | 'unmetered';

/** lesson_stats: viewings (人次) in the period, every lesson together and per lesson */
export interface LessonStats {
  from: string;
  to: string;
  lessonsWatched: number;
  /** most watched first; `title` is empty for a lesson no handbook here names */
  byLesson: { lesson: string; title: string; watched: number }[];
}

export interface HeartbridgeApi {
  /** lesson_list: a handbook's lessons (all when no handbook) */
  lessonList(args: { handbook?: string }): Promise<LessonInfo[]>;
  /** lesson_get */
  lessonGet(args: { id: string }): Promise<LessonInfo>;
  /** lesson_fetch_plan: no network */
  lessonFetchPlan(args: { ids: string[] }): Promise<LessonFetchPlan>;
  /**
   * lesson_fetch: the missing chunks, resumable; on a link that may be
   * metered, refused with `metered_link` unless `confirmMetered` (the
   * volunteer saw the size and agreed)
   */
  lessonFetch(args: { ids: string[]; confirmMetered: boolean }): Promise<LessonFetchReport>;
  /** lesson_progress_set: where the volunteer is, saved as they watch */
  lessonProgressSet(args: { id: string; positionMs: number }): Promise<void>;
  /** lesson_watched: one completed viewing (one 人次); this device's count */
  lessonWatched(args: { id: string }): Promise<number>;
  /** lesson_link_policy */
  lessonLinkPolicy(): Promise<LessonLinkPolicy>;
  /** lesson_link_policy_set */
  lessonLinkPolicySet(args: { policy: LessonLinkPolicy }): Promise<void>;
  /** the URL the player's media element reads (the app's hblesson: scheme; the fake's tone) */
  lessonMediaUrl(args: { id: string }): Promise<string>;
  /** lesson_stats: the lead and supervisors (`forbidden` for a volunteer) */
  lessonStats(args: { from?: string; to?: string; utcOffsetMinutes?: number }): Promise<LessonStats>;
  /** event 'lesson-progress' */
  onLessonProgress(handler: (p: LessonProgress) => void): Promise<Unlisten>;
}
