/**
 * Wycheproof aes_wrap_test.json (AES Key Wrap, RFC 3394 / NIST SP 800-38F KW) via aesKeyWrap/aesKeyUnwrap.
 *
 * - valid: wrap(kek, msg) == ct and unwrap(kek, ct) == msg (every valid msg is >= 16 bytes).
 * - invalid: unwrap throws UNWRAP_FAILED. Where msg itself is not wrappable (empty, 8 bytes, not a multiple
 *   of 8) wrap throws INVALID_ARGUMENT; otherwise (ModifiedIv, bytes appended) wrap succeeds but must not
 *   produce the invalid ct.
 * - acceptable ShortKey (8-byte key data, tcIds 12, 54, 109): RFC 3394 §2 allows wrapping a single 64-bit
 *   block, NIST SP 800-38F §5.3.1 (KW) does not (its minimum is n >= 2 semiblocks, 16 bytes of key data).
 *   The wrapper follows SP 800-38F, so wrap throws INVALID_ARGUMENT and unwrap of the 16-byte ct throws
 *   UNWRAP_FAILED (length < 24). Wycheproof allows either outcome.
 * All KEKs in the file are 128, 192 or 256 bits, so no vector exercises the INVALID_ARGUMENT KEK-size path
 * (covered in misuse.test.ts).
 */
import { createDecipheriv } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { aesKeyUnwrap, aesKeyWrap } from '../../../src/core/crypto/index.js';
import { ErrorCode } from '../../../src/core/errors.js';
import {
  flatten,
  hex,
  type KeywrapGroup,
  type KeywrapTest,
  loadKeywrap,
  type WithGroup,
} from '../../vectors/load.js';
import { countBy, expectCpnsError, Tally } from './helpers.js';

type Case = WithGroup<KeywrapGroup, KeywrapTest>;

/** Key data the wrapper accepts: >= 16 bytes and a multiple of 8 (SP 800-38F KW). */
function wrappable(msgHex: string): boolean {
  const n = msgHex.length / 2;
  return n >= 16 && n % 8 === 0;
}

/** Wrapped length the wrapper accepts before trying to unwrap: >= 24 bytes and a multiple of 8. */
function unwrapLengthOk(ctHex: string): boolean {
  const n = ctHex.length / 2;
  return n >= 24 && n % 8 === 0;
}

/**
 * - `wrapUnwrap`: valid, both directions give the expected bytes.
 * - `refusedShortKey`: acceptable ShortKey, refused in both directions.
 * - `invalid/lengthRefused`: unwrap refused by the length check (never reaches OpenSSL).
 * - `invalid/integrityFailed`: unwrap attempted and the RFC 3394 integrity check fails.
 * The `+wrapRefused` / `+wrapDiffers` suffix records what wrap(msg) does for invalid vectors.
 */
function category({ test }: Case): string {
  if (test.result === 'valid')
    return wrappable(test.msg) && unwrapLengthOk(test.ct) ? 'wrapUnwrap' : 'unexpected';
  if (test.result === 'acceptable') {
    return test.flags.includes('ShortKey') && test.msg.length === 16 ? 'refusedShortKey' : 'unexpected';
  }
  const unwrap = unwrapLengthOk(test.ct) ? 'integrityFailed' : 'lengthRefused';
  const wrap = wrappable(test.msg) ? 'wrapDiffers' : 'wrapRefused';
  return `invalid/${unwrap}+${wrap}`;
}

const EXPECTED_BY_CATEGORY = {
  wrapUnwrap: 36,
  refusedShortKey: 3,
  // EmptyKey (ct 8 B), ShortKey invalid (ct 16 B), WrongDataSize (ct empty), InvalidWrappingSize with msg empty
  // (ct 0, 1, 4, 8, 15, 17, 20 B): 3 + 3 + 24 + 21.
  'invalid/lengthRefused+wrapRefused': 51,
  // InvalidWrappingSize "bytes appended to wrapped key" (ct 25 B; tcIds 29, 71, 126).
  'invalid/lengthRefused+wrapDiffers': 3,
  // ModifiedIv: right length, wrong IV, so the integrity check must catch it.
  'invalid/integrityFailed+wrapDiffers': 72,
};

describe('Wycheproof aes_wrap_test.json via aesKeyWrap/aesKeyUnwrap', () => {
  const file = loadKeywrap();
  const cases = flatten<KeywrapGroup, KeywrapTest>(file);
  const tally = new Tally();

  it('has the expected number of cases in each category (165 in all)', () => {
    expect(file.numberOfTests).toBe(165);
    expect(cases).toHaveLength(165);
    expect(countBy(cases, category)).toEqual(EXPECTED_BY_CATEGORY);
    expect(countBy(cases, (c) => c.test.result)).toEqual({ valid: 36, invalid: 126, acceptable: 3 });
  });

  for (const c of cases) {
    const { group, test } = c;
    const cat = category(c);
    const kek = hex(test.key);
    const msg = hex(test.msg);
    const ct = hex(test.ct);

    it(`tcId ${test.tcId} [${cat}] kek ${group.keySize} msg ${msg.length} B ct ${ct.length} B ${test.flags.join(',')}`, () => {
      if (cat === 'wrapUnwrap') {
        expect(aesKeyWrap(kek, msg).toString('hex')).toBe(test.ct);
        expect(aesKeyUnwrap(kek, ct).toString('hex')).toBe(test.msg);
      } else if (cat === 'refusedShortKey') {
        expectCpnsError(() => aesKeyWrap(kek, msg), ErrorCode.INVALID_ARGUMENT);
        expectCpnsError(() => aesKeyUnwrap(kek, ct), ErrorCode.UNWRAP_FAILED);
      } else if (cat.startsWith('invalid/')) {
        expectCpnsError(() => aesKeyUnwrap(kek, ct), ErrorCode.UNWRAP_FAILED);
        if (cat.endsWith('+wrapRefused')) {
          expectCpnsError(() => aesKeyWrap(kek, msg), ErrorCode.INVALID_ARGUMENT);
        } else {
          expect(aesKeyWrap(kek, msg).toString('hex')).not.toBe(test.ct);
        }
      } else {
        throw new Error(`uncategorised vector tcId ${test.tcId}`);
      }
      tally.hit(cat);
    });
  }

  it('rejects the empty wrapped key (tcIds 22, 64, 119), which node:crypto alone unwraps to an empty key', () => {
    const empty = cases.filter((c) => c.test.ct === '');
    const invalidWrappingSize = empty.filter((c) => c.test.flags.includes('InvalidWrappingSize'));
    expect(invalidWrappingSize.map((c) => c.test.tcId)).toEqual([22, 64, 119]);
    for (const { group, test } of invalidWrappingSize) {
      // The reason the wrapper checks lengths itself: OpenSSL's id-aesNNN-wrap returns no bytes and no error.
      const d = createDecipheriv(`id-aes${group.keySize}-wrap`, hex(test.key), hex('a6a6a6a6a6a6a6a6'));
      expect(Buffer.concat([d.update(Buffer.alloc(0)), d.final()])).toHaveLength(0);
      expectCpnsError(() => aesKeyUnwrap(hex(test.key), Buffer.alloc(0)), ErrorCode.UNWRAP_FAILED);
    }
  });

  // Declared last, so it runs after every case above (vitest runs a file's tests in order).
  it('ran every case to the end of its assertions', () => {
    expect(tally.snapshot()).toEqual(EXPECTED_BY_CATEGORY);
  });
});
