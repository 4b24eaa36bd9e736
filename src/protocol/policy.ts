import type { MessageOf } from '../core/codec/index.js';

/**
 * The PN GW's choice between unicast and broadcast Group Key delivery (seed §5.3.3: "PN GW selects
 * unicast/broadcast based on certain criteria such as used media in PAN and the number of member PNEs in PN
 * based on operator's policy"). The operator sets the policy on the server, which pushes it (`gw.policy`).
 * The body of `gw.policy` (fields documented in src/core/codec/messages.ts): `broadcast` allowed at all;
 * `broadcastThreshold`, broadcast only when at least this many member PNEs of the SG in this PN can receive it;
 * `ackTimeoutMs`, members that have not acked a broadcast within this time get the key by unicast.
 */
export type DeliveryPolicy = Readonly<Omit<MessageOf<'gw.policy'>, 'v' | 't' | 'id'>>;

export const DEFAULT_POLICY: DeliveryPolicy = { broadcast: true, broadcastThreshold: 3, ackTimeoutMs: 1500 };

export interface MemberInfo {
  readonly pneId: string;
  /** Broadcast media the PNE listens on (capability declared when it attached). */
  readonly media: readonly string[];
  /** The PNE holds a GKDK of the GW's current tree. */
  readonly hasGkdk: boolean;
}

export interface DeliveryPlan {
  readonly broadcast: readonly MemberInfo[];
  readonly unicast: readonly MemberInfo[];
  /** Media to broadcast on: every GW medium at least one broadcast member listens on. */
  readonly media: readonly string[];
}

export function planDelivery(
  policy: DeliveryPolicy,
  members: readonly MemberInfo[],
  gwMedia: readonly string[],
): DeliveryPlan {
  const reachable = (m: MemberInfo) => m.hasGkdk && m.media.some((x) => gwMedia.includes(x));
  const candidates = members.filter(reachable);
  if (!policy.broadcast || candidates.length === 0 || candidates.length < policy.broadcastThreshold) {
    return { broadcast: [], unicast: members, media: [] };
  }
  const media = gwMedia.filter((g) => candidates.some((m) => m.media.includes(g)));
  return { broadcast: candidates, unicast: members.filter((m) => !reachable(m)), media };
}
