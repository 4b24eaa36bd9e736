import { createHmac } from 'node:crypto';
import { CpnsError, ErrorCode } from '../errors.js';
import { depthOf } from './nodes.js';
import { LABEL_BYTES, type SdPrg } from './prg.js';

/**
 * Label derivation of NNL SD (reference §4.2–4.4, §4.7).
 *
 * Root labels LABEL_i come from a PRF of the tree master secret, one independent input per node and a separate
 * domain for K_ALL (reference §11 item 5: never derive one LABEL_i from another). All PRF inputs are
 * fixed-length, so no two (domain, tree id, version, i) tuples share an encoding.
 * PRF = HMAC-SHA256 truncated to the 128-bit label size of AES-G3.
 */
const LABEL_DOMAIN = Buffer.from('CPNS-SD-LABEL', 'ascii');
const ALL_DOMAIN = Buffer.from('CPNS-SD-ALL', 'ascii');

export const MASTER_SECRET_BYTES = 32;
export const TREE_ID_BYTES = 16;

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
}

/** LABEL_i = HMAC-SHA256(master, "CPNS-SD-LABEL" || tree id || tree version || i)[0..16]. */
export function deriveRootLabel(
  master: Uint8Array,
  treeId: Uint8Array,
  treeVersion: number,
  i: number,
): Buffer {
  return createHmac('sha256', master)
    .update(LABEL_DOMAIN)
    .update(treeId)
    .update(u32(treeVersion))
    .update(u32(i))
    .digest()
    .subarray(0, LABEL_BYTES);
}

/** K_ALL = HMAC-SHA256(master, "CPNS-SD-ALL" || tree id || tree version)[0..16]: used only when nobody is excluded. */
export function deriveAllKey(master: Uint8Array, treeId: Uint8Array, treeVersion: number): Buffer {
  return createHmac('sha256', master)
    .update(ALL_DOMAIN)
    .update(treeId)
    .update(u32(treeVersion))
    .digest()
    .subarray(0, LABEL_BYTES);
}

/**
 * LABEL_{i,to} from LABEL_{i,from}, where `from` is an ancestor-or-self of `to`: one G_L/G_R per level, reading
 * the path bits of `to` MSB first below depth(from) (reference §4.2, §11 item 6). Intermediate labels are wiped.
 */
export function walkDown(prg: SdPrg, label: Uint8Array, from: number, to: number): Buffer {
  const df = depthOf(from);
  const dt = depthOf(to);
  let cur: Buffer = Buffer.from(label);
  for (let d = df + 1; d <= dt; d++) {
    const bit = (to >>> (dt - d)) & 1;
    const next = bit === 0 ? prg.left(cur) : prg.right(cur);
    cur.fill(0);
    cur = next;
  }
  return cur;
}

/** Subset key L_{i,j} = G_M(LABEL_{i,j}) from the root label LABEL_i (gateway side, reference §4.7). */
export function subsetKeyFromRootLabel(prg: SdPrg, labelI: Uint8Array, i: number, j: number): Buffer {
  const lij = walkDown(prg, labelI, i, j);
  const key = prg.middle(lij);
  lij.fill(0);
  return key;
}

/** Number of SD labels in a GKDK for a tree of depth n (without K_ALL): n(n+1)/2 (reference §4.3). */
export function gkdkLabelCount(n: number): number {
  return (n * (n + 1)) / 2;
}

/**
 * Position of LABEL_{i,h} in the canonical GKDK order: d_i = 0..n-1 ascending, then d_h = d_i+1..n ascending
 * (the triangular array lab[d_i][d_h] of reference §4.3; the nodes are implied by the leaf).
 */
export function gkdkLabelIndex(n: number, di: number, dh: number): number {
  return di * n - (di * (di - 1)) / 2 + (dh - di - 1);
}

/**
 * The SD labels of leaf u (0-based), concatenated in canonical order: for every internal ancestor v_i of the
 * leaf, LABEL_{i,h} for every h hanging off the path below v_i (h = sibling of a path node deeper than v_i).
 * Never LABEL_i itself nor a label of a node on the leaf's own path (reference §4.3).
 * Cost: per ancestor, one walk down the path, plus one G call per hanging sibling.
 */
export function buildGkdkLabels(prg: SdPrg, n: number, u: number, rootLabel: (i: number) => Buffer): Buffer {
  const leaf = (1 << n) + u;
  const out = Buffer.alloc(gkdkLabelCount(n) * LABEL_BYTES);
  let pos = 0;
  for (let di = 0; di < n; di++) {
    const i = leaf >>> (n - di);
    let pathLabel = rootLabel(i);
    for (let dh = di + 1; dh <= n; dh++) {
      const pathNode = leaf >>> (n - dh);
      const bit = pathNode & 1;
      // The hanging node is the sibling of the path node: opposite direction from the current path label.
      const hanging = bit === 0 ? prg.right(pathLabel) : prg.left(pathLabel);
      hanging.copy(out, pos);
      hanging.fill(0);
      pos += LABEL_BYTES;
      if (dh < n) {
        const next = bit === 0 ? prg.left(pathLabel) : prg.right(pathLabel);
        pathLabel.fill(0);
        pathLabel = next;
      }
    }
    pathLabel.fill(0);
  }
  return out;
}

/**
 * Device side (reference §4.4): L_{i,j} for leaf u from its GKDK labels, assuming u ∈ S_{i,j} (the caller has
 * checked membership). Starts at the hanging node h = child of LCA(leaf, j) towards j, which the device holds,
 * and walks down: (d_j - d_h) + 1 <= n PRG calls.
 */
export function subsetKeyFromGkdkLabels(
  prg: SdPrg,
  n: number,
  labels: Uint8Array,
  u: number,
  i: number,
  j: number,
): Buffer {
  const leaf = (1 << n) + u;
  const di = depthOf(i);
  const dj = depthOf(j);
  // Leaf's ancestor at depth d_j differs from j; the highest differing bit gives the LCA depth.
  const diff = (leaf >>> (n - dj)) ^ j;
  if (diff === 0 || leaf >>> (n - di) !== i) {
    throw new CpnsError(ErrorCode.NOT_IN_COVER, 'this device is not in the subset');
  }
  const da = dj - (32 - Math.clz32(diff));
  if (da < di) throw new CpnsError(ErrorCode.NOT_IN_COVER, 'this device is not in the subset');
  const dh = da + 1;
  const h = j >>> (dj - dh);
  const at = gkdkLabelIndex(n, di, dh) * LABEL_BYTES;
  const start = labels.subarray(at, at + LABEL_BYTES);
  return subsetKeyFromRootLabel(prg, start, h, j);
}
