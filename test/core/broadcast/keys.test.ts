import { describe, expect, it } from 'vitest';
import {
  aesG3,
  buildGkdkLabels,
  CountingPrg,
  gkdkLabelCount,
  gkdkLabelIndex,
  SdTree,
  subsetKeyFromGkdkLabels,
} from '../../../src/core/broadcast/index.js';
import { isCpnsError } from '../../../src/core/errors.js';
import { allSubsets, depth, members, refGkdk, refSubsetKey } from './reference.js';

const gwId = Buffer.alloc(16, 0xaa);

function fullTree(capacity: number): SdTree {
  const tree = SdTree.create({ gwId, capacity, masterSecret: Buffer.alloc(32, capacity % 251) });
  for (let u = 0; u < capacity; u++) tree.assignLeaf(`pne-${u}`);
  return tree;
}

describe('GKDK and subset keys against the reference model', () => {
  it.each([2, 4, 8, 16, 32])('N=%i: every GKDK equals the definition (§4.3), ½n²+½n labels + K_ALL', (N) => {
    const tree = fullTree(N);
    const n = tree.log2Capacity;
    const labelOf = (i: number) => tree.rootLabel(i);
    for (let u = 0; u < N; u++) {
      const g = tree.gkdkFor(`pne-${u}`);
      expect(g.labels.length).toBe(gkdkLabelCount(n) * 16);
      const ref = refGkdk(N, aesG3, labelOf, u);
      expect(ref.size).toBe(gkdkLabelCount(n));
      for (const [key, label] of ref) {
        const [i, h] = key.split(',').map(Number) as [number, number];
        const at = gkdkLabelIndex(n, depth(i), depth(h)) * 16;
        expect(g.labels.subarray(at, at + 16).equals(label)).toBe(true);
      }
      // the device never holds LABEL_i, nor a label of its own path (§4.3)
      const forbidden = new Set<string>();
      for (let i = 1; i < N; i++) forbidden.add(tree.rootLabel(i).toString('hex'));
      for (let k = 0; k < g.labels.length; k += 16) {
        expect(forbidden.has(g.labels.subarray(k, k + 16).toString('hex'))).toBe(false);
      }
      expect(g.kAll.equals(tree.subsetKey({ i: 0, j: 0 }))).toBe(true);
    }
  });

  it.each([2, 4, 8, 16, 32, 64])(
    'N=%i: for every SD subset and every member, device key = GW key = reference key, in <= n G-calls',
    (N) => {
      const tree = fullTree(N);
      const n = tree.log2Capacity;
      const labelOf = (i: number) => tree.rootLabel(i);
      const gkdks = Array.from({ length: N }, (_, u) => tree.gkdkFor(`pne-${u}`));
      const subsets = allSubsets(N);
      expect(subsets.length).toBe(2 * N * n - 2 * N + 2); // §4.1 count
      let failures = 0;
      let maxCalls = 0;
      for (const s of subsets) {
        const gw = tree.subsetKey(s);
        if (!gw.equals(refSubsetKey(aesG3, labelOf, s))) failures++;
        const mem = members(N, s);
        for (let u = 0; u < N; u++) {
          const prg = new CountingPrg();
          if (mem.has(u)) {
            const k = subsetKeyFromGkdkLabels(prg, n, gkdks[u]!.labels, u, s.i, s.j);
            if (!k.equals(gw)) failures++;
            maxCalls = Math.max(maxCalls, prg.calls);
          } else {
            try {
              subsetKeyFromGkdkLabels(prg, n, gkdks[u]!.labels, u, s.i, s.j);
              failures++;
            } catch (e) {
              if (!isCpnsError(e, 'NOT_IN_COVER')) failures++;
            }
          }
        }
      }
      expect(failures).toBe(0);
      expect(maxCalls).toBeLessThanOrEqual(n); // §11 item 11: a correct walk never needs more than n calls
    },
  );

  it('N=1024 and N=65536: sampled subsets and members agree with the reference, <= n G-calls', () => {
    for (const N of [1024, 65536]) {
      const tree = SdTree.create({ gwId, capacity: N, masterSecret: Buffer.alloc(32, 3) });
      const n = tree.log2Capacity;
      const labelOf = (i: number) => tree.rootLabel(i);
      let seed = 12345;
      const rnd = (k: number) => {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        return seed % k;
      };
      for (let t = 0; t < 40; t++) {
        const u = rnd(N);
        const leaf = N + u;
        // pick i = ancestor of leaf at depth di, j = a descendant of i off the leaf's path
        const di = rnd(n);
        const i = leaf >>> (n - di);
        const dj = di + 1 + rnd(n - di);
        let j = leaf >>> (n - dj);
        j ^= 1 << rnd(dj - di); // flip one path bit below i: j is under i but not an ancestor of leaf
        const prg = new CountingPrg();
        const labels = buildLabels(tree, u);
        const k = subsetKeyFromGkdkLabels(prg, n, labels, u, i, j);
        expect(k.equals(refSubsetKey(aesG3, labelOf, { i, j }))).toBe(true);
        expect(k.equals(tree.subsetKey({ i, j }))).toBe(true);
        expect(prg.calls).toBeLessThanOrEqual(n);
      }
    }
  });
});

// GKDK labels for any leaf u of a tree without assigning it (gkdkFor needs an assigned PNE).

function buildLabels(tree: SdTree, u: number): Buffer {
  return buildGkdkLabels(aesG3, tree.log2Capacity, u, (i) => tree.rootLabel(i));
}
