/**
 * The PNE's shared mutable state: one object that every concern module (connection, tunnel, groups, keys,
 * broadcast, messages, gw-messages) works on. Nothing is persisted: a PNE that restarts gets its keys again by
 * unicast delivery or key.fetch.
 */

import type { KeyObject } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import type { Ed25519KeyPair } from '../core/crypto/ed25519.js';
import { ed25519Generate } from '../core/crypto/ed25519.js';
import { GroupKeyRing } from '../core/group/keyring.js';
import { GroupReceiver, type SenderInstance } from '../core/group/receiver.js';
import { GroupSender } from '../core/group/sender.js';
import { type Control, type Logger, silentLogger, uuidOf, uuidToBytes } from '../protocol/control.js';
import type { BroadcastKeyListener } from '../protocol/index.js';
import type { MessageSocket } from '../transport/message-socket.js';
import type { ReconnectingClient } from '../transport/reconnecting-client.js';
import type { Session } from '../transport/session.js';
import type { PneConnectOptions } from './types.js';

/**
 * The PNE's session to its PN GW (connection.ts) as one lifecycle, with named transitions:
 * - `connecting`: no session yet (the first connect, or a retry after a loss is waiting or under way);
 * - `attaching`: a session is up and pne.attach / the server tunnel are in flight (the GW may already deliver
 *   keys, which are acked on this session);
 * - `attached`: pne.attach succeeded and the first server tunnel opened;
 * - `closed`: for good — `closed` (close/detach was called), `revoked` (the operator revoked this identity), or
 *   `refused` (the GW or server will never accept this identity: wrong role; or no GW URL is left whose peer is
 *   the GW expected, each dropped on an identity mismatch); no reconnect.
 * Reconnecting itself (backoff, attempts, timers, failover over `gwUrls`) is the transport's one
 * ReconnectingClient, held in `client`.
 */
export type GwLinkPhase =
  | { readonly phase: 'connecting' }
  | { readonly phase: 'attaching'; readonly session: Session; readonly gw: Control }
  | { readonly phase: 'attached'; readonly session: Session; readonly gw: Control }
  | { readonly phase: 'closed'; readonly reason: 'closed' | 'revoked' | 'refused' };

export interface GwLink {
  state: GwLinkPhase;
  /** The reconnecting session (set by the first connect). */
  client: ReconnectingClient | null;
}

/** The session and its control channel while one is up (attaching or attached), else null. */
export function liveLink(st: { link: GwLink }): { session: Session; gw: Control } | null {
  const l = st.link.state;
  return l.phase === 'attaching' || l.phase === 'attached' ? l : null;
}

/** True once the link is closed for good (close/detach, revoked, refused). */
export function linkClosed(st: { link: GwLink }): boolean {
  return st.link.state.phase === 'closed';
}

/** True while `s` is the current, open session to the GW. */
export function isCurrentSession(st: { link: GwLink }, s: Session): boolean {
  return liveLink(st)?.session === s && s.isOpen;
}

/** The end-to-end TLS session to the CPNS Server, tunnelled through the GW session (tunnel.ts). */
export interface ServerTunnel {
  ms: MessageSocket | null;
  /** Control channel over the tunnel (null while it is down). */
  srv: Control | null;
  /** Reopen attempts since the last success (backoff). */
  attempt: number;
}

/** Broadcast Group Key delivery (broadcast.ts). */
export interface BroadcastState {
  listener: BroadcastKeyListener | undefined;
  /** GKDK installs and listener (re)opens, one after the other. */
  chain: Promise<void>;
  /** Datagrams that could not be opened, by error code. */
  readonly drops: Map<string, number>;
}

export interface SenderIdCache {
  /** Weak: an instance the receiver dropped (its epoch retired) takes its entry with it. */
  readonly byInstance: WeakMap<SenderInstance, { readonly sgId: string; readonly sender: string }>;
  /** The instance of the last message, and its ids (a sender usually sends several in a row). */
  last: SenderInstance | undefined;
  ids: { readonly sgId: string; readonly sender: string };
}

export interface PneState {
  readonly identity: string;
  readonly opts: PneConnectOptions;
  readonly log: Logger;
  /** The PneClient: every SDK event is emitted on it (and the internal 'tunnel', when the tunnel comes up). */
  readonly events: EventEmitter;
  readonly ring: GroupKeyRing;
  /** Source authentication: signing keys of the members of source-authenticated SGs, by sender id (hex). */
  readonly signers: Map<string, KeyObject>;
  /** This PNE's own signing key (registered with the server over each new tunnel). */
  readonly signing: Ed25519KeyPair;
  readonly receiver: GroupReceiver;
  readonly sender: GroupSender;
  /** Messages that arrived under an epoch not held yet (UNKNOWN_EPOCH), by SG, until its key is fetched. */
  readonly pending: Map<string, Buffer[]>;
  /** SGs whose key is being fetched because of such a message (once at a time per SG). */
  readonly fetching: Set<string>;
  /** The text ids (SG, sender) of the sender instances messages came from, formatted once per instance. */
  readonly senderIds: SenderIdCache;
  /** The SG sent to last and its id bytes (messages.ts `send`; the bytes are never written to). */
  readonly sendTo: { sgId: string | undefined; bytes: Buffer };
  readonly link: GwLink;
  readonly tunnel: ServerTunnel;
  readonly broadcast: BroadcastState;
}

export function createState(opts: PneConnectOptions, events: EventEmitter): PneState {
  const identity = opts.credentials.identity;
  const ring = new GroupKeyRing();
  const signers = new Map<string, KeyObject>();
  const signing = ed25519Generate();
  return {
    identity,
    opts,
    log: opts.logger ?? silentLogger,
    events,
    ring,
    signers,
    signing,
    receiver: new GroupReceiver({
      keyRing: ring,
      senderPublicKey: (id) => signers.get(id.toString('hex')),
    }),
    sender: new GroupSender({ senderId: uuidToBytes(uuidOf(identity)), signingKey: signing.privateKey }),
    pending: new Map(),
    fetching: new Set(),
    senderIds: { byInstance: new WeakMap(), last: undefined, ids: { sgId: '', sender: '' } },
    sendTo: { sgId: undefined, bytes: Buffer.alloc(16) },
    link: { state: { phase: 'connecting' }, client: null },
    tunnel: { ms: null, srv: null, attempt: 0 },
    broadcast: { listener: undefined, chain: Promise.resolve(), drops: new Map() },
  };
}
