/**
 * Misuse resistance of the crypto wrappers, beyond the standard vectors: wrong key/nonce/suite, truncated
 * sealed data, single-bit changes anywhere in ciphertext, tag, AAD or nonce, and the helpers' edge cases.
 */
import { describe, expect, it } from 'vitest';
import {
  aeadOpen,
  aeadSeal,
  aesKeyUnwrap,
  aesKeyWrap,
  constantTimeEqual,
  ed25519PrivateFromSeed,
  ed25519PublicFromRaw,
  ed25519Sign,
  ed25519Verify,
  hkdfSha256,
  hmacSha256,
  hmacSha256Verify,
  KEY_BYTES,
  NONCE_BYTES,
  Suite,
  TAG_BYTES,
} from '../../../src/core/crypto/index.js';
import { ErrorCode } from '../../../src/core/errors.js';
import { expectCpnsError } from './helpers.js';

const SUITES = [
  ['AES_256_GCM', Suite.AES_256_GCM],
  ['CHACHA20_POLY1305', Suite.CHACHA20_POLY1305],
] as const;

/** Deterministic, distinct test bytes (no randomness: failures must be reproducible). */
function bytes(n: number, seed: number): Buffer {
  return Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed * 7 + 1) & 0xff));
}

function flipBit(b: Uint8Array, bit: number): Buffer {
  const out = Buffer.from(b);
  const i = bit >> 3;
  out[i] = (out[i] ?? 0) ^ (1 << (bit & 7));
  return out;
}

describe('AEAD wrapper misuse', () => {
  const key = bytes(KEY_BYTES, 1);
  const nonce = bytes(NONCE_BYTES, 2);
  const aad = bytes(7, 3);
  const msg = Buffer.from('hello'); // short message: every bit of ct||tag is flipped below

  it('fixes the sizes at 32-byte key, 12-byte nonce, 16-byte tag', () => {
    expect([KEY_BYTES, NONCE_BYTES, TAG_BYTES]).toEqual([32, 12, 16]);
  });

  describe.each(SUITES)('%s', (_name, suite) => {
    const sealed = aeadSeal(suite, key, nonce, aad, msg);

    it('round-trips and appends a 16-byte tag; empty plaintext and AAD work', () => {
      expect(sealed).toHaveLength(msg.length + TAG_BYTES);
      expect(aeadOpen(suite, key, nonce, aad, sealed).equals(msg)).toBe(true);
      const empty = aeadSeal(suite, key, nonce, new Uint8Array(0), new Uint8Array(0));
      expect(empty).toHaveLength(TAG_BYTES);
      expect(aeadOpen(suite, key, nonce, new Uint8Array(0), empty)).toHaveLength(0);
    });

    it.each([0, 1, 16, 24, 31, 33, 64])('refuses a %i-byte key with INVALID_ARGUMENT', (n) => {
      expectCpnsError(() => aeadSeal(suite, bytes(n, 4), nonce, aad, msg), ErrorCode.INVALID_ARGUMENT);
      expectCpnsError(() => aeadOpen(suite, bytes(n, 4), nonce, aad, sealed), ErrorCode.INVALID_ARGUMENT);
    });

    it.each([0, 1, 8, 11, 13, 16, 24, 32])('refuses a %i-byte nonce with INVALID_ARGUMENT', (n) => {
      expectCpnsError(() => aeadSeal(suite, key, bytes(n, 5), aad, msg), ErrorCode.INVALID_ARGUMENT);
      expectCpnsError(() => aeadOpen(suite, key, bytes(n, 5), aad, sealed), ErrorCode.INVALID_ARGUMENT);
    });

    it('refuses sealed data shorter than the 16-byte tag with MALFORMED (0..15 bytes)', () => {
      for (let n = 0; n < TAG_BYTES; n++) {
        expectCpnsError(() => aeadOpen(suite, key, nonce, aad, sealed.subarray(0, n)), ErrorCode.MALFORMED);
      }
    });

    it('a truncated tag of an otherwise valid message fails (tag cut to 15..1 bytes)', () => {
      // Dropping trailing bytes: >= 16 bytes left means the wrong split, so BAD_MAC; < 16 means MALFORMED.
      for (let cut = 1; cut < TAG_BYTES; cut++) {
        const short = sealed.subarray(0, sealed.length - cut);
        const code = short.length >= TAG_BYTES ? ErrorCode.BAD_MAC : ErrorCode.MALFORMED;
        expectCpnsError(() => aeadOpen(suite, key, nonce, aad, short), code);
      }
    });

    it(`flipping any one of the ${(msg.length + TAG_BYTES) * 8} bits of ct||tag gives BAD_MAC`, () => {
      let checked = 0;
      for (let bit = 0; bit < sealed.length * 8; bit++) {
        expectCpnsError(() => aeadOpen(suite, key, nonce, aad, flipBit(sealed, bit)), ErrorCode.BAD_MAC);
        checked++;
      }
      expect(checked).toBe(168);
    });

    it('flipping any bit of the AAD or of the nonce gives BAD_MAC', () => {
      for (let bit = 0; bit < aad.length * 8; bit++) {
        expectCpnsError(() => aeadOpen(suite, key, nonce, flipBit(aad, bit), sealed), ErrorCode.BAD_MAC);
      }
      for (let bit = 0; bit < nonce.length * 8; bit++) {
        expectCpnsError(() => aeadOpen(suite, key, flipBit(nonce, bit), aad, sealed), ErrorCode.BAD_MAC);
      }
    });

    it('a wrong key, missing AAD, appended or dropped byte gives BAD_MAC', () => {
      expectCpnsError(() => aeadOpen(suite, flipBit(key, 0), nonce, aad, sealed), ErrorCode.BAD_MAC);
      expectCpnsError(() => aeadOpen(suite, key, nonce, new Uint8Array(0), sealed), ErrorCode.BAD_MAC);
      expectCpnsError(
        () => aeadOpen(suite, key, nonce, aad, Buffer.concat([sealed, Buffer.of(0)])),
        ErrorCode.BAD_MAC,
      );
      expectCpnsError(() => aeadOpen(suite, key, nonce, aad, sealed.subarray(1)), ErrorCode.BAD_MAC);
    });

    it('the BAD_MAC error carries no plaintext or key material', () => {
      const err = expectCpnsError(
        () => aeadOpen(suite, key, nonce, aad, flipBit(sealed, 0)),
        ErrorCode.BAD_MAC,
      );
      expect(err.message).toBe('message authentication failed');
      expect(err.message).not.toContain(msg.toString('utf8'));
    });
  });

  it('sealed data of one suite does not open under the other', () => {
    const gcm = aeadSeal(Suite.AES_256_GCM, key, nonce, aad, msg);
    expectCpnsError(() => aeadOpen(Suite.CHACHA20_POLY1305, key, nonce, aad, gcm), ErrorCode.BAD_MAC);
  });

  it.each([0, 3, 255, -1])('refuses unknown suite %i with UNSUPPORTED_SUITE', (s) => {
    expectCpnsError(() => aeadSeal(s as Suite, key, nonce, aad, msg), ErrorCode.UNSUPPORTED_SUITE);
    expectCpnsError(
      () => aeadOpen(s as Suite, key, nonce, aad, Buffer.alloc(TAG_BYTES)),
      ErrorCode.UNSUPPORTED_SUITE,
    );
  });
});

describe('constantTimeEqual', () => {
  it('is true for equal contents, including two empty arrays and Buffer vs Uint8Array', () => {
    expect(constantTimeEqual(new Uint8Array(0), new Uint8Array(0))).toBe(true);
    expect(constantTimeEqual(bytes(32, 1), bytes(32, 1))).toBe(true);
    expect(constantTimeEqual(new Uint8Array(bytes(16, 2)), bytes(16, 2))).toBe(true);
  });

  it('is false when any single bit differs', () => {
    const a = bytes(16, 3);
    for (let bit = 0; bit < a.length * 8; bit++) expect(constantTimeEqual(a, flipBit(a, bit))).toBe(false);
  });

  it('is false (without throwing) for different lengths, including a prefix and empty vs non-empty', () => {
    const a = bytes(32, 4);
    expect(constantTimeEqual(a, a.subarray(0, 31))).toBe(false);
    expect(constantTimeEqual(a.subarray(0, 31), a)).toBe(false);
    expect(constantTimeEqual(new Uint8Array(0), a)).toBe(false);
    expect(constantTimeEqual(a, Buffer.concat([a, Buffer.of(0)]))).toBe(false);
  });
});

describe('hmacSha256Verify tag-length policy', () => {
  const key = bytes(32, 6);
  const msg = bytes(40, 7);
  const mac = hmacSha256(key, msg);

  it('accepts a correct tag truncated to any length from 16 to 32 bytes', () => {
    for (let n = 16; n <= 32; n++) expect(hmacSha256Verify(key, msg, mac.subarray(0, n))).toBe(true);
  });

  it('refuses correct prefixes shorter than 16 bytes (0..15) and anything longer than 32', () => {
    for (let n = 0; n < 16; n++) expect(hmacSha256Verify(key, msg, mac.subarray(0, n))).toBe(false);
    expect(hmacSha256Verify(key, msg, Buffer.concat([mac, Buffer.of(0)]))).toBe(false);
  });

  it('refuses a tag with any single bit flipped', () => {
    for (let bit = 0; bit < mac.length * 8; bit++)
      expect(hmacSha256Verify(key, msg, flipBit(mac, bit))).toBe(false);
  });
});

describe('AES key wrap misuse', () => {
  const kek = bytes(32, 8);
  const keyData = bytes(32, 9);

  it.each([0, 8, 15, 17, 20, 31, 33, 64])('refuses a %i-byte KEK with INVALID_ARGUMENT', (n) => {
    expectCpnsError(() => aesKeyWrap(bytes(n, 10), keyData), ErrorCode.INVALID_ARGUMENT);
    expectCpnsError(() => aesKeyUnwrap(bytes(n, 10), Buffer.alloc(40)), ErrorCode.INVALID_ARGUMENT);
  });

  it('refuses key data below 16 bytes or not a multiple of 8', () => {
    for (const n of [0, 1, 7, 8, 9, 15, 17, 23, 31, 33]) {
      expectCpnsError(() => aesKeyWrap(kek, bytes(n, 11)), ErrorCode.INVALID_ARGUMENT);
    }
  });

  it('unwrap refuses every wrapped length below 24 bytes or not a multiple of 8 with UNWRAP_FAILED', () => {
    for (let n = 0; n <= 48; n++) {
      if (n >= 24 && n % 8 === 0) continue;
      expectCpnsError(() => aesKeyUnwrap(kek, bytes(n, 12)), ErrorCode.UNWRAP_FAILED);
    }
  });

  it('any single-bit change of the wrapped key fails the integrity check', () => {
    const wrapped = aesKeyWrap(kek, keyData);
    expect(wrapped).toHaveLength(40);
    expect(aesKeyUnwrap(kek, wrapped).equals(keyData)).toBe(true);
    for (let bit = 0; bit < wrapped.length * 8; bit++) {
      expectCpnsError(() => aesKeyUnwrap(kek, flipBit(wrapped, bit)), ErrorCode.UNWRAP_FAILED);
    }
    expectCpnsError(() => aesKeyUnwrap(flipBit(kek, 0), wrapped), ErrorCode.UNWRAP_FAILED);
  });
});

describe('hkdfSha256 length bounds', () => {
  const ikm = bytes(32, 13);

  it('accepts 1..8160 bytes', () => {
    expect(hkdfSha256(ikm, new Uint8Array(0), new Uint8Array(0), 1)).toHaveLength(1);
    expect(hkdfSha256(ikm, new Uint8Array(0), new Uint8Array(0), 8160)).toHaveLength(8160);
  });

  it.each([0, -1, 8161, 1.5, Number.NaN, Number.POSITIVE_INFINITY])('refuses length %s', (n) => {
    expectCpnsError(
      () => hkdfSha256(ikm, new Uint8Array(0), new Uint8Array(0), n),
      ErrorCode.INVALID_ARGUMENT,
    );
  });
});

describe('Ed25519 wrapper misuse', () => {
  const pair = ed25519PrivateFromSeed(bytes(32, 14));
  const msg = bytes(20, 15);
  const sig = ed25519Sign(pair.privateKey, msg);

  it.each([0, 31, 33, 64])('refuses a %i-byte raw public key or seed with INVALID_ARGUMENT', (n) => {
    expectCpnsError(() => ed25519PublicFromRaw(bytes(n, 16)), ErrorCode.INVALID_ARGUMENT);
    expectCpnsError(() => ed25519PrivateFromSeed(bytes(n, 16)), ErrorCode.INVALID_ARGUMENT);
  });

  it('verify returns false, never throws, for wrong-length signatures and any single-bit change', () => {
    expect(ed25519Verify(pair.publicKey, msg, sig)).toBe(true);
    for (const n of [0, 1, 63, 65, 128]) {
      expect(ed25519Verify(pair.publicKey, msg, Buffer.concat([sig, sig]).subarray(0, n))).toBe(false);
    }
    for (let bit = 0; bit < sig.length * 8; bit++) {
      expect(ed25519Verify(pair.publicKey, msg, flipBit(sig, bit))).toBe(false);
    }
    expect(ed25519Verify(pair.publicKey, flipBit(msg, 0), sig)).toBe(false);
  });
});
