import { Decoder } from 'cbor-x';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { decodeMessage, encodeMessage } from '../../../src/core/codec/codec.js';
import { limits } from '../../../src/core/codec/limits.js';
import type { ControlMessageInit } from '../../../src/core/codec/messages.js';
import { scanCbor } from '../../../src/core/codec/scan.js';
import { ErrorCode } from '../../../src/core/errors.js';
import { concat, expectCpnsError, head, hex, rawEncode, textItem } from './helpers.js';

const { MALFORMED, TOO_LARGE, SCHEMA } = ErrorCode;

/** `{v: 1, t: 'ok', ref: <item>}` with the given raw CBOR item as ref. */
function okWith(refItem: Uint8Array): Uint8Array {
  return concat(hex('a3 6176 01 6174 626f6b 63726566'), refItem);
}

/** A live message with a variable-length byte payload (gkdk, 1 B to 8 KiB). */
const gkdkIssue = {
  t: 'gkdk.issue' as const,
  gwId: 'urn:cpns:gw:123e4567-e89b-12d3-a456-426614174000',
  treeId: '123e4567-e89b-12d3-a456-426614174000',
  treeVersion: 1,
  leaf: 3,
  signKey: new Uint8Array(32),
  media: [],
};

afterEach(() => {
  vi.restoreAllMocks();
});

describe('CBOR profile scanner: hostile frames are refused before cbor-x runs', () => {
  // [name, frame hex, expected code, expected field (undefined = root)]
  const table: [string, string, ErrorCode, string | undefined][] = [
    ['empty frame', '', MALFORMED, undefined],
    ['array claims 2^32-1 items in a 10-byte frame', '9a ffffffff 0000000000', TOO_LARGE, undefined],
    ['array claims 2^32 items (8-byte length)', '9b 0000000100000000 00', TOO_LARGE, undefined],
    ['array claims 2^64-1 items', '9b ffffffffffffffff 00', TOO_LARGE, undefined],
    ['map claims 2^32-1 entries', 'ba ffffffff 6176 01', TOO_LARGE, undefined],
    ['array count beyond remaining bytes', '85 01 02', MALFORMED, undefined],
    ['byte string claims 4 GiB', '5a ffffffff 0102030405', MALFORMED, undefined],
    ['byte string claims 2^63 bytes', '5b 7fffffffffffffff 00', MALFORMED, undefined],
    ['text string claims 2^32 bytes', '7b 0000000100000000 41', MALFORMED, undefined],
    ['text string truncated', '65 4142', MALFORMED, undefined],
    ['1-byte argument missing', '18', MALFORMED, undefined],
    ['8-byte argument truncated', '1b 0000', MALFORMED, undefined],
    ['reserved additional info 28', '1c', MALFORMED, undefined],
    ['reserved additional info 30', 'be', MALFORMED, undefined],
    ['indefinite array', '9f 01 ff', MALFORMED, undefined],
    ['indefinite map', 'bf 6176 01 ff', MALFORMED, undefined],
    ['indefinite byte string', '5f 41 00 ff', MALFORMED, undefined],
    ['indefinite text string', '7f 61 61 ff', MALFORMED, undefined],
    ['lone break code', 'ff', MALFORMED, undefined],
    ['tag 0 (date/time string)', 'c0 74 323031332d30332d32315432303a30343a30305a', MALFORMED, undefined],
    ['tag 1 (epoch time)', 'c1 1a 514b67b0', MALFORMED, undefined],
    ['tag 2 (bignum)', 'c2 49 010000000000000000', MALFORMED, undefined],
    ['tag 55799 (self-describe)', 'd9d9f7 a0', MALFORMED, undefined],
    ['cbor-x record definition, tag 105', 'd8 69 82 82 6176 6174 01', MALFORMED, undefined],
    ['cbor-x structured clone tag 28', 'd8 1c a0', MALFORMED, undefined],
    ['tag 64 (typed Uint8Array)', 'd8 40 43 010203', MALFORMED, undefined],
    ['float16 NaN', 'f9 7e00', MALFORMED, undefined],
    ['float32', 'fa 3fc00000', MALFORMED, undefined],
    ['float64', 'fb 3ff8000000000000', MALFORMED, undefined],
    ['null', 'f6', MALFORMED, undefined],
    ['undefined', 'f7', MALFORMED, undefined],
    ['simple value 16', 'f0', MALFORMED, undefined],
    ['simple value 255', 'f8 ff', MALFORMED, undefined],
    ['uint 2^53 (unsafe)', '1b 0020000000000000', MALFORMED, undefined],
    ['uint 2^64-1', '1b ffffffffffffffff', MALFORMED, undefined],
    ['negative int -2^53 (unsafe)', '3b 001fffffffffffff', MALFORMED, undefined],
    ['integer map key', 'a1 01 02', MALFORMED, undefined],
    ['byte string map key', 'a1 41 76 01', MALFORMED, undefined],
    ['array map key', 'a1 80 01', MALFORMED, undefined],
    ['empty text map key', 'a1 60 01', MALFORMED, undefined],
    ['__proto__ map key', `a1 69 ${Buffer.from('__proto__').toString('hex')} a0`, MALFORMED, undefined],
    ['map key with a dot', 'a1 63 612e62 01', MALFORMED, undefined],
    ['map key starting with a digit', 'a1 62 3161 01', MALFORMED, undefined],
    ['map key of 33 bytes', `a1 78 21 ${'61'.repeat(33)} 01`, MALFORMED, undefined],
    ['duplicate top-level key', 'a3 6176 01 6174 626f6b 6176 01', MALFORMED, 'v'],
    ['invalid UTF-8 in a text value', 'a1 6174 62 c328', MALFORMED, 't'],
    ['UTF-8 encoded surrogate', 'a1 6174 63 eda080', MALFORMED, 't'],
    ['overlong UTF-8', 'a1 6174 62 c0af', MALFORMED, 't'],
    ['trailing byte after the message', 'a0 00', MALFORMED, undefined],
    ['two concatenated messages', 'a0 a0', MALFORMED, undefined],
  ];

  it.each(table)('%s', (_name, h, code, field) => {
    const spy = vi.spyOn(Decoder.prototype, 'decode');
    const err = expectCpnsError(() => decodeMessage(hex(h)), code, field ?? null);
    expect(err.message).not.toMatch(/[0-9a-f]{6,}/); // fixed text, no echo of bytes
    expect(spy).not.toHaveBeenCalled();
  });

  it('a 2^31-item array header in a 10-byte frame is refused even when maxItems is raised to the maximum', () => {
    const frame = hex('9a 7ffffff0 0000000000');
    expectCpnsError(() => decodeMessage(frame, { maxItems: 0x7fffffff }), MALFORMED, null);
  });

  it('floats and unsafe integers are reported at the field that holds them', () => {
    expectCpnsError(() => decodeMessage(okWith(hex('fb 7ff8000000000000'))), MALFORMED, 'ref'); // NaN
    expectCpnsError(() => decodeMessage(okWith(hex('fb 3ff8000000000000'))), MALFORMED, 'ref'); // 1.5
    expectCpnsError(() => decodeMessage(okWith(hex('f9 7c00'))), MALFORMED, 'ref'); // +Infinity
    expectCpnsError(() => decodeMessage(okWith(hex('1b 0020000000000000'))), MALFORMED, 'ref');
    expectCpnsError(() => decodeMessage(okWith(hex('c1 01'))), MALFORMED, 'ref');
  });

  it('nested errors name the path; unknown keys never appear in it', () => {
    // {v:1, t:'x', senderAnchors: [{EVILMARKER: [1.5]}]}
    const frame = concat(
      hex('a3 6176 01 6174 6178'),
      textItem('senderAnchors'),
      hex('81 a1'),
      textItem('EVILMARKER'),
      hex('81 fb 3ff8000000000000'),
    );
    const err = expectCpnsError(() => decodeMessage(frame), MALFORMED, 'senderAnchors[0].?[0]');
    expect(JSON.stringify(err)).not.toContain('EVILMARKER');
  });

  it('duplicate keys nested in arrays of maps are found', () => {
    const anchor = concat(hex('a2'), textItem('counter'), hex('01'), textItem('counter'), hex('02'));
    const frame = concat(hex('a3 6176 01 6174 6178'), textItem('senderAnchors'), hex('82 a0'), anchor);
    expectCpnsError(() => decodeMessage(frame), MALFORMED, 'senderAnchors[1].counter');
  });

  it('the same key in different maps is not a duplicate', () => {
    const frame = concat(
      hex('a2'),
      textItem('a'),
      hex('a1'),
      textItem('a'),
      hex('01'),
      textItem('b'),
      hex('a0'),
    );
    expect(() => scanCbor(frame, limits)).not.toThrow();
  });

  it('non-minimal (but definite) integer and length encodings are accepted', () => {
    // ref = 5 as a uint64; key "t" with a 1-byte length prefix.
    const frame = hex('a3 6176 01 7801 74 626f6b 63726566 1b 0000000000000005');
    expect(decodeMessage(frame)).toStrictEqual({ v: 1, t: 'ok', ref: 5 });
  });

  it('decoding leaves no property on the caller buffer (cbor-x caches a dataView on its input)', () => {
    const frame = encodeMessage({ t: 'ok', ref: 1 });
    decodeMessage(frame);
    expect(Object.keys(frame).filter((k) => !/^\d+$/.test(k))).toEqual([]);
  });
});

describe('limits', () => {
  it('nesting depth: exactly maxDepth passes the scanner, maxDepth+1 is TOO_LARGE', () => {
    const nested = (n: number) => concat(hex('81'.repeat(n - 1)), hex('80'));
    expect(() => scanCbor(nested(limits.maxDepth), limits)).not.toThrow();
    // Passes the scanner, then fails the schema (not a map) - never a crash.
    expectCpnsError(() => decodeMessage(nested(limits.maxDepth)), SCHEMA, null);
    expectCpnsError(() => decodeMessage(nested(limits.maxDepth + 1)), TOO_LARGE);
    // Deeply nested maps too.
    const maps = (n: number) =>
      concat(...Array.from({ length: n - 1 }, () => concat(hex('a1'), textItem('a'))), hex('a0'));
    expect(() => scanCbor(maps(limits.maxDepth), limits)).not.toThrow();
    expectCpnsError(() => scanCbor(maps(limits.maxDepth + 1), limits), TOO_LARGE);
    // Way past the limit: no stack overflow, same error.
    expectCpnsError(() => decodeMessage(hex('81'.repeat(100_000))), TOO_LARGE);
  });

  it('maxDepth option applies to real messages and names the field', () => {
    const msg: ControlMessageInit = {
      t: 'key.deliver',
      sgId: '123e4567-e89b-12d3-a456-426614174000',
      epoch: 2,
      key: new Uint8Array(32),
      suite: 'aes-256-gcm',
      reason: 'periodic',
      graceSec: 10,
      senderAnchors: [{ sender: new Uint8Array(16), instance: new Uint8Array(8), counter: 9 }],
    };
    const frame = encodeMessage(msg);
    expect(decodeMessage(frame, { maxDepth: 3 }).t).toBe('key.deliver');
    expectCpnsError(() => decodeMessage(frame, { maxDepth: 2 }), TOO_LARGE, 'senderAnchors[0]');
  });

  it('maxItems: at the limit passes, one more is TOO_LARGE', () => {
    // {v, t, ref}: 1 map + 6 items = 7.
    const frame = encodeMessage({ t: 'ok', ref: 1 });
    expect(decodeMessage(frame, { maxItems: 7 }).t).toBe('ok');
    expectCpnsError(() => decodeMessage(frame, { maxItems: 6 }), TOO_LARGE);
    // A flat array of 65,537 zero bytes is refused by the default limit.
    const big = concat(head(4, limits.maxItems + 1), new Uint8Array(limits.maxItems + 1));
    expectCpnsError(() => decodeMessage(big), TOO_LARGE);
  });

  it('maxMapEntries: at the limit passes the scanner, one more is TOO_LARGE', () => {
    const map = (n: number) =>
      concat(head(5, n), ...Array.from({ length: n }, (_, i) => concat(textItem(`k${i}`), hex('00'))));
    expect(() => scanCbor(map(limits.maxMapEntries), limits)).not.toThrow();
    expectCpnsError(() => scanCbor(map(limits.maxMapEntries + 1), limits), TOO_LARGE);
  });

  it('maxMessageBytes: a frame of exactly the limit decodes, one byte more is TOO_LARGE', () => {
    const frame = encodeMessage({ ...gkdkIssue, gkdk: new Uint8Array(900) });
    expect(decodeMessage(frame, { maxMessageBytes: frame.length }).t).toBe('gkdk.issue');
    expectCpnsError(() => decodeMessage(frame, { maxMessageBytes: frame.length - 1 }), TOO_LARGE, null);
    expectCpnsError(
      () => encodeMessage(decodeMessage(frame), { maxMessageBytes: frame.length - 1 }),
      TOO_LARGE,
    );
  });

  it('maxMessageBytes default: exactly 512 KiB passes the frame check, 512 KiB + 1 is refused before cbor-x', () => {
    // No legal message is that large (the largest is a full key.deliver, ~455 KB), so the frame is built raw:
    // at exactly the limit it gets past the size check and the scanner and is refused by the schema (gkdk is
    // at most 8 KiB); one byte more is refused by the size check, before cbor-x runs.
    const wire = { v: 1, ...gkdkIssue };
    const probe = rawEncode({ ...wire, gkdk: new Uint8Array(100_000) });
    const overhead = probe.length - 100_000;
    const exact = rawEncode({ ...wire, gkdk: new Uint8Array(limits.maxMessageBytes - overhead) });
    expect(exact.length).toBe(limits.maxMessageBytes);
    expect(() => scanCbor(exact, limits)).not.toThrow();
    expectCpnsError(() => decodeMessage(exact), TOO_LARGE, 'gkdk');
    const over = concat(exact, hex('00'));
    const spy = vi.spyOn(Decoder.prototype, 'decode');
    expectCpnsError(() => decodeMessage(over), TOO_LARGE, null);
    expectCpnsError(() => decodeMessage(new Uint8Array(10_000_000)), TOO_LARGE, null);
    expect(spy).not.toHaveBeenCalled();
  });

  it('invalid limit options are INVALID_ARGUMENT; non-Uint8Array input too', () => {
    const frame = encodeMessage({ t: 'ok', ref: 1 });
    expectCpnsError(() => decodeMessage(frame, { maxDepth: 0 }), ErrorCode.INVALID_ARGUMENT, 'maxDepth');
    expectCpnsError(() => decodeMessage(frame, { maxItems: 1.5 }), ErrorCode.INVALID_ARGUMENT, 'maxItems');
    expectCpnsError(() => decodeMessage('a0' as unknown as Uint8Array), ErrorCode.INVALID_ARGUMENT);
  });

  it('huge limit overrides allocate nothing up front; deep nesting grows the scratch stacks', () => {
    const max = 0x7fffffff;
    const frame = encodeMessage({ t: 'ok', ref: 1 });
    const opts = { maxDepth: max, maxMapEntries: max, maxItems: max };
    expect(decodeMessage(frame, opts).t).toBe('ok');
    // 5000 nested single-key maps, a duplicate key at the bottom: found after the stacks have grown.
    const deep = concat(
      ...Array.from({ length: 5000 }, () => concat(hex('a1'), textItem('a'))),
      hex('a2'),
      textItem('b'),
      hex('00'),
      textItem('b'),
      hex('00'),
    );
    expectCpnsError(() => scanCbor(deep, { ...limits, ...opts }), MALFORMED);
    expectCpnsError(() => scanCbor(deep, limits), TOO_LARGE);
  });

  it('frames that are views into a larger buffer decode correctly', () => {
    const frame = encodeMessage({ t: 'ok', ref: 77 });
    const big = Buffer.concat([Buffer.from('garbage'), frame, Buffer.from('more')]);
    const view = big.subarray(7, 7 + frame.length);
    expect(decodeMessage(view)).toStrictEqual({ v: 1, t: 'ok', ref: 77 });
  });

  it('rawEncode helper produces the same bytes as the codec for valid messages', () => {
    expect(rawEncode({ v: 1, t: 'ok', ref: 1 })).toStrictEqual(encodeMessage({ t: 'ok', ref: 1 }));
  });
});
