import { createDecipheriv, type KeyObject } from 'node:crypto';
import { Suite, TAG_BYTES } from '../crypto/aead.js';
import { ED25519_SIGNATURE_BYTES, ed25519Verify } from '../crypto/ed25519.js';
import { CpnsError, ErrorCode } from '../errors.js';
import { FLAG_SIGNED, type GroupHeader, HEADER_BYTES, OFF, readHeader } from './header.js';
import type { GroupKeyRing } from './keyring.js';
import { deriveMessageKey, type MessageKey, nonceFor } from './message-key.js';
import { ReplayWindow } from './replay-window.js';

const ALG = { [Suite.AES_256_GCM]: 'aes-256-gcm', [Suite.CHACHA20_POLY1305]: 'chacha20-poly1305' } as const;

export interface ReceiverOptions {
  readonly keyRing: GroupKeyRing;
  /** Public key of a sender, for SGs with source authentication. */
  readonly senderPublicKey?: (senderId: Buffer) => KeyObject | undefined;
  /** Largest protected message accepted, in bytes (default 64 KiB + overhead). */
  readonly maxMessageBytes?: number;
  /** Replay window size per sender instance (default 256). */
  readonly replayWindow?: number;
  /** Most sender instances tracked at once (default 4096); beyond it new instances are refused. */
  readonly maxSenderInstances?: number;
}

export interface OpenedMessage {
  readonly header: GroupHeader;
  readonly plaintext: Buffer;
  readonly signed: boolean;
}

interface PeerState {
  readonly mk: MessageKey;
  readonly window: ReplayWindow;
}

export const DEFAULT_MAX_MESSAGE_BYTES = 65536 + HEADER_BYTES + TAG_BYTES + ED25519_SIGNATURE_BYTES;

/**
 * Verifies and decrypts messages destined to a Service Group. Order of checks (cheap and key-independent
 * first; nothing is remembered about a message before it authenticated):
 *   size -> header -> key lookup by (SG, epoch) -> replay pre-check -> signature -> AEAD tag -> replay commit.
 */
export class GroupReceiver {
  private readonly ring: GroupKeyRing;
  private readonly senderPublicKey: ReceiverOptions['senderPublicKey'];
  private readonly maxBytes: number;
  private readonly windowSize: number;
  private readonly maxPeers: number;
  /** Keyed by header bytes [4, 48): epoch || sgId || senderId || instance. */
  private readonly peers = new Map<string, PeerState>();
  /** Replay floors given by the server with a key (docs/replay.md), applied when the instance first speaks. */
  private readonly anchors = new Map<string, number>();
  private readonly nonce = Buffer.alloc(12);

  constructor(opts: ReceiverOptions) {
    this.ring = opts.keyRing;
    this.senderPublicKey = opts.senderPublicKey;
    this.maxBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.windowSize = opts.replayWindow ?? 256;
    this.maxPeers = opts.maxSenderInstances ?? 4096;
    const previous = this.ring.onEpochRetired;
    this.ring.onEpochRetired = (sgKey, epoch) => {
      previous?.(sgKey, epoch);
      this.dropEpoch(sgKey, epoch);
    };
  }

  /** Number of sender instances currently tracked (for metrics and tests). */
  get trackedSenders(): number {
    return this.peers.size;
  }

  /**
   * Replay anchor: every counter <= `floor` of this sender instance in this epoch is treated as seen.
   * The server sends the anchors of an epoch with the key when a device (re)fetches it mid-epoch.
   */
  anchor(sgId: Uint8Array, epoch: number, senderId: Uint8Array, instance: Uint8Array, floor: number): void {
    const id = peerKey(epoch, sgId, senderId, instance);
    const state = this.peers.get(id);
    if (state) {
      if (state.window.highest < floor)
        this.peers.set(id, { mk: state.mk, window: ReplayWindow.anchoredAt(floor) });
      return;
    }
    const prev = this.anchors.get(id);
    if (prev === undefined || prev < floor) this.anchors.set(id, floor);
  }

  open(msg: Buffer): OpenedMessage {
    if (msg.length > this.maxBytes)
      throw new CpnsError(ErrorCode.TOO_LARGE, 'group message too large', 'message');
    const header = readHeader(msg);
    const signed = (header.flags & FLAG_SIGNED) !== 0;
    const sigLen = signed ? ED25519_SIGNATURE_BYTES : 0;
    if (msg.length < HEADER_BYTES + TAG_BYTES + sigLen) {
      throw new CpnsError(ErrorCode.MALFORMED, 'message shorter than header and tag', 'message');
    }
    // One string for the sender instance: epoch || sgId || senderId || instance (bytes 4..48); sgId is inside it.
    const id = msg.toString('latin1', OFF.epoch, OFF.counter);
    const sgKey = id.substring(OFF.sgId - OFF.epoch, OFF.sgId - OFF.epoch + 16);
    const gk = this.ring.forReceive(sgKey, header.epoch);
    if (gk.suite !== header.suite) {
      throw new CpnsError(ErrorCode.UNSUPPORTED_SUITE, 'suite differs from the Service Group suite', 'suite');
    }

    const known = this.peers.get(id);
    if (known && !known.window.check(header.counter)) {
      throw new CpnsError(ErrorCode.REPLAY, 'counter already seen or too old', 'counter');
    }
    const anchor = known || this.anchors.size === 0 ? undefined : this.anchors.get(id);
    if (anchor !== undefined && header.counter <= anchor) {
      throw new CpnsError(ErrorCode.REPLAY, 'counter already seen or too old', 'counter');
    }
    if (!known && this.peers.size >= this.maxPeers) {
      throw new CpnsError(ErrorCode.TOO_LARGE, 'too many sender instances tracked', 'instance');
    }

    const end = msg.length - sigLen;
    if (signed || this.ring.sourceAuthOf(sgKey)) {
      if (!signed)
        throw new CpnsError(ErrorCode.SIGNATURE_REQUIRED, 'Service Group requires signed messages');
      const pub = this.senderPublicKey?.(header.senderId);
      if (!pub) throw new CpnsError(ErrorCode.SIGNATURE_REQUIRED, 'no public key known for the sender');
      if (!ed25519Verify(pub, msg.subarray(0, end), msg.subarray(end))) {
        throw new CpnsError(ErrorCode.BAD_SIGNATURE, 'sender signature invalid');
      }
    }

    const mk =
      known?.mk ??
      deriveMessageKey(gk.key, gk.suite, header.epoch, header.sgId, header.senderId, header.instance);
    const ctEnd = end - TAG_BYTES;
    const decipher = createDecipheriv(
      ALG[gk.suite] as 'aes-256-gcm',
      mk.key,
      nonceFor(mk.iv, header.counter, this.nonce),
      {
        authTagLength: TAG_BYTES,
      },
    );
    decipher.setAuthTag(msg.subarray(ctEnd, end));
    decipher.setAAD(msg.subarray(0, HEADER_BYTES), { plaintextLength: ctEnd - HEADER_BYTES });
    const body = decipher.update(msg.subarray(HEADER_BYTES, ctEnd));
    try {
      decipher.final();
    } catch {
      body.fill(0);
      throw new CpnsError(ErrorCode.BAD_MAC, 'message authentication failed');
    }

    if (known) {
      known.window.commit(header.counter);
    } else {
      const window =
        anchor === undefined
          ? new ReplayWindow(this.windowSize)
          : ReplayWindow.anchoredAt(anchor, this.windowSize);
      window.commit(header.counter);
      this.peers.set(id, { mk, window });
      this.anchors.delete(id);
    }
    return { header, plaintext: body, signed };
  }

  private dropEpoch(sgKey: string, epoch: number): void {
    const e = Buffer.alloc(4);
    e.writeUInt32BE(epoch);
    const prefix = e.toString('latin1') + sgKey;
    for (const map of [this.peers, this.anchors] as Map<string, unknown>[]) {
      for (const k of map.keys()) {
        if (k.startsWith(prefix)) {
          const v = map.get(k) as PeerState | number;
          if (typeof v === 'object') v.mk.key.fill(0);
          map.delete(k);
        }
      }
    }
  }
}

function peerKey(epoch: number, sgId: Uint8Array, senderId: Uint8Array, instance: Uint8Array): string {
  const b = Buffer.allocUnsafe(44);
  b.writeUInt32BE(epoch, 0);
  b.set(sgId, 4);
  b.set(senderId, 20);
  b.set(instance, 36);
  return b.toString('latin1');
}
