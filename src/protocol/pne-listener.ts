import type { KeyObject } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { type BroadcastReason, type Gkdk, openBroadcast, parseGkdk } from '../core/broadcast/index.js';
import { ed25519PublicFromRaw } from '../core/crypto/ed25519.js';
import { CpnsError, ErrorCode } from '../core/errors.js';
import { bytesToUuid } from '../core/ids.js';
import { BroadcastMedium } from '../transport/udp.js';
import type { GkdkIssue, MediumInfo } from './gateway-broadcaster.js';

export interface BroadcastKey {
  readonly sgId: string;
  readonly epoch: number;
  readonly groupKey: Buffer;
  readonly medium: string;
  /** Why the key was updated, as signed by the GW (undefined: not given). */
  readonly reason: BroadcastReason | undefined;
  /** Seconds the previous epoch stays accepted after this one activates: install with this grace. */
  readonly graceSec: number;
  /** Seconds from receipt until this epoch becomes the one to send with (0: at once; else stage it). */
  readonly activateIn: number;
}

/**
 * PNE side of broadcast Group Key delivery: listens on the media it supports, opens every datagram with its
 * GKDK (signature first, then tree, epoch, cover lookup, unwrap — src/core/broadcast/device.ts) and emits the
 * Group Keys it can open. Datagrams that fail are dropped and counted by code; none can crash the PNE.
 * `NOT_IN_COVER` is normal for a multi-datagram delivery whose entry for this PNE is in another fragment.
 * Datagrams the medium itself discards (over 1200 bytes) are counted too, as `TOO_LARGE`.
 *
 * Events: 'key' (BroadcastKey), 'drop' (code: string).
 */
export class BroadcastKeyListener extends EventEmitter {
  readonly drops = new Map<string, number>();
  readonly #media: BroadcastMedium[];
  readonly #currentEpoch: (sgId: string) => number | undefined;
  #gkdk: Gkdk | undefined;
  #gwKey: KeyObject | undefined;

  private constructor(
    media: BroadcastMedium[],
    currentEpoch: (sgId: string) => number | undefined,
    filter?: (datagram: Buffer, medium: string) => boolean,
  ) {
    super();
    this.#media = media;
    this.#currentEpoch = currentEpoch;
    for (const m of media) {
      m.on('drop', (code: string) => this.#count(code));
      m.on('datagram', (d: Buffer) => {
        if (filter && !filter(d, m.name)) return;
        this.#onDatagram(d, m.name);
      });
    }
  }

  /** Join the media named in the GKDK issue that this PNE supports. */
  static async open(o: {
    media: readonly MediumInfo[];
    supported: readonly string[];
    currentEpoch: (sgId: string) => number | undefined;
    interfaceAddress?: string;
    /** Receive buffer to request per medium (BroadcastMediumOptions.recvBufferBytes). Default 4 MiB. */
    recvBufferBytes?: number;
    /** Tests only: return false to lose a datagram before it is processed (simulates radio loss). */
    filter?: (datagram: Buffer, medium: string) => boolean;
  }): Promise<BroadcastKeyListener> {
    const media: BroadcastMedium[] = [];
    for (const m of o.media) {
      if (!o.supported.includes(m.name)) continue;
      media.push(
        await BroadcastMedium.open({
          name: m.name,
          group: m.group,
          port: m.port,
          ...(o.interfaceAddress ? { interfaceAddress: o.interfaceAddress } : {}),
          ...(o.recvBufferBytes !== undefined ? { recvBufferBytes: o.recvBufferBytes } : {}),
        }),
      );
    }
    return new BroadcastKeyListener(media, o.currentEpoch, o.filter);
  }

  get mediaNames(): string[] {
    return this.#media.map((m) => m.name);
  }

  /** Effective receive buffer per medium, as the kernel reports it (bytes). */
  get recvBufferSizes(): ReadonlyMap<string, number | undefined> {
    return new Map(this.#media.map((m) => [m.name, m.recvBufferSize]));
  }

  /** Install (or replace, after a tree rebuild) the GKDK and the GW's broadcast-signing key. */
  setGkdk(issue: Pick<GkdkIssue, 'gkdk' | 'signKey'>): Gkdk {
    this.#gkdk = parseGkdk(issue.gkdk);
    this.#gwKey = ed25519PublicFromRaw(issue.signKey);
    return this.#gkdk;
  }

  /** Open one datagram (also used directly by tests and by a PNE that received a datagram some other way). */
  open(datagram: Uint8Array): BroadcastKey & { medium: string } {
    if (!this.#gkdk || !this.#gwKey) throw new CpnsError(ErrorCode.WRONG_TREE, 'no GKDK installed');
    // SG id sits at bytes [38, 54) (docs/broadcast.md); read unauthenticated only to pick the epoch to compare.
    const sgId = datagram.length >= 54 ? bytesToUuid(datagram.subarray(38, 54)) : '';
    const current = sgId ? this.#currentEpoch(sgId) : undefined;
    const r = openBroadcast(datagram, {
      gkdk: this.#gkdk,
      gwPublicKey: this.#gwKey,
      ...(current !== undefined ? { currentEpoch: current } : {}),
    });
    return {
      sgId: bytesToUuid(r.sgId),
      epoch: r.epoch,
      groupKey: r.groupKey,
      medium: '',
      reason: r.reason,
      graceSec: r.graceSec,
      activateIn: r.activateIn,
    };
  }

  async close(): Promise<void> {
    await Promise.all(this.#media.map((m) => m.close()));
  }

  #onDatagram(d: Buffer, medium: string): void {
    try {
      const k = this.open(d);
      this.emit('key', { ...k, medium });
    } catch (e) {
      this.#count(e instanceof CpnsError ? e.code : 'MALFORMED');
    }
  }

  #count(code: string): void {
    this.drops.set(code, (this.drops.get(code) ?? 0) + 1);
    this.emit('drop', code);
  }
}
