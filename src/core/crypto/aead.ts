// The cast picks the AEAD overload of createCipheriv; both suites share the AEAD interface (setAAD/getAuthTag).
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { CpnsError, ErrorCode } from '../errors.js';

/**
 * The one AEAD wrapper of the project. Misuse resistance: fixed key (32 B), nonce (12 B) and tag (16 B) sizes,
 * the tag is always verified before any plaintext is returned, and failures are one typed error (BAD_MAC)
 * whatever the cause inside OpenSSL.
 */
export const Suite = {
  AES_256_GCM: 1,
  CHACHA20_POLY1305: 2,
} as const;
export type Suite = (typeof Suite)[keyof typeof Suite];

export const KEY_BYTES = 32;
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;

const ALGORITHM: Record<Suite, 'aes-256-gcm' | 'chacha20-poly1305'> = {
  [Suite.AES_256_GCM]: 'aes-256-gcm',
  [Suite.CHACHA20_POLY1305]: 'chacha20-poly1305',
};

export function isSuite(n: number): n is Suite {
  return n === Suite.AES_256_GCM || n === Suite.CHACHA20_POLY1305;
}

function check(suite: number, key: Uint8Array, nonce: Uint8Array): 'aes-256-gcm' | 'chacha20-poly1305' {
  if (!isSuite(suite)) throw new CpnsError(ErrorCode.UNSUPPORTED_SUITE, 'unsupported AEAD suite');
  if (key.length !== KEY_BYTES) throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'AEAD key must be 32 bytes');
  if (nonce.length !== NONCE_BYTES)
    throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'AEAD nonce must be 12 bytes');
  return ALGORITHM[suite];
}

/** Encrypt and authenticate; returns ciphertext || 16-byte tag. */
export function aeadSeal(
  suite: Suite,
  key: Uint8Array,
  nonce: Uint8Array,
  aad: Uint8Array,
  plaintext: Uint8Array,
): Buffer {
  const alg = check(suite, key, nonce);
  const cipher = createCipheriv(alg as 'aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad, { plaintextLength: plaintext.length });
  const out = Buffer.allocUnsafe(plaintext.length + TAG_BYTES);
  let n = cipher.update(plaintext).copy(out, 0);
  n += cipher.final().copy(out, n);
  cipher.getAuthTag().copy(out, n);
  return out;
}

/** Verify and decrypt ciphertext || tag. Throws CpnsError(BAD_MAC) on any authentication failure. */
export function aeadOpen(
  suite: Suite,
  key: Uint8Array,
  nonce: Uint8Array,
  aad: Uint8Array,
  sealed: Uint8Array,
): Buffer {
  const alg = check(suite, key, nonce);
  if (sealed.length < TAG_BYTES) throw new CpnsError(ErrorCode.MALFORMED, 'sealed data shorter than the tag');
  const ctLen = sealed.length - TAG_BYTES;
  const decipher = createDecipheriv(alg as 'aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
  decipher.setAuthTag(sealed.subarray(ctLen));
  decipher.setAAD(aad, { plaintextLength: ctLen });
  const first = decipher.update(sealed.subarray(0, ctLen));
  try {
    const last = decipher.final();
    return last.length === 0 ? first : Buffer.concat([first, last]);
  } catch {
    first.fill(0);
    throw new CpnsError(ErrorCode.BAD_MAC, 'message authentication failed');
  }
}
