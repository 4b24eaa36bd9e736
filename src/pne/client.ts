/**
 * The PNE device SDK (docs/protocol.md): a secure session to its PN GW (unicast Group Key delivery, Service
 * Group messages as frame 0x05), and an end-to-end TLS session to the CPNS Server tunnelled through the GW
 * (Service Group management, key catch-up) that the GW cannot read.
 *
 * Broadcast Group Key delivery (seed §5.3.3, docs/broadcast.md): when the GW sends this PNE its GKDK
 * (`gkdk.issue`), the PNE listens on the broadcast media it supports (`media` in the connect options) and installs
 * the Group Key updates it can open for the SGs it already holds; datagrams it cannot open are counted by error
 * code (`broadcastDrops`).
 *
 * Events: 'message' {sgId, sender, epoch, plaintext}, 'key' {sgId, epoch, reason, method, medium?, activateAt?}
 * (activateAt: a key staged ahead of its activation), 'group-deleted' {sgId}, 'removed' {sgId}, 'drop' {code, sgId?}
 * (a message that failed to open, by error code), 'broadcast-drop' {code}, 'gkdk' {treeId, treeVersion, leaf},
 * 'disconnected' (close code), 'reconnecting' {attempt, delayMs, gwUrl} (before each try to reach a GW again),
 * 'reconnected', 'revoked' (the operator revoked this identity: no more reconnects).
 *
 * This class is the facade: it owns one PneState (state.ts) and delegates to one module per concern:
 * connection (GW session, reconnect), tunnel (server tunnel), groups (SG API), keys, broadcast, messages,
 * gw-messages (what the GW may send).
 */
import { EventEmitter } from 'node:events';
import type { OpenedMessage } from '../core/group/receiver.js';
import { type Credentials, enrollAt } from '../protocol/enroll-client.js';
import { close, connect, detach } from './connection.js';
import * as groups from './groups.js';
import { currentEpoch, stagedEpoch } from './keys.js';
import { open, send } from './messages.js';
import { createState, liveLink, type PneState } from './state.js';
import type { CreateGroupOptions, PneConnectOptions } from './types.js';

export class PneClient extends EventEmitter {
  readonly identity: string;
  readonly #st: PneState;

  private constructor(opts: PneConnectOptions) {
    super();
    this.#st = createState(opts, this);
    this.identity = this.#st.identity;
  }

  /** Enrolls a PNE with a one-time token through its GW (which relays to the server). */
  static enroll(o: { enrollUrl: string; caPem: string; token: string }): Promise<Credentials> {
    return enrollAt(o.enrollUrl, o.caPem, o.token, 'pne', 'gw');
  }

  static async connect(opts: PneConnectOptions): Promise<PneClient> {
    const c = new PneClient(opts);
    await connect(c.#st);
    return c;
  }

  /** URL of the GW this PNE is attached to (undefined while it is not). */
  get gwUrl(): string | undefined {
    return this.connected ? (this.#st.link.client?.url ?? undefined) : undefined;
  }

  /** True when both the GW session and the server tunnel are up. */
  get connected(): boolean {
    return liveLink(this.#st)?.session.isOpen === true && this.#st.tunnel.srv !== null;
  }

  currentEpoch(sgId: string): number | undefined {
    return currentEpoch(this.#st, sgId);
  }

  /** Epoch staged for a later activation (periodic update distributed ahead), if any. */
  stagedEpoch(sgId: string): number | undefined {
    return stagedEpoch(this.#st, sgId);
  }

  /** Broadcast datagrams this PNE could not open, by error code (NOT_IN_COVER, STALE_EPOCH, BAD_SIGNATURE...). */
  get broadcastDrops(): ReadonlyMap<string, number> {
    return this.#st.broadcast.drops;
  }

  /** Media this PNE currently listens on for broadcast Group Key delivery (empty: unicast only). */
  get broadcastMedia(): string[] {
    return this.#st.broadcast.listener?.mediaNames ?? [];
  }

  // ------------------------------------------------------------------------------------------- SG API

  createGroup(o: CreateGroupOptions): Promise<{ sgId: string; epoch: number }> {
    return groups.createGroup(this.#st, o);
  }

  joinGroup(sgId: string): Promise<void> {
    return groups.joinGroup(this.#st, sgId);
  }

  leaveGroup(sgId: string): Promise<void> {
    return groups.leaveGroup(this.#st, sgId);
  }

  invite(sgId: string, pne: string): Promise<void> {
    return groups.invite(this.#st, sgId, pne);
  }

  removeMember(sgId: string, pne: string): Promise<void> {
    return groups.removeMember(this.#st, sgId, pne);
  }

  deleteGroup(sgId: string): Promise<void> {
    return groups.deleteGroup(this.#st, sgId);
  }

  /**
   * Resolves once a Group Key of `sgId` (epoch >= minEpoch) is installed; after `timeoutMs` without one it fetches
   * the current key over the tunnel (NOT_MEMBER / NOT_FOUND reject).
   */
  async waitForKey(sgId: string, minEpoch = 1, timeoutMs?: number): Promise<number> {
    await groups.waitKey(this.#st, sgId, minEpoch, timeoutMs);
    return this.currentEpoch(sgId) ?? 0;
  }

  /** Asks the server for the current Group Key (catch-up: intermediate epochs are skipped). */
  fetchKey(sgId: string): Promise<number> {
    return groups.fetchKey(this.#st, sgId);
  }

  /**
   * Protects `data` with the current Group Key of the SG and sends it to the GW (frame 0x05).
   * Returns the protected message (what travels on the wire).
   */
  send(sgId: string, data: Uint8Array | string): Buffer {
    return send(this.#st, sgId, data);
  }

  /** Tries to open a captured protected message with the keys this PNE holds (throws CpnsError on failure). */
  open(raw: Uint8Array): OpenedMessage {
    return open(this.#st, raw);
  }

  /** Leaves the PN: the server detaches this PNE and updates the keys of its SGs; then closes. */
  detach(): Promise<void> {
    return detach(this.#st);
  }

  close(): Promise<void> {
    return close(this.#st);
  }
}
