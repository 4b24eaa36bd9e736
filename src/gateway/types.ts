/** The public option and credential types of the PN GW (re-exported by index.ts). */
import type { Medium } from '../core/codec/index.js';
import type { Logger } from '../protocol/control.js';
import type { DeliveryPolicy } from '../protocol/index.js';
import type { ConnectionLimits } from '../transport/limits.js';
import type { ReconnectOptions } from '../transport/reconnecting-client.js';
import type { HeartbeatOptions } from '../transport/session.js';
import type { TunnelRelayOptions } from '../transport/tunnel-relay.js';

export type { Credentials } from '../protocol/enroll-client.js';

import type { Credentials } from '../protocol/enroll-client.js';

export interface GatewayOptions {
  /** The CPNS Server's session URL; a single-node server. Give this or `serverUrls`, not both. */
  serverUrl?: string;
  /**
   * The session URLs of the nodes of a server cluster (at most MAX_RECONNECT_URLS, 32): the GW keeps its one
   * session up to one of them, starting from a random one, and fails over round robin (docs/transport.md
   * "Failover over a list of URLs"); after a failover it re-registers and re-attaches its PNEs as after a
   * reconnect. Give this or `serverUrl`, not both.
   */
  serverUrls?: string[];
  credentials: Credentials;
  /** Listen address for PNEs. Default 127.0.0.1. */
  host?: string;
  /** Port of the PNE session listener (mTLS: PNE certificates of the CPNS CA only). Default 0 (ephemeral). */
  port?: number;
  /** Port of the PNE enrollment listener (anonymous TLS, relayed to the server). Default 0 (ephemeral). */
  enrollPort?: number;
  /** Limits on not-yet-authenticated connections of the session listener (docs/transport.md "Limits"). */
  limits?: Partial<ConnectionLimits>;
  /** The same for the enrollment listener. */
  enrollLimits?: Partial<ConnectionLimits>;
  logger?: Logger;
  /** Backoff of the session to the server, per full round over `serverUrls` (and its random source, tests). */
  reconnect?: ReconnectOptions;
  heartbeat?: HeartbeatOptions | false;
  /** Media this GW offers its PNEs (reported in gw.register). Default ['wifi']. */
  media?: Medium[];
  /** Tests only: observe (or tamper with) the relayed tunnel bytes. */
  relayTap?: TunnelRelayOptions['tap'];
  /** How long start() waits for the first registration with the server (ms). Default 15 000. */
  startTimeoutMs?: number;
  /**
   * The GW's own data directory: its broadcast state (Subset-Difference tree, leaf assignments, broadcast-signing
   * key) is kept there, encrypted at rest, so GKDKs survive a GW restart. Broadcast delivery is off without it.
   */
  dataDir?: string;
  /**
   * Broadcast media (one UDP multicast group per medium) for broadcast Group Key delivery, e.g.
   * `[{ name: 'wifi', group: '239.255.77.1', port: 47701 }, { name: 'bt', group: '239.255.77.2', port: 47702 }]`.
   * Needs `dataDir`. Their names are also reported to the server as media unless `media` is given.
   */
  broadcastMedia?: BroadcastMediumConfig[];
  /** Interface to send multicast on. Default 127.0.0.1 (loopback). */
  broadcastInterface?: string;
  /** Leaves of the broadcast tree (power of two, 2..65536). Default 1024. Used when the tree is created. */
  broadcastCapacity?: number;
  /** Rebuild the tree once this many leaves are spent (departed PNEs). Default capacity / 4. */
  maxSpentLeaves?: number;
  /** Delivery policy until the server pushes one (gw.policy). Default DEFAULT_POLICY. */
  deliveryPolicy?: DeliveryPolicy;
  /**
   * PNEs' acks wait at most this long (ms) before going upstream in one key.delivery.report; the report goes at
   * once when every attached target of the epoch has acked. Default 10.
   */
  reportBatchMs?: number;
  /** ... or until this many are queued (1..1024, the report's bound). Default 1024. */
  reportBatchMax?: number;
}

export interface BroadcastMediumConfig {
  name: Medium;
  group: string;
  port: number;
}

/** `PnGateway.stats()`: what this GW has open and did since it started (plain counts). */
export interface GatewayStats {
  /** Open sessions: authenticated PNE sessions, anonymous enrollment sessions, the one up to the server (0 or 1). */
  sessions: { pne: number; enroll: number; server: number };
  /** Group Key broadcasts sent (an SG epoch delivered by broadcast to at least one PNE). */
  broadcasts: number;
  /** Their datagrams. */
  broadcastDatagrams: number;
  /** PNEs given a Group Key by unicast after not acking its broadcast within `ackTimeoutMs`. */
  fallbacks: number;
  /** Group messages dropped, by error code: refused from a PNE (rule P3), or unreadable from the server. */
  drops: Record<string, number>;
}
