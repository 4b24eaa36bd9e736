import { CpnsError, ErrorCode } from '../errors.js';
import { type FormatName, formats } from './formats.js';
import type { LimitName, Limits } from './limits.js';

/**
 * A tiny schema DSL for CPNS control messages. A schema both validates a value (on decode: untrusted input from
 * cbor-x; on encode: our own caller's object) and produces a fresh normalized copy, and its TypeScript type is
 * inferred from the definition (`Infer<typeof schema>`), so the message types cannot drift from the checks.
 *
 * Error texts are fixed strings; `field` is the schema path (e.g. `senderAnchors[3].counter`), built only from
 * names defined by our schemas — never from attacker-chosen map keys.
 */

/**
 * Where parse() is called from. 'decode': input from cbor-x; byte strings are copied so results never alias the
 * received frame. 'encode': output goes to cbor-x; integers above 2^32-1 become BigInt, because cbor-x would
 * encode such numbers as floats (which our decoder refuses) but encodes BigInt as a major-type-0 uint64.
 * 'validate': check a caller's object only.
 */
export interface ParseContext {
  readonly mode: 'decode' | 'encode' | 'validate';
  readonly limits: Limits;
  /** Field names our schemas define; an unknown field is named in errors only if it is one of these. */
  readonly names?: ReadonlySet<string>;
}

/** A size bound: a fixed number, or the name of a codec limit resolved per call (overridable by options). */
export type Bound = number | LimitName;

/** Introspection data, used by docs generation and by the property tests to derive arbitraries. */
export type SchemaInfo =
  | {
      readonly kind: 'str';
      readonly min: number;
      readonly max: Bound;
      readonly format?: FormatName | undefined;
    }
  | { readonly kind: 'uint'; readonly min: number; readonly max: number }
  | { readonly kind: 'bytes'; readonly min: number; readonly max: Bound }
  | { readonly kind: 'bool' }
  | { readonly kind: 'enum'; readonly values: readonly string[] }
  | { readonly kind: 'literal'; readonly value: string | number | boolean }
  | { readonly kind: 'array'; readonly item: Schema<unknown>; readonly min: number; readonly max: Bound }
  | { readonly kind: 'object'; readonly shape: Shape };

export interface Schema<T> {
  readonly info: SchemaInfo;
  /** Validate `value` found at `path` ('' = root) and return a normalized copy; throws CpnsError. */
  readonly parse: (value: unknown, path: string, ctx: ParseContext) => T;
}

/** Marks an object field as optional (absent on the wire; `undefined` is treated as absent on encode). */
export interface Optional<T> {
  readonly optional: true;
  readonly schema: Schema<T>;
}

export type Field = Schema<unknown> | Optional<unknown>;
export type Shape = { readonly [key: string]: Field };

export type Infer<F> = F extends Optional<infer T> ? T : F extends Schema<infer T> ? T : never;

type Simplify<T> = { [K in keyof T]: T[K] } & {};
type RequiredKeys<S extends Shape> = { [K in keyof S]: S[K] extends Optional<unknown> ? never : K }[keyof S];
type OptionalKeys<S extends Shape> = { [K in keyof S]: S[K] extends Optional<unknown> ? K : never }[keyof S];

export type InferShape<S extends Shape> = Simplify<
  { [K in RequiredKeys<S>]: Infer<S[K]> } & { [K in OptionalKeys<S>]?: Infer<S[K]> }
>;

function fail(code: ErrorCode, message: string, path: string): never {
  // Root-level problems have no field to name.
  throw new CpnsError(code, message, path === '' ? undefined : path);
}

function bound(b: Bound, ctx: ParseContext): number {
  return typeof b === 'number' ? b : ctx.limits[b];
}

export function childPath(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

/** Lone UTF-16 surrogates cannot be encoded as UTF-8; cbor-x would silently replace them and break round-trips. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export interface StrOptions {
  /** Maximum length in UTF-8 bytes (what the wire carries). */
  readonly max: Bound;
  /** Minimum length in UTF-8 bytes; default 0. */
  readonly min?: number;
  readonly format?: FormatName;
}

function str(opts: StrOptions): Schema<string> {
  const min = opts.min ?? 0;
  const pattern = opts.format === undefined ? undefined : formats[opts.format];
  return {
    info: { kind: 'str', min, max: opts.max, format: opts.format },
    parse(value, path, ctx) {
      if (typeof value !== 'string') fail(ErrorCode.SCHEMA, 'expected a text string', path);
      const max = bound(opts.max, ctx);
      // UTF-16 length is a lower bound of the UTF-8 length: cheap early reject of huge strings.
      if (value.length > max) fail(ErrorCode.TOO_LARGE, 'text string longer than allowed', path);
      const n = Buffer.byteLength(value, 'utf8');
      if (n > max) fail(ErrorCode.TOO_LARGE, 'text string longer than allowed', path);
      if (n < min) fail(ErrorCode.SCHEMA, 'text string shorter than allowed', path);
      if (ctx.mode !== 'decode' && LONE_SURROGATE.test(value)) {
        fail(ErrorCode.SCHEMA, 'text string is not valid Unicode', path);
      }
      if (pattern !== undefined && !pattern.test(value))
        fail(ErrorCode.SCHEMA, 'text string has invalid format', path);
      return value;
    },
  };
}

export interface UintOptions {
  /** Inclusive maximum; default Number.MAX_SAFE_INTEGER. */
  readonly max?: number;
  /** Inclusive minimum; default 0. */
  readonly min?: number;
}

function uint(opts: UintOptions = {}): Schema<number> {
  const min = opts.min ?? 0;
  const max = opts.max ?? Number.MAX_SAFE_INTEGER;
  return {
    info: { kind: 'uint', min, max },
    parse(value, path, ctx) {
      // Floats, NaN, negative and unsafe integers are all rejected here; the scanner already refuses CBOR floats.
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
        fail(ErrorCode.SCHEMA, 'expected an unsigned integer', path);
      }
      if (value < min || value > max) fail(ErrorCode.SCHEMA, 'integer out of range', path);
      if (ctx.mode === 'encode' && value > 0xffff_ffff) return BigInt(value) as unknown as number;
      // Normalize -0 (possible only from a local caller) to 0 so it round-trips.
      return value === 0 ? 0 : value;
    },
  };
}

export type BytesOptions = { readonly len: number } | { readonly min?: number; readonly max: Bound };

function bytes(opts: BytesOptions): Schema<Uint8Array> {
  const exact = 'len' in opts ? opts.len : undefined;
  const min = 'len' in opts ? opts.len : (opts.min ?? 0);
  const max: Bound = 'len' in opts ? opts.len : opts.max;
  return {
    info: { kind: 'bytes', min, max },
    parse(value, path, ctx) {
      if (!(value instanceof Uint8Array)) fail(ErrorCode.SCHEMA, 'expected a byte string', path);
      if (exact !== undefined) {
        if (value.length !== exact) fail(ErrorCode.SCHEMA, 'byte string has the wrong length', path);
      } else {
        if (value.length > bound(max, ctx))
          fail(ErrorCode.TOO_LARGE, 'byte string longer than allowed', path);
        if (value.length < min) fail(ErrorCode.SCHEMA, 'byte string shorter than allowed', path);
      }
      if (ctx.mode !== 'decode') return value;
      // cbor-x returns views into the received frame; copy so a decoded key can be wiped on its own and a small
      // field does not keep a large frame alive. Plain Uint8Array (not Buffer) keeps results deep-equal to inputs.
      const copy = new Uint8Array(value.length);
      copy.set(value);
      return copy;
    },
  };
}

function bool(): Schema<boolean> {
  return {
    info: { kind: 'bool' },
    parse(value, path) {
      if (typeof value !== 'boolean') fail(ErrorCode.SCHEMA, 'expected a boolean', path);
      return value;
    },
  };
}

function enumOf<const V extends readonly [string, ...string[]]>(values: V): Schema<V[number]> {
  const set: ReadonlySet<string> = new Set(values);
  return {
    info: { kind: 'enum', values },
    parse(value, path) {
      if (typeof value !== 'string' || !set.has(value))
        fail(ErrorCode.SCHEMA, 'value is not one of the allowed', path);
      return value as V[number];
    },
  };
}

function literal<const V extends string | number | boolean>(expected: V): Schema<V> {
  return {
    info: { kind: 'literal', value: expected },
    parse(value, path) {
      if (value !== expected) fail(ErrorCode.SCHEMA, 'unexpected value', path);
      return expected;
    },
  };
}

export interface ArrayOptions {
  readonly max: Bound;
  readonly min?: number;
}

function array<T>(item: Schema<T>, opts: ArrayOptions): Schema<T[]> {
  const min = opts.min ?? 0;
  return {
    info: { kind: 'array', item, min, max: opts.max },
    parse(value, path, ctx) {
      if (!Array.isArray(value)) fail(ErrorCode.SCHEMA, 'expected an array', path);
      if (value.length > bound(opts.max, ctx))
        fail(ErrorCode.TOO_LARGE, 'array has more items than allowed', path);
      if (value.length < min) fail(ErrorCode.SCHEMA, 'array has fewer items than allowed', path);
      const out: T[] = new Array(value.length);
      for (let i = 0; i < value.length; i++) out[i] = item.parse(value[i], `${path}[${i}]`, ctx);
      return out;
    },
  };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function object<const S extends Shape>(shape: S): Schema<InferShape<S>> {
  const keys = Object.keys(shape);
  return {
    info: { kind: 'object', shape },
    parse(value, path, ctx) {
      if (!isPlainObject(value)) fail(ErrorCode.SCHEMA, 'expected a map', path);
      for (const k of Object.keys(value)) {
        if (!Object.hasOwn(shape, k)) {
          // Name the field only if it is one of ours (k is attacker-chosen otherwise); else name the enclosing map.
          fail(ErrorCode.SCHEMA, 'unknown field', ctx.names?.has(k) ? childPath(path, k) : path);
        }
      }
      // Fresh object, fields in schema order: the encoder's output order is then canonical.
      const out: Record<string, unknown> = {};
      for (const k of keys) {
        const f = shape[k]!;
        const v = Object.hasOwn(value, k) ? value[k] : undefined;
        const p = childPath(path, k);
        if (v === undefined) {
          if ('optional' in f) continue;
          fail(ErrorCode.SCHEMA, 'missing required field', p);
        }
        out[k] = ('optional' in f ? f.schema : f).parse(v, p, ctx);
      }
      return out as InferShape<S>;
    },
  };
}

function optional<T>(schema: Schema<T>): Optional<T> {
  return { optional: true, schema };
}

/** The DSL: `s.object({ a: s.str({ max: 8 }), b: s.optional(s.uint()) })`. */
export const s = { str, uint, bytes, bool, enum: enumOf, literal, array, object, optional } as const;

/** Every field name defined anywhere below `schema` (used to name fields in scanner errors safely). */
export function collectFieldNames(schema: Schema<unknown>, into: Set<string> = new Set()): Set<string> {
  const info = schema.info;
  if (info.kind === 'array') collectFieldNames(info.item, into);
  if (info.kind === 'object') {
    for (const [k, f] of Object.entries(info.shape)) {
      into.add(k);
      collectFieldNames('optional' in f ? f.schema : f, into);
    }
  }
  return into;
}
