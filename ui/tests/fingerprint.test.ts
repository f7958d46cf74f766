import { describe, expect, it } from 'vitest';
import { fingerprintValid, normalizeFingerprint } from '../src/lib/fingerprint';
import { translate } from '../src/lib/i18n/translate';

// What `heartbridge-relay fingerprint` printed for a self-signed relay.
const REAL = 'sha256:fVlJRUatAWvX9sI_P6FGbILQl8byCk3XXqT65KPMQhk';

describe('the claim form’s certificate fingerprint', () => {
  it('takes a fingerprint as the relay prints it, or nothing (a relay with a public certificate)', () => {
    expect(fingerprintValid(REAL)).toBe(true);
    expect(fingerprintValid(`  ${REAL}\n`)).toBe(true);
    expect(normalizeFingerprint(`  ${REAL}\n`)).toBe(REAL);
    expect(fingerprintValid('')).toBe(true);
    expect(fingerprintValid('   ')).toBe(true);
  });

  it('refuses what is not a whole sha256 fingerprint', () => {
    expect(fingerprintValid('sha256:nope')).toBe(false);
    expect(fingerprintValid(REAL.slice('sha256:'.length))).toBe(false); // no prefix
    expect(fingerprintValid(REAL.slice(0, -1))).toBe(false); // 42 characters
    expect(fingerprintValid(`${REAL}A`)).toBe(false); // 44
    expect(fingerprintValid(REAL.replace('sha256:', 'SHA256:'))).toBe(false);
    expect(fingerprintValid(REAL.replace('sha256:', 'sha1:'))).toBe(false);
    expect(fingerprintValid(`${REAL.slice(0, -1)}=`)).toBe(false); // padded base64
    expect(fingerprintValid(REAL.replace('_', '/'))).toBe(false); // base64, not base64url
    // 43 characters carry 258 bits: a last character with its 2 spare bits set is no SHA-256.
    expect(fingerprintValid(`${REAL.slice(0, -1)}l`)).toBe(false);
    expect(fingerprintValid(`${REAL.slice(0, -1)}w`)).toBe(true);
  });

  it('says what is wrong in the volunteer’s language', () => {
    expect(translate('zh-CN', 'form.fingerprintInvalid')).toBe('证书指纹应是 sha256: 加 43 个字符，和 heartbridge-relay fingerprint 显示的完全一样。');
    expect(translate('en', 'form.fingerprintInvalid')).toContain('sha256: and 43 characters');
    expect(translate('zh-CN', 'firstRun.fingerprint')).toBe('证书指纹（选填）');
  });
});
