import { random } from '../crypto/bytes.js';
import { CpnsError, ErrorCode } from '../errors.js';
import { isAllSubset, type Subset } from './cover.js';
import { type Gkdk, GW_ID_BYTES } from './gkdk.js';
import {
  buildGkdkLabels,
  deriveAllKey,
  deriveRootLabel,
  MASTER_SECRET_BYTES,
  subsetKeyFromRootLabel,
  TREE_ID_BYTES,
} from './labels.js';
import { isAncestorOrSelf, log2Capacity, MAX_CAPACITY } from './nodes.js';
import { aesG3, type SdPrg } from './prg.js';

export const TREE_STATE_VERSION = 1;
export const MAX_PNE_ID_BYTES = 255;
const STATE_HEADER_BYTES = 1 + GW_ID_BYTES + TREE_ID_BYTES + 4 + 1 + MASTER_SECRET_BYTES + 4 + 4; // 78
const MAX_STATE_BYTES = STATE_HEADER_BYTES + MAX_CAPACITY * (4 + 1 + MAX_PNE_ID_BYTES);
const utf8 = new TextDecoder('utf-8', { fatal: true });

export interface SdTreeCreateOptions {
  /** 16-byte GW id (UUID bytes); every GKDK and broadcast of this tree carries it. */
  readonly gwId: Uint8Array;
  /** Number of leaves: a power of two in [2, 65536]. Over-provision (e.g. 1024): it costs labels, not header. */
  readonly capacity: number;
  /** Fixed secrets for tests and known-answer vectors only; production lets these be random. */
  readonly masterSecret?: Uint8Array;
  readonly treeId?: Uint8Array;
  readonly treeVersion?: number;
}

function checkBytes(v: Uint8Array | undefined, len: number, field: string): Buffer {
  if (!(v instanceof Uint8Array) || v.length !== len) {
    throw new CpnsError(ErrorCode.INVALID_ARGUMENT, `${field} must be ${len} bytes`, field);
  }
  return Buffer.from(v);
}

function checkU32(v: number, field: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    throw new CpnsError(ErrorCode.INVALID_ARGUMENT, `${field} must be a uint32`, field);
  }
  return v;
}

function checkPneId(pneId: string): void {
  if (
    typeof pneId !== 'string' ||
    pneId.length === 0 ||
    Buffer.byteLength(pneId, 'utf8') > MAX_PNE_ID_BYTES
  ) {
    throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'PNE id must be 1..255 UTF-8 bytes', 'pneId');
  }
}

/**
 * The GW's Subset-Difference tree for its PN. Holds the master secret from which every root label and K_ALL
 * derive (reference §4.7), and the leaf bookkeeping.
 *
 * Leaves are handed out left to right and are single-use (reference §11 item 1): a released leaf is spent until
 * the tree is rebuilt, because its former holder keeps its labels. So every leaf below `nextFresh` is either
 * assigned or spent, and the state needs no separate spent list.
 */
export class SdTree {
  readonly gwId: Buffer;
  readonly treeId: Buffer;
  readonly treeVersion: number;
  readonly capacity: number;
  readonly log2Capacity: number;
  readonly #master: Buffer;
  #nextFresh: number;
  readonly #leafByPne = new Map<string, number>();

  private constructor(
    gwId: Buffer,
    treeId: Buffer,
    treeVersion: number,
    capacity: number,
    master: Buffer,
    nextFresh: number,
  ) {
    this.gwId = gwId;
    this.treeId = treeId;
    this.treeVersion = treeVersion;
    this.capacity = capacity;
    this.log2Capacity = log2Capacity(capacity);
    this.#master = master;
    this.#nextFresh = nextFresh;
  }

  /** New tree with a random 32-byte master secret and random 16-byte tree id (version 0). */
  static create(opts: SdTreeCreateOptions): SdTree {
    log2Capacity(opts.capacity);
    return new SdTree(
      checkBytes(opts.gwId, GW_ID_BYTES, 'gwId'),
      opts.treeId === undefined ? random(TREE_ID_BYTES) : checkBytes(opts.treeId, TREE_ID_BYTES, 'treeId'),
      checkU32(opts.treeVersion ?? 0, 'treeVersion'),
      opts.capacity,
      opts.masterSecret === undefined
        ? random(MASTER_SECRET_BYTES)
        : checkBytes(opts.masterSecret, MASTER_SECRET_BYTES, 'masterSecret'),
      0,
    );
  }

  /**
   * Restore from `serialize()` output. The state holds the master secret: the caller stores it encrypted at rest.
   * Bounded decoder (MALFORMED / TOO_LARGE / UNSUPPORTED_VERSION with the field name).
   */
  static restore(state: Uint8Array): SdTree {
    const bad = (field: string): never => {
      throw new CpnsError(ErrorCode.MALFORMED, 'invalid tree state', field);
    };
    if (!(state instanceof Uint8Array)) bad('state');
    if (state.length > MAX_STATE_BYTES)
      throw new CpnsError(ErrorCode.TOO_LARGE, 'tree state too large', 'state');
    const b = Buffer.from(state.buffer, state.byteOffset, state.byteLength);
    if (b.length < 1) bad('version');
    if (b[0] !== TREE_STATE_VERSION) {
      throw new CpnsError(ErrorCode.UNSUPPORTED_VERSION, 'unsupported tree state version', 'version');
    }
    if (b.length < STATE_HEADER_BYTES) bad('state');
    const n = b.readUInt8(37);
    if (n < 1 || n > 16) bad('log2Capacity');
    const capacity = 1 << n;
    const nextFresh = b.readUInt32BE(70);
    if (nextFresh > capacity) bad('nextFresh');
    const count = b.readUInt32BE(74);
    if (count > nextFresh) bad('assignedCount');
    const tree = new SdTree(
      Buffer.from(b.subarray(1, 17)),
      Buffer.from(b.subarray(17, 33)),
      b.readUInt32BE(33),
      capacity,
      Buffer.from(b.subarray(38, 70)),
      nextFresh,
    );
    let o = STATE_HEADER_BYTES;
    let prev = -1;
    for (let k = 0; k < count; k++) {
      if (o + 5 > b.length) bad('assignments');
      const leaf = b.readUInt32BE(o);
      const len = b.readUInt8(o + 4);
      o += 5;
      // Strictly increasing leaves: canonical, and rules out duplicates.
      if (leaf <= prev || leaf >= nextFresh) bad('assignments.leaf');
      if (len === 0 || o + len > b.length) bad('assignments.pneId');
      let id: string;
      try {
        id = utf8.decode(b.subarray(o, o + len));
      } catch {
        return bad('assignments.pneId');
      }
      if (tree.#leafByPne.has(id)) bad('assignments.pneId');
      tree.#leafByPne.set(id, leaf);
      prev = leaf;
      o += len;
    }
    if (o !== b.length) bad('state');
    return tree;
  }

  /**
   * Layout (big-endian): version u8 = 1 | gw id 16 | tree id 16 | tree version u32 | n u8 | master secret 32 |
   * nextFresh u32 | assigned count u32 | per assignment in increasing leaf order: leaf u32 | id length u8 | id
   * UTF-8. Spent leaves = leaves below nextFresh that are not assigned.
   */
  serialize(): Buffer {
    const entries = [...this.#leafByPne].sort((a, b) => a[1] - b[1]);
    const ids = entries.map(([id]) => Buffer.from(id, 'utf8'));
    const size = STATE_HEADER_BYTES + ids.reduce((s, id) => s + 5 + id.length, 0);
    const out = Buffer.alloc(size);
    let o = out.writeUInt8(TREE_STATE_VERSION, 0);
    o += this.gwId.copy(out, o);
    o += this.treeId.copy(out, o);
    o = out.writeUInt32BE(this.treeVersion, o);
    o = out.writeUInt8(this.log2Capacity, o);
    o += this.#master.copy(out, o);
    o = out.writeUInt32BE(this.#nextFresh, o);
    o = out.writeUInt32BE(entries.length, o);
    entries.forEach(([, leaf], k) => {
      const id = ids[k]!;
      o = out.writeUInt32BE(leaf, o);
      o = out.writeUInt8(id.length, o);
      o += id.copy(out, o);
    });
    return out;
  }

  /**
   * Leaf of this PNE: its existing leaf if it already holds one, else the next never-used leaf.
   * TREE_FULL when every leaf has been used (time to rebuild, possibly with a larger capacity).
   */
  assignLeaf(pneId: string): number {
    checkPneId(pneId);
    const existing = this.#leafByPne.get(pneId);
    if (existing !== undefined) return existing;
    if (this.#nextFresh >= this.capacity) {
      throw new CpnsError(ErrorCode.TREE_FULL, 'no unused leaf left in the tree; rebuild it');
    }
    const leaf = this.#nextFresh++;
    this.#leafByPne.set(pneId, leaf);
    return leaf;
  }

  /** The PNE left the PN: its leaf is spent for the life of this tree. Returns false if it held no leaf. */
  releaseLeaf(pneId: string): boolean {
    return this.#leafByPne.delete(pneId);
  }

  leafOf(pneId: string): number | undefined {
    return this.#leafByPne.get(pneId);
  }

  /** Current holders, in increasing leaf order. */
  assignments(): Array<{ readonly pneId: string; readonly leaf: number }> {
    return [...this.#leafByPne].map(([pneId, leaf]) => ({ pneId, leaf })).sort((a, b) => a.leaf - b.leaf);
  }

  get assignedCount(): number {
    return this.#leafByPne.size;
  }

  /** Leaves released since the tree was built: each costs about 1.25 header entries forever (§11 item 2). */
  get spentCount(): number {
    return this.#nextFresh - this.#leafByPne.size;
  }

  /** Leaves never handed out. */
  get freeCount(): number {
    return this.capacity - this.#nextFresh;
  }

  /** True when at least `maxSpent` leaves are spent, or no fresh leaf is left for the next join. */
  needsRebuild(maxSpent: number): boolean {
    return this.spentCount >= maxSpent || this.freeCount === 0;
  }

  /**
   * A new tree for the same GW: fresh master secret, version + 1 (a new random tree id if the version would
   * wrap), current holders re-assigned leaves 0.. in their old order, no spent leaves. Every holder needs its new
   * GKDK over unicast; old GKDKs cannot open the new tree's broadcasts (reference §11 item 1).
   */
  rebuild(opts: { readonly capacity?: number } = {}): SdTree {
    const capacity = opts.capacity ?? this.capacity;
    log2Capacity(capacity);
    const holders = this.assignments();
    if (holders.length > capacity) {
      throw new CpnsError(ErrorCode.TREE_FULL, 'new capacity is smaller than the number of PNEs', 'capacity');
    }
    const wraps = this.treeVersion === 0xffffffff;
    const next = SdTree.create({
      gwId: this.gwId,
      capacity,
      treeId: wraps ? random(TREE_ID_BYTES) : this.treeId,
      treeVersion: wraps ? 0 : this.treeVersion + 1,
    });
    for (const h of holders) next.assignLeaf(h.pneId);
    return next;
  }

  /** GKDK of an assigned PNE (INVALID_ARGUMENT if it holds no leaf). */
  gkdkFor(pneId: string, prg: SdPrg = aesG3): Gkdk {
    const leaf = this.#leafByPne.get(pneId);
    if (leaf === undefined) {
      throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'PNE holds no leaf in this tree', 'pneId');
    }
    return {
      gwId: Buffer.from(this.gwId),
      treeId: Buffer.from(this.treeId),
      treeVersion: this.treeVersion,
      log2Capacity: this.log2Capacity,
      leaf,
      kAll: deriveAllKey(this.#master, this.treeId, this.treeVersion),
      labels: buildGkdkLabels(prg, this.log2Capacity, leaf, (i) => this.rootLabel(i)),
    };
  }

  /** LABEL_i of internal node i (GW-side secret). */
  rootLabel(i: number): Buffer {
    if (!Number.isInteger(i) || i < 1 || i >= this.capacity) {
      throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'not an internal node', 'i');
    }
    return deriveRootLabel(this.#master, this.treeId, this.treeVersion, i);
  }

  /** Subset key L_{i,j} (or K_ALL): at most n PRG calls (reference §4.7). GW-side secret. */
  subsetKey(s: Subset, prg: SdPrg = aesG3): Buffer {
    if (isAllSubset(s)) return deriveAllKey(this.#master, this.treeId, this.treeVersion);
    if (!Number.isInteger(s.j) || s.j >= 2 * this.capacity || s.i === s.j || !isAncestorOrSelf(s.i, s.j)) {
      throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'not an SD subset of this tree', 'subset');
    }
    const label = this.rootLabel(s.i);
    const key = subsetKeyFromRootLabel(prg, label, s.i, s.j);
    label.fill(0);
    return key;
  }
}
