/**
 * Every control message the PN GW may send this PNE over its session, in one authorization table
 * (docs/protocol.md "Authorization", "At the PNE, from its PN GW session"): who originates it, what it may claim
 * and how each claim is checked, the rule id, and its handler. Only the GW is at the other end of the session (its TLS authenticates it as a GW); some messages
 * originate at the CPNS Server and are relayed (or rebuilt) by the GW: the unicast Group Key delivery, the
 * signing keys of an SG and its deletion. Answers to this PNE's requests are matched by Control first; a message
 * type not in the table is refused (UNEXPECTED_MESSAGE). Group frames (0x05) go to messages.ts.
 */
import type { ControlMessage, MessageOf } from '../core/codec/index.js';
import { ErrorCode } from '../core/errors.js';
import { type AuthzRow, rowOf } from '../protocol/authz.js';
import { type Control, readUpstreamFrame } from '../protocol/control.js';
import { onGkdkIssue } from './broadcast.js';
import { groupDeleted, installKey, installSigners } from './keys.js';
import { onGroupMessage } from './messages.js';
import type { PneState } from './state.js';

type GwMessageType = 'key.deliver' | 'gkdk.issue' | 'sg.signers' | 'sg.deleted' | 'error' | 'ok';

export type GwRule = 'W1' | 'W2' | 'W3' | 'W4';

/** `who`: the originator, the GW itself or the server (relayed by the GW). */
export type GwMessageRule<T extends GwMessageType> = AuthzRow<
  GwRule,
  (st: PneState, msg: MessageOf<T>) => void
>;

/** A unicast key delivery (keys.ts `installKey`). */
const KEY_DELIVERY_CLAIMS = [
  {
    claim: '`sgId`, `epoch`, `key`, `suite`, `graceSec`, `senderAnchors`: a Group Key epoch',
    check: 'the key ring takes only a newer epoch (else not installed); staged if its activation is ahead',
    refused: [],
  },
] as const;

export const GW_MESSAGES: { readonly [T in GwMessageType]: GwMessageRule<T> } = {
  'key.deliver': {
    who: 'the server, relayed by the GW (unicast delivery)',
    claims: KEY_DELIVERY_CLAIMS,
    rules: ['W1'],
    handler: installKey,
  },
  'gkdk.issue': {
    who: 'the GW (its broadcast tree)',
    claims: [
      {
        claim: "`media`, `gkdk`: this PNE's label set of the GW's tree, and where to listen",
        check: 'only media this PNE supports; ignored with `noBroadcast`; acked only once listening',
        refused: [],
      },
    ],
    rules: ['W2'],
    handler: onGkdkIssue,
  },
  'sg.signers': {
    who: 'the server, relayed by the GW',
    claims: [
      {
        claim: "`signers`: the members' signing keys",
        check: 'each a valid Ed25519 key (else ignored)',
        refused: [],
      },
    ],
    rules: ['W3'],
    handler: installSigners,
  },
  'sg.deleted': {
    who: 'the server, relayed by the GW',
    claims: [{ claim: '`sgId`: "the SG is gone"', check: "none: the SG's keys are forgotten", refused: [] }],
    rules: ['W3'],
    handler: groupDeleted,
  },
  error: {
    who: 'the GW (unsolicited error)',
    claims: [{ claim: '`code`, `field`', check: 'none: reported as a `gw-error` event', refused: [] }],
    rules: ['W4'],
    handler: (st, msg) => st.events.emit('gw-error', { code: msg.code, field: msg.field }),
  },
  ok: { who: 'the GW (ignored)', claims: [], rules: ['W4'], handler: () => {} },
};

export function onGwFrame(st: PneState, gw: Control, buf: Buffer): void {
  const msg = readUpstreamFrame(buf, gw, (_frame, payload) => onGroupMessage(st, payload), st.log, 'the GW');
  if (!msg) return;
  const rule = rowOf(GW_MESSAGES, msg.t);
  if (!rule) {
    gw.sendError(ErrorCode.UNEXPECTED_MESSAGE, msg.id);
    return;
  }
  (rule.handler as (st: PneState, msg: ControlMessage) => void)(st, msg);
}
