/**
 * The PN GW's shared mutable state: one object that every concern module (upstream, upstream-messages,
 * pne-session, pne-messages, keys, reports, relay, enrollment) works on. Nothing here survives a restart except
 * what the broadcaster keeps in `dataDir` (broadcast.ts): keys and PNE sessions come back from the server and
 * the PNEs.
 */
import type { EventEmitter } from 'node:events';
import type { Medium, MessageOf } from '../core/codec/index.js';
import { HeaderIdText, senderIdentity } from '../core/ids.js';
import { Control, type Logger } from '../protocol/control.js';
import type { DeliveryPolicy, GatewayBroadcaster } from '../protocol/index.js';
import type { ReconnectingClient } from '../transport/reconnecting-client.js';
import type { SecureServer } from '../transport/secure-server.js';
import type { Session } from '../transport/session.js';
import type { TunnelRelay } from '../transport/tunnel-relay.js';
import type { BroadcastMedium } from '../transport/udp.js';
import type { GatewayOptions } from './types.js';

export type DeliveryEntry = MessageOf<'key.delivery.report'>['entries'][number];

/** A key.delivery.report being gathered (reports.ts). */
export interface PendingReport {
  readonly sgId: string;
  readonly epoch: number;
  readonly entries: DeliveryEntry[];
}

/** The Group Key this GW holds for one SG (from the server's key.deliver). */
export interface KeyEntry {
  epoch: number;
  key: Buffer;
  suite: MessageOf<'key.deliver'>['suite'];
  reason: MessageOf<'key.deliver'>['reason'];
  graceSec: number;
  previousEpoch: number | undefined;
  anchors: MessageOf<'key.deliver'>['senderAnchors'];
  activateAt: number | undefined;
  /** Local time (this GW's clock) at which a key distributed ahead of its activation becomes active. */
  activateBy: number | undefined;
  targets: Set<string>;
  /** The upstream session (`GatewayState.upGeneration`) that delivered this entry: acks are reported on it only. */
  upGeneration: number;
  /** The SG's own delivery policy (from the server), overriding the GW-wide one. */
  policy: DeliveryPolicy | undefined;
  /** The SG requires signed messages (passed on to the member PNEs with the key). */
  sourceAuth: boolean;
  /** The server's id of this key update, for the logs (docs/operator.md "Following a key update"). */
  updateId: string | undefined;
  /**
   * Attached targets whose ack of this epoch is not yet reported on the current upstream session: counted at the
   * first report of the epoch, less one per report since (reports.ts); at 0 the report goes at once. Undefined
   * until counted, and again after a new upstream session.
   */
  unreported?: number | undefined;
}

/** Where Group Key delivery of one SG stands for one PNE (on its current session). */
export interface SgDelivery {
  /** Highest epoch sent to this PNE (on this session). */
  sent: number | undefined;
  /** Highest epoch the PNE acked (it holds the SG: later updates may go by broadcast). */
  acked: number | undefined;
  /** Highest epoch reported to the server on the current upstream session (one report per PNE, epoch, session). */
  reported: number | undefined;
  /** How and when the PNE acked `acked` (reported again on a new upstream session, reports.ts). */
  ackedHow: { method: DeliveryEntry['method']; at: number } | undefined;
  /** Epoch this PNE was sent by broadcast / by unicast fallback (how its ack is reported). */
  broadcastEpoch: number | undefined;
  fallbackEpoch: number | undefined;
}

/**
 * The PNE's lifecycle on its session: `connected` (session up, no hello yet), `attached` (it said pne.attach:
 * it is attached upstream whenever the GW is registered, gets keys and group messages), `detached` (it said
 * pne.detach: it left the PN, the session closes shortly).
 */
export type PnePhase = 'connected' | 'attached' | 'detached';

export interface PneConn {
  readonly id: string;
  readonly session: Session;
  readonly control: Control;
  media: Medium[];
  phase: PnePhase;
  /** Key delivery per SG. */
  readonly sgs: Map<string, SgDelivery>;
  /** Tree (id:version) of the GKDK the PNE acked; broadcast-capable only while it matches the current tree. */
  gkdkTree: string | undefined;
  queue: Promise<void>;
  /** The 16 id bytes of `id`, as a group message header of this PNE carries them (made on first use). */
  senderId?: Buffer;
}

/** Plain counts of what this GW did (`PnGateway.stats()`; the CLI exports them to Prometheus). */
export interface GatewayCounters {
  /** Group Key broadcasts sent (an SG epoch delivered by broadcast to at least one PNE), and their datagrams. */
  broadcasts: number;
  broadcastDatagrams: number;
  /** PNEs given a key by unicast after not acking its broadcast in time. */
  fallbacks: number;
  /** Group messages dropped, by error code. */
  readonly drops: Map<string, number>;
  /** Anonymous enrollment sessions open now. */
  enrollSessions: number;
}

export interface GatewayState {
  readonly identity: string;
  readonly opts: GatewayOptions;
  readonly log: Logger;
  /** The public emitter (the PnGateway itself): 'registered', 'key', 'delivery', 'gkdk', 'policy', 'revoked'. */
  readonly events: EventEmitter;
  /** The PNE session listener (mTLS). */
  readonly pneServer: SecureServer;
  /** The anonymous surface: its own listener and limits (docs/transport.md "Limits"). */
  readonly enrollServer: SecureServer;
  readonly client: ReconnectingClient;
  readonly pnes: Map<string, PneConn>;
  readonly keys: Map<string, KeyEntry>;
  readonly revoked: Set<string>;
  readonly broadcaster: GatewayBroadcaster | undefined;
  readonly media: BroadcastMedium[];
  /** Broadcast sends, one after the other (datagrams of successive epochs leave in order). */
  bq: Promise<void>;
  /** `${sgId}|${epoch}` -> pending delivery report entries (reports.ts). */
  readonly reports: Map<string, PendingReport>;
  reportTimer: NodeJS.Timeout | undefined;
  /** Counts the sessions up to the server (reports.ts `newUpstreamSession`). */
  upGeneration: number;
  /** Relay of the PNE ↔ server end-to-end tunnels (created with the first server session). */
  relay: TunnelRelay | null;
  up: Session | null;
  /** URL of the server node of `up` (logged, `PnGateway.serverUrl`). */
  upUrl: string | null;
  upControl: Control | null;
  registered: boolean;
  closed: boolean;
  readonly counters: GatewayCounters;
  /** Text ids of the last group message's header, from a PNE and from the server (formatted once per run). */
  readonly idsFromPne: HeaderIdText;
  readonly idsFromServer: HeaderIdText;
}

export function createState(o: {
  opts: GatewayOptions;
  log: Logger;
  events: EventEmitter;
  pneServer: SecureServer;
  enrollServer: SecureServer;
  client: ReconnectingClient;
  broadcaster: GatewayBroadcaster | undefined;
  media: BroadcastMedium[];
}): GatewayState {
  return {
    ...o,
    identity: o.opts.credentials.identity,
    pnes: new Map(),
    keys: new Map(),
    revoked: new Set(),
    bq: Promise.resolve(),
    reports: new Map(),
    reportTimer: undefined,
    upGeneration: 0,
    relay: null,
    up: null,
    upUrl: null,
    upControl: null,
    registered: false,
    closed: false,
    counters: { broadcasts: 0, broadcastDatagrams: 0, fallbacks: 0, drops: new Map(), enrollSessions: 0 },
    idsFromPne: new HeaderIdText(senderIdentity),
    idsFromServer: new HeaderIdText(senderIdentity),
  };
}

/** A group message this GW dropped, counted by its error code. */
export function countDrop(st: GatewayState, code: string): void {
  st.counters.drops.set(code, (st.counters.drops.get(code) ?? 0) + 1);
}

/** A new PNE session, not attached yet. */
export function newPneConn(id: string, session: Session): PneConn {
  return {
    id,
    session,
    control: Control.forSession(session),
    media: [],
    phase: 'connected',
    sgs: new Map(),
    gkdkTree: undefined,
    queue: Promise.resolve(),
  };
}

/** The PNE's delivery record of an SG (created empty on first use). */
export function deliveryOf(c: PneConn, sgId: string): SgDelivery {
  let d = c.sgs.get(sgId);
  if (!d) {
    d = {
      sent: undefined,
      acked: undefined,
      reported: undefined,
      ackedHow: undefined,
      broadcastEpoch: undefined,
      fallbackEpoch: undefined,
    };
    c.sgs.set(sgId, d);
  }
  return d;
}

/** The current broadcast tree as `id:version`, or undefined when broadcast is not set up. */
export function treeTag(st: GatewayState): string | undefined {
  const t = st.broadcaster?.tree;
  return t ? `${t.treeId}:${t.treeVersion}` : undefined;
}
