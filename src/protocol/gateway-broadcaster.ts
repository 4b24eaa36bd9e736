import { EventEmitter } from 'node:events';
import { type BroadcastReason, buildBroadcast, serializeGkdk } from '../core/broadcast/index.js';
import { bytesToUuid } from '../core/ids.js';
import type { BroadcastMedium } from '../transport/udp.js';
import type { GatewayBroadcastState } from './gateway-state.js';
import { type DeliveryPolicy, type MemberInfo, planDelivery } from './policy.js';

export interface MediumInfo {
  readonly name: string;
  readonly group: string;
  readonly port: number;
}

/** Body of a `gkdk.issue` control message (src/core/codec/messages.ts). */
export interface GkdkIssue {
  readonly treeId: string;
  readonly treeVersion: number;
  readonly leaf: number;
  readonly gkdk: Uint8Array;
  readonly signKey: Uint8Array;
  readonly media: MediumInfo[];
}

export interface BroadcastDeliveryResult {
  readonly broadcast: string[];
  readonly unicast: string[];
  /** Datagrams sent, counting every copy (one per medium): a 2-datagram delivery on wifi and bt is 4. */
  readonly datagrams: number;
  /** Bytes sent, over every copy. */
  readonly bytes: number;
  /** Media the datagrams went out on. */
  readonly media: string[];
}

/**
 * Broadcast Group Key delivery of one PN GW (seed §5.3.3 "broadcast based Group Key delivery"; docs/broadcast.md):
 * GKDK issuance when a broadcast-capable PNE attaches; per delivery, a Subset-Difference cover of exactly the
 * member PNEs (GKEK), signed datagrams on every medium those members listen on; members ack over unicast and
 * those that did not ack within the policy timeout get the key by unicast (event 'fallback').
 *
 * Events: 'fallback' (sgId, epoch, pneIds[]) — the GW must send these PNEs the key by unicast;
 *         'reissue' (pneIds[]) — the tree was rebuilt, send these PNEs their new GKDK by unicast.
 */
export class GatewayBroadcaster extends EventEmitter {
  readonly #state: GatewayBroadcastState;
  readonly #media: Map<string, BroadcastMedium>;
  readonly #mediaInfo: MediumInfo[];
  #policy: DeliveryPolicy;
  /** Rebuild the tree once this many leaves are spent (departed PNEs cost header bytes forever). */
  readonly #maxSpent: number;
  /** pending acks: `${sgId}:${epoch}` -> PNEs that got a broadcast and have not acked */
  readonly #pending = new Map<string, { pnes: Set<string>; timer: NodeJS.Timeout }>();
  /** Latest broadcast epoch per SG, so an ack for an old epoch does not count. */
  readonly #latest = new Map<string, number>();

  constructor(o: {
    state: GatewayBroadcastState;
    media: BroadcastMedium[];
    policy: DeliveryPolicy;
    maxSpentLeaves?: number;
  }) {
    super();
    this.#state = o.state;
    this.#media = new Map(o.media.map((m) => [m.name, m]));
    this.#mediaInfo = o.media.map((m) => ({ name: m.name, group: m.group, port: m.port }));
    this.#policy = o.policy;
    this.#maxSpent = o.maxSpentLeaves ?? Math.max(1, o.state.tree.capacity >> 2);
  }

  get policy(): DeliveryPolicy {
    return this.#policy;
  }

  set policy(p: DeliveryPolicy) {
    this.#policy = p;
  }

  get mediaNames(): string[] {
    return [...this.#media.keys()];
  }

  /** True when the PNE listens on a medium this GW broadcasts on. */
  canReach(pneMedia: readonly string[]): boolean {
    return pneMedia.some((m) => this.#media.has(m));
  }

  /** Id and version of the current tree: a PNE's GKDK ack counts only if it names these. */
  get tree(): { treeId: string; treeVersion: number } {
    const t = this.#state.tree;
    return { treeId: bytesToUuid(t.treeId), treeVersion: t.treeVersion };
  }

  /** The PNE's current leaf, if any, for the current tree. */
  hasLeaf(pneId: string): boolean {
    return this.#state.tree.leafOf(pneId) !== undefined;
  }

  /**
   * A broadcast-capable PNE attached: assign its leaf (the same one if it comes back) and build its GKDK.
   * Returns undefined when it shares no medium with this GW. Rebuilds the tree first when it is full.
   */
  issueFor(pneId: string, pneMedia: readonly string[]): GkdkIssue | undefined {
    if (!this.canReach(pneMedia)) return undefined;
    if (this.#state.tree.leafOf(pneId) === undefined && this.#state.tree.freeCount === 0) this.#rebuild();
    const leaf = this.#state.tree.assignLeaf(pneId);
    this.#state.save();
    return this.#issue(pneId, leaf);
  }

  /** The PNE left the PN: its leaf is excluded forever from this tree; rebuild when too many are spent. */
  release(pneId: string): void {
    if (!this.#state.tree.releaseLeaf(pneId)) return;
    this.#state.save();
    if (this.#state.tree.needsRebuild(this.#maxSpent)) this.#rebuild();
  }

  /** Re-issue material for every current leaf holder (after a rebuild). */
  issueAll(): Map<string, GkdkIssue> {
    const out = new Map<string, GkdkIssue>();
    for (const { pneId, leaf } of this.#state.tree.assignments()) out.set(pneId, this.#issue(pneId, leaf));
    return out;
  }

  /**
   * Deliver a Group Key to the member PNEs of this PN. Members that the policy puts on broadcast get the signed
   * datagrams; the rest are returned for unicast. A broadcast member is "delivered" only once it acks.
   */
  async deliver(o: {
    sgId: string;
    epoch: number;
    key: Uint8Array;
    members: readonly MemberInfo[];
    /** The Service Group's own delivery policy, when the operator set one; else the GW-wide policy. */
    policy?: DeliveryPolicy;
    /** Why the key was updated (the `reason` of the server's key.deliver). */
    reason?: BroadcastReason;
    /** The update's grace for the previous epoch, seconds (key.deliver `graceSec`). Default 0. */
    graceSec?: number;
    /** Seconds until activation, for a key distributed ahead (key.deliver `activateIn`). Default 0: at once. */
    activateIn?: number;
  }): Promise<BroadcastDeliveryResult> {
    const policy = o.policy ?? this.#policy;
    const plan = planDelivery(policy, o.members, this.mediaNames);
    const unicast = plan.unicast.map((m) => m.pneId);
    if (plan.broadcast.length === 0) return { broadcast: [], unicast, datagrams: 0, bytes: 0, media: [] };
    const broadcast = plan.broadcast.map((m) => m.pneId);
    const datagrams = buildBroadcast({
      gwSigningKey: this.#state.signing.privateKey,
      tree: this.#state.tree,
      sgId: Buffer.from(o.sgId.replace(/-/g, ''), 'hex'),
      epoch: o.epoch,
      groupKey: o.key,
      memberPneIds: broadcast,
      ...(o.reason !== undefined ? { reason: o.reason } : {}),
      graceSec: o.graceSec ?? 0,
      activateIn: o.activateIn ?? 0,
    });
    this.#track(o.sgId, o.epoch, broadcast, policy.ackTimeoutMs);
    let sent = 0;
    let bytes = 0;
    const media: string[] = [];
    for (const name of plan.media) {
      const medium = this.#media.get(name);
      if (!medium) continue;
      media.push(name);
      for (const d of datagrams) {
        await medium.send(d);
        sent++; // every copy counts: the same datagram on two media is two datagrams on the air
        bytes += d.length;
      }
    }
    return { broadcast, unicast, datagrams: sent, bytes, media };
  }

  /**
   * A PNE acked (sgId, epoch). Returns 'broadcast' if it was waiting for a broadcast ack, else undefined
   * (unicast acks, stale epochs and duplicates are the caller's business).
   */
  ack(sgId: string, epoch: number, pneId: string): 'broadcast' | undefined {
    const p = this.#pending.get(`${sgId}:${epoch}`);
    if (!p?.pnes.delete(pneId)) return undefined;
    if (p.pnes.size === 0) {
      clearTimeout(p.timer);
      this.#pending.delete(`${sgId}:${epoch}`);
    }
    return 'broadcast';
  }

  /** Stop tracking an SG (deleted) and every timer. */
  forget(sgId: string): void {
    for (const [k, p] of this.#pending) {
      if (k.startsWith(`${sgId}:`)) {
        clearTimeout(p.timer);
        this.#pending.delete(k);
      }
    }
    this.#latest.delete(sgId);
  }

  close(): void {
    for (const p of this.#pending.values()) clearTimeout(p.timer);
    this.#pending.clear();
  }

  #track(sgId: string, epoch: number, pnes: string[], ackTimeoutMs: number): void {
    // A newer epoch supersedes the older one: its missing acks no longer matter (catch-up skips epochs).
    const prev = this.#latest.get(sgId);
    if (prev !== undefined && prev !== epoch) {
      const old = this.#pending.get(`${sgId}:${prev}`);
      if (old) clearTimeout(old.timer);
      this.#pending.delete(`${sgId}:${prev}`);
    }
    this.#latest.set(sgId, epoch);
    const key = `${sgId}:${epoch}`;
    // A second broadcast of the same epoch (e.g. catch-up of PNEs that came back) joins the pending set and
    // restarts its timer, so no member of the first broadcast loses its fallback.
    const same = this.#pending.get(key);
    if (same) {
      clearTimeout(same.timer);
      for (const p of same.pnes) pnes.push(p);
    }
    const timer = setTimeout(() => {
      const p = this.#pending.get(key);
      this.#pending.delete(key);
      if (p && p.pnes.size > 0) this.emit('fallback', sgId, epoch, [...p.pnes]);
    }, ackTimeoutMs);
    timer.unref();
    this.#pending.set(key, { pnes: new Set(pnes), timer });
  }

  #rebuild(): void {
    this.#state.tree = this.#state.tree.rebuild();
    this.#state.save();
    this.emit(
      'reissue',
      this.#state.tree.assignments().map((a) => a.pneId),
    );
  }

  #issue(pneId: string, leaf: number): GkdkIssue {
    const t = this.#state.tree;
    return {
      treeId: bytesToUuid(t.treeId),
      treeVersion: t.treeVersion,
      leaf,
      gkdk: serializeGkdk(t.gkdkFor(pneId)),
      signKey: this.#state.signPublicRaw,
      media: this.#mediaInfo.slice(),
    };
  }
}
