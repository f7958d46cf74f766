// A relay's certificate fingerprint as a person types it (the pin a device
// trusts a relay serving a self-signed certificate by): `sha256:` and the
// 43 base64url characters of the SHA-256 of its certificate, exactly as
// `heartbridge-relay fingerprint` prints it. Pure; the back end parses it
// again (heartbridge-proto's CertPin::parse).

const FINGERPRINT = /^sha256:[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;

/** The fingerprint as it is sent: surrounding white space dropped. */
export function normalizeFingerprint(text: string): string {
  return text.trim();
}

/**
 * Whether an optional fingerprint field is fine: empty (a relay with a
 * public certificate needs none), or a whole fingerprint. The last of the
 * 43 characters carries only 2 bits of the 32 bytes, so only 16 letters
 * can end one.
 */
export function fingerprintValid(text: string): boolean {
  const f = normalizeFingerprint(text);
  return f === '' || FINGERPRINT.test(f);
}
