/**
 * Every control message the PN GW may send this PNE over its session, in one table: who originates it and its
 * handler. Only the GW is at the other end of the session (its TLS authenticates it as a GW); some messages
 * originate at the CPNS Server and are relayed (or rebuilt) by the GW: the unicast Group Key delivery, the
 * signing keys of an SG and its deletion. Answers to this PNE's requests are matched by Control first; a message
 * type not in the table is refused (UNEXPECTED_MESSAGE). Group frames (0x05) go to messages.ts.
 */
import type { ControlMessage, MessageOf } from '../core/codec/index.js';
import { ErrorCode } from '../core/errors.js';
import { type Control, readUpstreamFrame } from '../protocol/control.js';
import { onGkdkIssue } from './broadcast.js';
import { groupDeleted, installKey, installSigners } from './keys.js';
import { onGroupMessage } from './messages.js';
import type { PneState } from './state.js';

type GwMessageType = 'key.deliver' | 'gkdk.issue' | 'sg.signers' | 'sg.deleted' | 'error' | 'ok';

export interface GwMessageRule<T extends GwMessageType> {
  /** Who originates it: the GW itself, or the server (relayed by the GW). */
  readonly who: string;
  readonly handler: (st: PneState, msg: MessageOf<T>) => void;
}

export const GW_MESSAGES: { readonly [T in GwMessageType]: GwMessageRule<T> } = {
  'key.deliver': { who: 'the server, relayed by the GW (unicast delivery)', handler: installKey },
  'gkdk.issue': { who: 'the GW (its broadcast tree)', handler: onGkdkIssue },
  'sg.signers': { who: 'the server, relayed by the GW', handler: installSigners },
  'sg.deleted': { who: 'the server, relayed by the GW', handler: groupDeleted },
  error: {
    who: 'the GW (unsolicited error)',
    handler: (st, msg) => st.events.emit('gw-error', { code: msg.code, field: msg.field }),
  },
  ok: { who: 'the GW (ignored)', handler: () => {} },
};

export function onGwFrame(st: PneState, gw: Control, buf: Buffer): void {
  const msg = readUpstreamFrame(buf, gw, (_frame, payload) => onGroupMessage(st, payload), st.log, 'the GW');
  if (!msg) return;
  const rule = Object.hasOwn(GW_MESSAGES, msg.t) ? GW_MESSAGES[msg.t as GwMessageType] : undefined;
  if (!rule) {
    gw.sendError(ErrorCode.UNEXPECTED_MESSAGE, msg.id);
    return;
  }
  (rule.handler as (st: PneState, msg: ControlMessage) => void)(st, msg);
}
