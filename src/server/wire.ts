/** Small translations between the store / crypto layer and the wire (suite names, update reasons, policies). */
import { type MessageOf, rekeyReasons } from '../core/codec/index.js';
import { Suite } from '../core/crypto/aead.js';
import type { DeliveryPolicy } from '../protocol/policy.js';
import type { WireSuite } from './types.js';

export type RekeyReason = MessageOf<'key.deliver'>['reason'];

export const SUITE_OF: Record<WireSuite, Suite> = {
  'aes-256-gcm': Suite.AES_256_GCM,
  'chacha20-poly1305': Suite.CHACHA20_POLY1305,
};
export const WIRE_SUITE: Record<Suite, WireSuite> = {
  [Suite.AES_256_GCM]: 'aes-256-gcm',
  [Suite.CHACHA20_POLY1305]: 'chacha20-poly1305',
};
const WIRE_REASONS: ReadonlySet<string> = new Set(rekeyReasons);
/** Updates after which the previous epoch must stop at once (the leaver must not read or inject). */
export const LEAVE_REASONS: ReadonlySet<string> = new Set(['leave', 'remove', 'detach', 'revoke']);

/** A stored update reason as the wire knows it (reasons of the store only, e.g. 'restart', go as 'periodic'). */
export function wireReason(r: string): RekeyReason {
  return (WIRE_REASONS.has(r) ? r : 'periodic') as RekeyReason;
}

/** A delivery policy stored as JSON, if it has the right shape (else the server-wide policy applies). */
export function asDeliveryPolicy(j: unknown): DeliveryPolicy | undefined {
  if (typeof j !== 'object' || j === null) return undefined;
  const p = j as Record<string, unknown>;
  if (typeof p.broadcast !== 'boolean') return undefined;
  if (typeof p.broadcastThreshold !== 'number' || typeof p.ackTimeoutMs !== 'number') return undefined;
  return { broadcast: p.broadcast, broadcastThreshold: p.broadcastThreshold, ackTimeoutMs: p.ackTimeoutMs };
}
