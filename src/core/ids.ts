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
 * The text form of a group-message header's SG id and sender id (bytes 8..40, docs/group-messages.md), formatted
 * once for a run of messages with the same ids instead of once per message: it keeps the last ids' bytes and
 * their text. `sender` formats the sender id (senderIdentity at a GW, pneIdentityOf at the server).
 */
export class HeaderIdText {
  readonly #bytes = Buffer.alloc(32);
  #valid = false;
  readonly #sender: (senderId: Uint8Array) => string;
  sgId = '';
  sender = '';

  constructor(sender: (senderId: Uint8Array) => string) {
    this.#sender = sender;
  }

  /** Sets `sgId` and `sender` from `msg`, a group message whose header was validated (>= 56 bytes). */
  of(msg: Uint8Array): this {
    const b = this.#bytes;
    if (this.#valid) {
      let same = true;
      for (let i = 0; i < 32; i++) {
        if (msg[8 + i] !== b[i]) {
          same = false;
          break;
        }
      }
      if (same) return this;
    }
    this.#valid = false;
    b.set(msg.subarray(8, 40));
    this.sgId = bytesToUuid(b.subarray(0, 16));
    this.sender = this.#sender(b.subarray(16, 32));
    this.#valid = true;
    return this;
  }
}
