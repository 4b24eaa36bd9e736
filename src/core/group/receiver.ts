import { createDecipheriv, type KeyObject } from 'node:crypto';
import { Suite, TAG_BYTES } from '../crypto/aead.js';
import { ED25519_SIGNATURE_BYTES, ed25519Verify } from '../crypto/ed25519.js';
import { CpnsError, ErrorCode } from '../errors.js';
import { FLAG_SIGNED, type GroupHeader, HEADER_BYTES, OFF, readHeader } from './header.js';
import type { GroupKeyRing } from './keyring.js';
import { deriveMessageKey, type MessageKey, nonceFor } from './message-key.js';
import { ReplayWindow } from './replay-window.js';

const ALG = { [Suite.AES_256_GCM]: 'aes-256-gcm', [Suite.CHACHA20_POLY1305]: 'chacha20-poly1305' } as const;
// Module-local copies of the layout constants read on every message (one read each at load, not per message).
const H = HEADER_BYTES;
const TAG = TAG_BYTES;
const SIG = ED25519_SIGNATURE_BYTES;
const ID_START = OFF.epoch;
const ID_END = OFF.counter;
const SG_IN_ID = OFF.sgId - OFF.epoch;
const SIGNED = FLAG_SIGNED;
const CIPHER_OPTIONS = { authTagLength: TAG_BYTES } as const;

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
  /**
   * The sender instance the message came from: the same object for every message of one (epoch, SG, sender,
   * instance), so a caller can cache what it derives from the header ids (their text form) instead of
   * formatting them per message.
   */
  readonly from: SenderInstance;
}

/** One sender instance in one epoch of one SG, as a receiver tracks it (copies of the header's id bytes). */
export interface SenderInstance {
  readonly epoch: number;
  readonly sgId: Buffer;
  readonly senderId: Buffer;
  readonly instance: Buffer;
}

interface PeerState {
  readonly mk: MessageKey;
  readonly window: ReplayWindow;
  /** The map key (header bytes [4, 48)) and its SG part, kept so a repeat sender needs no string per message. */
  readonly id: string;
  readonly sgKey: string;
  /** Header bytes [4, 48) of this sender instance. */
  readonly idBytes: Buffer;
  /** What `open` returns as `from` (no key material). */
  readonly from: SenderInstance;
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
  /** The sender instance of the last authenticated message (a sender usually sends several in a row). */
  private last: PeerState | undefined;

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
      if (state.window.highest < floor) {
        this.peers.set(id, { ...state, window: ReplayWindow.anchoredAt(floor) });
        this.last = undefined;
      }
      return;
    }
    const prev = this.anchors.get(id);
    if (prev === undefined || prev < floor) this.anchors.set(id, floor);
  }

  open(msg: Buffer): OpenedMessage {
    if (msg.length > this.maxBytes)
      throw new CpnsError(ErrorCode.TOO_LARGE, 'group message too large', 'message');
    const header = readHeader(msg);
    const signed = (header.flags & SIGNED) !== 0;
    const sigLen = signed ? SIG : 0;
    if (msg.length < H + TAG + sigLen) {
      throw new CpnsError(ErrorCode.MALFORMED, 'message shorter than header and tag', 'message');
    }
    // The sender instance: epoch || sgId || senderId || instance (bytes 4..48); sgId is inside it. The same
    // instance as last time is recognised by its bytes, without formatting the map key.
    const last = this.last;
    let known: PeerState | undefined;
    let id: string;
    if (last !== undefined && sameId(msg, last.idBytes)) {
      known = last;
      id = last.id;
    } else {
      id = msg.toString('latin1', ID_START, ID_END);
      known = this.peers.get(id);
    }
    const sgKey = known?.sgKey ?? id.substring(SG_IN_ID, SG_IN_ID + 16);
    const gk = this.ring.forReceive(sgKey, header.epoch);
    if (gk.suite !== header.suite) {
      throw new CpnsError(ErrorCode.UNSUPPORTED_SUITE, 'suite differs from the Service Group suite', 'suite');
    }

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
    const ctEnd = end - TAG;
    const decipher = createDecipheriv(
      ALG[gk.suite] as 'aes-256-gcm',
      mk.key,
      nonceFor(mk.iv, header.counter, this.nonce),
      CIPHER_OPTIONS,
    );
    decipher.setAuthTag(msg.subarray(ctEnd, end));
    // GCM and ChaCha20-Poly1305 need no plaintextLength (only CCM does).
    decipher.setAAD(msg.subarray(0, H));
    const body = decipher.update(msg.subarray(H, ctEnd));
    try {
      decipher.final();
    } catch {
      body.fill(0);
      throw new CpnsError(ErrorCode.BAD_MAC, 'message authentication failed');
    }

    if (known) {
      known.window.commit(header.counter);
      this.last = known;
      return { header, plaintext: body, signed, from: known.from };
    }
    const window =
      anchor === undefined
        ? new ReplayWindow(this.windowSize)
        : ReplayWindow.anchoredAt(anchor, this.windowSize);
    window.commit(header.counter);
    const idBytes = Buffer.from(msg.subarray(ID_START, ID_END));
    const from: SenderInstance = Object.freeze({
      epoch: header.epoch,
      // Copies of their own, not views into idBytes: a caller writing into them cannot change what is matched.
      sgId: Buffer.from(header.sgId),
      senderId: Buffer.from(header.senderId),
      instance: Buffer.from(header.instance),
    });
    const state: PeerState = { mk, window, id, sgKey, idBytes, from };
    this.peers.set(id, state);
    this.anchors.delete(id);
    this.last = state;
    return { header, plaintext: body, signed, from: state.from };
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
          if (v === this.last) this.last = undefined;
        }
      }
    }
  }
}

/** Header bytes [4, 48) of `msg` equal `id` (44 bytes; not secret: they are the clear header). */
function sameId(msg: Buffer, id: Buffer): boolean {
  for (let i = 0; i < 44; i++) if (msg[ID_START + i] !== id[i]) return false;
  return true;
}

function peerKey(epoch: number, sgId: Uint8Array, senderId: Uint8Array, instance: Uint8Array): string {
  const b = Buffer.allocUnsafe(44);
  b.writeUInt32BE(epoch, 0);
  b.set(sgId, 4);
  b.set(senderId, 20);
  b.set(instance, 36);
  return b.toString('latin1');
}
