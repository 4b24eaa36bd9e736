/**
 * Slow, readable reference model of NNL Subset Difference, written straight from the definitions of
 * reference §4 with no shared code from src/ (except the PRG under test, which §6.4 pins independently).
 * Used only to cross-check the optimised implementation.
 */
import type { SdPrg } from '../../../src/core/broadcast/index.js';

export interface RefSubset {
  i: number;
  j: number;
}

export const REF_ALL: RefSubset = { i: 0, j: 0 };

export function log2(N: number): number {
  let n = 0;
  while (1 << n < N) n++;
  return n;
}

export function depth(v: number): number {
  let d = 0;
  while (v > 1) {
    v = Math.floor(v / 2);
    d++;
  }
  return d;
}

export function parent(v: number): number {
  return Math.floor(v / 2);
}

/** Ancestors of v including v itself, from v up to the root. */
export function ancestorsOrSelf(v: number): number[] {
  const out = [v];
  while (v > 1) {
    v = parent(v);
    out.push(v);
  }
  return out;
}

/** Devices (0-based) under node v, by walking down to the leaves. */
export function devicesUnder(N: number, v: number): number[] {
  if (v >= N) return [v - N];
  return [...devicesUnder(N, 2 * v), ...devicesUnder(N, 2 * v + 1)];
}

/** Every SD subset S_{i,j} of the tree: i internal, j a proper descendant of i. */
export function allSubsets(N: number): RefSubset[] {
  const out: RefSubset[] = [];
  for (let i = 1; i < N; i++) {
    const stack = [2 * i, 2 * i + 1];
    while (stack.length > 0) {
      const j = stack.pop()!;
      out.push({ i, j });
      if (j < N) stack.push(2 * j, 2 * j + 1);
    }
  }
  return out;
}

/** Members of S_{i,j} by definition: leaves under i minus leaves under j. */
export function members(N: number, s: RefSubset): Set<number> {
  if (s.i === 0 && s.j === 0) return new Set(devicesUnder(N, 1));
  const minus = new Set(devicesUnder(N, s.j));
  return new Set(devicesUnder(N, s.i).filter((u) => !minus.has(u)));
}

function lca(a: number, b: number): number {
  while (depth(a) > depth(b)) a = parent(a);
  while (depth(b) > depth(a)) b = parent(b);
  while (a !== b) {
    a = parent(a);
    b = parent(b);
  }
  return a;
}

/**
 * NNL cover, iterative form of reference §4.5 step 1 (a different method from the optimised bottom-up one):
 * keep the Steiner-tree leaves left to right, repeatedly merge the adjacent pair whose LCA is deepest.
 */
export function refCover(N: number, revoked: Iterable<number>): RefSubset[] {
  const R = [...new Set(revoked)].sort((a, b) => a - b);
  if (R.length === 0) return [REF_ALL];
  if (R.length === N) return [];
  let leaves = R.map((u) => N + u);
  const cover: RefSubset[] = [];
  while (leaves.length > 1) {
    let best = 0;
    let bestDepth = -1;
    for (let k = 0; k + 1 < leaves.length; k++) {
      const d = depth(lca(leaves[k]!, leaves[k + 1]!));
      if (d > bestDepth) {
        bestDepth = d;
        best = k;
      }
    }
    const vi = leaves[best]!;
    const vj = leaves[best + 1]!;
    const v = lca(vi, vj);
    const vl = 2 * v;
    const vk = 2 * v + 1;
    if (vl !== vi) cover.push({ i: vl, j: vi });
    if (vk !== vj) cover.push({ i: vk, j: vj });
    leaves = [...leaves.slice(0, best), v, ...leaves.slice(best + 2)];
  }
  const last = leaves[0]!;
  if (last !== 1) cover.push({ i: 1, j: last });
  return cover;
}

/** LABEL_{i,j} by definition: from LABEL_i, one full G (all three thirds) per level along the path to j. */
export function refLabel(prg: SdPrg, labelOf: (i: number) => Buffer, i: number, j: number): Buffer {
  const path = ancestorsOrSelf(j);
  const below = path.slice(0, path.indexOf(i)).reverse(); // nodes strictly below i, top-down, ending at j
  let label = labelOf(i);
  for (const node of below) {
    const g = { L: prg.left(label), M: prg.middle(label), R: prg.right(label) };
    label = node % 2 === 0 ? g.L : g.R;
  }
  return label;
}

export function refSubsetKey(prg: SdPrg, labelOf: (i: number) => Buffer, s: RefSubset): Buffer {
  return prg.middle(refLabel(prg, labelOf, s.i, s.j));
}

/**
 * GKDK of device u by definition (reference §4.3): for every internal ancestor v_i of its leaf, LABEL_{i,h} for
 * every h not on the path whose parent is on the path at depth >= depth(v_i). Keyed "i,h".
 */
export function refGkdk(
  N: number,
  prg: SdPrg,
  labelOf: (i: number) => Buffer,
  u: number,
): Map<string, Buffer> {
  const leaf = N + u;
  const path = ancestorsOrSelf(leaf);
  const out = new Map<string, Buffer>();
  for (const vi of path.filter((v) => v < N)) {
    for (const p of path.filter((x) => x < N && depth(x) >= depth(vi))) {
      for (const h of [2 * p, 2 * p + 1]) {
        if (!path.includes(h)) out.set(`${vi},${h}`, refLabel(prg, labelOf, vi, h));
      }
    }
  }
  return out;
}
