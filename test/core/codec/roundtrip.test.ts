import fc from 'fast-check';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { decodeMessage, encodeMessage, validateMessage } from '../../../src/core/codec/codec.js';
import { type ControlMessage, type MessageOf, messageTypes } from '../../../src/core/codec/messages.js';
import { anyMessageArb, messageArb, sampleMessage } from './helpers.js';

describe('encode -> decode round-trip', () => {
  it.each(messageTypes)('%s round-trips exactly (property)', (t) => {
    fc.assert(
      fc.property(messageArb(t), (msg) => {
        const bytes = encodeMessage(msg);
        const back = decodeMessage(bytes);
        expect(back).toStrictEqual(msg);
        // Canonical: re-encoding the decoded message gives the same bytes.
        expect(encodeMessage(back)).toStrictEqual(bytes);
      }),
      { numRuns: 40 },
    );
  });

  it('any message round-trips (mixed property)', () => {
    fc.assert(
      fc.property(anyMessageArb, (msg) => {
        expect(decodeMessage(encodeMessage(msg))).toStrictEqual(msg);
      }),
      { numRuns: 200 },
    );
  });

  it('encoding is independent of the key order of the input object', () => {
    const m = sampleMessage('key.deliver') as Record<string, unknown>;
    const reversed = Object.fromEntries(Object.entries(m).reverse()) as ControlMessage;
    expect(encodeMessage(reversed)).toStrictEqual(encodeMessage(m as ControlMessage));
  });

  it('v may be omitted on encode and is 1 on the wire', () => {
    const bytes = encodeMessage({ t: 'ok', ref: 5 });
    expect(decodeMessage(bytes)).toStrictEqual({ v: 1, t: 'ok', ref: 5 });
  });

  it('undefined optional fields are omitted', () => {
    const bytes = encodeMessage({
      t: 'key.fetch',
      sgId: '123e4567-e89b-12d3-a456-426614174000',
      haveEpoch: undefined,
    });
    expect(decodeMessage(bytes)).toStrictEqual({
      v: 1,
      t: 'key.fetch',
      sgId: '123e4567-e89b-12d3-a456-426614174000',
    });
  });

  it('integers up to 2^53-1 round-trip as numbers (uint64 on the wire, never floats)', () => {
    for (const ref of [0, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER]) {
      const bytes = encodeMessage({ t: 'ok', ref });
      expect(decodeMessage(bytes)).toStrictEqual({ v: 1, t: 'ok', ref });
      expect(bytes.includes(0xfb)).toBe(false);
    }
  });

  it('decoded byte strings are fresh Uint8Arrays that do not alias the frame', () => {
    const key = new Uint8Array(32).fill(7);
    const msg = { ...sampleMessage('key.deliver'), key } as MessageOf<'key.deliver'>;
    const frame = encodeMessage(msg);
    const back = decodeMessage(frame) as MessageOf<'key.deliver'>;
    expect(Object.getPrototypeOf(back.key)).toBe(Uint8Array.prototype);
    frame.fill(0);
    expect(back.key).toStrictEqual(key);
  });

  it('encode output is a standalone copy (later encodes do not change it)', () => {
    const a = encodeMessage({ t: 'ok', ref: 1 });
    const copy = Uint8Array.from(a);
    encodeMessage({ t: 'ok', ref: 2 });
    expect(a).toStrictEqual(copy);
  });

  it('validateMessage returns a normalized copy', () => {
    const m = sampleMessage('sg.signers');
    const v = validateMessage(m);
    expect(v).toStrictEqual(m);
    expect(v).not.toBe(m);
  });

  it('types: the union narrows on t and optional fields stay optional', () => {
    const m = decodeMessage(encodeMessage({ t: 'ok', ref: 3 }));
    if (m.t === 'key.deliver') {
      expectTypeOf(m.key).toEqualTypeOf<Uint8Array>();
      expectTypeOf(m.activateAt).toEqualTypeOf<number | undefined>();
      expectTypeOf(m.reason).toEqualTypeOf<
        'create' | 'leave' | 'remove' | 'periodic' | 'operator' | 'detach' | 'revoke' | 'join'
      >();
    }
    expectTypeOf<MessageOf<'sg.signers'>['signers']>().toEqualTypeOf<{ pneId: string; key: Uint8Array }[]>();
    expectTypeOf<MessageOf<'enroll.relay'>['request']['role']>().toEqualTypeOf<'gw' | 'pne'>();
    expectTypeOf<MessageOf<'ok'>>().toEqualTypeOf<{ v: 1; t: 'ok'; id?: number; ref: number }>();
    expect(m).toStrictEqual({ v: 1, t: 'ok', ref: 3 });
  });
});
