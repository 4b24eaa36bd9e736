/**
 * Every message a PNE may send its GW over its own session, in one authorization table (docs/protocol.md
 * "Authorization", "At the PN GW, from a PNE session"): who may send it, what it may claim and how each claim is
 * checked, the rule id, and its handler (which does those checks). The sender is the session's certificate
 * identity. Group messages (P3) are checked by `admitGroupMessage` before relay.ts delivers them.
 */
import type { ControlMessage, MessageOf, MessageType } from '../core/codec/index.js';
import { ErrorCode } from '../core/errors.js';
import { readHeader } from '../core/group/header.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../core/group/receiver.js';
import { type AuthzRow, rowOf } from '../protocol/authz.js';
import { codeOf, fail, uuidOf, uuidToBytes } from '../protocol/control.js';
import { CloseCode } from '../transport/session.js';
import { sendGkdk, sendKey } from './keys.js';
import { report } from './reports.js';
import { deliveryOf, type GatewayState, type PneConn } from './state.js';
import { attachUp } from './upstream.js';

export type PneRule = 'P1' | 'P2' | 'P3';

export type PneMessageRule<T extends MessageType> = AuthzRow<
  PneRule,
  (st: GatewayState, c: PneConn, msg: MessageOf<T>) => Promise<void>
>;

type PneMessageType = 'pne.attach' | 'pne.detach' | 'key.ack' | 'gkdk.ack';

const SELF = {
  claim: '`pneId`: "I am P"',
  check: 'P = the session certificate identity',
  refused: [ErrorCode.FORBIDDEN],
} as const;

export const PNE_MESSAGES: { readonly [T in PneMessageType]: PneMessageRule<T> } = {
  'pne.attach': {
    who: 'the PNE itself (pneId = certificate identity)',
    claims: [
      SELF,
      {
        claim: '`media`: "I am reachable over these media"',
        check: "passed on to the server's claim (A2), whose refusal the PNE gets",
        refused: [ErrorCode.REVOKED, ErrorCode.NOT_FOUND, ErrorCode.TOO_LARGE],
      },
    ],
    rules: ['P1'],
    handler: pneAttach,
  },
  'pne.detach': {
    who: 'the PNE itself (pneId = certificate identity)',
    claims: [
      SELF,
      {
        claim: '"I leave this PN"',
        check: 'only while the GW is registered at the server, which detaches P (A4)',
        refused: [ErrorCode.UNEXPECTED_MESSAGE],
      },
    ],
    rules: ['P1'],
    handler: pneDetach,
  },
  'key.ack': {
    who: 'a PNE the GW holds the SG’s key for',
    claims: [
      {
        claim: '`sgId`: "I hold this SG\'s key"',
        check: "the PNE is among the GW's targets of the SG",
        refused: [ErrorCode.NOT_MEMBER],
      },
      { ...SELF, claim: '`pneId` (optional): "I am P"' },
      { claim: '`epoch`', check: 'not above the epoch the GW holds', refused: [ErrorCode.UNKNOWN_EPOCH] },
      {
        claim: '`method`: how it got the key',
        check:
          '`broadcast` counts only if the GW broadcast that epoch to it; `fallback` if the GW re-sent it by unicast',
        refused: [],
      },
    ],
    rules: ['P2'],
    handler: keyAck,
  },
  'gkdk.ack': {
    who: 'a PNE the GW issued a GKDK of the current tree to',
    claims: [
      {
        claim: '`treeId`, `treeVersion`: "I hold this GKDK"',
        check: 'the GW has a tree and a leaf for the PNE; an ack of an older tree version does not count',
        refused: [ErrorCode.UNEXPECTED_MESSAGE],
      },
    ],
    rules: ['P2'],
    handler: gkdkAck,
  },
};

/** The group message rule (P3): who may send a message destined to an SG through this GW. */
export const GROUP_MESSAGE_RULE: AuthzRow<'P3', typeof admitGroupMessage> = {
  who: 'an attached member of the SG at this GW (header senderId = certificate identity, epoch known)',
  claims: [
    {
      claim: 'header `senderId`: "sent by P"',
      check: 'the PNE is attached; P = the session certificate identity; within the message size limit',
      refused: [ErrorCode.UNEXPECTED_MESSAGE, ErrorCode.FORBIDDEN, ErrorCode.TOO_LARGE],
    },
    {
      claim: 'header `sgId`',
      check: "the PNE is among the GW's targets of the SG",
      refused: [ErrorCode.NOT_MEMBER],
    },
    {
      claim: 'header `epoch`',
      check: 'not above the epoch the GW holds',
      refused: [ErrorCode.UNKNOWN_EPOCH],
    },
  ],
  rules: ['P3'],
  handler: admitGroupMessage,
};

/** One control message over a PNE's session, checked by its table entry (in order with the session's others). */
export async function handlePne(st: GatewayState, c: PneConn, msg: ControlMessage): Promise<void> {
  const rule = rowOf(PNE_MESSAGES, msg.t) as PneMessageRule<MessageType> | undefined;
  if (!rule) fail(ErrorCode.UNEXPECTED_MESSAGE);
  await rule.handler(st, c, msg);
}

/** P3: the SG a group message of this PNE is destined to, once admitted; throws the typed refusal otherwise. */
export function admitGroupMessage(st: GatewayState, c: PneConn, payload: Buffer): string {
  if (c.phase !== 'attached') fail(ErrorCode.UNEXPECTED_MESSAGE);
  if (payload.length > DEFAULT_MAX_MESSAGE_BYTES) fail(ErrorCode.TOO_LARGE, 'message');
  const h = readHeader(payload);
  // Attribution: the header's sender must be this PNE as named in its certificate.
  c.senderId ??= uuidToBytes(uuidOf(c.id));
  if (!h.senderId.equals(c.senderId)) fail(ErrorCode.FORBIDDEN, 'senderId');
  const sgId = st.idsFromPne.of(payload).sgId;
  const e = st.keys.get(sgId);
  if (!e?.targets.has(c.id)) fail(ErrorCode.NOT_MEMBER, 'sgId');
  if (h.epoch > e.epoch) fail(ErrorCode.UNKNOWN_EPOCH, 'epoch');
  return sgId;
}

async function pneAttach(st: GatewayState, c: PneConn, msg: MessageOf<'pne.attach'>): Promise<void> {
  if (msg.pneId !== c.id) fail(ErrorCode.FORBIDDEN, 'pneId');
  c.media = msg.media;
  c.phase = 'attached';
  if (st.registered) await attachUp(st, c);
  c.control.sendOk(msg.id);
  // Broadcast-capable PNE (shares a medium with this GW): its leaf and GKDK, over this session.
  if (st.broadcaster) {
    try {
      const issue = st.broadcaster.issueFor(c.id, c.media);
      if (issue) sendGkdk(st, c, issue);
    } catch (err) {
      st.log.warn({ code: codeOf(err), pne: c.id }, 'no GKDK for this PNE: unicast delivery only');
    }
  }
  // Keys this GW already holds for the PNE (the server's catch-up may also bring newer ones).
  for (const [sgId, e] of st.keys) if (e.targets.has(c.id)) sendKey(st, c, sgId, e);
}

async function pneDetach(st: GatewayState, c: PneConn, msg: MessageOf<'pne.detach'>): Promise<void> {
  if (msg.pneId !== c.id) fail(ErrorCode.FORBIDDEN, 'pneId');
  if (!st.upControl || !st.registered) fail(ErrorCode.UNEXPECTED_MESSAGE);
  await st.upControl.request({ t: 'pne.detach', pneId: c.id });
  c.phase = 'detached';
  // It left the PN: its leaf is excluded from every later broadcast of this tree (it keeps its labels).
  st.broadcaster?.release(c.id);
  c.gkdkTree = undefined;
  for (const e of st.keys.values()) e.targets.delete(c.id);
  c.control.sendOk(msg.id);
  setTimeout(() => c.session.close(CloseCode.NORMAL, 'detached'), 50).unref();
}

async function gkdkAck(st: GatewayState, c: PneConn, msg: MessageOf<'gkdk.ack'>): Promise<void> {
  const t = st.broadcaster?.tree;
  if (!t || !st.broadcaster?.hasLeaf(c.id)) fail(ErrorCode.UNEXPECTED_MESSAGE);
  // An ack for an older tree (a rebuild crossed it) does not count: the new GKDK is on its way.
  if (msg.treeId === t.treeId && msg.treeVersion === t.treeVersion) {
    c.gkdkTree = `${t.treeId}:${t.treeVersion}`;
    st.events.emit('gkdk', { pneId: c.id, treeId: t.treeId, treeVersion: t.treeVersion });
  }
  c.control.sendOk(msg.id);
}

async function keyAck(st: GatewayState, c: PneConn, msg: MessageOf<'key.ack'>): Promise<void> {
  const sgId = msg.sgId;
  const e = st.keys.get(sgId);
  if (!e?.targets.has(c.id)) fail(ErrorCode.NOT_MEMBER, 'sgId');
  if (msg.pneId !== undefined && msg.pneId !== c.id) fail(ErrorCode.FORBIDDEN, 'pneId');
  if (msg.epoch > e.epoch) fail(ErrorCode.UNKNOWN_EPOCH, 'epoch');
  const d = deliveryOf(c, sgId);
  const first = (d.acked ?? -1) < msg.epoch;
  if (first) d.acked = msg.epoch;
  const pendingBroadcast = st.broadcaster?.ack(sgId, msg.epoch, c.id) === 'broadcast';
  // How the PNE got it: broadcast only if the GW broadcast it this epoch AND the PNE says it opened a
  // datagram; 'fallback' if the GW re-sent it by unicast after the ack timeout; else unicast.
  const method =
    msg.method === 'broadcast' && (pendingBroadcast || d.broadcastEpoch === msg.epoch)
      ? 'broadcast'
      : d.fallbackEpoch === msg.epoch
        ? 'fallback'
        : 'unicast';
  const at = Date.now();
  if (first) d.ackedHow = { method, at };
  // Reported on the upstream session that delivered the key; one that has not yet delivered it (a new session
  // before its catch-up) could not accept the report (rule K2), and gets it with its catch-up (reports.ts).
  if ((d.reported ?? -1) < msg.epoch && e.upGeneration === st.upGeneration) {
    d.reported = msg.epoch;
    report(st, sgId, msg.epoch, { pneId: c.id, method, ackedAt: at });
  }
  c.control.sendOk(msg.id);
}
