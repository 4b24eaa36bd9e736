/** The public option and event shapes of the PNE SDK. */
import type { Medium, MessageOf } from '../core/codec/index.js';
import type { Logger } from '../protocol/control.js';
import type { Credentials } from '../protocol/enroll-client.js';
import type { GkdkIssue } from '../protocol/index.js';
import type { ReconnectOptions } from '../transport/reconnecting-client.js';
import type { HeartbeatOptions } from '../transport/session.js';

/** An AEAD suite as named on the wire (sg.create, key.deliver). */
export type WireSuite = MessageOf<'sg.create'>['suite'];

export interface PneConnectOptions {
  /** The PN GW's session URL. Give this or `gwUrls`, not both. */
  gwUrl?: string;
  /**
   * Session URLs of the GWs this PNE may use (at most MAX_RECONNECT_URLS, 32): it keeps its session to one of
   * them, starting from a random one, and fails over round robin (docs/transport.md "Failover over a list of
   * URLs"); on another GW it re-attaches and reopens its server tunnel, and catches up to the current epochs.
   * Give this or `gwUrl`, not both.
   */
  gwUrls?: string[];
  credentials: Credentials;
  media?: Medium[];
  logger?: Logger;
  /**
   * Reconnect to a GW (and reopen the server tunnel) after a loss, with this backoff per full round over the GW
   * URLs. false = never. Default PNE_DEFAULTS.reconnect.
   */
  reconnect?: ReconnectOptions | false;
  /**
   * The first connect waits for the GW: an unreachable GW (or a failed attach) is retried with the `reconnect`
   * backoff until it succeeds; only an identity the GW/server refuses for good (revoked, wrong role, identity
   * mismatch) rejects. Default false: the first failure rejects (a device start-up fails loudly).
   */
  waitForGw?: boolean;
  heartbeat?: HeartbeatOptions | false;
  /** How long createGroup/joinGroup wait for the Group Key before fetching it over the tunnel (ms). */
  keyWaitMs?: number;
  /** Interface to join the broadcast media on. Default 127.0.0.1 (loopback). */
  broadcastInterface?: string;
  /** Broadcast delivery off: never listen on a medium (the GW then serves this PNE by unicast). Default false. */
  noBroadcast?: boolean;
  /** Tests only: return true to lose a broadcast datagram before it is processed (simulated radio loss). */
  dropBroadcast?: (datagram: Buffer, medium: string) => boolean;
  /** Tests/diagnostics only: sees each GKDK issue received (secret material: never log it). */
  onGkdkIssue?: (issue: GkdkIssue) => void;
}

export interface GroupMessageEvent {
  sgId: string;
  /** PNE identity of the sender, or 'server'. */
  sender: string;
  epoch: number;
  plaintext: Buffer;
}

export interface CreateGroupOptions {
  name: string;
  /** Who may join: 'invite' (default: the owner invites) or 'open' (any PNE). */
  joinPolicy?: MessageOf<'sg.create'>['joinPolicy'];
  suite?: WireSuite;
  sourceAuth?: boolean;
  rekeyIntervalSec?: number;
}
