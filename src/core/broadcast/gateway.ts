import type { KeyObject } from 'node:crypto';
import { ed25519Sign } from '../crypto/ed25519.js';
import { aesKeyWrap } from '../crypto/keywrap.js';
import { CpnsError, ErrorCode } from '../errors.js';
import { computeCover, encodeSubsetId } from './cover.js';
import { deriveKek, type KekContext } from './kek.js';
import { aesG3, type SdPrg } from './prg.js';
import type { SdTree } from './tree.js';
import {
  type BroadcastEntry,
  type BroadcastHeader,
  type BroadcastReason,
  encodeBody,
  GROUP_KEY_BYTES,
  MAX_ENTRIES_PER_DATAGRAM,
  SG_ID_BYTES,
  SIGNATURE_BYTES,
  signedMessage,
} from './wire.js';

export interface BuildBroadcastParams {
  /** The GW's Ed25519 private key; PNEs verify with the GW public key they know from its certificate. */
  readonly gwSigningKey: KeyObject;
  /** The PN's tree; supplies GW id, tree id and version. */
  readonly tree: SdTree;
  /** 16-byte Service Group id (UUID bytes). */
  readonly sgId: Uint8Array;
  /** Group Key epoch, uint32. */
  readonly epoch: number;
  /** The 32-byte Group Key. */
  readonly groupKey: Uint8Array;
  /** SG member PNEs of this PN. Each must hold a leaf of `tree` (INVALID_ARGUMENT otherwise). */
  readonly memberPneIds: Iterable<string>;
  /** Why the key was updated (carried signed, so the PNE reports it). Default: not given. */
  readonly reason?: BroadcastReason;
  /**
   * Seconds the previous epoch stays accepted after this one activates: the `graceSec` of the unicast
   * `key.deliver` of the same update (0 after a leave: the previous epoch stops at once). Default 0.
   */
  readonly graceSec?: number;
  /** Seconds from receipt until the key becomes the one to send with (periodic update ahead). Default 0. */
  readonly activateIn?: number;
  /** Test instrument; must be AES-G3 (the default) for wire versions 1 and 2. */
  readonly prg?: SdPrg;
}

/**
 * GW side: cover the members' leaves, wrap GK under a context-bound KEK per cover entry, and split the entries
 * (sorted by i) into self-contained signed datagrams of at most 1200 bytes (reference §10.1). No members → [].
 */
export function buildBroadcast(p: BuildBroadcastParams): Buffer[] {
  const { tree } = p;
  if (!(p.sgId instanceof Uint8Array) || p.sgId.length !== SG_ID_BYTES) {
    throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'SG id must be 16 bytes', 'sgId');
  }
  if (!Number.isInteger(p.epoch) || p.epoch < 0 || p.epoch > 0xffffffff) {
    throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'epoch must be a uint32', 'epoch');
  }
  if (!(p.groupKey instanceof Uint8Array) || p.groupKey.length !== GROUP_KEY_BYTES) {
    throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'group key must be 32 bytes', 'groupKey');
  }
  const leaves: number[] = [];
  for (const id of p.memberPneIds) {
    const leaf = tree.leafOf(id);
    if (leaf === undefined) {
      throw new CpnsError(
        ErrorCode.INVALID_ARGUMENT,
        'member PNE holds no leaf in this tree',
        'memberPneIds',
      );
    }
    leaves.push(leaf);
  }
  const cover = computeCover(tree.capacity, leaves);
  if (cover.length === 0) return [];

  const prg = p.prg ?? aesG3;
  const sgId = Buffer.from(p.sgId);
  const ctx: KekContext = {
    gwId: tree.gwId,
    treeId: tree.treeId,
    treeVersion: tree.treeVersion,
    sgId,
    epoch: p.epoch,
  };
  const entries: BroadcastEntry[] = cover.map((subset) => {
    const subsetId = encodeSubsetId(subset);
    const key = tree.subsetKey(subset, prg);
    const kek = deriveKek(key, ctx, subsetId);
    key.fill(0);
    const wrappedKey = aesKeyWrap(kek, p.groupKey);
    kek.fill(0);
    return { subset, subsetId, wrappedKey };
  });

  const fragmentCount = Math.ceil(entries.length / MAX_ENTRIES_PER_DATAGRAM);
  const out: Buffer[] = [];
  for (let f = 0; f < fragmentCount; f++) {
    const header: BroadcastHeader = {
      gwId: tree.gwId,
      treeId: tree.treeId,
      treeVersion: tree.treeVersion,
      log2Capacity: tree.log2Capacity,
      sgId,
      epoch: p.epoch,
      fragmentIndex: f,
      fragmentCount,
      reason: p.reason,
      graceSec: p.graceSec ?? 0,
      activateIn: p.activateIn ?? 0,
    };
    const body = encodeBody(
      header,
      entries.slice(f * MAX_ENTRIES_PER_DATAGRAM, (f + 1) * MAX_ENTRIES_PER_DATAGRAM),
    );
    const sig = ed25519Sign(p.gwSigningKey, signedMessage(body));
    if (sig.length !== SIGNATURE_BYTES) throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'not an Ed25519 key');
    out.push(Buffer.concat([body, sig]));
  }
  return out;
}
