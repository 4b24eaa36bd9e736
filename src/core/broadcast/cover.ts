import { CpnsError, ErrorCode } from '../errors.js';
import { depthOf, log2Capacity, MAX_LOG2_CAPACITY } from './nodes.js';

/**
 * NNL Subset-Difference cover (reference §4.5). S_{i,j} = leaves under v_i minus leaves under v_j, with v_i a
 * proper ancestor of v_j (heap numbering). The special subset ALL (i = j = 0) is used only when nobody is excluded.
 */
export interface Subset {
  readonly i: number;
  readonly j: number;
}

export const SUBSET_ALL: Subset = Object.freeze({ i: 0, j: 0 });

export function isAllSubset(s: Subset): boolean {
  return s.i === 0 && s.j === 0;
}

/**
 * Cover of the member leaves (0-based leaf indices) of a tree of `capacity` leaves. Every other leaf — never
 * assigned, departed, or simply not in this Service Group — is revoked (reference §11 item 3).
 *
 * Result: ALL when nobody is revoked, [] when nobody is a member, otherwise the NNL cover sorted by i (the
 * entries of an NNL cover have pairwise distinct i, reference §10 "Lookup"). Size <= min(2r-1, N-r, N/2).
 *
 * Cost O(N) for the Steiner-tree marks plus O(r log N) for the bottom-up reduction; one Uint8Array of 2N.
 */
export function computeCover(capacity: number, memberLeaves: Iterable<number>): Subset[] {
  log2Capacity(capacity); // validates: power of two in [2, 2^16]
  const N = capacity;
  // st[v] = 1 when the subtree of v holds a revoked leaf, i.e. v belongs to the Steiner tree ST(R).
  const st = new Uint8Array(2 * N);
  st.fill(1, N, 2 * N);
  let members = 0;
  for (const u of memberLeaves) {
    if (!Number.isInteger(u) || u < 0 || u >= N) {
      throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'member leaf out of range', 'memberLeaves');
    }
    if (st[N + u] === 1) {
      st[N + u] = 0;
      members++;
    }
  }
  if (members === N) return [SUBSET_ALL];
  if (members === 0) return [];
  for (let v = N - 1; v >= 1; v--) st[v] = st[2 * v]! | st[2 * v + 1]!;

  const pairs: number[] = [];
  // Reduce the subtree of v (v in ST) to the single ST leaf it collapses to, emitting subsets at every
  // branching node (reference §4.5 steps 1a–1c; bottom-up form of the pseudo-code there).
  const reduce = (start: number): number => {
    let v = start;
    while (v < N) {
      const l = 2 * v;
      const r = l + 1;
      const inL = st[l] === 1;
      const inR = st[r] === 1;
      if (inL && inR) {
        const a = reduce(l);
        if (a !== l) pairs.push(l, a);
        const b = reduce(r);
        if (b !== r) pairs.push(r, b);
        return v;
      }
      v = inL ? l : r; // chain node: exactly one child in ST (v is in ST, so at least one is)
    }
    return v;
  };
  const last = reduce(1);
  if (last !== 1) pairs.push(1, last); // step 2: S_{root, last}

  const out: Subset[] = new Array(pairs.length / 2);
  for (let k = 0; k < pairs.length; k += 2) out[k / 2] = { i: pairs[k]!, j: pairs[k + 1]! };
  out.sort((a, b) => a.i - b.i);
  return out;
}

/**
 * Wire encoding of a subset: 3 bytes, (depth(i) << 20) | j, with 0 = ALL. j < 2N <= 2^17 and depth(i) < 16,
 * so the id fits for every supported tree; i is recovered as j >> (depth(j) - depth(i)) (reference §7.5).
 */
export const SUBSET_ID_BYTES = 3;
const J_BITS = 20;
const J_MASK = (1 << J_BITS) - 1;

export function encodeSubsetId(s: Subset): number {
  if (isAllSubset(s)) return 0;
  return (depthOf(s.i) << J_BITS) | s.j;
}

/** Decode and validate a subset id for a tree of depth n; undefined when it names no SD subset of that tree. */
export function decodeSubsetId(id: number, n: number): Subset | undefined {
  if (id === 0) return SUBSET_ALL;
  if (n < 1 || n > MAX_LOG2_CAPACITY) return undefined;
  const di = id >>> J_BITS;
  const j = id & J_MASK;
  if (j < 2 || j >= 2 << n) return undefined;
  const dj = depthOf(j);
  if (di >= dj) return undefined;
  return { i: j >>> (dj - di), j };
}

/** Membership by definition (reference §4.4 item 1): v_i is an ancestor of the leaf and v_j is not. */
export function subsetContains(s: Subset, n: number, u: number): boolean {
  if (isAllSubset(s)) return true;
  const leaf = (1 << n) + u;
  const di = depthOf(s.i);
  const dj = depthOf(s.j);
  return leaf >>> (n - di) === s.i && leaf >>> (n - dj) !== s.j;
}

/**
 * Index of the cover entry containing leaf u, or -1. `entries` must be sorted by strictly increasing i (as on
 * the wire): the device binary-searches for each of its n ancestors (reference §10 "Lookup").
 */
export function findSubsetIndex(entries: readonly Subset[], n: number, u: number): number {
  if (entries.length === 0) return -1;
  if (entries.length === 1 && isAllSubset(entries[0]!)) return 0;
  const leaf = (1 << n) + u;
  for (let d = 0; d < n; d++) {
    const a = leaf >>> (n - d);
    let lo = 0;
    let hi = entries.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const e = entries[mid]!;
      if (e.i === a) {
        if (leaf >>> (n - depthOf(e.j)) !== e.j) return mid;
        break; // excluded from this one; i is unique, try deeper ancestors
      }
      if (e.i < a) lo = mid + 1;
      else hi = mid - 1;
    }
  }
  return -1;
}
