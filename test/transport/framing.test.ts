import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CpnsError } from '../../src/core/errors.js';
import {
  decodeFrame,
  encodeFrame,
  encodeGroupFrame,
  type Frame,
  groupPayloadOf,
  isTunnelKind,
  MAX_TUNNEL_META,
} from '../../src/transport/framing.js';

const hex = (s: string) => Buffer.from(s.replace(/\s/g, ''), 'hex');

describe('frame codec', () => {
  it('encodes the documented layout', () => {
    expect(encodeFrame({ kind: 'control', payload: hex('a0') })).toEqual(hex('01 a0'));
    expect(encodeFrame({ kind: 'tunnel-data', tunnelId: 0x01020304, data: hex('1703') })).toEqual(
      hex('02 01020304 1703'),
    );
    expect(encodeFrame({ kind: 'tunnel-open', tunnelId: 1, meta: new Uint8Array(0) })).toEqual(
      hex('03 00000001'),
    );
    expect(encodeFrame({ kind: 'tunnel-close', tunnelId: 0xffffffff, reason: 3 })).toEqual(
      hex('04 ffffffff 03'),
    );
    expect(encodeFrame({ kind: 'group', payload: hex('0102') })).toEqual(hex('05 0102'));
  });

  it.each([
    ['empty', '', 'MALFORMED', 'kind'],
    ['unknown kind 0x00', '00 01', 'MALFORMED', 'kind'],
    ['unknown kind 0x06', '06 01', 'MALFORMED', 'kind'],
    ['unknown kind 0xff', 'ff', 'MALFORMED', 'kind'],
    ['control without payload', '01', 'MALFORMED', 'payload'],
    ['group without payload', '05', 'MALFORMED', 'payload'],
    ['tunnel data truncated id', '02 0000', 'MALFORMED', 'tunnelId'],
    ['tunnel data no bytes', '02 00000001', 'MALFORMED', 'data'],
    ['tunnel data id 0', '02 00000000 aa', 'MALFORMED', 'tunnelId'],
    ['tunnel open truncated', '03 000001', 'MALFORMED', 'tunnelId'],
    ['tunnel open id 0', '03 00000000', 'MALFORMED', 'tunnelId'],
    ['tunnel close no reason', '04 00000001', 'MALFORMED', 'reason'],
    ['tunnel close trailing', '04 00000001 00 00', 'MALFORMED', 'reason'],
    ['tunnel close truncated', '04', 'MALFORMED', 'tunnelId'],
  ])('rejects %s', (_name, input, code, field) => {
    try {
      decodeFrame(hex(input));
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(CpnsError);
      expect((e as CpnsError).code).toBe(code);
      expect((e as CpnsError).field).toBe(field);
    }
  });

  it('bounds sizes: frame over maxFrame and oversized tunnel meta', () => {
    expect(() => decodeFrame(Buffer.alloc(11, 1), { maxFrame: 10 })).toThrow(
      expect.objectContaining({ code: 'TOO_LARGE', field: 'frame' }),
    );
    expect(decodeFrame(Buffer.alloc(10, 1), { maxFrame: 10 }).kind).toBe('control');
    const meta = Buffer.concat([hex('03 00000001'), Buffer.alloc(MAX_TUNNEL_META + 1)]);
    expect(() => decodeFrame(meta)).toThrow(expect.objectContaining({ code: 'TOO_LARGE', field: 'meta' }));
    expect(() => encodeFrame({ kind: 'group', payload: Buffer.alloc(10) }, { maxFrame: 10 })).toThrow(
      expect.objectContaining({ code: 'TOO_LARGE' }),
    );
    expect(() => encodeFrame({ kind: 'tunnel-data', tunnelId: 0, data: hex('00') })).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT', field: 'tunnelId' }),
    );
  });

  const bytes = (min: number) => fc.uint8Array({ minLength: min, maxLength: 300 });
  const tid = fc.integer({ min: 1, max: 0xffffffff });
  const frameArb: fc.Arbitrary<Frame> = fc.oneof(
    bytes(1).map((payload) => ({ kind: 'control' as const, payload })),
    bytes(1).map((payload) => ({ kind: 'group' as const, payload })),
    fc.record({ kind: fc.constant('tunnel-data' as const), tunnelId: tid, data: bytes(1) }),
    fc.record({ kind: fc.constant('tunnel-open' as const), tunnelId: tid, meta: bytes(0) }),
    fc.record({
      kind: fc.constant('tunnel-close' as const),
      tunnelId: tid,
      reason: fc.integer({ min: 0, max: 255 }),
    }),
  );

  it('round-trips every frame (property)', () => {
    fc.assert(
      fc.property(frameArb, (f) => {
        const d = decodeFrame(encodeFrame(f));
        const norm = (x: Frame) =>
          Object.entries(x)
            .map(([k, v]) => `${k}=${v instanceof Uint8Array ? Buffer.from(v).toString('hex') : String(v)}`)
            .join(';');
        expect(norm(d)).toBe(norm(f));
      }),
    );
  });

  it('never throws anything but CpnsError on arbitrary bytes (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (b) => {
        try {
          decodeFrame(b);
        } catch (e) {
          expect(e).toBeInstanceOf(CpnsError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('encodeGroupFrame (pieces of a protected message)', () => {
  it('is byte for byte the group frame of the concatenated payload, with the same limits', () => {
    const parts = [Buffer.from('head'), Buffer.alloc(0), Buffer.from('ciphertext'), Buffer.from('tag')];
    expect(
      encodeGroupFrame(parts).equals(encodeFrame({ kind: 'group', payload: Buffer.concat(parts) })),
    ).toBe(true);
    expect(() => encodeGroupFrame([Buffer.alloc(0)])).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    );
    expect(() => encodeGroupFrame([Buffer.alloc(8), Buffer.alloc(8)], { maxFrame: 16 })).toThrow(
      expect.objectContaining({ code: 'TOO_LARGE' }),
    );
    expect(encodeGroupFrame([Buffer.alloc(8), Buffer.alloc(7)], { maxFrame: 16 }).length).toBe(16);
  });
});

describe('groupPayloadOf (the group frame fast path)', () => {
  it('agrees with decodeFrame on every input: the same payload, the same refusal, or not a group frame', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 40 }),
        fc.integer({ min: 1, max: 48 }),
        (bytes, maxFrame) => {
          const buf = Buffer.from(bytes);
          if (buf.length > 0 && bytes[0]! % 3 === 0) buf[0] = 0x05;
          let expected: { payload?: Buffer; code?: string; other?: true };
          try {
            const f = decodeFrame(buf, { maxFrame });
            expected = f.kind === 'group' ? { payload: Buffer.from(f.payload) } : { other: true };
          } catch (e) {
            expected = buf[0] === 0x05 ? { code: (e as CpnsError).code } : { other: true };
          }
          let got: typeof expected;
          try {
            const p = groupPayloadOf(buf, { maxFrame });
            got = p === undefined ? { other: true } : { payload: Buffer.from(p) };
          } catch (e) {
            got = { code: (e as CpnsError).code };
          }
          expect(got).toEqual(expected);
          expect(isTunnelKind(buf)).toBe(buf.length > 0 && buf[0]! >= 0x02 && buf[0]! <= 0x04);
        },
      ),
    );
  });

  it('is a view into the frame, not a copy', () => {
    const buf = Buffer.from([0x05, 1, 2, 3]);
    const p = groupPayloadOf(buf)!;
    buf[1] = 9;
    expect(p[0]).toBe(9);
  });
});
