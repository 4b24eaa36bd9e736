/**
 * Group Keys at the PN GW: the key entries it holds (from the server's key.deliver), and their delivery to the
 * member PNEs of its PN (CPNS TS §5.3.3 "deliver Group Key"): unicast over the PNE's session, or broadcast under
 * the delivery policy, with unicast fallback for broadcast members that do not ack and GKDK (re)issue.
 */
import type { MessageOf } from '../core/codec/index.js';
import { activationTime } from '../core/group/activation.js';
import { codeOf } from '../protocol/control.js';
import { type GatewayBroadcaster, type GkdkIssue, keyDeliver } from '../protocol/index.js';
import {
  activateInSec,
  attachedTargets,
  broadcastStillDue,
  fallbackDue,
  keyDeliverAction,
  planDistribution,
  unicastDue,
} from './decisions.js';
import { reReport } from './reports.js';
import { deliveryOf, type GatewayState, type KeyEntry, type PneConn, treeTag } from './state.js';
import type { BroadcastMediumConfig } from './types.js';

/** The server's key.deliver for this PN: the new entry, distributed to the online targets, then acked (K1). */
export function installKey(st: GatewayState, msg: MessageOf<'key.deliver'>): void {
  const old = st.keys.get(msg.sgId);
  const action = keyDeliverAction(old?.epoch, msg.epoch, msg.targets);
  if (action.do === 'ignore') return;
  if (action.do === 'erase') {
    old?.key.fill(0);
    st.keys.delete(msg.sgId);
    st.events.emit('key', { sgId: msg.sgId, epoch: msg.epoch, targets: [] });
    return;
  }
  const kept = action.keepKey ? old : undefined;
  if (old && !kept) old.key.fill(0);
  const e: KeyEntry = {
    epoch: msg.epoch,
    key: kept ? kept.key : Buffer.from(msg.key),
    suite: msg.suite,
    reason: msg.reason,
    graceSec: msg.graceSec,
    previousEpoch: msg.previousEpoch,
    anchors: msg.senderAnchors ?? kept?.anchors,
    activateAt: msg.activateAt,
    // Relative activation wins (one rule, src/core/group/activation.ts): converted to this GW's clock.
    activateBy: activationTime(msg.activateIn, msg.activateAt, Date.now()),
    targets: new Set(msg.targets),
    upGeneration: st.upGeneration,
    policy: msg.policy,
    sourceAuth: msg.sourceAuth ?? false,
    updateId: msg.updateId ?? kept?.updateId,
  };
  st.keys.set(msg.sgId, e);
  const conns = attachedTargets(e.targets, st.pnes);
  distribute(st, msg.sgId, e, conns);
  if (kept) reReport(st, msg.sgId, e.epoch, conns);
  try {
    st.upControl?.send({ t: 'key.ack', sgId: msg.sgId, epoch: msg.epoch });
  } catch {}
  st.events.emit('key', { sgId: msg.sgId, epoch: msg.epoch, targets: msg.targets });
}

/** Drops the key of an SG (wiped). */
export function dropKey(st: GatewayState, sgId: string): void {
  const e = st.keys.get(sgId);
  if (!e) return;
  e.key.fill(0);
  st.keys.delete(sgId);
}

/** Wipes every key (close). */
export function wipeKeys(st: GatewayState): void {
  for (const k of st.keys.values()) k.key.fill(0);
  st.keys.clear();
}

/**
 * Group Key delivery to the online member PNEs of this PN that still need epoch `e.epoch` (seed §5.3.3
 * "deliver Group Key"): the GW chooses broadcast or unicast per PNE under the operator policy.
 *
 * - A PNE's first key of an SG (on this session) always goes by unicast: it needs the suite, grace, replay
 *   anchors and policy that only the unicast message carries; a broadcast datagram carries sgId, epoch, reason,
 *   grace and the wrapped key only. Broadcast is for updates of SGs the PNE already holds.
 * - A key distributed ahead of its activation (periodic update with activateIn/activateAt) goes by unicast:
 *   the datagram cannot carry the activation time.
 * - Otherwise `planDelivery`: broadcast to members that hold a GKDK of the current tree and listen on one of
 *   this GW's media, when there are at least `broadcastThreshold` of them; unicast for the rest. Broadcast
 *   members that do not ack within `ackTimeoutMs` get the key by unicast ('fallback').
 */
export function distribute(st: GatewayState, sgId: string, e: KeyEntry, conns: readonly PneConn[]): void {
  const epoch = e.epoch;
  const b = st.broadcaster;
  const plan = planDistribution({
    epoch,
    staged: e.activateBy !== undefined,
    broadcaster: b !== undefined,
    treeTag: b ? treeTag(st) : undefined,
    pnes: conns.map((c) => ({
      id: c.id,
      media: c.media,
      gkdkTree: c.gkdkTree,
      delivery: deliveryOf(c, sgId),
      c,
    })),
  });
  for (const { c } of plan.unicast) sendKey(st, c, sgId, e);
  const members = plan.broadcast;
  if (plan.unicast.length > 0 || members.length > 0)
    st.log.info(
      { sgId, epoch, updateId: e.updateId, unicast: plan.unicast.length, broadcast: members.length },
      'group key delivery',
    );
  if (!st.broadcaster || members.length === 0) return;
  // One broadcast at a time: a datagram burst per update, in epoch order.
  st.bq = st.bq.then(() => broadcastQueued(st, sgId, epoch, members));
}

type BroadcastMember = Parameters<GatewayBroadcaster['deliver']>[0]['members'][number];

/** The queued broadcast of `epoch` to the members still due; what the medium could not take goes by unicast. */
async function broadcastQueued(
  st: GatewayState,
  sgId: string,
  epoch: number,
  members: readonly BroadcastMember[],
): Promise<void> {
  const b = st.broadcaster;
  const cur = st.keys.get(sgId);
  if (!b || st.closed || !cur || cur.epoch !== epoch) return; // superseded: the newer epoch is delivered
  const live = members.filter((m) => {
    const c = st.pnes.get(m.pneId);
    return (
      c !== undefined &&
      broadcastStillDue({
        attached: c.phase === 'attached',
        target: cur.targets.has(c.id),
        delivery: deliveryOf(c, sgId),
        epoch,
      })
    );
  });
  if (live.length === 0) return;
  let r: { broadcast: string[]; unicast: string[]; datagrams: number; bytes: number };
  try {
    r = await b.deliver({
      sgId,
      epoch,
      key: cur.key,
      members: live,
      ...(cur.policy ? { policy: cur.policy } : {}),
      // Signed into the datagram: the PNE installs it with the same grace as the unicast key.deliver.
      reason: cur.reason,
      graceSec: cur.graceSec,
    });
  } catch (err) {
    st.log.warn({ code: codeOf(err), sgId, epoch }, 'broadcast delivery failed; unicast instead');
    r = { broadcast: [], unicast: live.map((m) => m.pneId), datagrams: 0, bytes: 0 };
  }
  if (r.broadcast.length > 0) st.counters.broadcasts++;
  st.counters.broadcastDatagrams += r.datagrams;
  for (const id of r.broadcast) {
    const c = st.pnes.get(id);
    if (c) deliveryOf(c, sgId).broadcastEpoch = epoch;
  }
  for (const id of r.unicast) {
    const c = st.pnes.get(id);
    if (c) sendKey(st, c, sgId, cur);
  }
  st.log.info(
    {
      sgId,
      epoch,
      updateId: cur.updateId,
      broadcast: r.broadcast.length,
      unicast: r.unicast.length,
      datagrams: r.datagrams,
      bytes: r.bytes,
    },
    'group key broadcast',
  );
  st.events.emit('delivery', { sgId, epoch, ...r });
}

/** Broadcast members that did not ack in time: unicast, reported as 'fallback' once they ack. */
export function onFallback(st: GatewayState, sgId: string, epoch: number, pnes: readonly string[]): void {
  const e = st.keys.get(sgId);
  if (!e || e.epoch !== epoch) return;
  for (const id of pnes) {
    const c = st.pnes.get(id);
    if (!c) continue;
    const d = deliveryOf(c, sgId);
    if (!fallbackDue({ attached: c.phase === 'attached', target: e.targets.has(id), delivery: d, epoch }))
      continue;
    d.fallbackEpoch = epoch;
    st.counters.fallbacks++;
    sendKey(st, c, sgId, e);
  }
  st.log.info(
    { sgId, epoch, updateId: e.updateId, pnes: pnes.length },
    'broadcast not acked: unicast fallback',
  );
}

/** The tree was rebuilt: every connected holder gets its new GKDK by unicast; old ones no longer open. */
export function onReissue(st: GatewayState, _pnes: readonly string[]): void {
  const b = st.broadcaster;
  if (!b) return;
  for (const [id, issue] of b.issueAll()) {
    const c = st.pnes.get(id);
    if (c?.phase === 'attached') sendGkdk(st, c, issue);
  }
}

export function sendGkdk(st: GatewayState, c: PneConn, issue: GkdkIssue): void {
  c.gkdkTree = undefined; // broadcast-capable again once it acks this one
  try {
    c.control.send({
      t: 'gkdk.issue',
      gwId: st.identity,
      ...issue,
      media: issue.media as BroadcastMediumConfig[], // names come from this GW's BroadcastMediumConfig
    });
  } catch (err) {
    st.log.warn({ code: codeOf(err) }, 'GKDK issue to PNE failed');
  } finally {
    issue.gkdk.fill(0);
  }
}

/** Unicast Group Key delivery over the PNE's secure session (mandatory mode, §5.3.3). */
export function sendKey(st: GatewayState, c: PneConn, sgId: string, e: KeyEntry): void {
  const d = deliveryOf(c, sgId);
  if (!unicastDue(d, e.epoch)) return;
  const activateIn = activateInSec(e.activateBy, Date.now());
  try {
    c.control.send(
      keyDeliver({
        sgId,
        epoch: e.epoch,
        key: e.key,
        suite: e.suite,
        reason: e.reason,
        graceSec: e.graceSec,
        previousEpoch: e.previousEpoch,
        senderAnchors: e.anchors,
        sourceAuth: e.sourceAuth,
        activate: activateIn !== undefined ? { inSec: activateIn, at: e.activateAt } : undefined,
      }),
    );
    d.sent = e.epoch;
    st.log.debug({ sgId, epoch: e.epoch, pneId: c.id, updateId: e.updateId }, 'group key sent to PNE');
  } catch (err) {
    st.log.warn({ code: codeOf(err), sgId, pneId: c.id, updateId: e.updateId }, 'key delivery to PNE failed');
  }
}
