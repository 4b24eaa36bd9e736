/**
 * The one builder of `key.deliver` (docs/protocol.md "Group Key delivery", steps 2 and 3, and the `key.fetch`
 * reply of "Service Groups"): server → GW (with the GW's `targets` and the SG's `policy`), GW → PNE over its
 * session, and server → PNE over its tunnel (neither with targets nor policy).
 *
 * The codec writes an object's fields in schema order and leaves out `undefined` optional ones
 * (src/core/codec/schema.ts), so only the values reach the wire. Flags are sent only when they say something:
 * `sourceAuth` only when true, `policy` only when the operator set one, the activation only for a key distributed
 * ahead of it (docs/group-messages.md "Periodic updates distributed ahead of activation").
 */
import type { ControlMessageInit, MessageOf } from '../core/codec/index.js';

type Body = MessageOf<'key.deliver'>;

export type KeyDeliverInit = Extract<ControlMessageInit, { t: 'key.deliver' }>;

export interface KeyDeliverFields {
  /** The request id of the `key.fetch` this answers (a reply only). */
  readonly id?: number | undefined;
  readonly sgId: string;
  readonly epoch: number;
  readonly key: Body['key'];
  readonly suite: Body['suite'];
  readonly reason: Body['reason'];
  readonly graceSec: number;
  readonly previousEpoch?: number | undefined;
  readonly senderAnchors?: Body['senderAnchors'];
  /**
   * A key distributed ahead of its activation: the relative delay in seconds (devices without a synchronised
   * clock use it) and, when known, the absolute time in ms since the Unix epoch.
   */
  readonly activate?: { readonly inSec: number; readonly at?: number | undefined } | undefined;
  /** Server → GW only: the member PNEs of that GW that get the key. */
  readonly targets?: Body['targets'];
  /** Server → GW only: the SG's own delivery policy, if the operator set one. */
  readonly policy?: Body['policy'];
  readonly sourceAuth?: boolean | undefined;
  /** Server → GW only: the id of the key update, for the logs (docs/operator.md "Following a key update"). */
  readonly updateId?: string | undefined;
}

export function keyDeliver(f: KeyDeliverFields): KeyDeliverInit {
  return {
    t: 'key.deliver',
    ...(f.id !== undefined ? { id: f.id } : {}),
    sgId: f.sgId,
    epoch: f.epoch,
    key: f.key,
    suite: f.suite,
    reason: f.reason,
    graceSec: f.graceSec,
    previousEpoch: f.previousEpoch,
    senderAnchors: f.senderAnchors,
    ...(f.activate
      ? {
          activateIn: f.activate.inSec,
          ...(f.activate.at !== undefined ? { activateAt: f.activate.at } : {}),
        }
      : {}),
    ...(f.targets !== undefined ? { targets: f.targets } : {}),
    ...(f.policy ? { policy: f.policy } : {}),
    ...(f.sourceAuth ? { sourceAuth: true } : {}),
    ...(f.updateId !== undefined ? { updateId: f.updateId } : {}),
  };
}
