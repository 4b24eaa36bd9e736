import { createCipheriv, type KeyObject } from 'node:crypto';
import { Suite, TAG_BYTES } from '../crypto/aead.js';
import { random } from '../crypto/bytes.js';
import { ED25519_SIGNATURE_BYTES, ed25519Sign } from '../crypto/ed25519.js';
import { CpnsError, ErrorCode } from '../errors.js';
import {
  FLAG_SIGNED,
  HEADER_BYTES,
  INSTANCE_BYTES,
  MAX_COUNTER,
  SENDER_ID_BYTES,
  SG_ID_BYTES,
  writeHeader,
} from './header.js';
import type { EpochKey } from './keyring.js';
import { deriveMessageKey, type MessageKey, nonceFor } from './message-key.js';

const ALG = { [Suite.AES_256_GCM]: 'aes-256-gcm', [Suite.CHACHA20_POLY1305]: 'chacha20-poly1305' } as const;
// Module-local copies of the layout constants read on every message (one read each at load, not per message).
const H = HEADER_BYTES;
const TAG = TAG_BYTES;
const SIG = ED25519_SIGNATURE_BYTES;
const SIGNED = FLAG_SIGNED;
const MAX_CTR = MAX_COUNTER;
const SG_BYTES = SG_ID_BYTES;
const CIPHER_OPTIONS = { authTagLength: TAG_BYTES } as const;
const NO_OPTIONS: ProtectOptions = {};

export interface SenderOptions {
  /** 16-byte sender id (PNE UUID bytes; nil UUID for the CPNS Server). */
  readonly senderId: Uint8Array;
  /** Ed25519 key for per-SG source authentication; required to send to SGs that demand it. */
  readonly signingKey?: KeyObject;
  /** Fixed instance id (tests/vectors only). Default: 8 random bytes per start. */
  readonly instance?: Uint8Array;
  /** First counter value (tests only). */
  readonly startCounter?: number;
}

export interface ProtectOptions {
  readonly sign?: boolean;
}

/**
 * A protected message as pieces, for a framing layer that copies into its frame anyway: the message is
 * header || ciphertext || tag [|| signature], byte for byte what `protect` returns.
 */
export interface ProtectedParts {
  readonly header: Buffer;
  readonly ciphertext: Buffer;
  readonly tag: Buffer;
  /** Ed25519 signature over header || ciphertext || tag, when signed. */
  readonly signature: Buffer | undefined;
  /** Total length of the message. */
  readonly length: number;
}

/**
 * Protects messages destined to a Service Group with the Group Key (CPNS TS §5.3.3 "Usage of Group Key":
 * confidentiality by encryption, authenticity and integrity by the MAC — here the AEAD tag).
 * One sender instance keeps one counter across all its groups and epochs; since the message key is unique
 * per (SG, epoch, sender, instance), the (key, nonce) pair never repeats.
 */
export class GroupSender {
  readonly senderId: Buffer;
  readonly instance: Buffer;
  private readonly signingKey: KeyObject | undefined;
  private counter: number;
  private readonly keys = new Map<string, MessageKey>();
  private readonly nonce = Buffer.alloc(12);
  private lastGk: EpochKey | undefined;
  private lastSg: Buffer | undefined;
  private lastMk: MessageKey | undefined;

  constructor(opts: SenderOptions) {
    if (opts.senderId.length !== SENDER_ID_BYTES) {
      throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'senderId must be 16 bytes');
    }
    this.senderId = Buffer.from(opts.senderId);
    this.instance = opts.instance ? Buffer.from(opts.instance) : random(INSTANCE_BYTES);
    if (this.instance.length !== INSTANCE_BYTES) {
      throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'instance must be 8 bytes');
    }
    this.signingKey = opts.signingKey;
    this.counter = opts.startCounter ?? 0;
  }

  /** Next counter this sender will use. */
  get nextCounter(): number {
    return this.counter;
  }

  protect(sgId: Uint8Array, gk: EpochKey, plaintext: Uint8Array, opts: ProtectOptions = NO_OPTIONS): Buffer {
    const sign = this.admit(sgId, opts);
    const counter = this.counter++;
    const mk = this.messageKey(sgId, gk);
    const sigLen = sign ? SIG : 0;
    const out = Buffer.allocUnsafe(H + plaintext.length + TAG + sigLen);
    writeHeader(out, gk.suite, sign ? SIGNED : 0, gk.epoch, sgId, this.senderId, this.instance, counter);
    const cipher = createCipheriv(
      ALG[gk.suite] as 'aes-256-gcm',
      mk.key,
      nonceFor(mk.iv, counter, this.nonce),
      CIPHER_OPTIONS,
    );
    // GCM and ChaCha20-Poly1305 need no plaintextLength (only CCM does).
    cipher.setAAD(out.subarray(0, H));
    // TypedArray#set, not Buffer#copy: the same copy without copy's argument handling (per message).
    const ct = cipher.update(plaintext);
    out.set(ct, H);
    let n = H + ct.length;
    const last = cipher.final(); // empty for GCM and ChaCha20-Poly1305
    if (last.length > 0) {
      out.set(last, n);
      n += last.length;
    }
    const tag = cipher.getAuthTag();
    out.set(tag, n);
    n += tag.length;
    if (sign) ed25519Sign(this.signingKey!, out.subarray(0, n)).copy(out, n);
    return out;
  }

  /**
   * Same message as `protect` (same counter sequence, same bytes), as pieces: no copy of the ciphertext into
   * one buffer, for a framing layer that writes header, ciphertext and tag into its frame.
   */
  protectParts(
    sgId: Uint8Array,
    gk: EpochKey,
    plaintext: Uint8Array,
    opts: ProtectOptions = NO_OPTIONS,
  ): ProtectedParts {
    const sign = this.admit(sgId, opts);
    const counter = this.counter++;
    const mk = this.messageKey(sgId, gk);
    const header = Buffer.allocUnsafe(H);
    writeHeader(header, gk.suite, sign ? SIGNED : 0, gk.epoch, sgId, this.senderId, this.instance, counter);
    const cipher = createCipheriv(
      ALG[gk.suite] as 'aes-256-gcm',
      mk.key,
      nonceFor(mk.iv, counter, this.nonce),
      CIPHER_OPTIONS,
    );
    cipher.setAAD(header);
    let ciphertext = cipher.update(plaintext);
    const last = cipher.final();
    if (last.length > 0) ciphertext = Buffer.concat([ciphertext, last]); // not for GCM or ChaCha20-Poly1305
    const tag = cipher.getAuthTag();
    const length = H + ciphertext.length + TAG + (sign ? SIG : 0);
    const signature = sign
      ? ed25519Sign(this.signingKey!, Buffer.concat([header, ciphertext, tag]))
      : undefined;
    return { header, ciphertext, tag, signature, length };
  }

  /** Argument checks shared by protect and protectParts; returns whether to sign. */
  private admit(sgId: Uint8Array, opts: ProtectOptions): boolean {
    if (sgId.length !== SG_BYTES) throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'sgId must be 16 bytes');
    if (this.counter > MAX_CTR) {
      throw new CpnsError(
        ErrorCode.COUNTER_EXHAUSTED,
        'sender counter exhausted; start a new sender instance',
      );
    }
    const sign = opts.sign ?? false;
    if (sign && !this.signingKey)
      throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'no signing key configured');
    return sign;
  }

  /** Forget derived keys of a group (after an update or delete). */
  forget(sgId: Uint8Array): void {
    this.lastGk = undefined;
    this.lastMk = undefined;
    const prefix = Buffer.from(sgId).toString('latin1');
    for (const k of this.keys.keys()) {
      if (k.startsWith(prefix)) {
        this.keys.get(k)?.key.fill(0);
        this.keys.delete(k);
      }
    }
  }

  private messageKey(sgId: Uint8Array, gk: EpochKey): MessageKey {
    // Fast path: the same group key object as last time (senders keep sending to one SG and epoch).
    if (gk === this.lastGk && this.lastMk && this.lastSg !== undefined && equalBytes(sgId, this.lastSg)) {
      return this.lastMk;
    }
    const mk = this.lookupKey(sgId, gk);
    this.lastGk = gk;
    this.lastSg = Buffer.from(sgId);
    this.lastMk = mk;
    return mk;
  }

  private lookupKey(sgId: Uint8Array, gk: EpochKey): MessageKey {
    const id = `${Buffer.from(sgId.buffer, sgId.byteOffset, sgId.byteLength).toString('latin1')}${gk.epoch}`;
    let mk = this.keys.get(id);
    if (!mk) {
      // One derived key per (SG, epoch) for this instance; drop the previous epoch's key of this SG.
      this.forget(sgId);
      mk = deriveMessageKey(gk.key, gk.suite, gk.epoch, sgId, this.senderId, this.instance);
      this.keys.set(id, mk);
    }
    return mk;
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
