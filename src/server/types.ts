/** The public types of the CPNS Server role (re-exported by src/server/index.ts). */

import type { MessageOf } from '../core/codec/index.js';
import type { CpnsMetrics } from '../metrics/index.js';
import type { Logger } from '../protocol/control.js';
import type { DeliveryPolicy } from '../protocol/policy.js';
import type {
  AdminScope,
  AdminToken,
  DeliveryStatus,
  PersonalNetwork,
  ServiceGroup,
  Store,
} from '../store/store.js';
import type { ConnectionLimits } from '../transport/limits.js';
import type { HeartbeatOptions } from '../transport/session.js';
import type { ClusterOptions } from './cluster.js';

export interface ServerOptions {
  /**
   * Run as one node of a cluster (docs/cluster.md): committed Group Key epochs go out through the store's outbox
   * and this event bus; epochs committed by other nodes are delivered to the GWs this node holds. Needs a store
   * shared by the nodes (PostgreSQL).
   */
  cluster?: ClusterOptions;
  /**
   * The server's state (any backend of src/store/store.ts), opened by the composition root: the CLI, or
   * `startServer` / `openServerStore` of src/embed/server.ts for SQLite in a data directory. The server owns it
   * from then on: close() closes it, and so does a failed start.
   */
  store: Store;
  /** Default 127.0.0.1. */
  host?: string;
  /** Port of the GW session listener (mTLS: GW certificates of the CPNS CA only). Default 0 (ephemeral). */
  port?: number;
  /** Port of the enrollment listener (anonymous TLS + one-time token). Default 0 (ephemeral). */
  enrollPort?: number;
  /** Limits on not-yet-authenticated connections of the session listener (docs/transport.md "Limits"). */
  limits?: Partial<ConnectionLimits>;
  /** The same for the enrollment listener (every connection there counts for its whole life). */
  enrollLimits?: Partial<ConnectionLimits>;
  logger?: Logger;
  /** Node name in the server identity `urn:cpns:server:<name>`. Default 'node1'. */
  serverName?: string;
  /** Grace of the previous epoch after a leave-type update. Default 0 (the leaver stops at once). */
  leaveGraceSec?: number;
  /** Grace of the previous epoch after a periodic or operator update. Default 10 s. */
  periodicGraceSec?: number;
  heartbeat?: HeartbeatOptions | false;
  /** How often relay marks are flushed to the store (ms). Default 250. */
  relayMarkFlushMs?: number;
  /** Prometheus metrics (docs/operator.md). Default: a private instance without process metrics. */
  metrics?: CpnsMetrics;
  /** Operator policy for Group Key delivery in the PNs, pushed to every GW (gw.policy). Default DEFAULT_POLICY. */
  deliveryPolicy?: DeliveryPolicy;
  /**
   * Periodic updates are distributed this many seconds ahead of their activation (key.deliver with activateIn and
   * activateAt) so that members switch together. Default 0: immediate.
   */
  periodicLeadSec?: number;
  /**
   * Joins within this window share one Group Key update (backward secrecy on join, docs/protocol.md). Default
   * 20 ms: a joiner waits that much longer for its key; a burst of joins costs one update.
   */
  joinUpdateDelayMs?: number;
  /** Most PNEs one GW session may name in pne.attach (claims, proven or not). Default 10 000. */
  maxPnesPerGw?: number;
  /**
   * Accepted acks (PNEs' and GWs') go to the store in batches: a batch is written when it has this many rows (default 512),
   * else `deliveryBatchMs` after its first row (default 10 ms), and at close. A crash loses at most the rows not
   * yet written (docs/store.md "Delivery tracking").
   */
  deliveryBatchMax?: number;
  deliveryBatchMs?: number;
  /** After a key update, how long until the members online here that have not acked are logged. Default 30 000; 0: never. */
  ackReportMs?: number;
}

/** An AEAD suite as named on the wire (sg.create, key.deliver). */
export type WireSuite = MessageOf<'sg.create'>['suite'];

export interface CreateGroupInput {
  name: string;
  joinPolicy?: 'open' | 'invite';
  suite?: WireSuite;
  sourceAuth?: boolean;
  /** Update the Group Key when a member joins (backward secrecy). Default true. */
  updateOnJoin?: boolean;
  rekeyIntervalSec?: number;
  /** PNE identities or bare UUIDs (enrolled PNEs only); they are members before the first key. */
  members?: string[];
  /** This SG's delivery policy at the PN GWs (default: the server-wide policy). */
  deliveryPolicy?: DeliveryPolicy;
}

export interface GroupPolicyPatch {
  joinPolicy?: 'open' | 'invite';
  rekeyIntervalSec?: number | null;
  sourceAuth?: boolean;
  /** Update the Group Key when a member joins (default on); off: a joiner can read the current epoch's past. */
  updateOnJoin?: boolean;
  /** null = back to the server-wide policy; applies from the next key delivery. */
  deliveryPolicy?: DeliveryPolicy | null;
}

export interface GroupSummary extends ServiceGroup {
  currentEpoch: number;
  members: string[];
}

export interface ServerAdmin {
  /** The audit actor of this surface's actions: 'operator' in-process, 'operator:<token name>' via the API. */
  readonly actor: string;
  /**
   * Runs `f` (and all it starts) as caused by `id` (a UUID, e.g. the admin request's id): the key updates it
   * makes carry it as their `updateId` (docs/operator.md "Following a key update").
   */
  withCause<T>(id: string, f: () => T): T;
  /** The same surface acting for the named admin token: audit actor `operator:<tokenName>`. */
  asOperator(tokenName: string): ServerAdmin;
  /** A named admin API token with `scope` (docs/operator.md "Admin tokens"): returned once, stored hashed. */
  createAdminToken(name: string, scope: AdminScope): Promise<string>;
  listAdminTokens(): Promise<AdminToken[]>;
  revokeAdminToken(name: string): Promise<AdminToken>;
  /** A one-time enrollment token (returned once, stored hashed); `label` names the device to enroll. */
  createToken(role: 'gw' | 'pne', ttlSec?: number, label?: string): Promise<string>;
  revoke(identity: string): Promise<void>;
  createGroup(o: CreateGroupInput): Promise<{ sgId: string; epoch: number }>;
  deleteGroup(sgId: string): Promise<void>;
  addMember(sgId: string, pne: string): Promise<void>;
  /** Adds several members at once: with update on join, one key update for the whole batch. */
  addMembers(sgId: string, pnes: readonly string[]): Promise<void>;
  removeMember(sgId: string, pne: string): Promise<void>;
  rekey(sgId: string): Promise<{ epoch: number }>;
  /** Change an SG's policy: join mode, periodic update interval (null = off), source authentication. */
  updatePolicy(sgId: string, patch: GroupPolicyPatch): Promise<void>;
  listPns(): Promise<PersonalNetwork[]>;
  listGroups(): Promise<GroupSummary[]>;
  groupStatus(sgId: string): Promise<DeliveryStatus>;
}
