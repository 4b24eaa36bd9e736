/**
 * The CPNS Server's decisions as pure functions `(inputs) → decision`: no I/O, no store, no sockets, no clock
 * (`now` is an input). The concern modules (keys.ts, groups.ts, relay.ts, attachment.ts) gather the inputs from
 * the ServerState, call these, and act on the answer. Each rule names the doc section it implements:
 *
 * - `provenAt`, `servingGwOf` — "proven at G" (rule A1; docs/protocol.md "Authorization"): a PNE is behind a GW
 *   only while its own tunnel runs through that GW's session. Rules A3, A4 and R1 check it.
 * - `keyTargets`, `keyDeliveries` — who gets which key (docs/protocol.md "Group Key delivery", step 2): each GW
 *   gets the full list of the members proven behind it, joiners waiting for their join update excepted
 *   ("Implementation decisions", backward secrecy on join); a GW that was sent a non-empty list before and has no
 *   member left gets `targets: []`.
 * - `relayGws` — relay fan-out (docs/protocol.md "Messages destined to a Service Group"): every GW serving a
 *   member, except the one the frame came from.
 * - `rekeyTiming`, `previousEpochUntil` — grace and activation lead of an update (docs/protocol.md
 *   "Implementation decisions", Grace; docs/group-messages.md "Epochs and grace", "Periodic updates distributed
 *   ahead of activation"): leave-type updates act at once (no lead, `leaveGraceSec`, default 0); periodic and
 *   operator updates get `periodicGraceSec`; only a periodic one (not the restart rotation) may be distributed
 *   ahead; create and restart get grace 0.
 * - `onJoin`, `joinUpdateDue` — update on join (docs/protocol.md "Implementation decisions", backward secrecy on
 *   join): a join opens the SG's join-update window or rides the open one; with `updateOnJoin` off the joiner gets
 *   the current key; a window's update is skipped when a newer epoch already served its joiners.
 * - `periodicIntervalMs`, `rekeyOnDeparture` — the other triggers: the per-SG periodic timer, and every SG with a
 *   member among PNEs that were detached or revoked (docs/protocol.md "Revocation").
 * - `relayEnvelope`, `admitRelay`, `epochAdmission`, `isReplay` — relay admission, rule R1 (docs/protocol.md
 *   "Authorization" and "Implementation decisions", replay at the relay).
 */
import { ErrorCode } from '../core/errors.js';
import { LEAVE_REASONS, type RekeyReason } from './wire.js';

/** A refusal: the error code (and field) the GW is answered with. */
export interface Refusal {
  readonly code: ErrorCode;
  readonly field?: string;
}

// ---------------------------------------------------------------------------------------------- attachment (A1)

/** Where PNEs are: the PN inventory and, per GW session, the PNEs proven behind it (ServerState fits). */
export interface AttachmentView {
  /** PNE → GW of its PN (store inventory). */
  readonly pneAt: ReadonlyMap<string, string>;
  /** GW → its session's proven-attached PNEs (rule A1). */
  readonly gwConns: ReadonlyMap<string, { readonly attached: ReadonlySet<string> }>;
}

/** Rule A1 at `gwId`: `pneId` is in that GW's PN and proven on the session whose proven set is `attached`. */
export function provenAt(
  pneAt: ReadonlyMap<string, string>,
  pneId: string,
  gwId: string,
  attached: ReadonlySet<string>,
): boolean {
  return pneAt.get(pneId) === gwId && attached.has(pneId);
}

/** The GW that serves `pneId` now (in its PN and proven there, rule A1); else undefined. */
export function servingGwOf(v: AttachmentView, pneId: string): string | undefined {
  const gw = v.pneAt.get(pneId);
  if (gw === undefined) return undefined;
  const conn = v.gwConns.get(gw);
  return conn && provenAt(v.pneAt, pneId, gw, conn.attached) ? gw : undefined;
}

// ---------------------------------------------------------------------------------------------- key targets

export interface KeyTargetsInput {
  readonly members: Iterable<string>;
  /** Joiners waiting for their join update: no key from before their join names them. */
  readonly pendingJoiners: ReadonlySet<string>;
  readonly attachments: AttachmentView;
}

/** GW → the members that get the key there: those proven behind it, pending joiners excepted (member order). */
export function keyTargets(i: KeyTargetsInput): Map<string, string[]> {
  const byGw = new Map<string, string[]>();
  for (const m of i.members) {
    if (i.pendingJoiners.has(m)) continue;
    const gw = servingGwOf(i.attachments, m);
    if (gw === undefined) continue;
    let l = byGw.get(gw);
    if (!l) {
      l = [];
      byGw.set(gw, l);
    }
    l.push(m);
  }
  return byGw;
}

export interface KeyDeliveriesInput extends KeyTargetsInput {
  /** GWs that got a non-empty target list of this SG before (they must hear when their last member goes). */
  readonly targetGws: ReadonlySet<string>;
  /** Catch-up of one GW only. */
  readonly onlyGw?: string | undefined;
}

/**
 * One key.deliver per GW: `onlyGw`, or every GW with targets now and every GW targeted before (an empty list
 * tells it to erase the key). A GW with a non-empty list is targeted from now on; one with an empty list is not.
 */
export function keyDeliveries(i: KeyDeliveriesInput): { gw: string; targets: string[] }[] {
  const byGw = keyTargets(i);
  const gws = i.onlyGw !== undefined ? [i.onlyGw] : [...new Set([...byGw.keys(), ...i.targetGws])];
  return gws.map((gw) => ({ gw, targets: byGw.get(gw) ?? [] }));
}

/** Relay fan-out: every GW that serves a member of the SG, except `exceptGw` (the one the frame came from). */
export function relayGws(
  members: Iterable<string>,
  attachments: AttachmentView,
  exceptGw: string | undefined,
): Set<string> {
  const out = new Set<string>();
  for (const m of members) {
    const gw = servingGwOf(attachments, m);
    if (gw !== undefined && gw !== exceptGw) out.add(gw);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------- grace, lead

export interface RekeyTimingOptions {
  readonly leaveGraceSec: number;
  readonly periodicGraceSec: number;
  readonly periodicLeadSec: number;
}

export interface RekeyTiming {
  /** The update is distributed this far ahead of its activation (0: active at once). */
  readonly leadSec: number;
  /** The previous epoch stays accepted this long after activation. */
  readonly graceSec: number;
}

/** Grace and activation lead of an update of `reason` (audit reason `restart` for the rotation at start). */
export function rekeyTiming(
  reason: RekeyReason,
  auditReason: string | undefined,
  o: RekeyTimingOptions,
): RekeyTiming {
  const restart = auditReason === 'restart';
  const leadSec = reason === 'periodic' && !restart ? o.periodicLeadSec : 0;
  const graceSec =
    reason === 'create' || restart ? 0 : LEAVE_REASONS.has(reason) ? o.leaveGraceSec : o.periodicGraceSec;
  return { leadSec, graceSec };
}

/** The activation of an update distributed ahead of it, or undefined if it is active at once. */
export function activationOf(now: number, leadSec: number): { at: number; inSec: number } | undefined {
  return leadSec > 0 ? { at: now + leadSec * 1000, inSec: leadSec } : undefined;
}

/** Until when (ms) the previous epoch is accepted: activation plus grace. */
export function previousEpochUntil(now: number, t: RekeyTiming): number {
  return now + (t.leadSec + t.graceSec) * 1000;
}

// ---------------------------------------------------------------------------------------------- triggers

/**
 * What a join does: `deliver-current` (update on join off: the GW of each joiner gets the current key),
 * `open-window` (schedule the join update; joins until it runs share it), `ride-window` (one is scheduled).
 */
export type JoinAction = 'deliver-current' | 'open-window' | 'ride-window';

export function onJoin(updateOnJoin: boolean, windowOpen: boolean): JoinAction {
  if (!updateOnJoin) return 'deliver-current';
  return windowOpen ? 'ride-window' : 'open-window';
}

/** The join update runs only for a live SG with joiners still waiting (a newer epoch served them: skipped). */
export function joinUpdateDue(groupLive: boolean, pendingJoiners: number): boolean {
  return groupLive && pendingJoiners > 0;
}

/** The periodic timer's interval, or undefined when the SG has none. */
export function periodicIntervalMs(rekeyIntervalSec: number | null): number | undefined {
  return rekeyIntervalSec ? rekeyIntervalSec * 1000 : undefined;
}

/** An SG with a member among `pnes` gets an update (detach, GW deregistration, revocation of those PNEs). */
export function rekeyOnDeparture(members: ReadonlySet<string>, pnes: ReadonlySet<string>): boolean {
  for (const m of members) if (pnes.has(m)) return true;
  return false;
}

// ---------------------------------------------------------------------------------------------- relay (R1)

/** Before the header is read: only a registered GW relays, and only a message of bounded size. */
export function relayEnvelope(
  registered: boolean,
  payloadBytes: number,
  maxBytes: number,
): Refusal | undefined {
  if (!registered) return { code: ErrorCode.UNEXPECTED_MESSAGE };
  if (payloadBytes > maxBytes) return { code: ErrorCode.TOO_LARGE, field: 'message' };
  return undefined;
}

/** The epochs an SG accepts: the current one, or the previous one until `prevUntil` (grace). */
export interface EpochWindow {
  readonly epoch: number;
  readonly prevEpoch: number | undefined;
  readonly prevUntil: number;
}

export function epochAdmission(epoch: number, w: EpochWindow, now: number): Refusal | undefined {
  if (epoch === w.epoch) return undefined;
  if (epoch > w.epoch) return { code: ErrorCode.UNKNOWN_EPOCH, field: 'epoch' };
  if (epoch === w.prevEpoch && now <= w.prevUntil) return undefined;
  return { code: ErrorCode.EXPIRED_EPOCH, field: 'epoch' };
}

/** Strict high-water mark per sender instance: a counter at or below the relayed mark is a replay. */
export function isReplay(counter: number, mark: number | undefined): boolean {
  return mark !== undefined && counter <= mark;
}

/** The sender of the CPNS Server's own messages to an SG (RelayInput.sender). */
export const SERVER_SENDER = Symbol('cpns-server');

export interface RelayInput {
  /** The SG named in the header, if it exists. */
  readonly group: (EpochWindow & { readonly members: ReadonlySet<string> }) | undefined;
  /**
   * The header's sender (read only once the SG is known). `SERVER_SENDER`: the CPNS Server's own message (nil
   * sender id) relayed by another cluster node, which is neither a member nor behind a GW; never from a GW.
   */
  readonly sender: string | typeof SERVER_SENDER | undefined;
  /** The sender is proven behind the GW that relays (rule A1). */
  readonly senderProvenHere: boolean;
  readonly epoch: number;
  readonly counter: number;
  /** Highest counter already relayed for this sender instance in this epoch. */
  readonly relayMark: number | undefined;
  readonly now: number;
}

/**
 * Rule R1: a group message is relayed only if the sender is proven at this GW, is a member, the epoch is the
 * current one (or the previous in grace), and the counter is above the relay mark. Checked in this order.
 */
export function admitRelay(i: RelayInput): Refusal | undefined {
  if (!i.group) return { code: ErrorCode.NOT_FOUND, field: 'sgId' };
  if (i.sender !== SERVER_SENDER) {
    if (i.sender === undefined || !i.senderProvenHere)
      return { code: ErrorCode.FORBIDDEN, field: 'senderId' };
    if (!i.group.members.has(i.sender)) return { code: ErrorCode.NOT_MEMBER, field: 'senderId' };
  }
  const epoch = epochAdmission(i.epoch, i.group, i.now);
  if (epoch) return epoch;
  if (isReplay(i.counter, i.relayMark)) return { code: ErrorCode.REPLAY, field: 'counter' };
  return undefined;
}
