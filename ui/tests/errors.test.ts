import { describe, expect, it } from 'vitest';
import { setLocale } from '../src/lib/i18n/index.svelte';
import { errorText } from '../src/lib/toast.svelte';

describe('errorText', () => {
  it('speaks the volunteer’s language for the errors the back end names', () => {
    setLocale('zh-CN');
    expect(errorText({ kind: 'revoked', message: 'this device was revoked' })).toContain('停用');
    expect(errorText({ kind: 'network', message: 'cannot reach the relay (timed out)' })).toContain('已保存在本设备上');
    setLocale('en');
    expect(errorText({ kind: 'wrong_key', message: 'x' })).toContain('team key is wrong');
    setLocale('zh-CN');
  });

  it('falls back to the back end’s message, and never shows a stray error text', () => {
    expect(errorText({ kind: 'something_new', message: 'A clear message.' })).toBe('A clear message.');
    expect(errorText(new Error('TypeError: x is undefined at foo.js:1'))).not.toContain('TypeError');
  });
});
