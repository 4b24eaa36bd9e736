/**
 * Wycheproof hkdf_sha256_test.json via hkdfSha256. valid: the output equals okm (this includes empty salts,
 * the RFC 5869 vectors tcIds 1-3 and the maximal size 255 * 32 = 8160 bytes). invalid SizeTooLarge (8161
 * bytes): the wrapper throws INVALID_ARGUMENT (RFC 5869 §2.3: L <= 255 * HashLen).
 */
import { describe, expect, it } from 'vitest';
import { hkdfSha256 } from '../../../src/core/crypto/index.js';
import { ErrorCode } from '../../../src/core/errors.js';
import { flatten, type HkdfGroup, type HkdfTest, hex, loadHkdf } from '../../vectors/load.js';
import { countBy, expectCpnsError, Tally } from './helpers.js';

function category(test: HkdfTest): string {
  if (test.result === 'valid') return 'derive';
  if (test.result === 'invalid' && test.flags.includes('SizeTooLarge') && test.size > 255 * 32) {
    return 'refusedSizeTooLarge';
  }
  return 'unexpected';
}

const EXPECTED = { derive: 83, refusedSizeTooLarge: 3 };

describe('Wycheproof hkdf_sha256_test.json via hkdfSha256', () => {
  const file = loadHkdf();
  const cases = flatten<HkdfGroup, HkdfTest>(file);
  const tally = new Tally();

  it('has the expected number of cases in each category (86 in all)', () => {
    expect(file.numberOfTests).toBe(86);
    expect(countBy(cases, (c) => category(c.test))).toEqual(EXPECTED);
    expect(cases.filter((c) => c.test.size === 8160 && c.test.result === 'valid')).toHaveLength(3);
  });

  for (const { test } of cases) {
    const cat = category(test);
    it(`tcId ${test.tcId} [${cat}] size ${test.size} ${test.flags.join(',')}`, () => {
      const args = [hex(test.ikm), hex(test.salt), hex(test.info), test.size] as const;
      if (cat === 'derive') {
        expect(hkdfSha256(...args).toString('hex')).toBe(test.okm);
      } else if (cat === 'refusedSizeTooLarge') {
        expectCpnsError(() => hkdfSha256(...args), ErrorCode.INVALID_ARGUMENT);
      } else {
        throw new Error(`uncategorised vector tcId ${test.tcId}`);
      }
      tally.hit(cat);
    });
  }

  // Declared last, so it runs after every case above (vitest runs a file's tests in order).
  it('ran every case to the end of its assertions', () => {
    expect(tally.snapshot()).toEqual(EXPECTED);
  });
});
