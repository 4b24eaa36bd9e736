import { Decoder, Encoder, type Options } from 'cbor-x';
import { CpnsError, ErrorCode } from '../errors.js';
import { type CodecOptions, resolveLimits } from './limits.js';
import {
  type ControlMessage,
  type ControlMessageInit,
  type MessageType,
  messageSchemas,
  messageTypes,
  PROTOCOL_VERSION,
} from './messages.js';
import { scanCbor } from './scan.js';
import { collectFieldNames, type ParseContext } from './schema.js';

/**
 * cbor-x configured for plain data only. The scanner has already refused tags, indefinite lengths, floats and
 * non-text keys, so these options are a second line: no records (tag 105), no structured clone, no string
 * bundling, no shared structures, maps decoded as plain objects (cbor-x renames `__proto__` keys, and our
 * scanner refuses them anyway).
 */
const cborOptions = {
  useRecords: false,
  mapsAsObjects: true,
  structuredClone: false,
  bundleStrings: false,
  pack: false,
  // Uint8Array as a plain byte string (major type 2); by default cbor-x on Node adds tag 64.
  tagUint8Array: false,
  // Smallest map header ("preferred serialization") instead of a fixed 16-bit count.
  variableMapSize: true,
} as const;

// Integers arrive as numbers: the scanner guarantees they are within the safe range, so this is exact.
// (`int64AsNumber` is honoured by cbor-x 1.6 but missing from its type definitions.)
const decoder = new Decoder({ ...cborOptions, int64AsNumber: true } as Options);
const encoder = new Encoder(cborOptions);

/** Every field name of every message schema: only these may appear as names in error `field` paths. */
const fieldNames: ReadonlySet<string> = (() => {
  const names = new Set<string>();
  for (const t of messageTypes) collectFieldNames(messageSchemas[t], names);
  return names;
})();

const typeSet: ReadonlySet<string> = new Set(messageTypes);

export function isMessageType(t: unknown): t is MessageType {
  return typeof t === 'string' && typeSet.has(t);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/**
 * Validate an already-decoded value as a control message: envelope (version first, since a future version may
 * define other types), then the body schema of its type. Returns a fresh normalized object.
 */
function check(value: unknown, ctx: ParseContext): ControlMessage {
  if (!isRecord(value)) throw new CpnsError(ErrorCode.SCHEMA, 'message must be a map');
  // Own properties only: never pick up something inherited from a prototype.
  const v = Object.hasOwn(value, 'v') ? value.v : undefined;
  if (v === undefined) throw new CpnsError(ErrorCode.SCHEMA, 'missing required field', 'v');
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new CpnsError(ErrorCode.SCHEMA, 'expected an unsigned integer', 'v');
  }
  if (v !== PROTOCOL_VERSION)
    throw new CpnsError(ErrorCode.UNSUPPORTED_VERSION, 'unsupported protocol version', 'v');
  const t = Object.hasOwn(value, 't') ? value.t : undefined;
  if (t === undefined) throw new CpnsError(ErrorCode.SCHEMA, 'missing required field', 't');
  if (!isMessageType(t)) throw new CpnsError(ErrorCode.SCHEMA, 'unknown message type', 't');
  return messageSchemas[t].parse(value, '', ctx) as ControlMessage;
}

/**
 * Decode one control message from a binary frame. Order: frame size, CBOR profile/limits scan (no allocation),
 * cbor-x decode, schema check. Throws CpnsError (MALFORMED, TOO_LARGE, SCHEMA, UNSUPPORTED_VERSION) and nothing
 * else; byte fields of the result are fresh copies that do not alias `bytes`.
 */
export function decodeMessage(bytes: Uint8Array, opts?: CodecOptions): ControlMessage {
  const lim = resolveLimits(opts);
  if (!(bytes instanceof Uint8Array))
    throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'frame must be a Uint8Array');
  scanCbor(bytes, lim, fieldNames);
  let raw: unknown;
  try {
    // A fresh view (no copy): cbor-x caches a `dataView` property on the object it decodes, and must not
    // leave that on the caller's buffer.
    raw = decoder.decode(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch {
    // Unreachable for scanned input as far as we know; never let a cbor-x error (with its text) escape.
    throw new CpnsError(ErrorCode.MALFORMED, 'CBOR decoding failed');
  }
  return check(raw, { mode: 'decode', limits: lim, names: fieldNames });
}

/**
 * Validate a message against its schema and encode it. Our own messages get the same checks as received ones,
 * so we never send what a peer must reject: schema violations are SCHEMA/TOO_LARGE errors naming the field, an
 * over-limit frame is TOO_LARGE. `v` defaults to the current version; `undefined` optional fields are omitted.
 */
export function encodeMessage(msg: ControlMessageInit | ControlMessage, opts?: CodecOptions): Uint8Array {
  const lim = resolveLimits(opts);
  const withVersion: unknown = isRecord(msg) && msg.v === undefined ? { ...msg, v: PROTOCOL_VERSION } : msg;
  const clean = check(withVersion, { mode: 'encode', limits: lim, names: fieldNames });
  let encoded: Uint8Array;
  try {
    encoded = encoder.encode(clean);
  } catch {
    throw new CpnsError(ErrorCode.MALFORMED, 'CBOR encoding failed');
  }
  // cbor-x returns a view into its reusable scratch buffer: copy out, then zero the scratch region so key
  // material (key.deliver) does not linger there.
  const out = new Uint8Array(encoded.length);
  out.set(encoded);
  encoded.fill(0);
  if (out.length > lim.maxMessageBytes)
    throw new CpnsError(ErrorCode.TOO_LARGE, 'message exceeds maxMessageBytes');
  return out;
}

/**
 * Validate a message object without encoding it (e.g. a message built by hand in tests or tools).
 * Same errors as encodeMessage; returns the normalized message.
 */
export function validateMessage(msg: unknown, opts?: CodecOptions): ControlMessage {
  return check(msg, { mode: 'validate', limits: resolveLimits(opts), names: fieldNames });
}
