/**
 * Every control message a GW may send the server, in one authorization table (docs/protocol.md "Authorization",
 * "At the CPNS Server, from a PN GW session"): who may send it, what it may claim and how each claim is checked,
 * the rule ids, and its handler (which does those checks). A message type not in the table is refused, and so is every
 * message but `gw.register` and `enroll.relay` before the GW has registered.
 */
import type { ControlMessage, MessageOf, MessageType } from '../core/codec/index.js';
import { ErrorCode } from '../core/errors.js';
import { fail } from '../protocol/control.js';
import { DEFAULT_POLICY } from '../protocol/policy.js';
import { CloseCode } from '../transport/session.js';
import { deliveryReport, keyAck } from './acks.js';
import { published } from './announce.js';
import { catchUp, pneAttach, pneDetach, pneStatus } from './attachment.js';
import { type MessageRule, ruleOf } from './authz.js';
import { SERVER_DEFAULTS } from './defaults.js';
import { enrollRelay } from './enrollment.js';
import { emit } from './events.js';
import { rekeyGroupsOf } from './keys.js';
import type { GwConn, ServerState } from './state.js';

/**
 * Rule ids of docs/protocol.md for control messages from a GW session (A1, the tunnel, and R1, group frames, are
 * not control messages: pne-tunnel.ts, relay.ts). key.ack: K1 without pneId, K2 with.
 */
export type GwRule = 'G1' | 'E1' | 'A2' | 'A3' | 'A4' | 'A5' | 'K1' | 'K2';

export interface GwMessageRule<T extends MessageType> extends MessageRule<GwRule, GwConn, T> {
  /** Accepted before gw.register (the session's certificate identity is all it needs). */
  readonly beforeRegister?: true;
}

type GwMessageType =
  | 'gw.register'
  | 'enroll.relay'
  | 'pne.attach'
  | 'pne.status'
  | 'pne.detach'
  | 'gw.deregister'
  | 'key.ack'
  | 'key.delivery.report';

/** Refusals of the (SG, epoch) checks shared by K1 and K2 (acks.ts `sentTargets`). */
const SENT_EPOCH = {
  claim: '`sgId`, `epoch`: "this epoch of this SG was delivered to me"',
  check:
    'the SG exists; the epoch is not above its current one; this session was sent it (the last 4 epochs kept)',
  refused: [ErrorCode.NOT_FOUND, ErrorCode.UNKNOWN_EPOCH, ErrorCode.FORBIDDEN],
} as const;

export const GW_MESSAGES: { readonly [T in GwMessageType]: GwMessageRule<T> } = {
  'gw.register': {
    who: 'any enrolled, unrevoked GW (its session identity)',
    claims: [],
    rules: ['G1'],
    beforeRegister: true,
    handler: gwRegister,
  },
  'enroll.relay': {
    who: 'any GW session (before or after gw.register)',
    claims: [
      {
        claim: "`request`: a PNE's CSR and one-time token",
        check:
          'the token (known, unused, unexpired, role matches) before the CSR is parsed; the server names the identity',
        refused: [ErrorCode.ENROLL_REFUSED],
      },
    ],
    rules: ['E1'],
    beforeRegister: true,
    handler: enrollRelay,
  },
  'pne.attach': {
    who: 'registered GW',
    claims: [
      {
        claim: '`pneId`, `media`: "PNE P may be behind me, over these media" (a claim: grants nothing)',
        check: 'P enrolled as a PNE, not revoked; at most `maxPnesPerGw` claimed PNEs per session',
        refused: [ErrorCode.REVOKED, ErrorCode.NOT_FOUND, ErrorCode.TOO_LARGE],
      },
    ],
    rules: ['A2'],
    handler: pneAttach,
  },
  'pne.status': {
    who: 'the GW the PNE is proven at',
    claims: [
      {
        claim: '`pneId`, `online: false`: "P went offline" (the GW gives P up)',
        check: 'P proven at this GW',
        refused: [ErrorCode.FORBIDDEN],
      },
      {
        claim: '`online: true`',
        check: 'grants nothing: only the tunnel (A1) makes P online',
        refused: [],
      },
    ],
    rules: ['A3'],
    handler: pneStatus,
  },
  'pne.detach': {
    who: 'the GW the PNE is proven at',
    claims: [
      { claim: '`pneId`: "P left this PN"', check: 'P proven at this GW', refused: [ErrorCode.FORBIDDEN] },
    ],
    rules: ['A4'],
    handler: pneDetach,
  },
  'gw.deregister': {
    who: 'registered GW',
    claims: [
      {
        claim: '"I leave, with all PNEs of my PN"',
        check: "session identity: only the GW's own PN",
        refused: [],
      },
    ],
    rules: ['A5'],
    handler: gwDeregister,
  },
  'key.ack': {
    who: 'a GW that was sent that epoch of that SG (with pneId: the GW that serves the PNE)',
    claims: [
      SENT_EPOCH,
      {
        claim: '`pneId` (K2): "P acked this epoch"; `method`: how',
        check: "P named in this session's delivery of that epoch, proven at this GW, a member",
        refused: [ErrorCode.FORBIDDEN],
      },
    ],
    rules: ['K1', 'K2'],
    handler: keyAck,
  },
  'key.delivery.report': {
    who: 'the GW that serves the PNEs',
    claims: [
      SENT_EPOCH,
      {
        claim: '`entries`: "these PNEs acked this epoch", each with its method',
        check: 'every PNE as for `key.ack` with `pneId`; all or nothing',
        refused: [ErrorCode.FORBIDDEN],
      },
    ],
    rules: ['K2'],
    handler: deliveryReport,
  },
};

/** One control message from a GW session, checked by its table entry (in order with the session's others). */
export async function handleGw(srv: ServerState, conn: GwConn, msg: ControlMessage): Promise<void> {
  if (srv.closed) return;
  const rule = ruleOf(GW_MESSAGES, msg.t) as GwMessageRule<MessageType> | undefined;
  if (!conn.registered && !rule?.beforeRegister) fail(ErrorCode.UNEXPECTED_MESSAGE);
  if (!rule) fail(ErrorCode.UNEXPECTED_MESSAGE);
  await rule.handler(srv, conn, msg);
}

/** gw.register (rule G1): the GW's PN goes online; it gets the delivery policy, then its PNEs' catch-up. */
async function gwRegister(srv: ServerState, conn: GwConn, msg: MessageOf<'gw.register'>): Promise<void> {
  await srv.store.registerGateway(conn.id);
  await srv.store.setOnline(conn.id, true);
  if (srv.cluster) {
    // This node now holds the GW's session; a node that held it before closes its (stale) session on gw.lease.
    const lease = await srv.store.acquireGwLease(conn.id, srv.cluster.nodeId, { outbox: true });
    conn.lease = lease.generation;
    published(srv);
  }
  conn.registered = true;
  conn.control.send({ t: 'registered', id: msg.id, ok: true });
  conn.control.send({ t: 'gw.policy', ...(srv.opts.deliveryPolicy ?? DEFAULT_POLICY) });
  emit(srv, { kind: 'pn.change', gwId: conn.id, online: true });
  // PNEs whose tunnels came up before the registration: their catch-up now.
  for (const p of conn.attached) await catchUp(srv, p, conn.id, undefined);
}

/** gw.deregister (rule A5): the GW leaves with all PNEs of its own PN; their SGs get a new key. */
async function gwDeregister(srv: ServerState, conn: GwConn, msg: MessageOf<'gw.deregister'>): Promise<void> {
  const pnes = await srv.store.deregisterGateway(conn.id);
  for (const p of pnes) srv.pneAt.delete(p);
  conn.attached.clear();
  conn.registered = false;
  await srv.store.appendAudit({ actor: conn.id, action: 'gw.deregister', subject: conn.id });
  emit(srv, { kind: 'pn.change', gwId: conn.id, online: false });
  await rekeyGroupsOf(srv, pnes, 'detach', conn.id);
  for (const st of srv.groups.values()) st.targetGws.delete(conn.id);
  conn.control.sendOk(msg.id);
  setTimeout(
    () => conn.session.close(CloseCode.NORMAL, 'deregistered'),
    SERVER_DEFAULTS.deregisterCloseMs,
  ).unref();
}
