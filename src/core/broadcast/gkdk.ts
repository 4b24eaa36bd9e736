import { CpnsError, ErrorCode } from '../errors.js';
import { gkdkLabelCount, TREE_ID_BYTES } from './labels.js';
import { MAX_LOG2_CAPACITY, MIN_LOG2_CAPACITY } from './nodes.js';
import { LABEL_BYTES } from './prg.js';

/**
 * GKDK (Group Key Decryption Key) of one PNE: its SD label set plus K_ALL (reference §4.3), and the identifiers
 * a broadcast must match (GW id, tree id, tree version, depth). Secret: deliver only over the GW–PNE secure
 * session, and store it like any key.
 */
export interface Gkdk {
  readonly gwId: Buffer;
  readonly treeId: Buffer;
  readonly treeVersion: number;
  /** n = log2(capacity) */
  readonly log2Capacity: number;
  /** 0-based leaf index u (heap node N + u). */
  readonly leaf: number;
  readonly kAll: Buffer;
  /** n(n+1)/2 labels of 16 bytes, canonical order (see gkdkLabelIndex). */
  readonly labels: Buffer;
}

export const GKDK_VERSION = 1;
export const GW_ID_BYTES = 16;
const HEADER_BYTES = 1 + GW_ID_BYTES + TREE_ID_BYTES + 4 + 1 + 4 + LABEL_BYTES; // 58

/** Serialized size of a GKDK for a tree of depth n: 58 + 16·n(n+1)/2 (938 bytes at N = 1024). */
export function gkdkSize(n: number): number {
  return HEADER_BYTES + gkdkLabelCount(n) * LABEL_BYTES;
}

export const MAX_GKDK_BYTES =
  HEADER_BYTES + ((MAX_LOG2_CAPACITY * (MAX_LOG2_CAPACITY + 1)) / 2) * LABEL_BYTES;

/**
 * Layout (big-endian): version u8 = 1 | gw id 16 | tree id 16 | tree version u32 | n u8 | leaf u32 |
 * K_ALL 16 | labels 16 × n(n+1)/2.
 */
export function serializeGkdk(g: Gkdk): Buffer {
  const n = g.log2Capacity;
  const out = Buffer.alloc(gkdkSize(n));
  let o = out.writeUInt8(GKDK_VERSION, 0);
  o += g.gwId.copy(out, o);
  o += g.treeId.copy(out, o);
  o = out.writeUInt32BE(g.treeVersion, o);
  o = out.writeUInt8(n, o);
  o = out.writeUInt32BE(g.leaf, o);
  o += g.kAll.copy(out, o);
  g.labels.copy(out, o);
  return out;
}

/** Bounded decoder: checks the size before copying anything; copies so the caller may wipe its input. */
export function parseGkdk(bytes: Uint8Array): Gkdk {
  if (!(bytes instanceof Uint8Array)) throw new CpnsError(ErrorCode.MALFORMED, 'GKDK must be bytes', 'gkdk');
  if (bytes.length > MAX_GKDK_BYTES) throw new CpnsError(ErrorCode.TOO_LARGE, 'GKDK too large', 'gkdk');
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length < 1) throw new CpnsError(ErrorCode.MALFORMED, 'GKDK truncated', 'version');
  if (b[0] !== GKDK_VERSION)
    throw new CpnsError(ErrorCode.UNSUPPORTED_VERSION, 'unsupported GKDK version', 'version');
  if (b.length < HEADER_BYTES) throw new CpnsError(ErrorCode.MALFORMED, 'GKDK truncated', 'gkdk');
  const n = b.readUInt8(37);
  if (n < MIN_LOG2_CAPACITY || n > MAX_LOG2_CAPACITY) {
    throw new CpnsError(ErrorCode.MALFORMED, 'tree depth out of range', 'log2Capacity');
  }
  if (b.length !== gkdkSize(n)) throw new CpnsError(ErrorCode.MALFORMED, 'GKDK length mismatch', 'labels');
  const leaf = b.readUInt32BE(38);
  if (leaf >= 1 << n) throw new CpnsError(ErrorCode.MALFORMED, 'leaf out of range', 'leaf');
  return {
    gwId: Buffer.from(b.subarray(1, 17)),
    treeId: Buffer.from(b.subarray(17, 33)),
    treeVersion: b.readUInt32BE(33),
    log2Capacity: n,
    leaf,
    kAll: Buffer.from(b.subarray(42, 58)),
    labels: Buffer.from(b.subarray(58)),
  };
}
