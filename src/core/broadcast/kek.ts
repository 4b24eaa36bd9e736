import { hkdfSha256 } from '../crypto/hkdf.js';
import { SUBSET_ID_BYTES } from './cover.js';

/**
 * GKEK of one cover entry. Subset keys are long-lived (the same L_{i,j} serves every broadcast whose cover holds
 * S_{i,j}), and RFC 3394 has no associated data, so the context is bound through the KEK (reference §10):
 *
 *   KEK = HKDF-SHA256(IKM = subset key, salt = "", info = "CPNS-GKEK" || gw id || tree id || tree version u32 ||
 *                     SG id || epoch u32 || subset id u24, L = 32)
 *
 * All info fields are fixed-length, so the encoding is injective. A wrapped GK moved to another GW, tree, SG,
 * epoch or subset fails the RFC 3394 integrity check. The 32-byte KEK selects AES-256 key wrap.
 */
const KEK_DOMAIN = Buffer.from('CPNS-GKEK', 'ascii');
const EMPTY = Buffer.alloc(0);
export const KEK_BYTES = 32;

export interface KekContext {
  readonly gwId: Uint8Array;
  readonly treeId: Uint8Array;
  readonly treeVersion: number;
  readonly sgId: Uint8Array;
  readonly epoch: number;
}

export function kekInfo(ctx: KekContext, subsetId: number): Buffer {
  const tail = Buffer.allocUnsafe(4 + 4 + SUBSET_ID_BYTES);
  tail.writeUInt32BE(ctx.treeVersion, 0);
  tail.writeUInt32BE(ctx.epoch, 4);
  tail.writeUIntBE(subsetId, 8, SUBSET_ID_BYTES);
  // Order: domain, gw id, tree id, tree version, SG id, epoch, subset id.
  return Buffer.concat([
    KEK_DOMAIN,
    ctx.gwId,
    ctx.treeId,
    tail.subarray(0, 4),
    ctx.sgId,
    tail.subarray(4, 8),
    tail.subarray(8),
  ]);
}

export function deriveKek(subsetKey: Uint8Array, ctx: KekContext, subsetId: number): Buffer {
  return hkdfSha256(subsetKey, EMPTY, kekInfo(ctx, subsetId), KEK_BYTES);
}
