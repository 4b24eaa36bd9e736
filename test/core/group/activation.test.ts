import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { activationTime } from '../../../src/core/group/activation.js';

const NOW = 1_800_000_000_000;

describe('activationTime: one rule for staged keys (docs/group-messages.md)', () => {
  it.each([
    ['no activation at all', undefined, undefined, undefined],
    ['activateIn = 0 is now, whatever activateAt says', 0, NOW + 60_000, undefined],
    ['negative activateIn is now', -5, NOW + 60_000, undefined],
    ['relative wins over absolute', 10, NOW + 60_000, NOW + 10_000],
    ['absolute only when no relative', undefined, NOW + 60_000, NOW + 60_000],
    ['absolute in the past is now', undefined, NOW - 1, undefined],
    ['absolute exactly now is now', undefined, NOW, undefined],
    ['absolute one ms ahead is staged', undefined, NOW + 1, NOW + 1],
  ])('%s', (_name, inSec, at, want) => {
    expect(activationTime(inSec, at, NOW)).toBe(want);
  });

  it('never returns a time at or before now, and a relative time ignores the absolute one', () => {
    fc.assert(
      fc.property(
        fc.option(fc.integer({ min: -100, max: 100_000 }), { nil: undefined }),
        fc.option(fc.integer({ min: 0, max: 2 * NOW }), { nil: undefined }),
        (inSec, at) => {
          const r = activationTime(inSec, at, NOW);
          if (r !== undefined) expect(r).toBeGreaterThan(NOW);
          if (inSec !== undefined) expect(r).toBe(inSec > 0 ? NOW + inSec * 1000 : undefined);
        },
      ),
    );
  });
});
