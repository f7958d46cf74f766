// The current locale (reactive, kept in localStorage) and `t()`. Reading
// `t(...)` in a template re-renders it when the locale changes.
import {
  formatDate,
  formatDateTime,
  formatRelative,
  formatTime,
  type Locale,
} from '../format';
import { isLocale, translate, type MessageKey, type Params } from './translate';

export { LOCALES, isLocale, isMessageKey, type MessageKey } from './translate';

const STORAGE_KEY = 'heartbridge.locale';

function stored(): Locale | null {
  try {
    const v = globalThis.localStorage?.getItem(STORAGE_KEY);
    return isLocale(v) ? v : null;
  } catch {
    return null;
  }
}

export const i18n = $state<{ locale: Locale }>({ locale: stored() ?? 'zh-CN' });

/** Whether the volunteer chose a language on this device before. */
export function hasStoredLocale(): boolean {
  return stored() !== null;
}

export function setLocale(locale: Locale): void {
  i18n.locale = locale;
  try {
    globalThis.localStorage?.setItem(STORAGE_KEY, locale);
  } catch {
    // private mode: the choice lasts for this session only
  }
  if (typeof document !== 'undefined') document.documentElement.lang = locale;
}

export function t(key: MessageKey, params?: Params): string {
  return translate(i18n.locale, key, params);
}

export const fmt = {
  time: (iso: string) => formatTime(iso, i18n.locale),
  dateTime: (iso: string) => formatDateTime(iso, i18n.locale),
  date: (when: string) => formatDate(when, i18n.locale),
  relative: (iso: string) => {
    const ms = Math.abs(Date.now() - new Date(iso).getTime());
    return ms < 45_000 ? t('time.justNow') : formatRelative(iso, i18n.locale);
  },
  count: (n: number) =>
    new Intl.NumberFormat(i18n.locale === 'en' ? 'en' : 'zh-CN', {
      notation: 'compact',
      maximumFractionDigits: 1,
    }).format(n),
};
