import type { Suite } from '../crypto/aead.js';
import { wipe } from '../crypto/bytes.js';
import { CpnsError, ErrorCode } from '../errors.js';
import { SG_ID_BYTES } from './header.js';

/**
 * The Group Keys a PNE (or the server) holds, per Service Group: the current epoch and, for a bounded
 * grace period after an update, the previous one (docs/design.md §4 "Epochs and rotation"). Older epochs are erased.
 *
 * - epoch > current            -> UNKNOWN_EPOCH (the caller fetches the current key: catch-up skips
 *                                 intermediate epochs, never replays history)
 * - epoch == previous, in grace -> accepted for receiving only; senders always use the current epoch
 * - anything older / grace over -> EXPIRED_EPOCH
 * A leave-triggered update is installed with graceMs = 0 by policy: the leaver's key stops working at once.
 */
export interface EpochKey {
  readonly epoch: number;
  readonly key: Buffer;
  readonly suite: Suite;
}

interface StagedKey extends EpochKey {
  /** Local clock time (ms) at which senders switch to this epoch. */
  readonly activateAt: number;
  readonly graceMs: number;
}

interface GroupEntry {
  readonly sgId: Buffer;
  current: EpochKey;
  previous: (EpochKey & { readonly acceptUntil: number }) | undefined;
  /** A periodic update distributed ahead of its activation (docs/group-messages.md: members switch together). */
  next: StagedKey | undefined;
  /** Per-SG policy: messages must carry a valid Ed25519 signature of their sender. */
  sourceAuth: boolean;
}

export interface InstallOptions {
  /** How long the epoch being replaced stays acceptable for receiving (ms). 0 = not at all. */
  readonly graceMs?: number;
  readonly sourceAuth?: boolean;
}

export type Clock = () => number;

export class GroupKeyRing {
  private readonly groups = new Map<string, GroupEntry>();
  private readonly now: Clock;
  /** Called when an epoch is dropped, so per-epoch state (replay windows, key caches) can be erased. */
  onEpochRetired: ((sgKey: string, epoch: number) => void) | undefined;

  constructor(now: Clock = Date.now) {
    this.now = now;
  }

  static groupKey(sgId: Uint8Array): string {
    return Buffer.from(sgId.buffer, sgId.byteOffset, sgId.byteLength).toString('latin1');
  }

  /**
   * Install a Group Key. An epoch at or below the current one is ignored (returns false): keys only move
   * forward, so a replayed or reordered delivery cannot roll a device back.
   */
  install(
    sgId: Uint8Array,
    epoch: number,
    key: Uint8Array,
    suite: Suite,
    opts: InstallOptions = {},
  ): boolean {
    if (sgId.length !== SG_ID_BYTES) throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'sgId must be 16 bytes');
    if (key.length !== 32) throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'Group Key must be 32 bytes');
    if (!Number.isInteger(epoch) || epoch < 0 || epoch > 0xffffffff) {
      throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'epoch must be a uint32');
    }
    const id = GroupKeyRing.groupKey(sgId);
    const fresh: EpochKey = { epoch, key: Buffer.from(key), suite };
    const entry = this.groups.get(id);
    if (entry === undefined) {
      this.groups.set(id, {
        sgId: Buffer.from(sgId),
        current: fresh,
        previous: undefined,
        next: undefined,
        sourceAuth: opts.sourceAuth ?? false,
      });
      return true;
    }
    if (epoch <= entry.current.epoch) return false;
    if (entry.next && entry.next.epoch <= epoch) {
      if (entry.next.epoch < epoch) this.retire(id, entry.next);
      entry.next = undefined;
    }
    if (entry.previous) this.retire(id, entry.previous);
    const graceMs = opts.graceMs ?? 0;
    if (graceMs > 0 && epoch === entry.current.epoch + 1) {
      entry.previous = { ...entry.current, acceptUntil: this.now() + graceMs };
    } else {
      // Skipped epochs (catch-up) or no grace: the old key is of no further use.
      this.retire(id, entry.current);
      entry.previous = undefined;
    }
    entry.current = fresh;
    if (opts.sourceAuth !== undefined) entry.sourceAuth = opts.sourceAuth;
    return true;
  }

  /**
   * Stage the next epoch's key ahead of its activation (periodic update). Receivers accept it at once (a sender
   * whose clock runs ahead may switch early); `current()` — the key to send with — switches at `activateAt`
   * (local clock; the caller converts a relative `activateIn` to local time, so devices without a synchronised
   * clock follow). Returns false for an epoch that is not newer than the current one.
   */
  stage(
    sgId: Uint8Array,
    epoch: number,
    key: Uint8Array,
    suite: Suite,
    activateAt: number,
    opts: { readonly graceMs?: number } = {},
  ): boolean {
    const id = GroupKeyRing.groupKey(sgId);
    const entry = this.groups.get(id);
    if (!entry) return this.install(sgId, epoch, key, suite, opts);
    this.promote(entry);
    if (epoch <= entry.current.epoch || (entry.next && epoch <= entry.next.epoch)) return false;
    if (key.length !== 32) throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'Group Key must be 32 bytes');
    if (entry.next) this.retire(id, entry.next);
    entry.next = { epoch, key: Buffer.from(key), suite, activateAt, graceMs: opts.graceMs ?? 0 };
    this.promote(entry);
    return true;
  }

  /** Epoch staged for a later activation, if any. */
  staged(sgId: Uint8Array): number | undefined {
    return this.groups.get(GroupKeyRing.groupKey(sgId))?.next?.epoch;
  }

  /** Service Group deleted (or this PNE left it): erase every key of the group. */
  remove(sgId: Uint8Array): void {
    const id = GroupKeyRing.groupKey(sgId);
    const entry = this.groups.get(id);
    if (!entry) return;
    if (entry.next) this.retire(id, entry.next);
    if (entry.previous) this.retire(id, entry.previous);
    this.retire(id, entry.current);
    this.groups.delete(id);
  }

  has(sgId: Uint8Array): boolean {
    return this.groups.has(GroupKeyRing.groupKey(sgId));
  }

  /** Key to send with: always the current epoch (a staged key becomes current at its activation time). */
  current(sgId: Uint8Array): EpochKey | undefined {
    const id = GroupKeyRing.groupKey(sgId);
    const entry = this.groups.get(id);
    if (!entry) return undefined;
    this.promote(entry);
    return entry.current;
  }

  sourceAuth(sgId: Uint8Array): boolean {
    return this.groups.get(GroupKeyRing.groupKey(sgId))?.sourceAuth ?? false;
  }

  /** Key to receive a message of `epoch` with, or a typed error saying why there is none. */
  forReceive(sgKey: string, epoch: number): EpochKey {
    const entry = this.groups.get(sgKey);
    if (!entry)
      throw new CpnsError(ErrorCode.UNKNOWN_GROUP, 'no Group Key held for this Service Group', 'sgId');
    if (epoch === entry.current.epoch) return entry.current;
    if (entry.next) {
      this.promote(entry);
      if (epoch === entry.current.epoch) return entry.current;
      if (entry.next && epoch === entry.next.epoch) return entry.next;
    }
    if (epoch > entry.current.epoch) {
      throw new CpnsError(ErrorCode.UNKNOWN_EPOCH, 'epoch not yet known', 'epoch');
    }
    const prev = entry.previous;
    if (prev && epoch === prev.epoch) {
      if (this.now() <= prev.acceptUntil) return prev;
      this.retire(sgKey, prev);
      entry.previous = undefined;
    }
    throw new CpnsError(ErrorCode.EXPIRED_EPOCH, 'epoch no longer accepted', 'epoch');
  }

  /** Source-authentication policy of a group by its internal key (hot path of the receiver). */
  sourceAuthOf(sgKey: string): boolean {
    return this.groups.get(sgKey)?.sourceAuth ?? false;
  }

  private promote(entry: GroupEntry): void {
    const next = entry.next;
    if (!next || this.now() < next.activateAt) return;
    entry.next = undefined;
    this.install(entry.sgId, next.epoch, next.key, next.suite, { graceMs: next.graceMs });
    next.key.fill(0);
  }

  private retire(sgKey: string, k: EpochKey): void {
    wipe(k.key);
    this.onEpochRetired?.(sgKey, k.epoch);
  }
}
