import type { KeyObject } from 'node:crypto';
import { constantTimeEqual } from '../crypto/bytes.js';
import { ed25519Verify } from '../crypto/ed25519.js';
import { aesKeyUnwrap } from '../crypto/keywrap.js';
import { CpnsError, ErrorCode } from '../errors.js';
import { findSubsetIndex, isAllSubset } from './cover.js';
import type { Gkdk } from './gkdk.js';
import { deriveKek } from './kek.js';
import { subsetKeyFromGkdkLabels } from './labels.js';
import { aesG3, type SdPrg } from './prg.js';
import {
  type BroadcastReason,
  checkFrame,
  GROUP_KEY_BYTES,
  parseBroadcast,
  SIGNATURE_BYTES,
  signedMessage,
} from './wire.js';

export interface OpenBroadcastOptions {
  readonly gkdk: Gkdk;
  /** The GW's Ed25519 public key (from its certificate, learned over the secure session). */
  readonly gwPublicKey: KeyObject;
  /** Epoch of the Group Key this PNE already holds for the SG; the datagram must be newer. */
  readonly currentEpoch?: number;
  /** Test instrument (e.g. CountingPrg); must compute AES-G3 (wire versions 1 and 2). */
  readonly prg?: SdPrg;
}

export interface OpenedGroupKey {
  readonly sgId: Buffer;
  readonly epoch: number;
  readonly groupKey: Buffer;
  /** Why the key was updated, as signed by the GW (undefined: not given). */
  readonly reason: BroadcastReason | undefined;
  /** Seconds the previous epoch stays accepted after this one activates (0: cut at once). */
  readonly graceSec: number;
  /** Seconds from receipt until this epoch becomes the one to send with (0: at once). */
  readonly activateIn: number;
}

/**
 * PNE side. Order matters:
 *   1. framing (size <= 1200, version, length consistent) — no field is interpreted yet;
 *   2. GW signature (BAD_SIGNATURE): unauthenticated bytes never reach the parser's semantic checks, the tree
 *      check or any key derivation; a member of S_{i,j} who forges an entry for its co-members fails here;
 *   3. structure (MALFORMED), GW id / tree id / version / depth (WRONG_TREE), epoch > current (STALE_EPOCH);
 *   4. lookup of the PNE's subset, at most n binary searches (NOT_IN_COVER: excluded, or its entry is in another
 *      datagram of the same broadcast);
 *   5. <= n PRG calls to L_{i,j}, HKDF to the KEK, RFC 3394 unwrap (UNWRAP_FAILED).
 */
export function openBroadcast(datagram: Uint8Array, opts: OpenBroadcastOptions): OpenedGroupKey {
  const { gkdk } = opts;
  const framed = checkFrame(datagram);
  const bodyEnd = framed.length - SIGNATURE_BYTES;
  if (
    !ed25519Verify(opts.gwPublicKey, signedMessage(framed.subarray(0, bodyEnd)), framed.subarray(bodyEnd))
  ) {
    throw new CpnsError(ErrorCode.BAD_SIGNATURE, 'broadcast signature invalid');
  }
  const d = parseBroadcast(framed);
  if (
    !constantTimeEqual(d.gwId, gkdk.gwId) ||
    !constantTimeEqual(d.treeId, gkdk.treeId) ||
    d.treeVersion !== gkdk.treeVersion ||
    d.log2Capacity !== gkdk.log2Capacity
  ) {
    throw new CpnsError(ErrorCode.WRONG_TREE, 'broadcast is for another GW, tree or tree version');
  }
  if (opts.currentEpoch !== undefined && d.epoch <= opts.currentEpoch) {
    throw new CpnsError(ErrorCode.STALE_EPOCH, 'broadcast epoch is not newer than the current one');
  }
  const n = gkdk.log2Capacity;
  const k = findSubsetIndex(
    d.entries.map((e) => e.subset),
    n,
    gkdk.leaf,
  );
  if (k < 0) throw new CpnsError(ErrorCode.NOT_IN_COVER, 'this PNE has no entry in this datagram');
  const entry = d.entries[k]!;
  const prg = opts.prg ?? aesG3;
  const subsetKey = isAllSubset(entry.subset)
    ? Buffer.from(gkdk.kAll)
    : subsetKeyFromGkdkLabels(prg, n, gkdk.labels, gkdk.leaf, entry.subset.i, entry.subset.j);
  const kek = deriveKek(subsetKey, d, entry.subsetId);
  subsetKey.fill(0);
  try {
    const groupKey = aesKeyUnwrap(kek, entry.wrappedKey);
    if (groupKey.length !== GROUP_KEY_BYTES) {
      groupKey.fill(0);
      throw new CpnsError(ErrorCode.UNWRAP_FAILED, 'unwrapped key has the wrong length');
    }
    return {
      sgId: Buffer.from(d.sgId),
      epoch: d.epoch,
      groupKey,
      reason: d.reason,
      graceSec: d.graceSec,
      activateIn: d.activateIn,
    };
  } finally {
    kek.fill(0);
  }
}
