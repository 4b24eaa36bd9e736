import { rekeyReasons } from '../codec/messages.js';
import { CpnsError, ErrorCode } from '../errors.js';
import { decodeSubsetId, isAllSubset, SUBSET_ID_BYTES, type Subset } from './cover.js';
import { GW_ID_BYTES } from './gkdk.js';
import { TREE_ID_BYTES } from './labels.js';
import { MAX_CAPACITY } from './nodes.js';

/**
 * Broadcast datagram, wire version 2 (all integers big-endian; documented byte by byte in docs/broadcast.md):
 *
 *   off  len  field
 *     0    1  version = 2
 *     1   16  gw id
 *    17   16  tree id
 *    33    4  tree version
 *    37    1  n = log2(tree capacity), 1..16
 *    38   16  SG id
 *    54    4  epoch
 *    58    2  fragment index (0-based)
 *    60    2  fragment count
 *    62    2  entry count m, 1..24
 *    64    1  reason code (0 = not given, else 1 + index in BROADCAST_REASONS)
 *    65    4  grace, seconds: how long the previous epoch stays accepted after this one activates
 *    69    4  activate in, seconds from receipt (0 = active at once)
 *    73  43m  entries: subset id u24 | AES-KW(KEK, GK) 40 bytes
 *  73+43m 64  Ed25519 signature by the GW over SIGNATURE_CONTEXT || bytes[0 .. 73+43m)
 *
 * Version 2 adds reason, grace and activation (bytes 64..73) so a key delivered by broadcast is installed with
 * the same grace and activation as the unicast `key.deliver` of the same update; the signature covers them.
 * Every datagram stands alone (reference §10.1 "Splitting rule"): it repeats the fixed fields and carries its
 * own signature, so losing one affects only the PNEs whose entries it held.
 */
export const BROADCAST_VERSION = 2;
export const MAX_DATAGRAM_BYTES = 1200;
export const SG_ID_BYTES = 16;
export const GROUP_KEY_BYTES = 32;
export const WRAPPED_KEY_BYTES = GROUP_KEY_BYTES + 8;
export const ENTRY_BYTES = SUBSET_ID_BYTES + WRAPPED_KEY_BYTES; // 43
export const SIGNATURE_BYTES = 64;
export const HEADER_BYTES = 73;
export const MIN_DATAGRAM_BYTES = HEADER_BYTES + ENTRY_BYTES + SIGNATURE_BYTES; // 180
/** 24: (1200 - 73 - 64) / 43, rounded down. */
export const MAX_ENTRIES_PER_DATAGRAM = Math.floor(
  (MAX_DATAGRAM_BYTES - HEADER_BYTES - SIGNATURE_BYTES) / ENTRY_BYTES,
);
/** An SD cover never exceeds N/2 entries, so a 2^16 tree needs at most ceil(32768 / 24) = 1366 datagrams. */
export const MAX_FRAGMENTS = Math.ceil(MAX_CAPACITY / 2 / MAX_ENTRIES_PER_DATAGRAM);
/** Domain separation of the GW signature: its key may sign other things, never a confusable message. */
export const SIGNATURE_CONTEXT = Buffer.from('CPNS-GKEK-BROADCAST-v2', 'ascii');
/**
 * Why the key was updated: the codec's rekey reasons, one list (append only: the codec's list says so); wire code
 * = 1 + index, 0 = not given. The frozen KAT (test/core/broadcast/kat.json) pins the codes.
 */
export const BROADCAST_REASONS = rekeyReasons;
export type BroadcastReason = (typeof BROADCAST_REASONS)[number];
const UINT32_MAX = 0xffffffff;

export interface BroadcastHeader {
  readonly gwId: Buffer;
  readonly treeId: Buffer;
  readonly treeVersion: number;
  readonly log2Capacity: number;
  readonly sgId: Buffer;
  readonly epoch: number;
  readonly fragmentIndex: number;
  readonly fragmentCount: number;
  /** Why the key was updated; undefined = not given (code 0). */
  readonly reason?: BroadcastReason | undefined;
  /** Seconds the previous epoch stays accepted after this one activates (0: cut at once). Default 0. */
  readonly graceSec?: number;
  /** Seconds from receipt until this epoch becomes the one to send with (0: at once). Default 0. */
  readonly activateIn?: number;
}

export interface BroadcastEntry {
  readonly subset: Subset;
  readonly subsetId: number;
  readonly wrappedKey: Buffer;
}

export interface ParsedBroadcast extends BroadcastHeader {
  readonly version: number;
  readonly reason: BroadcastReason | undefined;
  readonly graceSec: number;
  readonly activateIn: number;
  readonly entries: readonly BroadcastEntry[];
  /** The bytes covered by the signature (without SIGNATURE_CONTEXT), a view into the input. */
  readonly body: Buffer;
  readonly signature: Buffer;
}

/** The message the GW signs for a body: SIGNATURE_CONTEXT || body. */
export function signedMessage(body: Uint8Array): Buffer {
  return Buffer.concat([SIGNATURE_CONTEXT, body]);
}

/** Encode the unsigned body (header + entries); the caller appends the 64-byte signature. */
export function encodeBody(h: BroadcastHeader, entries: readonly BroadcastEntry[]): Buffer {
  const out = Buffer.alloc(HEADER_BYTES + entries.length * ENTRY_BYTES);
  let o = out.writeUInt8(BROADCAST_VERSION, 0);
  o += h.gwId.copy(out, o);
  o += h.treeId.copy(out, o);
  o = out.writeUInt32BE(h.treeVersion, o);
  o = out.writeUInt8(h.log2Capacity, o);
  o += h.sgId.copy(out, o);
  o = out.writeUInt32BE(h.epoch, o);
  o = out.writeUInt16BE(h.fragmentIndex, o);
  o = out.writeUInt16BE(h.fragmentCount, o);
  o = out.writeUInt16BE(entries.length, o);
  o = out.writeUInt8(reasonCode(h.reason), o);
  o = out.writeUInt32BE(uint32(h.graceSec ?? 0, 'graceSec'), o);
  o = out.writeUInt32BE(uint32(h.activateIn ?? 0, 'activateIn'), o);
  for (const e of entries) {
    o = out.writeUIntBE(e.subsetId, o, SUBSET_ID_BYTES);
    o += e.wrappedKey.copy(out, o);
  }
  return out;
}

function reasonCode(r: BroadcastReason | undefined): number {
  if (r === undefined) return 0;
  const k = BROADCAST_REASONS.indexOf(r);
  if (k < 0) throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'unknown rekey reason', 'reason');
  return k + 1;
}

function uint32(v: number, field: string): number {
  if (!Number.isInteger(v) || v < 0 || v > UINT32_MAX) {
    throw new CpnsError(ErrorCode.INVALID_ARGUMENT, `${field} must be a uint32`, field);
  }
  return v;
}

function malformed(field: string, msg = 'malformed broadcast datagram'): never {
  throw new CpnsError(ErrorCode.MALFORMED, msg, field);
}

/**
 * Framing checks done before anything else, and before the signature check: type, size bound, version, minimum
 * length, and that the length is exactly header + m entries + signature for the stated m. Returns a Buffer view.
 */
export function checkFrame(datagram: Uint8Array): Buffer {
  if (!(datagram instanceof Uint8Array)) malformed('datagram', 'datagram must be bytes');
  if (datagram.length > MAX_DATAGRAM_BYTES) {
    throw new CpnsError(ErrorCode.TOO_LARGE, 'datagram exceeds 1200 bytes', 'datagram');
  }
  const b = Buffer.from(datagram.buffer, datagram.byteOffset, datagram.byteLength);
  if (b.length < 1) malformed('version', 'datagram truncated');
  if (b[0] !== BROADCAST_VERSION) {
    throw new CpnsError(ErrorCode.UNSUPPORTED_VERSION, 'unsupported broadcast version', 'version');
  }
  if (b.length < HEADER_BYTES + SIGNATURE_BYTES) malformed('datagram', 'datagram truncated');
  const m = b.readUInt16BE(62);
  if (m > MAX_ENTRIES_PER_DATAGRAM)
    throw new CpnsError(ErrorCode.TOO_LARGE, 'too many entries', 'entryCount');
  if (m === 0) malformed('entryCount');
  if (b.length !== HEADER_BYTES + m * ENTRY_BYTES + SIGNATURE_BYTES) {
    malformed('datagram', 'datagram length does not match its entry count');
  }
  return b;
}

/**
 * Full structural parse. Performs NO signature check: the result is unauthenticated (useful to route or log by
 * GW id). openBroadcast verifies the signature before it interprets any of these fields.
 */
export function parseBroadcast(datagram: Uint8Array): ParsedBroadcast {
  const b = checkFrame(datagram);
  const n = b.readUInt8(37);
  if (n < 1 || n > 16) malformed('log2Capacity');
  const fragmentIndex = b.readUInt16BE(58);
  const fragmentCount = b.readUInt16BE(60);
  if (fragmentCount > MAX_FRAGMENTS)
    throw new CpnsError(ErrorCode.TOO_LARGE, 'too many fragments', 'fragmentCount');
  if (fragmentCount === 0) malformed('fragmentCount');
  if (fragmentIndex >= fragmentCount) malformed('fragmentIndex');
  const code = b.readUInt8(64);
  if (code > BROADCAST_REASONS.length) malformed('reason');
  const m = b.readUInt16BE(62);
  const entries: BroadcastEntry[] = new Array(m);
  let prevI = -1;
  for (let k = 0; k < m; k++) {
    const o = HEADER_BYTES + k * ENTRY_BYTES;
    const subsetId = b.readUIntBE(o, SUBSET_ID_BYTES);
    const subset = decodeSubsetId(subsetId, n);
    // ALL stands alone; otherwise i strictly increasing (sorted lookup, and NNL i's are distinct).
    if (
      subset === undefined ||
      (isAllSubset(subset) && (m !== 1 || fragmentCount !== 1)) ||
      subset.i <= prevI
    ) {
      malformed(`entries[${k}].subsetId`);
    }
    prevI = subset.i;
    entries[k] = {
      subset,
      subsetId,
      wrappedKey: b.subarray(o + SUBSET_ID_BYTES, o + ENTRY_BYTES),
    };
  }
  const end = HEADER_BYTES + m * ENTRY_BYTES;
  return {
    version: BROADCAST_VERSION,
    gwId: b.subarray(1, 1 + GW_ID_BYTES),
    treeId: b.subarray(17, 17 + TREE_ID_BYTES),
    treeVersion: b.readUInt32BE(33),
    log2Capacity: n,
    sgId: b.subarray(38, 38 + SG_ID_BYTES),
    epoch: b.readUInt32BE(54),
    fragmentIndex,
    fragmentCount,
    reason: code === 0 ? undefined : BROADCAST_REASONS[code - 1],
    graceSec: b.readUInt32BE(65),
    activateIn: b.readUInt32BE(69),
    entries,
    body: b.subarray(0, end),
    signature: b.subarray(end),
  };
}
