import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  buildBroadcast,
  CountingPrg,
  computeCover,
  findSubsetIndex,
  MAX_DATAGRAM_BYTES,
  MAX_ENTRIES_PER_DATAGRAM,
  openBroadcast,
  parseBroadcast,
} from '../../../src/core/broadcast/index.js';
import { isCpnsError } from '../../../src/core/errors.js';
import { GW_KEYS, groupKey, makePn, type Pn, SG_ID } from './helpers.js';

/**
 * Delivers GK to `members` and checks every listed PNE: a member opens GK from exactly one datagram (and gets
 * NOT_IN_COVER from the others), anyone else gets NOT_IN_COVER from all. Returns the number of failures.
 */
function deliverAndCheck(pn: Pn, members: readonly string[], check: readonly string[], epoch = 7): number {
  const gk = groupKey(epoch + members.length);
  const datagrams = buildBroadcast({
    gwSigningKey: GW_KEYS.privateKey,
    tree: pn.tree,
    sgId: SG_ID,
    epoch,
    groupKey: gk,
    memberPneIds: members,
  });
  let failures = 0;
  if (datagrams.some((d) => d.length > MAX_DATAGRAM_BYTES)) failures++;
  const memberSet = new Set(members);
  for (const id of check) {
    const gkdk = pn.gkdk.get(id)!;
    let opened = 0;
    for (const d of datagrams) {
      const prg = new CountingPrg();
      try {
        const r = openBroadcast(d, { gkdk, gwPublicKey: GW_KEYS.publicKey, currentEpoch: epoch - 1, prg });
        if (!r.groupKey.equals(gk) || !r.sgId.equals(SG_ID) || r.epoch !== epoch) failures++;
        if (prg.calls > gkdk.log2Capacity) failures++;
        opened++;
      } catch (e) {
        if (!isCpnsError(e, 'NOT_IN_COVER')) failures++;
      }
    }
    if (opened !== (memberSet.has(id) ? 1 : 0)) failures++;
  }
  return failures;
}

const ids = (ks: Iterable<number>) => [...ks].map((k) => `p${k}`);

describe('end to end, exhaustive N = 8', () => {
  it('full tree: all 256 member sets, every PNE opens iff member', () => {
    const pn = makePn(8, 8);
    let failures = 0;
    for (let mask = 0; mask < 256; mask++) {
      const mem = [0, 1, 2, 3, 4, 5, 6, 7].filter((u) => (mask >> u) & 1);
      failures += deliverAndCheck(pn, ids(mem), ids([0, 1, 2, 3, 4, 5, 6, 7]));
    }
    expect(failures).toBe(0);
  });

  it('released and never-assigned leaves: all member sets of the live PNEs; departed PNEs never open', () => {
    // leaves 0..5 issued, 1 and 4 released (PNEs keep their GKDKs), 6 and 7 never assigned
    const pn = makePn(8, 6, [1, 4]);
    const live = [0, 2, 3, 5];
    let failures = 0;
    for (let mask = 0; mask < 16; mask++) {
      const mem = live.filter((_, k) => (mask >> k) & 1);
      failures += deliverAndCheck(pn, ids(mem), ids([0, 1, 2, 3, 4, 5]));
    }
    expect(failures).toBe(0);
    expect(() =>
      buildBroadcast({
        gwSigningKey: GW_KEYS.privateKey,
        tree: pn.tree,
        sgId: SG_ID,
        epoch: 1,
        groupKey: groupKey(1),
        memberPneIds: ['p1'],
      }),
    ).toThrow(/holds no leaf/);
  });

  it('K_ALL when nobody is excluded; no datagram when nobody is a member', () => {
    const pn = makePn(8, 8);
    const all = buildBroadcast({
      gwSigningKey: GW_KEYS.privateKey,
      tree: pn.tree,
      sgId: SG_ID,
      epoch: 1,
      groupKey: groupKey(1),
      memberPneIds: ids([0, 1, 2, 3, 4, 5, 6, 7]),
    });
    expect(all.length).toBe(1);
    expect(parseBroadcast(all[0]!).entries.map((e) => e.subsetId)).toEqual([0]);
    const none = buildBroadcast({
      gwSigningKey: GW_KEYS.privateKey,
      tree: pn.tree,
      sgId: SG_ID,
      epoch: 1,
      groupKey: groupKey(1),
      memberPneIds: [],
    });
    expect(none).toEqual([]);
  });
});

describe('N = 16: cover of all 65536 sets checked in cover.test.ts; end to end on a sample', () => {
  it('1000 random member sets, every PNE checked, with one released and one unassigned leaf', () => {
    const pn = makePn(16, 15, [9]);
    const live = [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14];
    let failures = 0;
    fc.assert(
      fc.property(fc.subarray(live), (mem) => {
        failures += deliverAndCheck(pn, ids(mem), ids([...live, 9]));
      }),
      { numRuns: 1000, seed: 16 },
    );
    expect(failures).toBe(0);
  });
});

describe('random N (2..1024) and member sets (fast-check)', () => {
  const arb = fc
    .integer({ min: 1, max: 10 })
    .chain((n) => {
      const N = 1 << n;
      return fc.record({
        N: fc.constant(N),
        assigned: fc.integer({ min: 1, max: N }),
        seed: fc.integer(),
      });
    })
    .chain(({ N, assigned, seed }) =>
      fc.record({
        N: fc.constant(N),
        assigned: fc.constant(assigned),
        seed: fc.constant(seed),
        released: fc.uniqueArray(fc.integer({ min: 0, max: assigned - 1 }), {
          maxLength: Math.min(assigned, 40),
        }),
        memberBits: fc.array(fc.boolean(), { minLength: assigned, maxLength: assigned }),
      }),
    );

  it('datagrams <= 1200 B, every member in exactly one datagram, sampled PNEs open iff member', () => {
    fc.assert(
      fc.property(arb, ({ N, assigned, released, memberBits }) => {
        const pn = makePn(N, assigned, released);
        const rel = new Set(released);
        const mem = memberBits.flatMap((b, k) => (b && !rel.has(k) ? [k] : []));
        const datagrams = buildBroadcast({
          gwSigningKey: GW_KEYS.privateKey,
          tree: pn.tree,
          sgId: SG_ID,
          epoch: 3,
          groupKey: groupKey(3),
          memberPneIds: ids(mem),
        });
        const cover = computeCover(N, mem);
        expect(datagrams.length).toBe(Math.ceil(cover.length / MAX_ENTRIES_PER_DATAGRAM));
        const parsed = datagrams.map((d) => parseBroadcast(d));
        for (const d of datagrams) expect(d.length).toBeLessThanOrEqual(MAX_DATAGRAM_BYTES);
        parsed.forEach((p, k) => {
          expect(p.fragmentIndex).toBe(k);
          expect(p.fragmentCount).toBe(datagrams.length);
        });
        // structural: every issued leaf appears in exactly one datagram iff it is a member
        const memSet = new Set(mem);
        const n = Math.log2(N);
        for (let u = 0; u < assigned; u++) {
          const hits = parsed.filter(
            (p) =>
              findSubsetIndex(
                p.entries.map((e) => e.subset),
                n,
                u,
              ) >= 0,
          ).length;
          expect(hits).toBe(memSet.has(u) ? 1 : 0);
        }
        // cryptographic: a sample of members and of non-members (incl. departed) end to end
        const nonMembers = Array.from({ length: assigned }, (_, k) => k).filter((k) => !memSet.has(k));
        const sample = [
          ...mem.slice(0, 12),
          ...mem.slice(-4),
          ...nonMembers.slice(0, 8),
          ...released.slice(0, 4),
        ];
        expect(deliverAndCheck(pn, ids(mem), ids(new Set(sample)), 3)).toBe(0);
      }),
      { numRuns: 60, seed: 1024 },
    );
  });
});
