/**
 * The CPNS Server's shared mutable state: one object that every concern module (enrollment, attachment, GW
 * sessions, tunnels, groups, keys, relay, acks, revocation, admin) works on. The maps are caches rebuilt from the
 * store at start (startup.ts), so a restart loses nothing.
 */
import type { EventEmitter } from 'node:events';
import type { MessageOf } from '../core/codec/index.js';
import type { Suite } from '../core/crypto/aead.js';
import { ErrorCode } from '../core/errors.js';
import { GroupSender } from '../core/group/sender.js';
import type { CpnsMetrics } from '../metrics/index.js';
import { type Control, codeOf, fail, type Logger } from '../protocol/control.js';
import type { DeliveryPolicy } from '../protocol/policy.js';
import type { Store } from '../store/store.js';
import type { Ca } from '../transport/ca.js';
import type { MessageSocket } from '../transport/message-socket.js';
import type { SecureServer } from '../transport/secure-server.js';
import type { Session } from '../transport/session.js';
import { AckTracker } from './ack-tracker.js';
import type { ClusterLink } from './cluster.js';
import { SERVER_DEFAULTS } from './defaults.js';
import { DeliveryWriter, writeAcks } from './delivery-writer.js';
import { RelayIds } from './relay.js';
import type { ServerOptions } from './types.js';

/** The actor of operator actions (admin surface) in the audit log and as an SG's owner. */
export const OPERATOR = 'operator';

/** The audit actor of an operator acting with the named admin token (docs/operator.md "Admin tokens"). */
export function operatorActor(tokenName: string): string {
  return `${OPERATOR}:${tokenName}`;
}

/** Any operator, named or not: SGs they create are the operator's, not a device's. */
export function isOperator(actor: string): boolean {
  return actor === OPERATOR || actor.startsWith(`${OPERATOR}:`);
}

export interface ServerState {
  readonly opts: ServerOptions;
  readonly store: Store;
  readonly log: Logger;
  readonly metrics: CpnsMetrics;
  /** `'change'` events (ChangeEvent), the server's public emitter. */
  readonly events: EventEmitter;
  readonly ca: Ca;
  /** The GW session listener (revocation closes a GW's sessions on it). */
  readonly secure: SecureServer;
  /** The server's TLS certificate and key (issued by the CPNS CA at start). */
  serverCert: { certPem: string; keyPem: string };
  readonly groups: Map<string, SgState>;
  /** The server's own sender (nil sender id, fresh instance per start) for messages it sends to SGs. */
  readonly sender: GroupSender;
  /** PNE identity -> Ed25519 public key it signs SG messages with (from its own tunnel). */
  readonly signKeys: Map<string, Buffer>;
  readonly gwConns: Map<string, GwConn>;
  readonly tunnels: Map<string, Set<PneTunnel>>;
  /** PNE -> GW of its PN (store inventory, cached). */
  readonly pneAt: Map<string, string>;
  readonly revokedIds: Set<string>;
  readonly revokedSerials: Set<string>;
  /** `${sgId}|${epoch}` -> `${senderHex}|${instanceHex}` -> highest relayed counter. */
  readonly marks: Map<string, Map<string, number>>;
  readonly dirtyMarks: Set<string>;
  /** Text ids of the last relayed header (relay.ts), formatted once per run of one sender instance. */
  readonly relayIds: RelayIds;
  readonly locks: Map<string, Promise<unknown>>;
  /** Per SG, the members that have not acked its current epoch yet, and the ack latency timing (acks.ts). */
  readonly acks: AckTracker;
  /** Accepted acks (PNEs' and GWs') on their way to the store, in batches (delivery-writer.ts). */
  readonly deliveries: DeliveryWriter;
  flushTimer: NodeJS.Timeout | undefined;
  closed: boolean;
  /** This node's link to the other nodes (cluster.ts), when it runs as one node of a cluster. */
  cluster: ClusterLink | undefined;
}

export function createState(o: {
  opts: ServerOptions;
  store: Store;
  log: Logger;
  metrics: CpnsMetrics;
  events: EventEmitter;
  ca: Ca;
  secure: SecureServer;
}): ServerState {
  return {
    ...o,
    serverCert: { certPem: '', keyPem: '' },
    groups: new Map(),
    sender: new GroupSender({ senderId: Buffer.alloc(16) }),
    signKeys: new Map(),
    gwConns: new Map(),
    tunnels: new Map(),
    pneAt: new Map(),
    revokedIds: new Set(),
    revokedSerials: new Set(),
    marks: new Map(),
    dirtyMarks: new Set(),
    relayIds: new RelayIds(),
    locks: new Map(),
    acks: new AckTracker(),
    deliveries: new DeliveryWriter(
      (batch) => writeAcks(o.store, batch),
      (e, sgId, rows) => o.log.warn({ code: codeOf(e), sgId, rows }, 'delivery records not written'),
      {
        maxBatch: o.opts.deliveryBatchMax ?? SERVER_DEFAULTS.deliveryBatchMax,
        delayMs: o.opts.deliveryBatchMs ?? SERVER_DEFAULTS.deliveryBatchMs,
      },
    ),
    flushTimer: undefined,
    closed: false,
    cluster: undefined,
  };
}

export interface SgState {
  readonly sgId: string;
  readonly suite: Suite;
  ownerId: string;
  joinPolicy: 'open' | 'invite';
  rekeyIntervalSec: number | null;
  readonly members: Set<string>;
  epoch: number;
  prevEpoch: number | undefined;
  prevUntil: number;
  timer: NodeJS.Timeout | undefined;
  /** GWs that got a non-empty target list: they must hear when their last member goes. */
  readonly targetGws: Set<string>;
  /** Operator's delivery policy for this SG (overrides the server-wide one at the GWs), if set. */
  deliveryPolicy: DeliveryPolicy | undefined;
  /** Members must sign their messages (Ed25519); the server distributes members' signing keys. */
  sourceAuth: boolean;
  /** A join updates the Group Key (backward secrecy); joins queued together share one update. */
  updateOnJoin: boolean;
  /**
   * Joiners waiting for the join update (backward secrecy on join): no key delivery names them until a new epoch
   * exists, and their key.fetch waits for it.
   */
  readonly pendingJoiners: Set<string>;
  /** The scheduled join update (one per window of `joinUpdateDelayMs`), until it has run. */
  joinUpdate: { timer: NodeJS.Timeout; run: () => Promise<void>; done: Promise<void> } | undefined;
  /** The id of the key update that made `epoch` current (update-trail.ts); unknown after a restart. */
  updateId?: string | undefined;
}

export interface GwConn {
  readonly id: string;
  readonly session: Session;
  readonly control: Control;
  /**
   * PNEs proven attached at this GW (rule A1, docs/protocol.md "Authorization"): the PNE's own end-to-end tunnel,
   * authenticated by its certificate, is up through this session. Only these get keys, signers and relay here.
   */
  readonly attached: Set<string>;
  /** What the GW said about its PNEs (pne.attach): media only; a claim grants nothing until proven. */
  readonly claims: Map<string, readonly Medium[]>;
  /** sgId -> epoch -> PNEs named as targets of the key.deliver of that epoch sent to this GW (rules K1, K2). */
  readonly sent: Map<string, Map<number, ReadonlySet<string>>>;
  registered: boolean;
  queue: Promise<void>;
  /** In a cluster: the generation of this node's lease on the GW's session (docs/cluster.md "GW session lease"). */
  lease: number | undefined;
  /** Another node took the GW's lease: this session is stale, closed without marking the PN offline. */
  superseded: boolean;
}

export type Medium = MessageOf<'pne.attach'>['media'][number];

export interface PneTunnel {
  readonly identity: string;
  readonly ms: MessageSocket;
  readonly control: Control;
  readonly gw: GwConn;
  queue: Promise<void>;
}

export function groupOf(srv: ServerState, sgId: string): SgState {
  const st = srv.groups.get(sgId);
  if (!st) fail(ErrorCode.NOT_FOUND, 'sgId');
  return st;
}

/** Serializes every key/membership operation of one SG (epochs strictly in order, deliveries in order). */
export function withSg<T>(srv: ServerState, sgId: string, fn: () => Promise<T>): Promise<T> {
  const prev = srv.locks.get(sgId) ?? Promise.resolve();
  const run = prev.then(fn, fn);
  const tail = run.catch(() => {});
  srv.locks.set(sgId, tail);
  tail.then(() => {
    if (srv.locks.get(sgId) === tail) srv.locks.delete(sgId);
  });
  return run;
}

export function liveTunnel(srv: ServerState, pt: PneTunnel): boolean {
  return srv.tunnels.get(pt.identity)?.has(pt) === true;
}

export function isRevoked(srv: ServerState, identity: string, serialHex: string): boolean {
  return srv.revokedIds.has(identity) || srv.revokedSerials.has(serialHex.replace(/^0+/, ''));
}

/** A Service Group's in-memory state at `epoch`: no previous epoch in grace, no timer, no GW targeted yet. */
export function newSgState(g: {
  sgId: string;
  suite: Suite;
  ownerId: string;
  joinPolicy: 'open' | 'invite';
  rekeyIntervalSec: number | null;
  members: Set<string>;
  epoch: number;
  deliveryPolicy: DeliveryPolicy | undefined;
  sourceAuth: boolean;
  updateOnJoin: boolean;
}): SgState {
  return {
    sgId: g.sgId,
    suite: g.suite,
    ownerId: g.ownerId,
    joinPolicy: g.joinPolicy,
    rekeyIntervalSec: g.rekeyIntervalSec,
    members: g.members,
    epoch: g.epoch,
    prevEpoch: undefined,
    prevUntil: 0,
    timer: undefined,
    targetGws: new Set(),
    deliveryPolicy: g.deliveryPolicy,
    sourceAuth: g.sourceAuth,
    updateOnJoin: g.updateOnJoin,
    pendingJoiners: new Set(),
    joinUpdate: undefined,
  };
}
