import { isSuite, type Suite } from '../crypto/aead.js';
import { CpnsError, ErrorCode } from '../errors.js';

/**
 * Fixed binary header of a message destined to a Service Group (CPNS TS §5.3.2/§5.3.3: protected by the
 * Group Key, not by a secure session). The whole header is the AEAD's associated data, so every field is
 * covered by the Group Key MAC (the GCM/Poly1305 tag).
 *
 *   off len field
 *     0   1 version     = 1
 *     1   1 suite       1 = AES-256-GCM, 2 = ChaCha20-Poly1305
 *     2   1 flags       bit 0: an Ed25519 signature trails the message; other bits must be 0
 *     3   1 reserved    = 0
 *     4   4 epoch       uint32 BE, Group Key epoch
 *     8  16 sgId        Service Group id (UUID bytes)
 *    24  16 senderId    PNE id (UUID bytes); the nil UUID is the CPNS Server
 *    40   8 instance    random per sender start: (sender, instance) never reuses a counter
 *    48   8 counter     uint64 BE, < 2^48; the AEAD nonce is derived from it
 *    56     ciphertext || tag(16) [ || signature(64) ]
 */
export const GROUP_MESSAGE_VERSION = 1;
export const HEADER_BYTES = 56;
export const SG_ID_BYTES = 16;
export const SENDER_ID_BYTES = 16;
export const INSTANCE_BYTES = 8;
/** Counters stop at 2^48 - 1 (far beyond any device's lifetime at line rate); then the sender restarts. */
export const MAX_COUNTER = 2 ** 48 - 1;
export const FLAG_SIGNED = 0x01;

export const OFF = {
  version: 0,
  suite: 1,
  flags: 2,
  reserved: 3,
  epoch: 4,
  sgId: 8,
  senderId: 24,
  instance: 40,
  counter: 48,
} as const;

export interface GroupHeader {
  readonly version: number;
  readonly suite: Suite;
  readonly flags: number;
  readonly epoch: number;
  readonly sgId: Buffer;
  readonly senderId: Buffer;
  readonly instance: Buffer;
  readonly counter: number;
}

export function writeHeader(
  out: Buffer,
  suite: Suite,
  flags: number,
  epoch: number,
  sgId: Uint8Array,
  senderId: Uint8Array,
  instance: Uint8Array,
  counter: number,
): void {
  out[OFF.version] = GROUP_MESSAGE_VERSION;
  out[OFF.suite] = suite;
  out[OFF.flags] = flags;
  out[OFF.reserved] = 0;
  out.writeUInt32BE(epoch, OFF.epoch);
  out.set(sgId, OFF.sgId);
  out.set(senderId, OFF.senderId);
  out.set(instance, OFF.instance);
  // uint48 in the low 6 bytes of the 8-byte field
  out.writeUInt16BE(0, OFF.counter);
  out.writeUIntBE(counter, OFF.counter + 2, 6);
}

/**
 * A validated header. The id fields are views into the message, made on first use: a receiver that only routes
 * by the numbers (or by its cached sender state) does not pay for three views per message.
 */
class HeaderView implements GroupHeader {
  #sgId: Buffer | undefined;
  #senderId: Buffer | undefined;
  #instance: Buffer | undefined;
  constructor(
    private readonly msg: Buffer,
    readonly version: number,
    readonly suite: Suite,
    readonly flags: number,
    readonly epoch: number,
    readonly counter: number,
  ) {}

  get sgId(): Buffer {
    this.#sgId ??= this.msg.subarray(OFF.sgId, OFF.sgId + SG_ID_BYTES);
    return this.#sgId;
  }

  get senderId(): Buffer {
    this.#senderId ??= this.msg.subarray(OFF.senderId, OFF.senderId + SENDER_ID_BYTES);
    return this.#senderId;
  }

  get instance(): Buffer {
    this.#instance ??= this.msg.subarray(OFF.instance, OFF.instance + INSTANCE_BYTES);
    return this.#instance;
  }
}

/** Parse and validate the header fields only (no key lookup, no MAC check). Views share `msg`'s memory. */
export function readHeader(msg: Buffer): GroupHeader {
  if (msg.length < HEADER_BYTES)
    throw new CpnsError(ErrorCode.MALFORMED, 'message shorter than header', 'header');
  const version = msg[OFF.version]!;
  if (version !== GROUP_MESSAGE_VERSION) {
    throw new CpnsError(ErrorCode.UNSUPPORTED_VERSION, 'unsupported group message version', 'version');
  }
  const suite = msg[OFF.suite]!;
  if (!isSuite(suite)) throw new CpnsError(ErrorCode.UNSUPPORTED_SUITE, 'unsupported AEAD suite', 'suite');
  const flags = msg[OFF.flags]!;
  if ((flags & ~FLAG_SIGNED) !== 0)
    throw new CpnsError(ErrorCode.MALFORMED, 'unknown flag bits set', 'flags');
  if (msg[OFF.reserved] !== 0) throw new CpnsError(ErrorCode.MALFORMED, 'reserved byte not zero', 'reserved');
  if (msg.readUInt16BE(OFF.counter) !== 0) {
    throw new CpnsError(ErrorCode.MALFORMED, 'counter out of range', 'counter');
  }
  return new HeaderView(
    msg,
    version,
    suite,
    flags,
    msg.readUInt32BE(OFF.epoch),
    msg.readUIntBE(OFF.counter + 2, 6),
  );
}
