import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeMessage, encodeMessage } from '../../../src/core/codec/codec.js';
import { CpnsError } from '../../../src/core/errors.js';
import { anyMessageArb, rawEncode } from './helpers.js';

/** Decode; return the message, or the CpnsError. Anything else thrown fails the property. */
function tryDecode(bytes: Uint8Array): unknown {
  try {
    return decodeMessage(bytes);
  } catch (e) {
    if (!(e instanceof CpnsError)) throw new Error(`non-CpnsError thrown: ${String(e)}`);
    return e;
  }
}

/** Anything that decodes must re-encode and decode to the same value (the codec is a fixed point). */
function checkStable(result: unknown): void {
  if (result instanceof CpnsError) return;
  const msg = result as Parameters<typeof encodeMessage>[0];
  expect(decodeMessage(encodeMessage(msg))).toStrictEqual(msg);
}

type Mutation = { kind: 'set' | 'insert' | 'delete'; at: number; byte: number };
const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constantFrom('set', 'insert', 'delete'),
  at: fc.nat(),
  byte: fc.integer({ min: 0, max: 255 }),
});

function mutate(frame: Uint8Array, muts: Mutation[]): Uint8Array {
  const a = Array.from(frame);
  for (const m of muts) {
    if (a.length === 0) break;
    const i = m.at % a.length;
    if (m.kind === 'set') a[i] = m.byte;
    else if (m.kind === 'insert') a.splice(i, 0, m.byte);
    else a.splice(i, 1);
  }
  return Uint8Array.from(a);
}

describe('fuzz: only CpnsError ever escapes', () => {
  it('random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        checkStable(tryDecode(bytes));
      }),
      { numRuns: 3000 },
    );
  });

  it('random bytes behind a plausible map header', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0xa0, max: 0xbf }), fc.uint8Array({ maxLength: 200 }), (h, rest) => {
        checkStable(tryDecode(Uint8Array.from([h, 0x61, 0x76, 0x01, ...rest])));
      }),
      { numRuns: 2000 },
    );
  });

  it('arbitrary CBOR values (any shape cbor-x can write)', () => {
    fc.assert(
      fc.property(
        fc.anything({ withMap: true, withSet: true, withBigInt: true, withTypedArray: true, withDate: true }),
        (v) => {
          let bytes: Uint8Array;
          try {
            bytes = rawEncode(v);
          } catch {
            return; // not encodable by cbor-x: nothing to test
          }
          checkStable(tryDecode(bytes));
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('mutated valid messages', () => {
    fc.assert(
      fc.property(anyMessageArb, fc.array(mutationArb, { minLength: 1, maxLength: 4 }), (msg, muts) => {
        checkStable(tryDecode(mutate(encodeMessage(msg), muts)));
      }),
      { numRuns: 2000 },
    );
  });

  it('error texts never contain a marker planted in keys or values', () => {
    const M = 'EVILMARKER';
    const hostileValue = fc.oneof(
      fc.constant(M),
      fc.string().map((s) => `${s}${M}${s}`),
      fc.constant(Buffer.from(M)),
      fc.constant([M]),
      fc.constant({ [M]: M }),
    );
    fc.assert(
      fc.property(
        anyMessageArb,
        fc.constantFrom(M, 'v', 't', 'id', 'sgId', 'epoch', 'key', 'token', 'name', 'members', 'data'),
        hostileValue,
        (msg, key, value) => {
          const r = tryDecode(rawEncode({ ...msg, [key]: value }));
          if (r instanceof CpnsError) {
            expect(`${r.message} ${r.field ?? ''}`.toUpperCase()).not.toContain(M);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });
});
