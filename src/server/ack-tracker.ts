/**
 * Which members still owe the server an ack of their SG's current epoch, in memory (issue #11 §1): an ack costs
 * O(1), not a status query over every member, and the ack latency metric is observed once, on the ack that
 * leaves no member pending that holds it up. One entry per SG, for its current epoch only: a new epoch replaces
 * the entry, so memory is bounded by the members of the current epochs.
 *
 * Pure bookkeeping: who is online is the caller's answer (`holds`), asked only at an ack, lazily. A member whose
 * `holds` is false when an ack looks at it (offline, served by another cluster node, waiting for its join
 * update) is set aside as `away` and does not hold the latency up; `online()` puts it back when it comes back.
 * Each member is looked at once per time it comes back, so acking all M members of an epoch costs O(M).
 */

interface Tracked {
  readonly epoch: number;
  /** When the epoch was created (ms), until the latency is observed; undefined: no latency for this epoch. */
  startedAt: number | undefined;
  /** Members that have not acked and hold the latency up (as far as the last look knows). */
  readonly pending: Set<string>;
  /** Members that have not acked but did not hold the latency up when last looked at. */
  readonly away: Set<string>;
  /** Members that acked this epoch (a member removed and added back in the same epoch stays acked). */
  readonly acked: Set<string>;
}

export class AckTracker {
  readonly #sgs = new Map<string, Tracked>();

  /**
   * `epoch` is the SG's current one (replacing whatever was tracked for it): every member but those in `acked`
   * is pending. `startedAt` undefined (a rebuild at start-up): tracked, but no latency observed.
   */
  start(
    sgId: string,
    epoch: number,
    members: Iterable<string>,
    startedAt: number | undefined,
    acked: Iterable<string> = [],
  ): void {
    const done = new Set(acked);
    const pending = new Set<string>();
    for (const m of members) if (!done.has(m)) pending.add(m);
    this.#sgs.set(sgId, { epoch, startedAt, pending, away: new Set(), acked: done });
  }

  /**
   * `pneId` acked `epoch` of `sgId`. Returns the epoch's start time when this ack is the one that leaves no
   * pending member holding the latency up (`holds`), once per epoch; else undefined. An ack of another epoch
   * than the tracked one (older, or never started here) changes nothing.
   */
  ack(sgId: string, epoch: number, pneId: string, holds: (pneId: string) => boolean): number | undefined {
    const t = this.#sgs.get(sgId);
    if (t?.epoch !== epoch) return undefined;
    t.pending.delete(pneId);
    t.away.delete(pneId);
    t.acked.add(pneId);
    if (t.startedAt === undefined) return undefined;
    for (const m of t.pending) {
      if (holds(m)) return undefined;
      t.pending.delete(m);
      t.away.add(m);
    }
    const at = t.startedAt;
    t.startedAt = undefined;
    return at;
  }

  /** A member added to the SG: pending for the current epoch unless it acked it already. */
  added(sgId: string, pneId: string): void {
    const t = this.#sgs.get(sgId);
    if (!t || t.acked.has(pneId)) return;
    t.pending.add(pneId);
  }

  /** A member removed from the SG: no longer pending (nor acked: if it comes back, it owes the epoch again). */
  removed(sgId: string, pneId: string): void {
    const t = this.#sgs.get(sgId);
    if (!t) return;
    t.pending.delete(pneId);
    t.away.delete(pneId);
    t.acked.delete(pneId);
  }

  /** `pneId` came online here: where it was set aside, it holds the latency up again. O(tracked SGs). */
  online(pneId: string): void {
    for (const t of this.#sgs.values()) {
      if (t.away.delete(pneId)) t.pending.add(pneId);
    }
  }

  /** The SG is gone. */
  drop(sgId: string): void {
    this.#sgs.delete(sgId);
  }

  /**
   * While `epoch` is still being timed: how many pending members `holds` (online here), and the first `max` of them;
   * undefined once every such member acked (or for another epoch).
   */
  lagging(
    sgId: string,
    epoch: number,
    holds: (pneId: string) => boolean,
    max: number,
  ): { count: number; some: string[] } | undefined {
    const t = this.#sgs.get(sgId);
    if (t?.epoch !== epoch || t.startedAt === undefined) return undefined;
    const some: string[] = [];
    let count = 0;
    for (const m of t.pending) {
      if (!holds(m)) continue;
      count++;
      if (some.length < max) some.push(m);
    }
    return { count, some };
  }

  /** The tracked epoch of the SG and how many members have not acked it (tests, status). */
  state(sgId: string): { epoch: number; unacked: number; timing: boolean } | undefined {
    const t = this.#sgs.get(sgId);
    if (!t) return undefined;
    return { epoch: t.epoch, unacked: t.pending.size + t.away.size, timing: t.startedAt !== undefined };
  }
}
