import { Encoder } from 'cbor-x';
import fc from 'fast-check';
import { expect } from 'vitest';
import type { FormatName } from '../../../src/core/codec/formats.js';
import { type Limits, limits } from '../../../src/core/codec/limits.js';
import {
  type ControlMessage,
  type MessageType,
  messageSchemas,
  messageTypes,
} from '../../../src/core/codec/messages.js';
import type { Bound, Field, Schema } from '../../../src/core/codec/schema.js';
import { CpnsError, type ErrorCode } from '../../../src/core/errors.js';

/** Raw CBOR encoder for building hostile frames (no schema check), same wire options as the codec. */
const raw = new Encoder({
  useRecords: false,
  mapsAsObjects: true,
  tagUint8Array: false,
  variableMapSize: true,
});

/** cbor-x writes integers beyond 32 bits as floats; BigInt makes it write a (u)int64 instead. */
function bigInts(value: unknown): unknown {
  if (typeof value === 'number' && Number.isInteger(value) && Math.abs(value) > 0x7fffffff)
    return BigInt(value);
  if (Array.isArray(value)) return value.map(bigInts);
  if (typeof value === 'object' && value !== null && !(value instanceof Uint8Array)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, bigInts(v)]));
  }
  return value;
}

export function rawEncode(value: unknown): Uint8Array {
  return Uint8Array.from(raw.encode(bigInts(value)));
}

export function hex(h: string): Uint8Array {
  return Uint8Array.from(Buffer.from(h.replace(/\s+/g, ''), 'hex'));
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(Buffer.concat(parts));
}

/** CBOR head (major type, argument) with the shortest encoding. */
export function head(major: number, n: number): Uint8Array {
  const m = major << 5;
  if (n < 24) return Uint8Array.of(m | n);
  if (n < 0x100) return Uint8Array.of(m | 24, n);
  if (n < 0x10000) return Uint8Array.of(m | 25, n >> 8, n & 0xff);
  if (n < 0x1_0000_0000) return Uint8Array.of(m | 26, n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
  const b = new Uint8Array(9);
  b[0] = m | 27;
  new DataView(b.buffer).setBigUint64(1, BigInt(n));
  return b;
}

export function textItem(s: string): Uint8Array {
  const b = Buffer.from(s, 'utf8');
  return concat(head(3, b.length), b);
}

/** Run fn, assert it throws a CpnsError with the given code (and field, when given); return the error. */
export function expectCpnsError(
  fn: () => unknown,
  code: ErrorCode | readonly ErrorCode[],
  field?: string | null,
) {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, 'expected a CpnsError').toBeInstanceOf(CpnsError);
  const err = caught as CpnsError;
  if (typeof code === 'string') expect(err.code).toBe(code);
  else expect(code).toContain(err.code);
  if (field !== undefined) expect(err.field).toBe(field ?? undefined);
  return err;
}

// ---------------------------------------------------------------------------------------------------------
// Arbitraries derived from the schemas.

/** PEM block with random base64 body lines of 64 characters. */
function pemArb(label: string): fc.Arbitrary<string> {
  return fc.uint8Array({ minLength: 1, maxLength: 300 }).map((bytes) => {
    const body = Buffer.from(bytes).toString('base64');
    const lines = body.match(/.{1,64}/g) ?? [];
    return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
  });
}

const printable = fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c));

function utf8Len(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

function formatArb(format: FormatName, min: number, max: number): fc.Arbitrary<string> {
  switch (format) {
    case 'uuid':
      return fc.uuid();
    case 'pneId':
      return fc.uuid().map((u) => `urn:cpns:pne:${u}`);
    case 'gwId':
      return fc.uuid().map((u) => `urn:cpns:gw:${u}`);
    case 'token':
      return fc.string({ unit: printable, minLength: Math.max(1, min), maxLength: max });
    case 'pemCsr':
      return pemArb('CERTIFICATE REQUEST');
    case 'pemCert':
      return fc.array(pemArb('CERTIFICATE'), { minLength: 1, maxLength: 3 }).map((a) => a.join(''));
    case 'errorCode':
      return fc.stringMatching(/^[A-Z][A-Z0-9_]{0,30}$/);
    case 'text':
      return fc
        .oneof(
          fc.string({
            unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
            maxLength: max,
          }),
          fc.string({ unit: 'grapheme', maxLength: Math.floor(max / 8) }),
        )
        .filter((s) => utf8Len(s) >= min && utf8Len(s) <= max && !/\p{Cc}/u.test(s));
  }
}

function boundOf(b: Bound, lim: Limits = limits): number {
  return typeof b === 'number' ? b : lim[b];
}

export function arbitraryOf(schema: Schema<unknown>): fc.Arbitrary<unknown> {
  const info = schema.info;
  switch (info.kind) {
    case 'str':
      if (info.format === undefined) throw new Error('no generator for unformatted strings');
      return formatArb(info.format, info.min, boundOf(info.max));
    case 'uint':
      return fc.oneof(
        fc.constantFrom(info.min, info.max),
        fc.integer({ min: info.min, max: Math.min(info.max, 1000) }),
        fc.bigInt({ min: BigInt(info.min), max: BigInt(info.max) }).map(Number),
      );
    case 'bytes':
      return fc.uint8Array({
        minLength: info.min,
        maxLength: Math.min(boundOf(info.max), Math.max(info.min, 64)),
      });
    case 'bool':
      return fc.boolean();
    case 'enum':
      return fc.constantFrom(...info.values);
    case 'literal':
      return fc.constant(info.value);
    case 'array':
      return fc.array(arbitraryOf(info.item), {
        minLength: info.min,
        maxLength: Math.min(boundOf(info.max), Math.max(info.min, 4)),
      });
    case 'object': {
      const model: Record<string, fc.Arbitrary<unknown>> = {};
      const required: string[] = [];
      for (const [k, f] of Object.entries(info.shape)) {
        model[k] = arbitraryOf(unwrap(f));
        if (!('optional' in f)) required.push(k);
      }
      return fc.record(model, { requiredKeys: required, noNullPrototype: true });
    }
  }
}

export function unwrap(f: Field): Schema<unknown> {
  return 'optional' in f ? f.schema : f;
}

export function messageArb<T extends MessageType>(t: T): fc.Arbitrary<ControlMessage> {
  return arbitraryOf(messageSchemas[t]) as fc.Arbitrary<ControlMessage>;
}

export const anyMessageArb: fc.Arbitrary<ControlMessage> = fc.oneof(
  ...messageTypes.map((t) => messageArb(t)),
);

/** One deterministic valid sample of each message type, with every optional field present. */
export function sampleMessage(t: MessageType, seed = 42): ControlMessage {
  const info = messageSchemas[t].info;
  if (info.kind !== 'object') throw new Error('not an object schema');
  const full = fc.sample(messageArb(t), { seed, numRuns: 200 }) as Record<string, unknown>[];
  const keys = Object.keys(info.shape);
  const best = full.find((m) => keys.every((k) => k in m)) ?? full[0]!;
  return best as ControlMessage;
}
