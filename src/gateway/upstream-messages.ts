/**
 * Every message the CPNS Server sends this GW on its upstream session, in one authorization table
 * (docs/protocol.md "Authorization", "At the PN GW, from the CPNS Server"): who sends it, what it may claim and
 * how each claim is checked, the rule id, and its handler. The session's TLS authenticates the server (role
 * `server`). Group frames from the server go to local delivery (relay.ts); anything else is refused with
 * UNEXPECTED_MESSAGE.
 */
import type { MessageOf, MessageType } from '../core/codec/index.js';
import { ErrorCode } from '../core/errors.js';
import { type AuthzRow, rowOf } from '../protocol/authz.js';
import { type Control, readUpstreamFrame } from '../protocol/control.js';
import type { DeliveryPolicy } from '../protocol/index.js';
import { CloseCode } from '../transport/session.js';
import { dropKey, installKey } from './keys.js';
import { deliverLocal } from './relay.js';
import type { GatewayState } from './state.js';

type UpstreamMessageType =
  | 'key.deliver'
  | 'sg.deleted'
  | 'sg.signers'
  | 'gw.policy'
  | 'pne.detach'
  | 'error'
  | 'ok';

export type UpstreamRule = 'U1' | 'U2' | 'U3' | 'U4' | 'U5';

export type UpstreamMessageRule<T extends MessageType> = AuthzRow<
  UpstreamRule,
  (st: GatewayState, msg: MessageOf<T>) => void
>;

const SERVER = 'the server';

export const UPSTREAM_MESSAGES: { readonly [T in UpstreamMessageType]: UpstreamMessageRule<T> } = {
  'key.deliver': {
    who: SERVER,
    claims: [
      {
        claim: "`targets`: this PN's member PNEs of the SG (replace the GW's set)",
        check: 'must be present (a delivery without `targets` is ignored); `[]` erases the key',
        refused: [],
      },
      { claim: '`epoch`, `key`', check: 'keys only move forward: an older epoch is ignored', refused: [] },
    ],
    rules: ['U1'],
    handler: installKey,
  },
  'sg.deleted': {
    who: SERVER,
    claims: [
      {
        claim: '`sgId`: "the SG is gone"',
        check: 'an SG the GW holds a key for (else ignored): passed on to its targets, key wiped',
        refused: [],
      },
    ],
    rules: ['U2'],
    handler: sgDeleted,
  },
  'sg.signers': {
    who: SERVER,
    claims: [
      {
        claim: "`sgId`, `signers`: the members' signing keys",
        check: 'an SG the GW holds a key for (else ignored): passed on unchanged to its attached targets',
        refused: [],
      },
    ],
    rules: ['U2'],
    handler: sgSigners,
  },
  'gw.policy': {
    who: SERVER,
    claims: [{ claim: 'the delivery policy', check: 'schema bounds only; applied as is', refused: [] }],
    rules: ['U3'],
    handler: gwPolicy,
  },
  'pne.detach': {
    who: SERVER,
    claims: [
      {
        claim: '`pneId`: "P is revoked"',
        check:
          "none: P leaves the GW's targets and broadcast tree; its sessions close (4001); refused from now on",
        refused: [],
      },
    ],
    rules: ['U4'],
    handler: pneDetach,
  },
  error: {
    who: 'the server (a refusal not matched to a request)',
    claims: [
      {
        claim: '`pneId`: "P\'s group message was refused"',
        check: 'passed on to P only without `ref` and while P has a session here; else logged',
        refused: [],
      },
    ],
    rules: ['U5'],
    handler: serverError,
  },
  ok: {
    who: 'the server (an answer not matched to a request: ignored)',
    claims: [],
    rules: ['U5'],
    handler: () => {},
  },
};

export function onUpstreamFrame(st: GatewayState, control: Control, buf: Buffer): void {
  const msg = readUpstreamFrame(
    buf,
    control,
    (frame, payload) => deliverLocal(st, frame, payload, undefined),
    st.log,
    'the server',
  );
  if (!msg) return;
  const rule = rowOf(UPSTREAM_MESSAGES, msg.t) as UpstreamMessageRule<MessageType> | undefined;
  if (rule) rule.handler(st, msg);
  else control.sendError(ErrorCode.UNEXPECTED_MESSAGE, msg.id);
}

function sgDeleted(st: GatewayState, msg: MessageOf<'sg.deleted'>): void {
  const e = st.keys.get(msg.sgId);
  if (!e) return;
  for (const p of e.targets) {
    try {
      st.pnes.get(p)?.control.send({ t: 'sg.deleted', sgId: msg.sgId });
    } catch {}
  }
  dropKey(st, msg.sgId);
}

/** Source authentication: the members' signing keys, passed on to this PN's member PNEs. */
function sgSigners(st: GatewayState, msg: MessageOf<'sg.signers'>): void {
  const e = st.keys.get(msg.sgId);
  if (!e) return;
  for (const p of e.targets) {
    const c = st.pnes.get(p);
    if (c?.phase !== 'attached') continue;
    try {
      c.control.send({ t: 'sg.signers', sgId: msg.sgId, signers: msg.signers });
    } catch {}
  }
}

function gwPolicy(st: GatewayState, msg: MessageOf<'gw.policy'>): void {
  const p: DeliveryPolicy = {
    broadcast: msg.broadcast,
    broadcastThreshold: msg.broadcastThreshold,
    ackTimeoutMs: msg.ackTimeoutMs,
  };
  if (st.broadcaster) st.broadcaster.policy = p;
  st.log.info(p, 'delivery policy');
  st.events.emit('policy', p);
}

/** The server revoked this PNE: drop its session at once and refuse it from now on. */
function pneDetach(st: GatewayState, msg: MessageOf<'pne.detach'>): void {
  st.revoked.add(msg.pneId);
  st.broadcaster?.release(msg.pneId);
  for (const e of st.keys.values()) e.targets.delete(msg.pneId);
  st.pneServer.closeSessionsOf(msg.pneId, CloseCode.REVOKED, 'revoked');
}

/** The server refused a group message of one of our PNEs: that PNE gets the typed error. */
function serverError(st: GatewayState, msg: MessageOf<'error'>): void {
  const c = msg.ref === undefined && msg.pneId !== undefined ? st.pnes.get(msg.pneId) : undefined;
  if (c) c.control.sendError(msg.code, undefined, msg.field);
  st.log.debug({ code: msg.code, pne: msg.pneId }, 'server refused a message');
}
