// heartbridge-core writes a case change's "what" in plain English words
// ("risk → high", "contact logged (hotline)", "case opened (group migrant,
// risk low)"; several joined by ", "). This puts the ones it knows into the
// volunteer's language and leaves any other text as it is.
import { CHANNELS, GROUPS, RISKS, STATUSES } from './api/types';
import type { MessageKey } from './i18n/translate';
import type { Params } from './i18n/translate';

type Translate = (key: MessageKey, params?: Params) => string;

const has = (list: readonly string[], v: string) => list.includes(v);

function one(part: string, t: Translate): string {
  let m: RegExpExecArray | null;
  if ((m = /^risk → (\S+)$/.exec(part)) && has(RISKS, m[1]))
    return t('history.risk', { value: t(`risk.${m[1]}` as MessageKey) });
  if ((m = /^status → (\S+)$/.exec(part)) && has(STATUSES, m[1]))
    return t('history.status', { value: t(`status.${m[1]}` as MessageKey) });
  if ((m = /^group → (\S+)$/.exec(part)) && has(GROUPS, m[1]))
    return t('history.group', { value: t(`group.${m[1]}` as MessageKey) });
  if ((m = /^contact logged \((\S+)\)$/.exec(part)) && has(CHANNELS, m[1]))
    return t('history.contact', { channel: t(`channel.${m[1]}` as MessageKey) });
  if ((m = /^case opened \(group (\S+), risk (\S+)\)$/.exec(part)) && has(GROUPS, m[1]) && has(RISKS, m[2]))
    return t('history.opened', {
      group: t(`group.${m[1]}` as MessageKey),
      risk: t(`risk.${m[2]}` as MessageKey),
    });
  const fixed: Record<string, MessageKey> = {
    'alias changed': 'history.alias',
    'contact note edited': 'history.contactEdited',
    'follow-up added': 'history.followupAdded',
    'follow-up done': 'history.followupDone',
    'follow-up reopened': 'history.followupReopened',
    'tags changed': 'history.tags',
  };
  return fixed[part] ? t(fixed[part]) : part;
}

export function describeHistory(what: string, t: Translate): string {
  return what
    .split(/, (?![^(]*\))/)
    .map((p) => one(p.trim(), t))
    .join(t('history.separator'));
}
