// An in-memory stand-in for src-tauri, so the whole UI runs in a plain
// browser (development, screenshots, the e2e walk) and in Vitest.
//
// It behaves like the contract says the device does: lists sorted the same
// way, errors as {kind, message} with a message written for a volunteer (in
// the language of settings_get), a pending-changes counter that every local
// write raises, and a sync that reports progress through the same two events
// on a timer. It always has a relay to talk to (even for a profile without a
// team), unless `offline` is set: then every sync fails with kind 'network'.
//
// URL flags when it runs in the browser: `?offline` (sync fails), `?ready`
// (start with a profile instead of the first-run screen; its PIN is
// 123456), `?locked` (with `ready`: start locked), `?lockAfter=SECS` (the
// inactivity lock time), `?maxFailed=N` (wrong PINs before the profile is
// erased, default 10), `?latency=MS`.

import { SAMPLE_HANDBOOKS } from './fake-handbooks';
import { searchHandbooks, stripTags } from './fake-search';
import { createTeamFake } from './fake-team';
import { createRelaysFake } from './fake-relays';
import { createBundlesFake } from './fake-bundles';
import { createLessonsFake } from './fake-lessons';
import { createSupervisionFake, supervisionDefaults, supervisionSummary } from './fake-supervision';
import type {
  ContactDraft,
  FollowupDraft,
  ApiError,
  Bookmark,
  Case,
  CaseSummary,
  Channel,
  Group,
  HandbookView,
  HeartbridgeApi,
  HistoryEntry,
  Language,
  LockReason,
  LockState,
  LockStatus,
  Member,
  ProfileStatus,
  Risk,
  Role,
  Shift,
  SyncProgress,
  SyncReport,
  SyncStatus,
} from './types';
import { RISKS } from './types';

export interface FakeOptions {
  /** Every sync (and joining or claiming a team) fails with kind 'network'. */
  offline?: boolean;
  /** Delay of every call, in ms (default 40). */
  latencyMs?: number;
  /** Time between two sync progress events, in ms (default 300). */
  stepMs?: number;
  /** Start with a profile on a team instead of the first-run screen. */
  ready?: boolean;
  /** The clock (tests pin it). */
  now?: () => Date;
  /** With `ready`: the profile's PIN (default '123456'). */
  pin?: string;
  /** With `ready`: start locked. */
  locked?: boolean;
  /** Inactivity before the app locks, in seconds, fixed for this run (default: the setting, 300). */
  lockAfterSecs?: number;
  /** Wrong PINs in a row before the profile is erased (default 10). */
  maxFailed?: number;
  /** With `ready`: this device's role in the team (default 'lead'); URL `?role=volunteer`. */
  role?: Role;
}

export interface FakeApi extends HeartbridgeApi {
  setOffline(offline: boolean): void;
}

export function optionsFromUrl(search: string): FakeOptions {
  const p = new URLSearchParams(search);
  const latency = Number(p.get('latency'));
  return {
    offline: p.has('offline'),
    ready: p.has('ready'),
    latencyMs: Number.isFinite(latency) && p.has('latency') ? latency : undefined,
    locked: p.has('locked'),
    lockAfterSecs: p.has('lockAfter') && Number(p.get('lockAfter')) > 0 ? Number(p.get('lockAfter')) : undefined,
    maxFailed: p.has('maxFailed') && Number(p.get('maxFailed')) > 0 ? Number(p.get('maxFailed')) : undefined,
    role: (['volunteer', 'supervisor', 'lead'] as const).find((r) => r === p.get('role')),
  };
}

// ---- messages the "back end" writes ---------------------------------------

const MESSAGES = {
  network: {
    'zh-CN': '连不上中继服务器。更改都已保存在本设备上，网络恢复后会自动发送。',
    en: 'Could not reach the relay. Your changes are saved on this device and will be sent when the network returns.',
  },
  nameEmpty: { 'zh-CN': '请填写你的名字或称呼。', en: 'Please enter your name.' },
  aliasEmpty: { 'zh-CN': '请填写化名或代号。', en: 'Please enter an alias.' },
  textEmpty: { 'zh-CN': '内容不能为空。', en: 'Please write something first.' },
  inviteInvalid: {
    'zh-CN': '邀请码无法识别，请确认整段都已复制（以 HB3. 开头）。',
    en: 'This invite code is not valid. Check that the whole code was copied (it starts with HB3.).',
  },
  relayUrl: {
    'zh-CN': '中继地址应以 https:// 开头。',
    en: 'The relay address should start with https://.',
  },
  tokenEmpty: { 'zh-CN': '请填写负责人令牌。', en: 'Please enter the lead token.' },
  fingerprint: {
    'zh-CN': '证书指纹不对：应为 sha256: 加 43 个字符。',
    en: 'The certificate fingerprint is not valid: sha256: and 43 characters.',
  },
  tokenWrong: {
    'zh-CN': '中继服务器不接受这个负责人令牌，请向中继管理员核对。',
    en: 'The relay did not accept this lead token. Check it with the relay operator.',
  },
  noTeam: { 'zh-CN': '本设备还没有加入团队。', en: 'This device has not joined a team.' },
  forbidden: {
    'zh-CN': '只有团队负责人或督导可以邀请新成员。',
    en: 'Only a team lead or supervisor can invite new members.',
  },
  caseMissing: { 'zh-CN': '找不到这个个案，它可能已被移除。', en: 'This case could not be found.' },
  handbookMissing: { 'zh-CN': '找不到这本手册。', en: 'This handbook could not be found.' },
  followupMissing: { 'zh-CN': '找不到这条跟进事项。', en: 'This follow-up could not be found.' },
  noShift: { 'zh-CN': '当前没有进行中的值班。', en: 'No shift is running.' },
  shiftRunning: { 'zh-CN': '已经在值班中。', en: 'A shift is already running.' },
  dueInvalid: { 'zh-CN': '日期格式应为 年-月-日。', en: 'Write the date as YYYY-MM-DD.' },
  minutesInvalid: { 'zh-CN': '时长应为 0 到 600 分钟。', en: 'Minutes must be between 0 and 600.' },
  pinShort: { 'zh-CN': 'PIN 或密码至少要 6 位。', en: 'The PIN or passphrase needs at least 6 characters.' },
  locked: { 'zh-CN': '心桥已锁定，请先输入 PIN 解锁。', en: 'Heartbridge is locked. Enter your PIN first.' },
  notLocked: { 'zh-CN': '心桥没有锁定。', en: 'Heartbridge is not locked.' },
  revokeLeadOnly: {
    'zh-CN': '只有团队的组长设备可以移出成员。',
    en: "Only the team's lead device can remove a member.",
  },
  revokeSelf: { 'zh-CN': '组长不能移出自己的设备。', en: 'The lead cannot remove its own device.' },
  memberMissing: { 'zh-CN': '团队里没有这台设备。', en: 'No such device in the team.' },
  lineMissing: { 'zh-CN': '找不到这条值守线路。', en: 'This duty line could not be found.' },
  lockAfterInvalid: { 'zh-CN': '自动锁定时间应为 1 到 60 分钟。', en: 'The lock time must be between 1 and 60 minutes.' },
} satisfies Record<string, Record<Language, string>>;

type MessageId = keyof typeof MESSAGES;

// ---- the fake ----------------------------------------------------------------

interface StoredCase {
  c: Case;
  updatedAt: string;
  history: HistoryEntry[];
}

const RISK_ORDER = (r: Risk) => RISKS.indexOf(r);

function randomHex(bytes: number): string {
  let s = '';
  for (let i = 0; i < bytes; i++) s += Math.floor(Math.random() * 256).toString(16).padStart(2, '0');
  return s;
}

function randomBase64Url(bytes: number): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  let s = '';
  for (let i = 0; i < Math.ceil((bytes * 4) / 3); i++) s += alphabet[Math.floor(Math.random() * 64)];
  return s;
}

export function createFakeApi(opts: FakeOptions = {}): FakeApi {
  const latency = opts.latencyMs ?? 40;
  const step = opts.stepMs ?? 300;
  const now = opts.now ?? (() => new Date());
  let offline = opts.offline ?? false;

  const iso = (msAgo = 0) => new Date(now().getTime() - msAgo).toISOString();
  const MIN = 60_000;
  const HOUR = 60 * MIN;
  const DAY = 24 * HOUR;

  let language: Language = 'zh-CN';
  let profile: ProfileStatus = { initialized: false };
  let members: Member[] = [];
  let shift: Shift | null = null;
  // The lock: the PIN (null before the first run sets one), wrong tries in a row.
  let pin: string | null = null;
  let locked = false;
  let destroyed = false;
  let failed = 0;
  const maxFailed = opts.maxFailed ?? 10;
  let lockAfterSetting = 300;
  const lockHandlers = new Set<(r: LockReason) => void>();
  const lockingHandlers = new Set<(r: LockReason) => void>();
  // Unsaved drafts of case forms, kept "inside the profile" (key: case id + form).
  const drafts = new Map<string, ContactDraft | FollowupDraft>();
  let epoch = 1;
  let sync: SyncStatus = {
    lastSyncedAt: null,
    pending: 0,
    lastError: null,
    syncing: false,
    connection: { state: 'unknown', since: null, at: null, kind: null },
    shift: null,
  };
  let cursor = 1180;
  let incoming = 3; // team changes waiting at the relay for the next pull
  let inflight: Promise<SyncReport> | null = null;
  const bookmarks: Bookmark[] = [];
  const invites = new Map<string, Role>(); // codes handed out by team_invite
  const cases = new Map<string, StoredCase>();
  const handbooks: HandbookView[] = SAMPLE_HANDBOOKS.map(({ slug: _slug, ...h }) => h);
  const progressHandlers = new Set<(p: SyncProgress) => void>();
  const statusHandlers = new Set<(s: SyncStatus) => void>();

  const me = () => profile.name ?? '';
  const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
  const error = (kind: string, id: MessageId): ApiError => ({ kind, message: MESSAGES[id][language] });

  async function reply<T>(value: T | (() => T)): Promise<T> {
    await sleep(latency);
    const v = typeof value === 'function' ? (value as () => T)() : value;
    return v === undefined ? v : structuredClone(v);
  }

  function emitStatus() {
    const s = structuredClone(sync);
    for (const h of statusHandlers) h(s);
  }
  function emitProgress(p: SyncProgress) {
    for (const h of progressHandlers) h({ ...p });
  }
  /** A local write: one more change waits, and counts for the open shift. */
  function changed() {
    sync = { ...sync, pending: sync.pending + 1 };
    if (shift && sync.shift) sync = { ...sync, shift: { ...sync.shift, changes: sync.shift.changes + 1, deliveredAt: null } };
    emitStatus();
  }

  // -- sample cases, as if pulled from the team -------------------------------
  function seed(
    alias: string,
    group: Group,
    risk: Risk,
    status: Case['status'],
    ageMs: number,
    by: string,
    contacts: [number, Channel, number | null, string, string][],
    followups: [string, number | null, boolean][],
    extra: Partial<Case> = {},
  ) {
    const id = randomHex(16);
    const c: Case = {
      id,
      alias,
      group,
      risk,
      riskConflict: false,
      status,
      tags: [],
      createdAt: iso(ageMs),
      createdBy: by,
      contacts: contacts
        .map(([ago, channel, minutes, author, text]) => ({ id: randomHex(8), at: iso(ago), channel, minutes, author, text }))
        .sort((a, b) => b.at.localeCompare(a.at)),
      ...supervisionDefaults(by, ''),
      followups: followups.map(([text, dueDays, done]) => ({
        id: randomHex(8),
        text,
        due: dueDays === null ? null : localDate(new Date(now().getTime() + dueDays * DAY)),
        done,
      })),
      ...extra,
    };
    const history: HistoryEntry[] = [
      { at: c.createdAt, author: by, what: `case opened (group ${group}, risk ${risk})`, change: randomHex(6) },
      ...[...c.contacts].reverse().map((ct) => ({
        at: ct.at,
        author: ct.author,
        what: `contact logged (${ct.channel})`,
        change: randomHex(6),
      })),
    ];
    cases.set(id, { c, updatedAt: c.contacts[0]?.at ?? c.createdAt, history });
  }

  seed('小雨', 'left-behind', 'critical', 'open', 2 * DAY, '林老师',
    [
      [2 * DAY, 'hotline', 35, '林老师', '初二，和奶奶住。说“活着没意思”，问到第一问时承认最近常想死。奶奶不识字，父母在广东打工。'],
      [3 * HOUR, 'hotline', 48, '林老师', '再次来电，说家里有农药，说“今晚就不想再撑了”。全程保持通话，已通知督导，督导联系村支书上门陪伴。'],
    ],
    [
      ['今晚 21:00 前确认村支书已在身边陪伴', 0, false],
      ['明天上午联系父亲，说明情况并讨论接回', 1, false],
    ],
    { tags: ['农药', '独处'] },
  );
  seed('阿杰', 'exam-stress', 'high', 'open', 5 * DAY, '周敏',
    [
      [5 * DAY, 'online', null, '周敏', '高三，一模后成绩下滑，连续失眠两周。说想过从宿舍楼顶跳下去，但“还没想好”。'],
      [1 * DAY, 'hotline', 25, '王晓', '愿意和班主任谈。一起写了简版安全计划：难受时给表哥打电话。'],
    ],
    [['周五前和班主任通话，确认学校心理老师接手', 2, false]],
    { riskConflict: true },
  );
  seed('小林', 'migrant', 'medium', 'open', 9 * DAY, '王晓',
    [[9 * DAY, 'in-person', 40, '王晓', '随父母到城里上学一年，被同学取笑口音，不想去学校。否认自杀想法，上个月用圆规划过手臂。']],
    [['下周三回访，看转学适应情况', 6, false], ['把校园欺凌应对资料发给家长', -1, true]],
  );
  seed('星星', 'disability', 'low', 'referred', 20 * DAY, '周敏',
    [[20 * DAY, 'online', 30, '周敏', '听障，用文字交流。因为找不到实习很焦虑，已转介到残联的就业辅导。']],
    [],
  );
  seed('志愿者 K', 'event-volunteer', 'none', 'closed', 30 * DAY, '林老师',
    [[30 * DAY, 'in-person', 15, '林老师', '闭环第 12 天，想家、睡不好。做了呼吸练习，第二天反馈好多了。']],
    [['结案', null, true]],
  );

  function lockStatus(wrongPin = false): LockStatus {
    const state: LockState = destroyed
      ? 'destroyed'
      : !profile.initialized
        ? 'no-profile'
        : locked
          ? 'locked'
          : 'unlocked';
    return {
      state,
      triesLeft: state === 'locked' && failed > 0 ? maxFailed - failed : null,
      wrongPin,
      lockAfterSecs: opts.lockAfterSecs ?? lockAfterSetting,
      lockAfterFixed: opts.lockAfterSecs !== undefined,
      erasedBy: state === 'destroyed' ? 'wrong-pins' : null,
    };
  }
  function requirePin(p: string | undefined): string {
    if (p === undefined || [...p].length < 6) throw error('invalid', 'pinShort');
    return p;
  }
  /** A new profile needs a PIN; a profile already open needs none. */
  function newProfilePin(p: string | undefined) {
    if (!profile.initialized) pin = requirePin(p);
  }
  function requireUnlocked() {
    if (locked || destroyed) throw error('locked', 'locked');
  }

  function setReady() {
    pin = opts.pin ?? '123456';
    locked = opts.locked ?? false;
    profile = {
      initialized: true,
      name: '陈静',
      deviceId: randomHex(16),
      team: { teamId: randomHex(16), relayUrl: 'https://relay.heartbridge.example', role: opts.role ?? 'lead', isLead: (opts.role ?? 'lead') === 'lead', epoch },
    };
    members = teamMembersFor(profile);
    sync = { ...sync, lastSyncedAt: iso(20 * HOUR), connection: { state: 'connected', since: null, at: iso(20 * HOUR), kind: null } };
  }
  if (opts.ready) setReady();
  // Supervision (issue 9): review, comments, escalations, assignment, debriefs.
  const sup = createSupervisionFake({
    cases,
    getCase,
    touch,
    profile: () => profile,
    members: () => members,
    language: () => language,
    iso,
    randomHex,
  });
  sup.seedSamples();

  function teamMembersFor(p: ProfileStatus): Member[] {
    const self: Member = { deviceId: p.deviceId ?? '', name: p.name ?? null, role: p.team?.role ?? 'volunteer', lastSyncAt: null, revoked: false, thisDevice: true };
    if (p.team?.role === 'lead' && !opts.ready) return [self];
    const team: Member[] = [
      { deviceId: randomHex(16), name: '周敏', role: 'lead', lastSyncAt: iso(2 * HOUR), revoked: false },
      { deviceId: randomHex(16), name: '林老师', role: 'supervisor', lastSyncAt: iso(40 * MIN), revoked: false },
      { deviceId: randomHex(16), name: '王晓', role: 'volunteer', lastSyncAt: iso(3 * DAY), revoked: false },
      { deviceId: randomHex(16), name: null, role: 'volunteer', lastSyncAt: iso(40 * DAY), revoked: true },
      self,
    ];
    return team.filter((m) => m === self || m.role !== 'lead' || self.role !== 'lead');
  }

  function getCase(id: string): StoredCase {
    const s = cases.get(id);
    if (!s) throw error('not-found', 'caseMissing');
    return s;
  }
  function touch(s: StoredCase, what: string) {
    s.updatedAt = iso();
    s.history.push({ at: s.updatedAt, author: me(), what, change: randomHex(6) });
    changed();
  }
  function summary(s: StoredCase): CaseSummary {
    const c = s.c;
    return {
      id: c.id,
      alias: c.alias,
      group: c.group,
      risk: c.risk,
      status: c.status,
      contacts: c.contacts.length,
      openFollowups: c.followups.filter((f) => !f.done).length,
      updatedAt: s.updatedAt,
      ...supervisionSummary(c),
    };
  }
  function requireName(name: string) {
    if (!name.trim()) throw error('invalid', 'nameEmpty');
  }

  async function runSync(): Promise<SyncReport> {
    sync = {
      ...sync,
      syncing: true,
      connection: sync.connection.state === 'unreachable' ? sync.connection : { state: 'syncing', since: null, at: null, kind: null },
    };
    emitStatus();
    const total = sync.pending;
    let pushed = 0;
    let pulled = 0;
    let requests = 0;
    let bytesSent = 0;
    try {
      let bytesReceived = 0;
      const progress = (phase: SyncProgress['phase'], pending: number) =>
        emitProgress({ phase, requests, pushed, pulled, pending, bytesSent, bytesReceived });
      progress('push', total);
      await sleep(step);
      if (offline) throw error('network', 'network');
      const batch = Math.max(1, Math.ceil(total / 3));
      while (pushed < total) {
        const n = Math.min(batch, total - pushed);
        requests++;
        pushed += n;
        bytesSent += n * 730 + 90;
        bytesReceived += 120;
        sync = { ...sync, pending: Math.max(0, sync.pending - n) };
        progress('push', total - pushed);
        await sleep(step);
      }
      requests++;
      pulled = incoming;
      incoming = 0;
      bytesSent += 90;
      bytesReceived += pulled * 910 + 120;
      progress('pull', sync.pending);
      await sleep(step);
      cursor += pushed + pulled;
      const finishedAt = iso();
      // Everything waiting was pushed: the latest shift's changes too.
      const delivered = sync.shift && { ...sync.shift, delivered: sync.shift.changes, atVenue: 0 };
      if (delivered && delivered.deliveredAt === null && delivered.changes > 0) delivered.deliveredAt = finishedAt;
      sync = {
        ...sync,
        lastSyncedAt: finishedAt,
        lastError: null,
        connection: { state: 'connected', since: null, at: finishedAt, kind: null },
        shift: delivered,
      };
      progress('done', sync.pending);
      return {
        pushed,
        changesDelivered: pushed,
        pending: sync.pending,
        pulled,
        cursor,
        requests,
        bytesSent,
        bytesReceived,
        refused: 0,
        finishedAt,
      };
    } catch (e) {
      const err = e as ApiError;
      const at = iso();
      const since = sync.connection.state === 'unreachable' ? sync.connection.since : at;
      sync = {
        ...sync,
        lastError: err,
        connection:
          err.kind === 'network'
            ? { state: 'unreachable', since, at, kind: 'network' }
            : { state: 'refused', since: null, at, kind: err.kind },
      };
      throw e;
    } finally {
      sync = { ...sync, syncing: false };
      emitStatus();
      inflight = null;
    }
  }
  function startSync(): Promise<SyncReport> {
    inflight ??= runSync();
    return inflight;
  }

  async function guarded<T>(f: () => T): Promise<T> {
    await sleep(latency);
    const v = f(); // throws ApiError
    return v === undefined ? v : structuredClone(v);
  }

  // The duty roster, team settings, shift handovers and statistics (issue 9, U2).
  // The relays this device knows (issue 10).
  const relays = createRelaysFake({ profile: () => profile, language: () => language, now: () => now().getTime() });
  // Sneakernet bundles (issue 10).
  const bundles = createBundlesFake({ language: () => language, pending: () => sync.pending });
  // Micro-lessons (issue 10, item 7).
  const lessons = createLessonsFake({ language: () => language, offline: () => offline, handbookId: SAMPLE_HANDBOOKS[0].id, sleep, chunkMs: Math.min(step, 120) });

  const team = createTeamFake({
    profile: () => profile,
    members: () => members,
    language: () => language,
    now,
    changed,
    guarded,
  });

  const impl: FakeApi = {
    ...team.methods,
    setOffline(v: boolean) {
      offline = v;
    },

    profileStatus: () =>
      guarded(() => {
        requireUnlocked();
        return profile;
      }),
    profileCreate: ({ name, pin: p }) =>
      guarded(() => {
        requireName(name);
        requirePin(p);
        pin = p;
        profile = { initialized: true, name: name.trim(), deviceId: randomHex(16) };
        changed();
        return profile;
      }),
    teamClaim: ({ relayUrl, token, name, pin: p, fingerprint }) =>
      guarded(() => {
        requireName(name);
        requireUnlocked();
        if (!/^https?:\/\/\S+$/.test(relayUrl.trim())) throw error('invalid', 'relayUrl');
        if (fingerprint !== undefined && !/^sha256:[A-Za-z0-9_-]{43}$/.test(fingerprint.trim())) throw error('invalid', 'fingerprint');
        if (!token.trim()) throw error('invalid', 'tokenEmpty');
        if (offline) throw error('network', 'network');
        if (token.trim().length < 8) throw error('refused', 'tokenWrong');
        newProfilePin(p);
        profile = {
          initialized: true,
          name: name.trim(),
          deviceId: profile.deviceId ?? randomHex(16),
          team: { teamId: randomHex(16), relayUrl: relayUrl.trim(), role: 'lead', isLead: true, epoch },
        };
        members = teamMembersFor(profile);
        return profile;
      }),
    teamJoin: ({ code, name, pin: p }) =>
      guarded(() => {
        requireName(name);
        requireUnlocked();
        const c = code.replace(/\s+/g, '');
        if (!/^HB[123]\.[A-Za-z0-9_-]{40,}$/.test(c)) throw error('invalid-invite', 'inviteInvalid');
        if (offline) throw error('network', 'network');
        newProfilePin(p);
        profile = {
          initialized: true,
          name: name.trim(),
          deviceId: profile.deviceId ?? randomHex(16),
          team: { teamId: randomHex(16), relayUrl: 'https://relay.heartbridge.example', role: invites.get(c) ?? 'volunteer', isLead: false, epoch },
        };
        members = teamMembersFor(profile);
        incoming += 5;
        return profile;
      }),
    lockStatus: () => reply(() => lockStatus()),
    lockUnlock: ({ pin: p }) =>
      guarded(() => {
        if (destroyed || !profile.initialized) return lockStatus();
        if (!locked) throw error('invalid', 'notLocked');
        if (p === pin) {
          locked = false;
          failed = 0;
          return lockStatus();
        }
        failed++;
        if (failed >= maxFailed) {
          // as the device does: keys and database gone, nothing left to open
          destroyed = true;
          locked = false;
          pin = null;
          profile = { initialized: false };
          cases.clear();
          bookmarks.length = 0;
          shift = null;
          return lockStatus();
        }
        return lockStatus(true);
      }),
    lockNow: ({ reason }) =>
      guarded(() => {
        if (profile.initialized && !destroyed && !locked) {
          locked = true;
          for (const h of lockHandlers) h(reason);
        }
        return lockStatus();
      }),
    lockActivity: () => reply(undefined),
    lockSetTimeout: ({ secs }) =>
      guarded(() => {
        requireUnlocked();
        if (!Number.isInteger(secs) || secs < 60 || secs > 3600) throw error('invalid', 'lockAfterInvalid');
        lockAfterSetting = secs;
        return lockStatus();
      }),
    lockForget: () =>
      guarded(() => {
        if (destroyed) {
          destroyed = false;
          failed = 0;
        }
        return lockStatus();
      }),
    onLocked: async (handler) => {
      lockHandlers.add(handler);
      return () => lockHandlers.delete(handler);
    },
    onLocking: async (handler) => {
      lockingHandlers.add(handler);
      return () => lockingHandlers.delete(handler);
    },

    teamInvite: ({ role }) =>
      guarded(() => {
        const mine = profile.team?.role;
        if (!mine) throw error('no-team', 'noTeam');
        if (mine === 'volunteer') throw error('forbidden', 'forbidden');
        const code = `HB3.${randomBase64Url(150)}`;
        invites.set(code, role);
        return { code, expiresAt: new Date(now().getTime() + DAY).toISOString(), epoch };
      }),
    teamRevoke: ({ deviceId }) =>
      guarded(() => {
        if (!profile.team) throw error('no-team', 'noTeam');
        if (!profile.team.isLead) throw error('forbidden', 'revokeLeadOnly');
        if (deviceId === profile.deviceId) throw error('invalid_input', 'revokeSelf');
        const m = members.find((x) => x.deviceId === deviceId);
        if (!m) throw error('not_found', 'memberMissing');
        if (!m.revoked) {
          m.revoked = true;
          epoch += 1;
          profile = { ...profile, team: { ...profile.team, epoch } };
        }
        return { deviceId, epoch, cutoffSeq: cursor, synced: !offline, syncError: offline ? error('network', 'network') : null };
      }),
    draftSave: ({ caseId, form, draft }) =>
      guarded(() => {
        if (!cases.has(caseId)) throw error('not-found', 'caseMissing');
        if (draft === null) drafts.delete(`${caseId}:${form}`);
        else drafts.set(`${caseId}:${form}`, structuredClone(draft));
      }),
    draftGet: ({ caseId }) =>
      guarded(() => {
        if (!cases.has(caseId)) throw error('not-found', 'caseMissing');
        return {
          contact: (drafts.get(`${caseId}:contact`) as ContactDraft | undefined) ?? null,
          followup: (drafts.get(`${caseId}:followup`) as FollowupDraft | undefined) ?? null,
        };
      }),
    draftClear: ({ caseId, form }) =>
      guarded(() => {
        drafts.delete(`${caseId}:${form}`);
      }),
    teamMembers: () =>
      guarded(() => {
        if (!profile.team) throw error('no-team', 'noTeam');
        return members;
      }),

    handbookList: () =>
      reply(() =>
        SAMPLE_HANDBOOKS.map((h) => ({
          id: h.id,
          slug: h.slug,
          title: h.title,
          language: h.language,
          version: h.version,
          sections: h.sections.length,
          chars: h.sections.reduce((n, s) => n + stripTags(s.html).length, 0),
        })),
      ),
    handbookGet: ({ id }) =>
      guarded(() => {
        const h = handbooks.find((b) => b.id === id);
        if (!h) throw error('not-found', 'handbookMissing');
        return h;
      }),
    handbookSearch: ({ query, limit, offset }) => reply(() => searchHandbooks(handbooks, query, limit, offset ?? 0)),
    bookmarkList: () => reply(() => [...bookmarks].sort((a, b) => b.createdAt.localeCompare(a.createdAt))),
    bookmarkToggle: ({ handbookId, section }) =>
      guarded(() => {
        const i = bookmarks.findIndex((b) => b.handbookId === handbookId && b.section === section);
        if (i >= 0) {
          bookmarks.splice(i, 1);
          return false;
        }
        const h = handbooks.find((b) => b.id === handbookId);
        const s = h?.sections.find((x) => x.index === section);
        if (!h || !s) throw error('not-found', 'handbookMissing');
        bookmarks.push({ handbookId, section, handbookTitle: h.title, sectionTitle: s.title, createdAt: iso() });
        return true;
      }),

    caseList: (filter = {}) =>
      reply(() =>
        [...cases.values()]
          .filter(
            (s) =>
              (!filter.risk || s.c.risk === filter.risk) &&
              (!filter.status || s.c.status === filter.status) &&
              (!filter.group || s.c.group === filter.group),
          )
          .sort((a, b) => RISK_ORDER(b.c.risk) - RISK_ORDER(a.c.risk) || b.updatedAt.localeCompare(a.updatedAt))
          .map(summary),
      ),
    caseGet: ({ id }) => guarded(() => getCase(id).c),
    caseCreate: ({ alias, group, risk }) =>
      guarded(() => {
        if (!alias.trim()) throw error('invalid', 'aliasEmpty');
        const id = randomHex(16);
        const c: Case = {
          id,
          alias: alias.trim(),
          group,
          risk,
          riskConflict: false,
          status: 'open',
          tags: [],
          contacts: [],
          followups: [],
          createdAt: iso(),
          createdBy: me(),
          ...supervisionDefaults(me(), profile.deviceId ?? ''),
        };
        const s: StoredCase = { c, updatedAt: c.createdAt, history: [] };
        cases.set(id, s);
        touch(s, `case opened (group ${group}, risk ${risk})`);
        return { id };
      }),
    caseUpdate: ({ id, alias, risk, status, group, source }) =>
      guarded(() => {
        const s = getCase(id);
        const riskBefore = s.c.risk;
        const parts: string[] = [];
        if (alias !== undefined) {
          if (!alias.trim()) throw error('invalid', 'aliasEmpty');
          if (alias.trim() !== s.c.alias) parts.push('alias changed');
          s.c.alias = alias.trim();
        }
        if (risk !== undefined && (risk !== s.c.risk || s.c.riskConflict)) {
          parts.push(`risk → ${risk}`);
          s.c.risk = risk;
          s.c.riskConflict = false;
        }
        if (status !== undefined && status !== s.c.status) {
          parts.push(`status → ${status}`);
          s.c.status = status;
        }
        if (group !== undefined && group !== s.c.group) {
          parts.push(`group → ${group}`);
          s.c.group = group;
        }
        if (risk !== undefined) sup.riskChanged(s, riskBefore, s.c.risk, source ?? 'hand');
        if (parts.length) touch(s, parts.join(', '));
        return s.c;
      }),
    caseAddContact: ({ id, channel, text, minutes }) =>
      guarded(() => {
        const s = getCase(id);
        if (!text.trim()) throw error('invalid', 'textEmpty');
        if (minutes !== undefined && (!Number.isInteger(minutes) || minutes < 0 || minutes > 600))
          throw error('invalid', 'minutesInvalid');
        const contactId = randomHex(8);
        s.c.contacts.unshift({ id: contactId, at: iso(), channel, minutes: minutes ?? null, text: text.trim(), author: me() });
        sup.contactAdded(s, contactId);
        if (shift) shift = { ...shift, contacts: shift.contacts + 1 };
        touch(s, `contact logged (${channel})`);
        return s.c;
      }),
    caseAddFollowup: ({ id, text, due }) =>
      guarded(() => {
        const s = getCase(id);
        if (!text.trim()) throw error('invalid', 'textEmpty');
        if (due !== undefined && !/^\d{4}-\d{2}-\d{2}$/.test(due)) throw error('invalid', 'dueInvalid');
        s.c.followups.push({ id: randomHex(8), text: text.trim(), due: due ?? null, done: false });
        touch(s, 'follow-up added');
        return s.c;
      }),
    caseFollowupDone: ({ id, followupId, done }) =>
      guarded(() => {
        const s = getCase(id);
        const f = s.c.followups.find((x) => x.id === followupId);
        if (!f) throw error('not-found', 'followupMissing');
        if (f.done !== done) {
          f.done = done;
          touch(s, done ? 'follow-up done' : 'follow-up reopened');
        }
        return s.c;
      }),
    caseHistory: ({ id }) => guarded(() => getCase(id).history),

    shiftCurrent: () => reply(() => shift),
    shiftStart: (args = {}) =>
      guarded(() => {
        if (shift) throw error('conflict', 'shiftRunning');
        if (args.line && !team.hasLine(args.line)) throw error('not-found', 'lineMissing');
        shift = { startedAt: iso(), contacts: 0, line: args.line ?? null };
        sync = { ...sync, shift: { startedAt: shift.startedAt, endedAt: null, changes: 0, delivered: 0, atVenue: 0, deliveredAt: null } };
        emitStatus();
        return shift;
      }),
    shiftEnd: async (args = {}) => {
      await sleep(latency);
      if (!shift) throw error('no-shift', 'noShift');
      team.shiftEnded(shift.line ?? null, args.handover);
      shift = null;
      if (sync.shift) sync = { ...sync, shift: { ...sync.shift, endedAt: iso() } };
      emitStatus();
      return startSync();
    },

    syncStatus: () => reply(() => sync),
    syncNow: async () => {
      await sleep(latency);
      return startSync();
    },

    settingsGet: () => reply(() => ({ language })),
    settingsSet: ({ language: l }) =>
      guarded(() => {
        language = l;
      }),

    onSyncProgress: async (handler) => {
      progressHandlers.add(handler);
      return () => progressHandlers.delete(handler);
    },
    onSyncStatus: async (handler) => {
      statusHandlers.add(handler);
      return () => statusHandlers.delete(handler);
    },

    // supervision (issue 9, U1): fake-supervision.ts
    caseReview: (a) => guarded(() => sup.methods.caseReview(a)),
    caseComment: (a) => guarded(() => sup.methods.caseComment(a)),
    caseAck: (a) => guarded(() => sup.methods.caseAck(a)),
    casePhoned: (a) => guarded(() => sup.methods.casePhoned(a)),
    caseAssign: (a) => guarded(() => sup.methods.caseAssign(a)),
    caseHandoverNote: (a) => guarded(() => sup.methods.caseHandoverNote(a)),
    caseDebrief: (a) => guarded(() => sup.methods.caseDebrief(a)),
    reviewQueue: () => guarded(() => sup.methods.reviewQueue()),
    escalationsList: () => guarded(() => sup.methods.escalationsList()),
    onCallNow: () => guarded(() => sup.methods.onCallNow()),
    caseAssignees: () => guarded(() => sup.methods.caseAssignees()),

    // relays (issue 10): fake-relays.ts
    relayList: () => guarded(() => relays.relayList()),
    relayAdd: (a) => guarded(() => relays.relayAdd(a)),
    relayRemove: (a) => guarded(() => relays.relayRemove(a)),
    relayDiscover: () => guarded(() => relays.relayDiscover()),

    // bundles (issue 10): fake-bundles.ts
    bundleExport: (a) => guarded(() => bundles.bundleExport(a)),
    bundleQrExport: (a) => guarded(() => bundles.bundleQrExport(a)),
    bundleImport: (a) => guarded(() => bundles.bundleImport(a)),
    bundleQrImport: (a) => guarded(() => bundles.bundleQrImport(a)),
    bundleQrImportFrames: async (a) => {
      const check = await bundles.frameCheck(a.frames);
      return guarded(() => bundles.bundleQrImportFrames(check));
    },

    // micro-lessons (issue 10, item 7): fake-lessons.ts
    lessonList: (a) => guarded(() => lessons.lessonList(a)),
    lessonGet: (a) => guarded(() => lessons.lessonGet(a)),
    lessonFetchPlan: (a) => guarded(() => lessons.lessonFetchPlan(a)),
    lessonFetch: async (a) => {
      await sleep(latency);
      return lessons.lessonFetch(a);
    },
    lessonProgressSet: (a) => guarded(() => lessons.lessonProgressSet(a)),
    lessonWatched: (a) => guarded(() => lessons.lessonWatched(a)),
    lessonLinkPolicy: () => guarded(() => lessons.lessonLinkPolicy()),
    lessonLinkPolicySet: (a) => guarded(() => lessons.lessonLinkPolicySet(a)),
    lessonMediaUrl: async (a) => {
      await sleep(latency);
      return lessons.lessonMediaUrl(a);
    },
    lessonStats: (a) =>
      guarded(() => {
        if (!profile?.team || profile.team.role === 'volunteer') throw error('forbidden', 'forbidden');
        return lessons.lessonStats(a);
      }),
    onLessonProgress: async (handler) => lessons.onLessonProgress(handler),
  };
  // While locked, every call that reads or writes the profile is refused, as
  // the device refuses it with its store closed.
  const open = new Set<string>(['setOffline', 'profileCreate', 'teamClaim', 'teamJoin', 'settingsGet', 'settingsSet', 'onSyncProgress', 'onSyncStatus', 'onLocked', 'onLocking', 'onLessonProgress']);
  const guardedImpl: Record<string, unknown> = {};
  for (const [k, f] of Object.entries(impl)) {
    guardedImpl[k] =
      open.has(k) || k.startsWith('lock') || typeof f !== 'function'
        ? f
        : async (...args: unknown[]) => {
            if (locked || destroyed) {
              await sleep(latency);
              throw error('locked', 'locked');
            }
            return (f as (...a: unknown[]) => unknown)(...args);
          };
  }
  return guardedImpl as unknown as FakeApi;
}

/** `YYYY-MM-DD` of a date in local time. */
function localDate(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}
