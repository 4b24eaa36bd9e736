/**
 * Wycheproof hmac_sha256_test.json via hmacSha256 and hmacSha256Verify.
 *
 * Every case: hmacSha256Verify(key, msg, tag) is true exactly for `valid` (the tag is already truncated to
 * tagSize/8 bytes: 16 for the 128-bit groups, 32 for the 256-bit groups; the wrapper accepts 16..32 bytes).
 * Also hmacSha256 (the full 32-byte MAC), compared with the tag directly for 256-bit groups and through its
 * first 16 bytes for the 128-bit groups.
 */
import { describe, expect, it } from 'vitest';
import { hmacSha256, hmacSha256Verify } from '../../../src/core/crypto/index.js';
import { flatten, hex, loadMac, type MacGroup, type MacTest, type WithGroup } from '../../vectors/load.js';
import { countBy, Tally } from './helpers.js';

type Case = WithGroup<MacGroup, MacTest>;

function category({ group, test }: Case): string {
  if (test.result === 'acceptable' || test.tag.length * 4 !== group.tagSize) return 'unexpected';
  const size = group.tagSize === 256 ? 'full' : group.tagSize === 128 ? 'truncated128' : 'unexpected';
  return `${size}/${test.result}`;
}

const EXPECTED = {
  'full/valid': 33,
  'full/invalid': 54,
  'truncated128/valid': 33,
  'truncated128/invalid': 54,
};

describe('Wycheproof hmac_sha256_test.json via hmacSha256/hmacSha256Verify', () => {
  const file = loadMac();
  const cases = flatten<MacGroup, MacTest>(file);
  const tally = new Tally();

  it('has the expected number of cases in each category (174 in all)', () => {
    expect(file.numberOfTests).toBe(174);
    expect(countBy(cases, category)).toEqual(EXPECTED);
  });

  for (const c of cases) {
    const { group, test } = c;
    const cat = category(c);
    it(`tcId ${test.tcId} [${cat}] key ${group.keySize} tag ${group.tagSize} ${test.flags.join(',')}`, () => {
      if (cat === 'unexpected') throw new Error(`uncategorised vector tcId ${test.tcId}`);
      const key = hex(test.key);
      const msg = hex(test.msg);
      const valid = test.result === 'valid';
      expect(hmacSha256Verify(key, msg, hex(test.tag))).toBe(valid);
      const mac = hmacSha256(key, msg);
      expect(mac).toHaveLength(32);
      expect(mac.subarray(0, group.tagSize / 8).toString('hex') === test.tag).toBe(valid);
      tally.hit(cat);
    });
  }

  // Declared last, so it runs after every case above (vitest runs a file's tests in order).
  it('ran every case to the end of its assertions', () => {
    expect(tally.snapshot()).toEqual(EXPECTED);
  });
});
