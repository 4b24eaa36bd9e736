/**
 * Every message the CPNS Server sends this GW on its upstream session (authenticated as `urn:cpns:server:*`,
 * docs/protocol.md "At the PN GW"), in one table: message type -> handler. Group frames from the server go to
 * local delivery (relay.ts); anything else is refused with UNEXPECTED_MESSAGE.
 */
import type { MessageOf, MessageType } from '../core/codec/index.js';
import { ErrorCode } from '../core/errors.js';
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

export const UPSTREAM_MESSAGES: {
  readonly [T in UpstreamMessageType]: (st: GatewayState, msg: MessageOf<T>) => void;
} = {
  'key.deliver': installKey,
  'sg.deleted': sgDeleted,
  'sg.signers': sgSigners,
  'gw.policy': gwPolicy,
  'pne.detach': pneDetach,
  error: serverError,
  ok: () => {},
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
  const handler = Object.hasOwn(UPSTREAM_MESSAGES, msg.t)
    ? (UPSTREAM_MESSAGES[msg.t as UpstreamMessageType] as (
        st: GatewayState,
        msg: MessageOf<MessageType>,
      ) => void)
    : undefined;
  if (handler) handler(st, msg);
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
