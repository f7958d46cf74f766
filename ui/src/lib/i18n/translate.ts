import type { Locale } from '../format';
import en from './en';
import zhCN, { type MessageKey } from './zh-CN';

export type { MessageKey };
export type Params = Record<string, string | number>;

export const LOCALES: readonly Locale[] = ['zh-CN', 'en'];
export const catalogs: Record<Locale, Record<MessageKey, string>> = { 'zh-CN': zhCN, en };

/** Whether `key` is a message of the catalogs (for keys built at run time). */
export function isMessageKey(key: string): key is MessageKey {
  return Object.prototype.hasOwnProperty.call(catalogs['zh-CN'], key);
}

export function isLocale(v: unknown): v is Locale {
  return v === 'zh-CN' || v === 'en';
}

/**
 * The message `key` in `locale`, with `{param}`s filled in. A message
 * written `one|other` picks by `params.n`. A missing key (only possible
 * through a cast) shows the key itself.
 */
export function translate(locale: Locale, key: MessageKey, params?: Params): string {
  let msg = catalogs[locale][key] ?? catalogs['zh-CN'][key] ?? key;
  if (msg.includes('|') && params && typeof params.n === 'number') {
    const [one, other] = msg.split('|', 2);
    msg = params.n === 1 ? one : other;
  }
  if (!params) return msg;
  return msg.replace(/\{(\w+)\}/g, (whole, name: string) =>
    Object.prototype.hasOwnProperty.call(params, name) ? String(params[name]) : whole,
  );
}
