/**
 * Identifiers on the wire and in messages, in one place (docs/architecture.md "Layers": core): Service Group ids and
 * identity UUIDs are lowercase RFC 4122 text; group-message headers carry them as 16 raw bytes (docs/codec.md,
 * docs/group-messages.md). Identities are `urn:cpns:<role>:<uuid>` (docs/transport.md).
 */
import { CpnsError, ErrorCode } from './errors.js';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const PNE_PREFIX = 'urn:cpns:pne:';

/** The nil UUID: the sender id of messages the CPNS Server itself sends to a Service Group. */
export const NIL_UUID = '00000000-0000-0000-0000-000000000000';

export function isUuid(s: string): boolean {
  return UUID_RE.test(s);
}

/** 16 raw bytes of a UUID in text form (no validation: callers pass ids they produced or validated). */
export function uuidToBytes(uuid: string): Buffer {
  return Buffer.from(uuid.replaceAll('-', ''), 'hex');
}

/** Text form (lowercase, dashed) of 16 raw bytes. */
export function bytesToUuid(b: Uint8Array): string {
  // A view, not a copy: this runs for every group message at every hop (sgId, sender).
  const h = (Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength)).toString(
    'hex',
    0,
    16,
  );
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/** UUID of `urn:cpns:<role>:<uuid>`. */
export function uuidOf(identity: string): string {
  return identity.slice(identity.lastIndexOf(':') + 1);
}

/** PNE identity of a group-message header's 16-byte sender id. */
export function pneIdentityOf(senderId: Uint8Array): string {
  return `${PNE_PREFIX}${bytesToUuid(senderId)}`;
}

/** Sender identity of a group message header's senderId: the PNE identity, or 'server' for the nil UUID. */
export function senderIdentity(senderId: Uint8Array): string {
  const u = bytesToUuid(senderId);
  return u === NIL_UUID ? 'server' : `${PNE_PREFIX}${u}`;
}

/** Accepts a PNE identity or a bare UUID (any case, surrounding blanks); returns the identity, or INVALID_ARGUMENT. */
export function toPneIdentity(pne: string): string {
  const s = pne.trim().toLowerCase();
  if (UUID_RE.test(s)) return `${PNE_PREFIX}${s}`;
  if (s.startsWith(PNE_PREFIX) && UUID_RE.test(s.slice(PNE_PREFIX.length))) return s;
  throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'not a PNE identity or UUID', 'pne');
}

/**
 * Whether a group message's header bytes [start, end) are those of the last message passed to `same`: the one
 * compare behind caching what is derived from header ids (their text) per run of messages instead of per message.
 */
export class LastHeaderBytes {
  readonly #bytes: Buffer;
  #valid = false;

  constructor(
    private readonly start: number,
    private readonly end: number,
  ) {
    this.#bytes = Buffer.alloc(end - start);
  }

  /** True when `msg` (a validated header, >= `end` bytes) repeats the last one's bytes; else remembers its bytes. */
  same(msg: Uint8Array): boolean {
    const b = this.#bytes;
    const o = this.start;
    if (this.#valid) {
      let i = 0;
      while (i < b.length && msg[o + i] === b[i]) i++;
      if (i === b.length) return true;
    }
    b.set(msg.subarray(o, this.end));
    this.#valid = true;
    return false;
  }

  /** What `same` compared against was not derived after all (the derivation threw): compare nothing next time. */
  forget(): void {
    this.#valid = false;
  }
}

/**
 * The text form of a group-message header's SG id and sender id (bytes 8..40, docs/group-messages.md), formatted
 * once for a run of messages with the same ids instead of once per message. `sender` formats the sender id
 * (senderIdentity at a GW, pneIdentityOf at the server).
 */
export class HeaderIdText {
  readonly #last = new LastHeaderBytes(8, 40);
  readonly #sender: (senderId: Uint8Array) => string;
  sgId = '';
  sender = '';

  constructor(sender: (senderId: Uint8Array) => string) {
    this.#sender = sender;
  }

  /** Sets `sgId` and `sender` from `msg`, a group message whose header was validated (>= 56 bytes). */
  of(msg: Uint8Array): this {
    if (this.#last.same(msg)) return this;
    try {
      this.sgId = bytesToUuid(msg.subarray(8, 24));
      this.sender = this.#sender(msg.subarray(24, 40));
    } catch (e) {
      this.#last.forget();
      throw e;
    }
    return this;
  }
}
