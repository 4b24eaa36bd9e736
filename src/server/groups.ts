/**
 * Service Groups and their membership (docs/protocol.md "Service Groups"): create, delete, add members (with
 * update on join: one join update per window), remove members (a new key at once). Both the operator (admin.ts)
 * and PNEs (pne-messages.ts) come here.
 */
import { randomUUID } from 'node:crypto';
import { ErrorCode } from '../core/errors.js';
import { codeOf, fail, toPneIdentity } from '../protocol/control.js';
import { announce, published } from './announce.js';
import { joinUpdateDue, onJoin, servingGwOf } from './decisions.js';
import { SERVER_DEFAULTS } from './defaults.js';
import { emit } from './events.js';
import { pushSigners, rekeyLocked, sendCurrentKey, startTimer } from './keys.js';
import {
  groupOf,
  isOperator,
  newSgState,
  OPERATOR,
  type ServerState,
  type SgState,
  withSg,
} from './state.js';
import type { CreateGroupInput, GroupPolicyPatch } from './types.js';
import { SUITE_OF } from './wire.js';

export async function createGroup(
  srv: ServerState,
  o: CreateGroupInput,
  actor: string,
): Promise<{ sgId: string; epoch: number }> {
  const suiteName = o.suite ?? 'aes-256-gcm';
  const suite = SUITE_OF[suiteName];
  if (suite === undefined) fail(ErrorCode.UNSUPPORTED_SUITE, 'suite');
  const members = [...new Set((o.members ?? []).map(toPneIdentity))];
  for (const m of members) await requireEnrolledPne(srv, m);
  const sgId = randomUUID(); // ours, so that the outbox row written with the group can name it
  const g = await srv.store.createGroup(
    {
      sgId,
      name: o.name,
      ownerId: isOperator(actor) ? OPERATOR : actor,
      joinPolicy: o.joinPolicy ?? 'invite',
      suite,
      sourceAuth: o.sourceAuth ?? false,
      updateOnJoin: o.updateOnJoin ?? true,
      rekeyIntervalSec: o.rekeyIntervalSec ?? null,
      deliveryPolicy: o.deliveryPolicy ? { ...o.deliveryPolicy } : null,
      members,
    },
    {
      // In the group's transaction (docs/store.md "Audit atomicity").
      audit: [
        { actor, action: 'group.create', detail: { name: o.name } },
        ...members.map((m) => ({ actor, action: 'member.add', subject: m })),
      ],
      ...announce(srv, 'sg.created', { sgId }),
    },
  );
  published(srv);
  const st = newSgState({
    ...g,
    suite,
    members: new Set(members),
    epoch: 0,
    deliveryPolicy: o.deliveryPolicy,
    sourceAuth: o.sourceAuth ?? false,
  });
  srv.groups.set(g.sgId, st);
  const epoch = await withSg(srv, g.sgId, () => rekeyLocked(srv, st, 'create', actor));
  startTimer(srv, st);
  emit(srv, { kind: 'sg.create', sgId: g.sgId, epoch });
  return { sgId: g.sgId, epoch };
}

export async function deleteGroup(srv: ServerState, sgId: string, actor: string): Promise<void> {
  await withSg(srv, sgId, async () => {
    const st = groupOf(srv, sgId);
    await srv.store.deleteGroup(sgId, {
      audit: [
        { actor, action: 'key.delete', epoch: st.epoch },
        { actor, action: 'group.delete' },
      ],
      ...announce(srv, 'sg.deleted', { sgId }),
    });
    published(srv);
    forgetGroup(srv, st);
  });
}

/**
 * The SG is gone from the store (deleted here, or on another node): drop it from this node's view and tell the
 * GWs this node holds that served it. Caller holds the SG's lock.
 */
export function forgetGroup(srv: ServerState, st: SgState): void {
  const sgId = st.sgId;
  const gws = new Set(st.targetGws);
  for (const m of st.members) {
    const gw = srv.pneAt.get(m);
    if (gw !== undefined) gws.add(gw);
  }
  if (st.timer) clearInterval(st.timer);
  srv.groups.delete(sgId);
  for (const k of [...srv.marks.keys()]) if (k.startsWith(`${sgId}|`)) srv.marks.delete(k);
  srv.acks.drop(sgId);
  emit(srv, { kind: 'sg.delete', sgId });
  for (const gw of gws) {
    try {
      srv.gwConns.get(gw)?.control.send({ t: 'sg.deleted', sgId });
    } catch {}
  }
}

export async function addMember(srv: ServerState, sgId: string, pne: string, actor: string): Promise<void> {
  await addMembers(srv, sgId, [pne], actor);
}

/**
 * Adds members. With update on join (docs/protocol.md "Backward secrecy on join"), a joiner never
 * gets the current key: one update (reason `join`) follows, shared by every join queued before it runs — so a
 * batch, or joins that arrive together, cost one update. Without it, a joiner gets the current key (it can read
 * what was sent earlier in this epoch).
 */
export async function addMembers(
  srv: ServerState,
  sgId: string,
  pnes: readonly string[],
  actor: string,
): Promise<void> {
  await withSg(srv, sgId, async () => {
    const st = groupOf(srv, sgId);
    const fresh = [...new Set(pnes)];
    if (fresh.some((p) => st.members.has(p))) fail(ErrorCode.ALREADY_MEMBER, 'pneId');
    for (const p of fresh) await requireEnrolledPne(srv, p);
    for (const p of fresh) {
      await srv.store.addMember(sgId, p, undefined, {
        audit: [{ actor, action: 'member.add', subject: p }],
        ...announce(srv, 'membership.changed', { sgId, added: [p], removed: [], reason: 'join' }),
      });
      st.members.add(p);
      srv.acks.added(sgId, p);
      emit(srv, { kind: 'member.add', sgId, pneId: p });
    }
    published(srv);
    if (fresh.length === 0) return;
    const action = onJoin(st.updateOnJoin, st.joinUpdate !== undefined);
    if (action !== 'deliver-current') {
      for (const p of fresh) st.pendingJoiners.add(p);
      if (action === 'open-window') scheduleJoinUpdate(srv, st, actor);
      return;
    }
    for (const gw of new Set(fresh.map((p) => servingGwOf(srv, p)))) {
      if (gw !== undefined) await sendCurrentKey(srv, st, gw);
    }
    pushSigners(srv, st); // the other members learn the newcomers' signing keys
  });
}

/**
 * One join update per window: joins within `joinUpdateDelayMs` of the first share it. Any new epoch in between
 * (a leave, an operator update) serves the joiners too, and then this one is skipped.
 */
export function scheduleJoinUpdate(srv: ServerState, st: SgState, actor: string): void {
  if (st.joinUpdate) return;
  let resolve: () => void = () => {};
  const done = new Promise<void>((r) => {
    resolve = r;
  });
  const run = async (): Promise<void> => {
    if (st.joinUpdate?.run !== run) return;
    clearTimeout(st.joinUpdate.timer);
    st.joinUpdate = undefined;
    try {
      await withSg(srv, st.sgId, async () => {
        if (joinUpdateDue(srv.groups.get(st.sgId) === st, st.pendingJoiners.size))
          await rekeyLocked(srv, st, 'join', actor);
      });
    } catch (e) {
      srv.log.warn({ code: codeOf(e), sgId: st.sgId }, 'join update failed');
    } finally {
      resolve();
    }
  };
  const timer = setTimeout(() => void run(), srv.opts.joinUpdateDelayMs ?? SERVER_DEFAULTS.joinUpdateDelayMs);
  timer.unref();
  st.joinUpdate = { timer, run, done };
}

/** Only an enrolled, unrevoked PNE can be a member (a never-enrolled id would be a ghost that rekeys on leave). */
export async function requireEnrolledPne(srv: ServerState, pne: string): Promise<void> {
  if (srv.revokedIds.has(pne)) fail(ErrorCode.REVOKED, 'pneId');
  const idn = await srv.store.getIdentity(pne);
  if (idn?.role !== 'pne') fail(ErrorCode.NOT_FOUND, 'pneId');
  if (idn.revokedAt !== null) fail(ErrorCode.REVOKED, 'pneId');
}

export async function removeMember(
  srv: ServerState,
  sgId: string,
  pne: string,
  reason: 'leave' | 'remove' | 'revoke',
  actor: string,
): Promise<void> {
  await withSg(srv, sgId, async () => {
    const st = groupOf(srv, sgId);
    if (!st.members.has(pne)) fail(ErrorCode.NOT_MEMBER, 'pneId');
    await srv.store.removeMember(sgId, pne, {
      audit: [{ actor, action: 'member.remove', subject: pne, reason }],
      ...announce(srv, 'membership.changed', { sgId, added: [], removed: [pne], reason }),
    });
    published(srv);
    st.members.delete(pne);
    srv.acks.removed(sgId, pne);
    emit(srv, { kind: 'member.remove', sgId, pneId: pne, reason });
    await rekeyLocked(srv, st, reason, actor);
  });
  if (reason !== 'leave') {
    for (const t of srv.tunnels.get(pne) ?? []) {
      try {
        t.control.send({ t: 'sg.remove', sgId, pneId: pne });
      } catch {}
    }
  }
}

/** The operator changes an SG's policy (join mode, periodic interval, source authentication, delivery policy). */
export async function updatePolicy(
  srv: ServerState,
  sgId: string,
  patch: GroupPolicyPatch,
  actor: string = OPERATOR,
): Promise<void> {
  await withSg(srv, sgId, async () => {
    const st = groupOf(srv, sgId);
    const { deliveryPolicy, ...rest } = patch;
    await srv.store.updateGroup(
      sgId,
      {
        ...rest,
        ...(deliveryPolicy !== undefined
          ? { deliveryPolicy: deliveryPolicy ? { ...deliveryPolicy } : null }
          : {}),
      },
      {
        audit: [{ actor, action: 'sg.policy', detail: { ...patch } }],
        ...announce(srv, 'policy.changed', { sgId }),
      },
    );
    published(srv);
    if (patch.joinPolicy !== undefined) st.joinPolicy = patch.joinPolicy;
    // Applies from the next key delivery (devices learn the SG's policy with its key).
    if (patch.sourceAuth !== undefined) st.sourceAuth = patch.sourceAuth;
    if (patch.updateOnJoin !== undefined) st.updateOnJoin = patch.updateOnJoin;
    if (patch.deliveryPolicy !== undefined) st.deliveryPolicy = patch.deliveryPolicy ?? undefined;
    if (patch.rekeyIntervalSec !== undefined) {
      st.rekeyIntervalSec = patch.rekeyIntervalSec;
      startTimer(srv, st);
    }
    emit(srv, { kind: 'sg.policy', sgId });
  });
}
