import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  computeCover,
  decodeSubsetId,
  encodeSubsetId,
  findSubsetIndex,
  MAX_CAPACITY,
  type Subset,
  subsetContains,
} from '../../../src/core/broadcast/index.js';
import { isCpnsError } from '../../../src/core/errors.js';
import { log2, members, REF_ALL, refCover } from './reference.js';

const fmt = (c: readonly Subset[]) => c.map((s) => (s.i === 0 ? 'ALL' : `${s.i},${s.j}`));
const sortRef = (c: { i: number; j: number }[]) => [...c].sort((a, b) => a.i - b.i);
function complement(N: number, R: readonly number[]): number[] {
  const r = new Set(R);
  return Array.from({ length: N }, (_, u) => u).filter((u) => !r.has(u));
}
const coverOfRevoked = (N: number, R: readonly number[]) => computeCover(N, complement(N, R));

/**
 * Everything reference §11 item 12 asks of a cover, plus the device lookup: exact disjoint partition of the
 * members, size bounds, distinct sorted i, every leaf finds its entry iff it is a member. Returns the first
 * violation (plain checks, no expect() per item, so the exhaustive runs stay fast).
 */
const memberCache = new Map<string, number[]>();
function membersOf(N: number, s: Subset): number[] {
  const key = `${N}:${s.i}:${s.j}`;
  let m = memberCache.get(key);
  if (m === undefined) {
    m = [...members(N, s)];
    if (N <= 64) memberCache.set(key, m);
  }
  return m;
}
function coverViolation(
  N: number,
  memberSet: ReadonlySet<number>,
  cover: readonly Subset[],
): string | undefined {
  const n = log2(N);
  const r = N - memberSet.size;
  if (r === 0) return cover.length === 1 && cover[0]!.i === 0 && cover[0]!.j === 0 ? undefined : 'not ALL';
  if (memberSet.size === 0) return cover.length === 0 ? undefined : 'S empty but cover not empty';
  if (cover.length > Math.min(2 * r - 1, N - r, N / 2)) return 'size bound';
  for (let k = 1; k < cover.length; k++) if (cover[k]!.i <= cover[k - 1]!.i) return 'i not strictly sorted';
  const seen = new Uint8Array(N);
  let count = 0;
  for (const s of cover) {
    for (const u of membersOf(N, s)) {
      if (!memberSet.has(u)) return `non-member ${u} covered`;
      if (seen[u]) return `member ${u} covered twice`;
      seen[u] = 1;
      count++;
    }
  }
  if (count !== memberSet.size) return 'member not covered';
  for (let u = 0; u < N; u++) {
    const k = findSubsetIndex(cover, n, u);
    if (memberSet.has(u) ? k < 0 || !subsetContains(cover[k]!, n, u) : k !== -1) return `lookup of ${u}`;
  }
  return undefined;
}
function checkCover(N: number, memberSet: ReadonlySet<number>, cover: readonly Subset[]): void {
  expect(coverViolation(N, memberSet, cover)).toBeUndefined();
}

describe('NNL SD cover: reference §6.1 / §6.2 worked examples', () => {
  it.each([
    [8, [], ['ALL']],
    [8, [2], ['1,10']],
    [8, [1, 6], ['2,9', '3,14']],
    [8, [0, 1, 2, 3], ['1,2']],
    [16, [2], ['1,18']],
    [16, [0, 15], ['2,16', '3,31']],
    [16, [2, 3, 12], ['2,9', '3,28']],
    [16, [1, 6, 7, 9, 13], ['4,17', '5,11', '6,25', '7,29']],
    [16, [0, 2, 4, 6, 8, 10, 12, 14], ['8,16', '9,18', '10,20', '11,22', '12,24', '13,26', '14,28', '15,30']],
    [16, complement(16, [5]), ['10,20']],
  ] as const)('N=%i R=%j', (N, R, expected) => {
    const cover = coverOfRevoked(N, R);
    expect(fmt(cover)).toEqual(expected);
    checkCover(N, new Set(complement(N, R)), cover);
  });

  it('§6.1 membership: S_{1,10} = {0,1,3..7}, S_{2,9} = {0,2,3}, S_{3,14} = {4,5,7}', () => {
    const m = (i: number, j: number) => [...members(8, { i, j })].sort((a, b) => a - b);
    expect(m(1, 10)).toEqual([0, 1, 3, 4, 5, 6, 7]);
    expect(m(2, 9)).toEqual([0, 2, 3]);
    expect(m(3, 14)).toEqual([4, 5, 7]);
  });

  it('S = ∅ gives no entries; r = N-1 gives the single S_{parent, sibling}', () => {
    expect(computeCover(1024, [])).toEqual([]);
    expect(fmt(computeCover(1024, [77]))).toEqual([`${(1024 + 77) >> 1},${(1024 + 77) ^ 1}`]);
  });
});

describe('exhaustive N = 4, 8, 16 over all 2^N member sets (reference §6.3)', () => {
  it.each([
    [4, 19, { 0: 1, 1: 11, 2: 4 }],
    [8, 595, { 0: 1, 1: 35, 2: 116, 3: 88, 4: 16 }],
    [16, 304579, { 0: 1, 1: 99, 2: 1444, 3: 8296, 4: 19632, 5: 21536, 6: 11456, 7: 2816, 8: 256 }],
  ] as const)('N=%i: Σ sizes, histogram, per-r maxima, reference agreement, partition', (N, sum, hist) => {
    let total = 0;
    const histogram: Record<number, number> = {};
    const maxByR = new Array<number>(N + 1).fill(0);
    const failures: string[] = [];
    for (let mask = 0; mask < 1 << N; mask++) {
      const mem: number[] = [];
      const rev: number[] = [];
      for (let u = 0; u < N; u++) (mask >> u) & 1 ? mem.push(u) : rev.push(u);
      const cover = computeCover(N, mem);
      total += cover.length;
      histogram[cover.length] = (histogram[cover.length] ?? 0) + 1;
      maxByR[rev.length] = Math.max(maxByR[rev.length]!, cover.length);
      const ref = sortRef(refCover(N, rev));
      const same =
        ref.length === cover.length && ref.every((s, k) => s.i === cover[k]!.i && s.j === cover[k]!.j);
      if (!same) failures.push(`mask ${mask}: differs from reference`);
      const v = coverViolation(N, new Set(mem), cover);
      if (v !== undefined) failures.push(`mask ${mask}: ${v}`);
    }
    expect(failures.slice(0, 5)).toEqual([]);
    expect(total).toBe(sum);
    expect(histogram).toEqual(hist);
    if (N === 16) expect(maxByR.slice(1, 16)).toEqual([1, 3, 4, 6, 6, 7, 7, 8, 7, 6, 5, 4, 3, 2, 1]);
  });
});

describe('random N and member sets (fast-check)', () => {
  const arb = fc
    .integer({ min: 1, max: 10 })
    .chain((n) => fc.tuple(fc.constant(1 << n), fc.uniqueArray(fc.integer({ min: 0, max: (1 << n) - 1 }))));
  it('cover is the exact partition, within bounds, equal to the reference cover', () => {
    fc.assert(
      fc.property(arb, ([N, mem]) => {
        const cover = computeCover(N, mem);
        checkCover(N, new Set(mem), cover);
        const rev = complement(N, mem);
        expect(fmt(cover)).toEqual(fmt(sortRef(refCover(N, rev))));
      }),
      { numRuns: 150 },
    );
  });

  it('sparse revocations in a 1024 tree stay near 1.25 r and never above 2r-1', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 0, max: 1023 }), { minLength: 1, maxLength: 40 }), (R) => {
        const cover = coverOfRevoked(1024, R);
        expect(cover.length).toBeLessThanOrEqual(2 * R.length - 1);
        checkCover(1024, new Set(complement(1024, R)), cover);
      }),
      { numRuns: 60 },
    );
  });
});

describe('limits and arguments', () => {
  it('capacity 2^16 works; 2^17, 1, 3, 0 and non-integers are INVALID_ARGUMENT', () => {
    const N = MAX_CAPACITY;
    const mem = Array.from({ length: N }, (_, u) => u).filter((u) => u % 3 !== 0 || u > 60000);
    const cover = computeCover(N, mem);
    expect(cover.length).toBeGreaterThan(0);
    const n = 16;
    // spot-check the partition on a few leaves (the exhaustive checks cover small trees)
    for (const u of [0, 1, 2, 3, 59999, 60000, 60001, 65535]) {
      expect(findSubsetIndex(cover, n, u) >= 0).toBe(u % 3 !== 0 || u > 60000);
    }
    for (const bad of [N * 2, 1, 3, 0, 2.5, -2]) {
      try {
        computeCover(bad, []);
        expect.unreachable();
      } catch (e) {
        expect(isCpnsError(e, 'INVALID_ARGUMENT')).toBe(true);
      }
    }
  });

  it('member leaves out of range are INVALID_ARGUMENT; duplicates are harmless', () => {
    expect(() => computeCover(8, [8])).toThrow(/out of range/);
    expect(() => computeCover(8, [-1])).toThrow(/out of range/);
    expect(() => computeCover(8, [1.5])).toThrow(/out of range/);
    expect(fmt(computeCover(8, [0, 0, 0]))).toEqual(fmt(computeCover(8, [0])));
  });

  it('subset ids round-trip for every subset of a 2^16 tree corner and reject non-subsets', () => {
    for (const s of [
      { i: 1, j: 2 },
      { i: 1, j: 131071 },
      { i: 32768, j: 65536 },
      { i: 65535, j: 131071 },
      REF_ALL,
    ]) {
      expect(decodeSubsetId(encodeSubsetId(s), 16)).toEqual(s);
    }
    expect(decodeSubsetId((1 << 20) | 2, 16)).toBeUndefined(); // d_i = 1 = d_j
    expect(decodeSubsetId(1, 16)).toBeUndefined(); // j = 1 (root) is never excluded
    expect(decodeSubsetId(16, 3)).toBeUndefined(); // j beyond 2N
    expect(decodeSubsetId(0x1fffff, 16)).toBeUndefined();
  });
});
