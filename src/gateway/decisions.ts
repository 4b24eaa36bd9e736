/**
 * The PN GW's decisions as pure functions `(inputs) → decision`: no I/O, no sessions, no clock (`now` is an
 * input). keys.ts and relay.ts gather the inputs from the GatewayState, call these, and act on the answer. The
 * choice among broadcast members itself (threshold, media, GKDK) is `planDelivery` (src/protocol/policy.ts),
 * which the broadcaster applies. Each rule names the doc section it implements:
 *
 * - `keyDeliverAction` — a server key.deliver (docs/protocol.md "Group Key delivery", steps 2 and 4): keys only
 *   move forward; `targets: []` erases the SG's key; the same epoch again keeps the key held.
 * - `attachedTargets` — who gets a key or a group message here: the SG's targets whose session is attached
 *   (docs/protocol.md "Group Key delivery", step 3; "Messages destined to a Service Group", local fan-out
 *   except the sender).
 * - `needsEpoch`, `planDistribution` — unicast or broadcast per PNE (docs/broadcast.md §12 "Per delivery"):
 *   a PNE's first key of an SG on its session, and a key distributed ahead of its activation, go by unicast;
 *   without a broadcaster everything does; the rest are broadcast members for `planDelivery`.
 * - `broadcastStillDue`, `fallbackDue` — when the broadcast runs (after earlier ones) only members still
 *   attached, targeted and without the epoch get it; members that did not ack within `ackTimeoutMs` get the key
 *   by unicast (docs/broadcast.md §12 "Acks and tracking").
 * - `unicastDue`, `activateInSec` — one unicast per PNE and epoch; a key distributed ahead carries the time left
 *   until its activation on this GW's clock (docs/broadcast.md §12 "Periodic updates ahead of activation").
 */
import type { MemberInfo } from '../protocol/policy.js';
import type { PnePhase, SgDelivery } from './state.js';

type Delivery = Pick<SgDelivery, 'sent' | 'acked' | 'broadcastEpoch'>;

// ---------------------------------------------------------------------------------------------- key.deliver

/**
 * What to do with a server key.deliver of `epoch` for `targets`, holding `heldEpoch`: `ignore` (no targets: not
 * for a GW; or older than held), `erase` (no target left here), `install` (`keepKey`: same epoch, key held).
 */
export type KeyDeliverAction = { do: 'ignore' } | { do: 'erase' } | { do: 'install'; keepKey: boolean };

export function keyDeliverAction(
  heldEpoch: number | undefined,
  epoch: number,
  targets: readonly string[] | undefined,
): KeyDeliverAction {
  if (targets === undefined) return { do: 'ignore' };
  if (heldEpoch !== undefined && epoch < heldEpoch) return { do: 'ignore' }; // keys only move forward
  if (targets.length === 0) return { do: 'erase' };
  return { do: 'install', keepKey: heldEpoch === epoch };
}

/** The targets whose session is attached, in target order, except `exclude` (a group message's sender). */
export function attachedTargets<C extends { readonly phase: PnePhase }>(
  targets: Iterable<string>,
  pnes: ReadonlyMap<string, C>,
  exclude?: string,
): C[] {
  const out: C[] = [];
  for (const p of targets) {
    if (p === exclude) continue;
    const c = pnes.get(p);
    if (c?.phase === 'attached') out.push(c);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------- unicast / broadcast

/** The PNE still needs `epoch`: not sent, not acked, not broadcast to it. */
export function needsEpoch(d: Delivery, epoch: number): boolean {
  return (d.sent ?? -1) < epoch && (d.acked ?? -1) < epoch && d.broadcastEpoch !== epoch;
}

export interface DistributionPne {
  readonly id: string;
  readonly media: readonly string[];
  /** Tree (id:version) of the GKDK the PNE acked. */
  readonly gkdkTree: string | undefined;
  readonly delivery: Delivery;
}

export interface DistributionInput<C extends DistributionPne> {
  readonly epoch: number;
  /** The key is distributed ahead of its activation (the datagram does not carry it: unicast). */
  readonly staged: boolean;
  /** Broadcast is set up at this GW. */
  readonly broadcaster: boolean;
  /** The GW's current tree as id:version. */
  readonly treeTag: string | undefined;
  readonly pnes: readonly C[];
}

/**
 * Per PNE that needs the epoch: `unicast` now, or a broadcast member (`planDelivery` then splits them into
 * broadcast and unicast). A PNE that holds no key of the SG yet (never acked one) needs the unicast message.
 */
export function planDistribution<C extends DistributionPne>(
  i: DistributionInput<C>,
): { unicast: C[]; broadcast: MemberInfo[] } {
  const todo = i.pnes.filter((c) => needsEpoch(c.delivery, i.epoch));
  if (!i.broadcaster || i.staged) return { unicast: todo, broadcast: [] };
  const unicast: C[] = [];
  const broadcast: MemberInfo[] = [];
  for (const c of todo) {
    if (c.delivery.acked === undefined) unicast.push(c);
    else broadcast.push({ pneId: c.id, media: c.media, hasGkdk: c.gkdkTree === i.treeTag });
  }
  return { unicast, broadcast };
}

export interface StillDueInput {
  /** The PNE's session is attached. */
  readonly attached: boolean;
  /** The PNE is among the targets of the key held now. */
  readonly target: boolean;
  readonly delivery: Delivery;
  readonly epoch: number;
}

/** When the queued broadcast runs: the member is still attached, targeted, and has not been sent or acked it. */
export function broadcastStillDue(i: StillDueInput): boolean {
  return i.attached && i.target && (i.delivery.sent ?? -1) < i.epoch && (i.delivery.acked ?? -1) < i.epoch;
}

/** A broadcast member that did not ack in time gets the key by unicast ('fallback') unless it acked since. */
export function fallbackDue(i: StillDueInput): boolean {
  return i.attached && i.target && (i.delivery.acked ?? -1) < i.epoch;
}

/** One unicast per PNE and epoch (on its session). */
export function unicastDue(d: Pick<SgDelivery, 'sent'>, epoch: number): boolean {
  return (d.sent ?? -1) < epoch;
}

/** Seconds until a key distributed ahead activates (rounded up), or undefined when it is active at `now`. */
export function activateInSec(activateBy: number | undefined, now: number): number | undefined {
  return activateBy !== undefined && activateBy > now ? Math.ceil((activateBy - now) / 1000) : undefined;
}
