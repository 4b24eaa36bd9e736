/**
 * Every control message a PNE may send the server over its own tunnel, in one authorization table
 * (docs/protocol.md "Authorization", "At the CPNS Server, over a PNE's own tunnel"): who may send it, what it
 * may claim and how each claim is checked, the rule id, and its handler (which does those checks). The sender is the tunnel's certificate identity; a revoked PNE's
 * tunnel is closed at its next message.
 */
import type { ControlMessage, MessageOf, MessageType } from '../core/codec/index.js';
import { ErrorCode } from '../core/errors.js';
import { fail } from '../protocol/control.js';
import { keyDeliver } from '../protocol/key-deliver.js';
import { announce, published } from './announce.js';
import { type MessageRule, ruleOf } from './authz.js';
import { addMember, createGroup, deleteGroup, removeMember } from './groups.js';
import { pushSigners } from './keys.js';
import { anchors } from './relay.js';
import { groupOf, type PneTunnel, type ServerState, withSg } from './state.js';
import { WIRE_SUITE, wireReason } from './wire.js';

export type PneRule = 'S1' | 'S2' | 'S3' | 'S4' | 'S5' | 'S6' | 'S7';

export type PneMessageRule<T extends MessageType> = MessageRule<PneRule, PneTunnel, T>;

type PneMessageType =
  | 'sg.create'
  | 'sg.delete'
  | 'sg.invite'
  | 'sg.join'
  | 'sg.leave'
  | 'sg.remove'
  | 'pne.signkey'
  | 'key.fetch';

/** The SG named by `sgId` must exist (state.ts `groupOf`). */
const SG = '`sgId`';

export const PNE_MESSAGES: { readonly [T in PneMessageType]: PneMessageRule<T> } = {
  'sg.create': {
    who: 'any PNE (becomes owner and first member)',
    claims: [
      {
        claim: "`name`, `joinPolicy`, `suite`, `sourceAuth`, `rekeyIntervalSec`: the new SG's policy",
        check: 'schema only; owner and first member are the tunnel identity',
        refused: [],
      },
    ],
    rules: ['S1'],
    handler: sgCreate,
  },
  'sg.delete': {
    who: "the SG's owner",
    claims: [
      {
        claim: SG,
        check: 'the SG exists; the sender is its owner',
        refused: [ErrorCode.NOT_FOUND, ErrorCode.FORBIDDEN],
      },
    ],
    rules: ['S2'],
    handler: sgDelete,
  },
  'sg.invite': {
    who: "the SG's owner",
    claims: [
      {
        claim: SG,
        check: 'the SG exists; the sender is its owner',
        refused: [ErrorCode.NOT_FOUND, ErrorCode.FORBIDDEN],
      },
      { claim: '`pneId`: the invitee', check: 'not already a member', refused: [ErrorCode.ALREADY_MEMBER] },
    ],
    rules: ['S2'],
    handler: sgInvite,
  },
  'sg.join': {
    who: 'any PNE if the SG is open; the owner or an invited PNE if invite',
    claims: [
      {
        claim: SG,
        check: 'the SG exists; the sender is not a member; `invite` SG: the sender is the owner or invited',
        refused: [ErrorCode.NOT_FOUND, ErrorCode.ALREADY_MEMBER, ErrorCode.FORBIDDEN],
      },
    ],
    rules: ['S3'],
    handler: sgJoin,
  },
  'sg.leave': {
    who: 'a member',
    claims: [
      {
        claim: SG,
        check: 'the SG exists; the sender is a member',
        refused: [ErrorCode.NOT_FOUND, ErrorCode.NOT_MEMBER],
      },
    ],
    rules: ['S4'],
    handler: sgLeave,
  },
  'sg.remove': {
    who: 'the owner, or the PNE itself',
    claims: [
      { claim: SG, check: 'the SG exists', refused: [ErrorCode.NOT_FOUND] },
      {
        claim: '`pneId`: the member removed',
        check: 'the sender is the owner or P itself; P is a member',
        refused: [ErrorCode.FORBIDDEN, ErrorCode.NOT_MEMBER],
      },
    ],
    rules: ['S5'],
    handler: sgRemove,
  },
  'pne.signkey': {
    who: 'any PNE (binds the key to its own identity)',
    claims: [
      {
        claim: '`key`: "my signing key"',
        check: 'bound to the tunnel identity, never to another PNE',
        refused: [],
      },
    ],
    rules: ['S6'],
    handler: pneSignkey,
  },
  'key.fetch': {
    who: 'a member',
    claims: [
      {
        claim: SG,
        check:
          'the SG exists and has a current key; the sender is a member (after a join update queued before it)',
        refused: [ErrorCode.NOT_FOUND, ErrorCode.NOT_MEMBER],
      },
    ],
    rules: ['S7'],
    handler: keyFetch,
  },
};

/** One control message over a PNE's tunnel, checked by its table entry (in order with the tunnel's others). */
export async function handlePne(srv: ServerState, pt: PneTunnel, msg: ControlMessage): Promise<void> {
  if (srv.closed) return;
  if (srv.revokedIds.has(pt.identity)) {
    pt.ms.destroy();
    return;
  }
  const rule = ruleOf(PNE_MESSAGES, msg.t) as PneMessageRule<MessageType> | undefined;
  if (!rule) fail(ErrorCode.UNEXPECTED_MESSAGE);
  await rule.handler(srv, pt, msg);
}

async function sgCreate(srv: ServerState, pt: PneTunnel, msg: MessageOf<'sg.create'>): Promise<void> {
  const me = pt.identity;
  const r = await createGroup(
    srv,
    {
      name: msg.name,
      joinPolicy: msg.joinPolicy,
      suite: msg.suite,
      sourceAuth: msg.sourceAuth,
      rekeyIntervalSec: msg.rekeyIntervalSec,
      members: [me],
    },
    me,
  );
  pt.control.send({ t: 'sg.created', id: msg.id, sgId: r.sgId, epoch: r.epoch });
}

async function sgDelete(srv: ServerState, pt: PneTunnel, msg: MessageOf<'sg.delete'>): Promise<void> {
  const me = pt.identity;
  const st = groupOf(srv, msg.sgId);
  if (st.ownerId !== me) fail(ErrorCode.FORBIDDEN, 'sgId');
  await deleteGroup(srv, msg.sgId, me);
  pt.control.sendOk(msg.id);
}

async function sgJoin(srv: ServerState, pt: PneTunnel, msg: MessageOf<'sg.join'>): Promise<void> {
  const me = pt.identity;
  const st = groupOf(srv, msg.sgId);
  if (st.members.has(me)) fail(ErrorCode.ALREADY_MEMBER, 'sgId');
  if (st.joinPolicy === 'invite' && st.ownerId !== me && !(await srv.store.hasInvite(msg.sgId, me))) {
    fail(ErrorCode.FORBIDDEN, 'sgId');
  }
  await addMember(srv, msg.sgId, me, me);
  pt.control.sendOk(msg.id);
}

async function sgInvite(srv: ServerState, pt: PneTunnel, msg: MessageOf<'sg.invite'>): Promise<void> {
  const me = pt.identity;
  const st = groupOf(srv, msg.sgId);
  if (st.ownerId !== me) fail(ErrorCode.FORBIDDEN, 'sgId');
  if (st.members.has(msg.pneId)) fail(ErrorCode.ALREADY_MEMBER, 'pneId');
  await srv.store.invite(msg.sgId, msg.pneId);
  await srv.store.appendAudit({
    actor: me,
    action: 'member.invite',
    sgId: msg.sgId,
    subject: msg.pneId,
  });
  pt.control.sendOk(msg.id);
}

async function sgLeave(srv: ServerState, pt: PneTunnel, msg: MessageOf<'sg.leave'>): Promise<void> {
  await removeMember(srv, msg.sgId, pt.identity, 'leave', pt.identity);
  pt.control.sendOk(msg.id);
}

async function sgRemove(srv: ServerState, pt: PneTunnel, msg: MessageOf<'sg.remove'>): Promise<void> {
  const me = pt.identity;
  const st = groupOf(srv, msg.sgId);
  if (st.ownerId !== me && msg.pneId !== me) fail(ErrorCode.FORBIDDEN, 'pneId');
  await removeMember(srv, msg.sgId, msg.pneId, msg.pneId === me ? 'leave' : 'remove', me);
  pt.control.sendOk(msg.id);
}

async function pneSignkey(srv: ServerState, pt: PneTunnel, msg: MessageOf<'pne.signkey'>): Promise<void> {
  const me = pt.identity;
  srv.signKeys.set(me, Buffer.from(msg.key));
  // Not store state: announced on its own, so the other nodes' GWs get this member's key too.
  const { outbox } = announce(srv, 'signer.key', { pneId: me, key: Buffer.from(msg.key).toString('hex') });
  if (outbox) await srv.store.appendOutbox(outbox);
  published(srv);
  pt.control.sendOk(msg.id);
  for (const st of srv.groups.values()) if (st.members.has(me)) pushSigners(srv, st);
}

async function keyFetch(srv: ServerState, pt: PneTunnel, msg: MessageOf<'key.fetch'>): Promise<void> {
  const me = pt.identity;
  const joining = groupOf(srv, msg.sgId);
  if (joining.pendingJoiners.has(me)) await joining.joinUpdate?.done;
  // Under the SG's lock: a join update queued before this fetch runs first, so a joiner never fetches
  // the key of an epoch from before its join (backward secrecy on join).
  const { st, k } = await withSg(srv, msg.sgId, async () => {
    const st = groupOf(srv, msg.sgId);
    if (!st.members.has(me)) fail(ErrorCode.NOT_MEMBER, 'sgId');
    const k = await srv.store.getCurrentKey(msg.sgId);
    if (!k) fail(ErrorCode.NOT_FOUND, 'sgId');
    return { st, k };
  });
  try {
    pt.control.send(
      keyDeliver({
        id: msg.id,
        sgId: msg.sgId,
        epoch: k.epoch,
        key: k.key,
        suite: WIRE_SUITE[st.suite],
        reason: wireReason(k.reason),
        graceSec: 0,
        senderAnchors: anchors(srv, st.sgId, k.epoch),
        sourceAuth: st.sourceAuth,
      }),
    );
  } finally {
    k.key.fill(0);
  }
  await srv.store.appendAudit({ actor: me, action: 'key.fetch', sgId: st.sgId, epoch: k.epoch });
}
