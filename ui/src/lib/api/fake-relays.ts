// The fake's relay list and venue-relay discovery (issue 10). Like the
// device: the team's relay is always listed and cannot be removed
// (`central_relay`), venue relays come first, an address must start with
// https:// or http://, a fingerprint is `sha256:` and 43 characters, and
// discovery adds nothing by itself.

import type { ApiError, FoundRelay, Language, ProfileStatus, RelayEntry } from './types';

const MESSAGES = {
  central: {
    'zh-CN': '这是团队自己的中继（来自邀请码），不能移除。',
    en: "This is your team's own relay (from the invite code); it cannot be removed.",
  },
  url: {
    'zh-CN': '地址需以 https:// 开头。',
    en: 'The address must start with https://.',
  },
  pin: {
    'zh-CN': '证书指纹应以 sha256: 开头，后接 43 个字符。',
    en: 'A fingerprint is sha256: followed by 43 characters.',
  },
} as const;

/** A venue relay the fake "hears" on the local network. */
export const FAKE_VENUE = {
  url: 'https://192.168.8.20:7443',
  pin: 'sha256:q3Ve2v1kJb0pXo6b3cN1y9bqk1Jm4m3cYy8XKf2t0pI',
};

export function createRelaysFake(ctx: { profile: () => ProfileStatus | null; language: () => Language; now: () => number }) {
  const error = (kind: string, id: keyof typeof MESSAGES): ApiError => ({
    kind,
    message: MESSAGES[id][ctx.language()],
  });
  let added: RelayEntry[] = [];

  function list(): RelayEntry[] {
    const team = ctx.profile()?.team;
    if (!team) return [];
    const own: RelayEntry = {
      url: team.relayUrl,
      pin: null,
      kind: 'central',
      label: null,
      insecure: false,
      addedAt: 0,
      lastOkAt: null,
      lastRttMs: null,
      teamRelay: true,
      active: true,
    };
    const all = [own, ...added.filter((e) => e.url !== own.url)];
    return [...all.filter((e) => e.kind === 'venue'), ...all.filter((e) => e.kind !== 'venue')];
  }

  return {
    relayList: () => list(),
    relayAdd: ({ url, pin, venue }: { url: string; pin?: string; venue: boolean }) => {
      const u = url.trim().replace(/\/+$/, '');
      if (!/^https?:\/\/\S+$/.test(u)) throw error('invalid_input', 'url');
      const p = pin?.trim() || null;
      if (p !== null && !/^sha256:[A-Za-z0-9_-]{43}$/.test(p)) throw error('invalid_input', 'pin');
      added = added.filter((e) => e.url !== u);
      added.push({
        url: u,
        pin: p,
        kind: venue ? 'venue' : 'central',
        label: null,
        insecure: false,
        addedAt: ctx.now(),
        lastOkAt: null,
        lastRttMs: null,
        teamRelay: false,
        active: false,
      });
      return list();
    },
    relayRemove: ({ url }: { url: string }) => {
      const u = url.trim().replace(/\/+$/, '');
      if (u === ctx.profile()?.team?.relayUrl) throw error('central_relay', 'central');
      added = added.filter((e) => e.url !== u);
      return list();
    },
    relayDiscover: (): FoundRelay[] =>
      ctx.profile()?.team
        ? [{ instance: 'heartbridge-venue', url: FAKE_VENUE.url, pin: FAKE_VENUE.pin, teamTag: '0a1b2c3d', thisTeam: true }]
        : [],
  };
}
