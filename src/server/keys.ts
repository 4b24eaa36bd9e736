/**
 * Group Key management (CPNS TS §5.3.3 create / update / deliver): a new epoch under the SG's lock, persisted
 * before delivery; key.deliver to each GW with its own target list (remembered for rules K1, K2); members'
 * signing keys for source authentication; the current key for a GW's catch-up; periodic updates.
 */
import { randomBytes } from 'node:crypto';
import { codeOf } from '../protocol/control.js';
import { keyDeliver } from '../protocol/key-deliver.js';
import { reportLaggards } from './acks.js';
import { published } from './announce.js';
import {
  activationOf,
  keyDeliveries,
  periodicIntervalMs,
  previousEpochUntil,
  type RekeyTiming,
  rekeyOnDeparture,
  rekeyTiming,
} from './decisions.js';
import { SERVER_DEFAULTS } from './defaults.js';
import { onKeyUpdated } from './events.js';
import { anchors } from './relay.js';
import { type GwConn, type ServerState, type SgState, withSg } from './state.js';
import { updateIdNow } from './update-trail.js';
import { type RekeyReason, WIRE_SUITE, wireReason } from './wire.js';

export function startTimer(srv: ServerState, st: SgState): void {
  if (st.timer) clearInterval(st.timer);
  st.timer = undefined;
  const intervalMs = periodicIntervalMs(st.rekeyIntervalSec);
  if (intervalMs === undefined) return;
  st.timer = setInterval(() => {
    if (srv.closed || !srv.groups.has(st.sgId)) return;
    withSg(srv, st.sgId, async () => {
      // In a cluster every node runs this timer; the first to fire in a period updates the key and the others,
      // finding a key younger than most of a period, skip (docs/cluster.md "Periodic updates"). Best effort: two
      // nodes firing together may both update, which costs one extra epoch, never a wrong one (row lock).
      if (srv.cluster && (await newestKeyAge(srv, st.sgId)) < intervalMs * PERIODIC_SKIP_FRACTION) return;
      await rekeyLocked(srv, st, 'periodic', 'scheduler');
    }).catch((e) => srv.log.warn({ code: codeOf(e), sgId: st.sgId }, 'periodic rekey failed'));
  }, intervalMs);
  st.timer.unref();
}

/** A periodic update is skipped on a cluster node when the SG's newest key is younger than this part of a period. */
const PERIODIC_SKIP_FRACTION = 0.9;

async function newestKeyAge(srv: ServerState, sgId: string): Promise<number> {
  const metas = await srv.store.listKeyEpochs(sgId);
  const newest = metas.reduce((t, m) => Math.max(t, m.createdAt), 0);
  return Date.now() - newest;
}

/** New Group Key epoch: persisted (encrypted) before delivery; caller holds the SG lock. */
export async function rekeyLocked(
  srv: ServerState,
  st: SgState,
  reason: RekeyReason,
  actor: string,
  auditReason?: string,
): Promise<number> {
  const key = randomBytes(32);
  const updateId = updateIdNow();
  try {
    // A periodic update may be distributed ahead of its activation so that members switch together
    // (docs/group-messages.md); never the restart rotation, never a leave-type update (those act at once).
    const timing = timingOf(srv, reason, auditReason);
    const activate = activationOf(Date.now(), timing.leadSec);
    // The audit row is written in the key's transaction (docs/store.md): no committed epoch without it.
    const meta = await srv.store.rotateGroupKey(st.sgId, key, reason, {
      audit: {
        actor,
        action: reason === 'create' ? 'key.create' : 'key.update',
        reason: auditReason ?? reason,
        detail: { updateId },
      },
      ...(activate !== undefined ? { activateAt: activate.at } : {}),
      // In a cluster the epoch is announced to the other nodes from the outbox, committed with the key.
      // (opts: the restart rotation runs before the node joins the bus, and must be announced too)
      outbox: srv.opts.cluster !== undefined,
      ...(srv.opts.cluster ? { node: srv.opts.cluster.nodeId } : {}),
      updateId,
    });
    published(srv);
    const previous = advanceEpoch(srv, st, meta.epoch, timing);
    st.updateId = updateId;
    onKeyUpdated(srv, st.sgId, meta.epoch, auditReason ?? reason, false, updateId);
    const gws = deliver(
      srv,
      st,
      key,
      meta.epoch,
      reason,
      timing.graceSec,
      undefined,
      previous > 0 ? previous : undefined,
      undefined,
      activate,
    );
    reportLaggards(srv, st, meta.epoch);
    if (previous > 1) await srv.store.pruneKeys(st.sgId, previous);
    srv.log.info(
      {
        sgId: st.sgId,
        epoch: meta.epoch,
        reason: auditReason ?? reason,
        actor,
        updateId,
        gws,
        members: st.members.size,
      },
      'group key updated',
    );
    return meta.epoch;
  } finally {
    key.fill(0);
  }
}

/** Grace and lead of an update for `reason` under this server's options (decisions.ts `rekeyTiming`). */
export function timingOf(srv: ServerState, reason: RekeyReason, auditReason?: string): RekeyTiming {
  return rekeyTiming(reason, auditReason, {
    leaveGraceSec: srv.opts.leaveGraceSec ?? SERVER_DEFAULTS.leaveGraceSec,
    periodicGraceSec: srv.opts.periodicGraceSec ?? SERVER_DEFAULTS.periodicGraceSec,
    periodicLeadSec: srv.opts.periodicLeadSec ?? SERVER_DEFAULTS.periodicLeadSec,
  });
}

/**
 * `epoch` becomes the SG's current one (committed here or, in a cluster, by another node): the previous stays
 * accepted for the grace of `timing`, pending joiners are named again, relay marks of older epochs go.
 * Returns the previous epoch (0 for none).
 */
export function advanceEpoch(srv: ServerState, st: SgState, epoch: number, timing: RekeyTiming): number {
  const previous = st.epoch;
  // A new epoch is fresh for every joiner: from here on deliveries name them again.
  st.pendingJoiners.clear();
  st.prevEpoch = previous > 0 ? previous : undefined;
  st.prevUntil = previousEpochUntil(Date.now(), timing);
  st.epoch = epoch;
  for (const k of srv.marks.keys()) {
    if (!k.startsWith(`${st.sgId}|`)) continue;
    const e = Number(k.slice(st.sgId.length + 1));
    if (e !== st.epoch && e !== st.prevEpoch) srv.marks.delete(k);
  }
  return previous;
}

/** key.deliver to the GWs of the SG's members (or to `onlyGw`), each with its full target list. */
export function deliver(
  srv: ServerState,
  st: SgState,
  key: Uint8Array,
  epoch: number,
  reason: RekeyReason,
  graceSec: number,
  onlyGw?: string,
  previousEpoch?: number,
  anchors?: { sender: Uint8Array; instance: Uint8Array; counter: number }[],
  activate?: { at: number; inSec: number },
): number {
  // Who gets the key where: each GW its proven members, a joiner waiting for its join update never one from
  // before its join (decisions.ts `keyDeliveries`).
  const deliveries = keyDeliveries({
    members: st.members,
    pendingJoiners: st.pendingJoiners,
    attachments: srv,
    targetGws: st.targetGws,
    onlyGw,
  });
  let sent = 0;
  for (const { gw, targets } of deliveries) {
    if (targets.length > 0) st.targetGws.add(gw);
    else st.targetGws.delete(gw);
    const conn = srv.gwConns.get(gw);
    if (!conn?.registered) continue;
    try {
      recordSent(srv, conn, st.sgId, epoch, targets);
      conn.control.send(
        keyDeliver({
          sgId: st.sgId,
          epoch,
          key,
          suite: WIRE_SUITE[st.suite],
          reason,
          graceSec,
          previousEpoch,
          senderAnchors: anchors,
          // Relative and absolute: devices without a synchronised clock use the relative one.
          activate,
          targets: targets.slice(0, SERVER_DEFAULTS.maxTargets),
          policy: st.deliveryPolicy,
          sourceAuth: st.sourceAuth,
          updateId: st.updateId,
        }),
      );
      sent++;
      srv.log.debug(
        { sgId: st.sgId, epoch, gw, targets: targets.length, updateId: st.updateId },
        'key sent to GW',
      );
      if (targets.length > 0) pushSigners(srv, st, gw);
    } catch (e) {
      srv.log.warn({ code: codeOf(e), gw, updateId: st.updateId }, 'key delivery failed');
    }
  }
  return sent;
}

/** Remembers that `conn` was sent `epoch` of `sgId` for `targets` (rules K1, K2); bounded per SG. */
export function recordSent(
  _srv: ServerState,
  conn: GwConn,
  sgId: string,
  epoch: number,
  targets: readonly string[],
): void {
  let bySg = conn.sent.get(sgId);
  if (!bySg) {
    bySg = new Map();
    conn.sent.set(sgId, bySg);
  }
  const had = bySg.get(epoch);
  bySg.delete(epoch);
  bySg.set(epoch, new Set([...(had ?? []), ...targets]));
  while (bySg.size > SERVER_DEFAULTS.sentEpochsKept) {
    const oldest = Math.min(...bySg.keys());
    bySg.delete(oldest);
  }
}

/**
 * Source authentication: the members' Ed25519 signing keys (learned over each PNE's own tunnel, so bound to
 * its certificate identity) go to the GWs with members, which pass them to their member PNEs.
 */
export function pushSigners(srv: ServerState, st: SgState, onlyGw?: string): void {
  if (!st.sourceAuth) return;
  const signers: { pneId: string; key: Uint8Array }[] = [];
  for (const m of st.members) {
    const key = srv.signKeys.get(m);
    if (key) signers.push({ pneId: m, key });
  }
  const gws = onlyGw !== undefined ? [onlyGw] : [...st.targetGws];
  for (const gw of gws) {
    try {
      srv.gwConns.get(gw)?.control.send({
        t: 'sg.signers',
        sgId: st.sgId,
        signers: signers.slice(0, SERVER_DEFAULTS.maxSigners),
      });
    } catch (e) {
      srv.log.warn({ code: codeOf(e), gw }, 'signers not sent');
    }
  }
}

/** Catch-up delivery of the current key (with replay anchors) to one GW; caller holds the SG lock. */
export async function sendCurrentKey(srv: ServerState, st: SgState, gw: string): Promise<void> {
  const k = await srv.store.getCurrentKey(st.sgId);
  if (!k) return;
  try {
    deliver(srv, st, k.key, k.epoch, wireReason(k.reason), 0, gw, undefined, anchors(srv, st.sgId, k.epoch));
  } finally {
    k.key.fill(0);
  }
}

export async function rekeyGroupsOf(
  srv: ServerState,
  pnes: readonly string[],
  reason: RekeyReason,
  actor: string,
): Promise<void> {
  const set = new Set(pnes);
  for (const st of [...srv.groups.values()]) {
    if (!rekeyOnDeparture(st.members, set)) continue;
    await withSg(srv, st.sgId, async () => {
      if (srv.groups.has(st.sgId)) await rekeyLocked(srv, st, reason, actor);
    });
  }
}
