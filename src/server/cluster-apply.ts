/**
 * Events from the other server nodes, applied to this node's view (docs/cluster.md "Events"). The store is the
 * truth: an event says *that* something committed, and the handler re-reads what it needs, so every handler is
 * idempotent (an event delivered twice, or late, changes nothing more) and no event carries key material.
 *
 * Who may send: only another node of this cluster, through the bus (its events are validated there, events.ts).
 * What it may claim: that a change committed; nothing here trusts a field the store can answer instead (members,
 * policy, the key of an epoch, where a PNE is, who holds a GW's lease).
 */
import type { ClusterEvent, EventBody, KeyEpochCommitted } from '../cluster/events.js';
import { CloseCode } from '../transport/session.js';
import { servingGwOf } from './decisions.js';
import { emit, onKeyUpdated } from './events.js';
import { forgetGroup } from './groups.js';
import { advanceEpoch, deliver, pushSigners, sendCurrentKey, startTimer, timingOf } from './keys.js';
import { cutOff } from './revocation.js';
import { adoptGroup, storedMembers } from './startup.js';
import { type ServerState, type SgState, withSg } from './state.js';
import { asDeliveryPolicy, type RekeyReason } from './wire.js';

/** Applies one event another node committed. Throws (the bus retries it) only when the store is away. */
export async function applyRemote(srv: ServerState, ev: ClusterEvent): Promise<void> {
  switch (ev.type) {
    case 'key.epoch':
      return onRemoteEpoch(srv, ev);
    case 'sg.created':
      return void (await withSg(srv, ev.sgId, () => refreshGroup(srv, ev.sgId)));
    case 'sg.deleted':
      return onRemoteDelete(srv, ev.sgId);
    case 'membership.changed':
      return onRemoteMembership(srv, ev);
    case 'policy.changed':
      return void (await withSg(srv, ev.sgId, () => refreshGroup(srv, ev.sgId)));
    case 'identity.revoked':
      return onRemoteRevocation(srv, ev.identity);
    case 'pne.attached':
      return onRemoteAttach(srv, ev);
    case 'signer.key':
      return onRemoteSigner(srv, ev);
    case 'gw.lease':
      return onRemoteLease(srv, ev);
  }
}

/**
 * This node's view of the SG, as the store has it now: its members and policy (a member removed on another node
 * is removed here before anything is delivered). Adopts an SG created elsewhere. Undefined if it is gone.
 * Caller holds the SG's lock.
 */
async function refreshGroup(srv: ServerState, sgId: string): Promise<SgState | undefined> {
  const g = await srv.store.getGroup(sgId);
  const known = srv.groups.get(sgId);
  if (!g) {
    if (known) forgetGroup(srv, known);
    return undefined;
  }
  const members = await storedMembers(srv, sgId);
  if (!known) {
    emit(srv, { kind: 'sg.create', sgId, epoch: 0 });
    return adoptGroup(srv, g, members, 0);
  }
  for (const m of [...known.members]) {
    if (members.has(m)) continue;
    known.members.delete(m);
    srv.acks.removed(sgId, m);
    emit(srv, { kind: 'member.remove', sgId, pneId: m });
  }
  for (const m of members) {
    if (known.members.has(m)) continue;
    known.members.add(m);
    srv.acks.added(sgId, m);
    emit(srv, { kind: 'member.add', sgId, pneId: m });
  }
  const policyChanged =
    known.joinPolicy !== g.joinPolicy ||
    known.sourceAuth !== g.sourceAuth ||
    known.updateOnJoin !== g.updateOnJoin ||
    known.rekeyIntervalSec !== g.rekeyIntervalSec ||
    JSON.stringify(known.deliveryPolicy ?? null) !==
      JSON.stringify(asDeliveryPolicy(g.deliveryPolicy) ?? null);
  known.joinPolicy = g.joinPolicy;
  known.sourceAuth = g.sourceAuth;
  known.updateOnJoin = g.updateOnJoin;
  known.deliveryPolicy = asDeliveryPolicy(g.deliveryPolicy);
  if (known.rekeyIntervalSec !== g.rekeyIntervalSec) {
    known.rekeyIntervalSec = g.rekeyIntervalSec;
    startTimer(srv, known);
  }
  if (policyChanged) emit(srv, { kind: 'sg.policy', sgId });
  return known;
}

/** Another node committed `ev.epoch` of `ev.sgId`: refresh the SG from the store and deliver to our GWs. */
export function onRemoteEpoch(srv: ServerState, ev: KeyEpochCommitted): Promise<void> {
  return withSg(srv, ev.sgId, async () => {
    const st = await refreshGroup(srv, ev.sgId);
    if (!st || ev.epoch <= st.epoch) return;
    const k = await srv.store.getKey(ev.sgId, ev.epoch);
    if (!k) return; // pruned: a newer epoch follows
    try {
      const reason = ev.reason as RekeyReason;
      const timing = timingOf(srv, reason);
      advanceEpoch(srv, st, ev.epoch, timing);
      // A key distributed ahead of its activation keeps that activation time (the store has it).
      const activate =
        k.activateAt !== null && k.activateAt > Date.now()
          ? { at: k.activateAt, inSec: Math.ceil((k.activateAt - Date.now()) / 1000) }
          : undefined;
      st.updateId = ev.updateId;
      onKeyUpdated(srv, ev.sgId, ev.epoch, ev.reason, true, ev.updateId);
      deliver(
        srv,
        st,
        k.key,
        ev.epoch,
        reason,
        timing.graceSec,
        undefined,
        st.prevEpoch,
        undefined,
        activate,
      );
      srv.log.info(
        { sgId: ev.sgId, epoch: ev.epoch, reason, updateId: ev.updateId },
        'group key epoch from another node delivered',
      );
    } finally {
      k.key.fill(0);
    }
  });
}

function onRemoteDelete(srv: ServerState, sgId: string): Promise<void> {
  return withSg(srv, sgId, async () => {
    const st = srv.groups.get(sgId);
    if (st && !(await srv.store.getGroup(sgId))) forgetGroup(srv, st);
  });
}

/**
 * Members added or removed on another node. A joiner of an SG with update on join waits for the join update
 * (its key.epoch) like on the node it joined on: it is a pending joiner here too, so no catch-up through this
 * node hands it the key of an epoch from before its join. Without update on join, the joiners' GWs held here
 * get the current key. Removed members' tunnels here hear `sg.remove` (not for a leave: the PNE asked).
 */
function onRemoteMembership(srv: ServerState, ev: EventBody<'membership.changed'>): Promise<void> {
  return withSg(srv, ev.sgId, async () => {
    const st = await refreshGroup(srv, ev.sgId);
    if (!st) return;
    const joined = ev.added.filter((p) => st.members.has(p));
    if (st.updateOnJoin) {
      for (const p of joined) st.pendingJoiners.add(p);
    } else if (st.epoch > 0) {
      for (const gw of new Set(joined.map((p) => servingGwOf(srv, p)))) {
        if (gw !== undefined) await sendCurrentKey(srv, st, gw);
      }
    }
    if (joined.length > 0) pushSigners(srv, st);
    if (ev.reason === 'leave') return;
    for (const p of ev.removed) {
      if (st.members.has(p)) continue; // re-added since
      for (const t of srv.tunnels.get(p) ?? []) {
        try {
          t.control.send({ t: 'sg.remove', sgId: ev.sgId, pneId: p });
        } catch {}
      }
    }
  });
}

async function onRemoteRevocation(srv: ServerState, identity: string): Promise<void> {
  const idn = await srv.store.getIdentity(identity);
  if (!idn || idn.revokedAt === null) return; // not revoked in the store: nothing to act on
  if (!srv.revokedIds.has(identity)) emit(srv, { kind: 'identity.revoke', identity });
  cutOff(srv, identity, idn.certSerial, idn.role);
}

/**
 * The PNE proved on another node that it is behind `ev.gwId`: a PNE has one place (rule A1), so if the store
 * agrees it moved, the GWs of this node lose it and its tunnels through them close.
 */
async function onRemoteAttach(srv: ServerState, ev: EventBody<'pne.attached'>): Promise<void> {
  const here = srv.pneAt.get(ev.pneId);
  if (here === undefined) return;
  const p = await srv.store.getPne(ev.pneId);
  if (p?.gwId === here) return; // back here since: the store says this node's attachment is the current one
  srv.pneAt.delete(ev.pneId);
  for (const c of srv.gwConns.values()) c.attached.delete(ev.pneId);
  for (const t of srv.tunnels.get(ev.pneId) ?? []) t.ms.destroy();
}

function onRemoteSigner(srv: ServerState, ev: EventBody<'signer.key'>): void {
  const key = Buffer.from(ev.key, 'hex');
  const old = srv.signKeys.get(ev.pneId);
  if (old?.equals(key)) return;
  srv.signKeys.set(ev.pneId, key);
  for (const st of srv.groups.values()) if (st.members.has(ev.pneId)) pushSigners(srv, st);
}

/**
 * Another node took the GW's session lease. If this node still holds a session of that GW under an older
 * generation, that session is stale (the GW failed over and this one is half-open, or replaced): it is closed
 * without marking the PN offline, so a stale holder cannot act for the GW after a failover.
 */
async function onRemoteLease(srv: ServerState, ev: EventBody<'gw.lease'>): Promise<void> {
  const conn = srv.gwConns.get(ev.gwId);
  if (!conn || conn.lease === undefined || conn.lease >= ev.generation) return;
  const current = await srv.store.getGwLease(ev.gwId);
  if (current && current.generation > conn.lease && current.nodeId !== srv.cluster?.nodeId) {
    conn.superseded = true;
    conn.session.close(CloseCode.REPLACED, 'the GW session moved to another server node');
    srv.log.info({ gw: ev.gwId, generation: current.generation }, 'GW session lease taken by another node');
  }
}
