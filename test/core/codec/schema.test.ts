import { describe, expect, it } from 'vitest';
import { decodeMessage, encodeMessage, validateMessage } from '../../../src/core/codec/codec.js';
import { type MessageType, messageSchemas, messageTypes } from '../../../src/core/codec/messages.js';
import type { Schema } from '../../../src/core/codec/schema.js';
import { CpnsError, ErrorCode } from '../../../src/core/errors.js';
import { expectCpnsError, rawEncode, sampleMessage, unwrap } from './helpers.js';

const { MALFORMED, TOO_LARGE, SCHEMA, UNSUPPORTED_VERSION } = ErrorCode;

const SG = '123e4567-e89b-12d3-a456-426614174000';
const PNE = 'urn:cpns:pne:123e4567-e89b-12d3-a456-426614174000';
const GW = 'urn:cpns:gw:123e4567-e89b-12d3-a456-426614174000';

/** Decode a message built without schema checks (so invalid values reach the decoder). */
function decodeRaw(obj: Record<string, unknown>, opts?: Parameters<typeof decodeMessage>[1]) {
  return decodeMessage(rawEncode(obj), opts);
}

function pem(label: string, totalBytes: number): string {
  const begin = `-----BEGIN ${label}-----\n`;
  const end = `-----END ${label}-----\n`;
  let bodyBytes = totalBytes - begin.length - end.length;
  const lines: string[] = [];
  while (bodyBytes > 0) {
    // A line is 1..64 characters plus '\n'; never leave a remainder of 1 byte (an empty line).
    const take = bodyBytes <= 65 ? bodyBytes : bodyBytes === 66 ? 64 : 65;
    lines.push('A'.repeat(take - 1));
    bodyBytes -= take;
  }
  return begin + lines.map((l) => `${l}\n`).join('') + end;
}

const keyDeliver = {
  v: 1,
  t: 'key.deliver',
  sgId: SG,
  epoch: 5,
  key: new Uint8Array(32),
  suite: 'chacha20-poly1305',
  reason: 'remove',
  graceSec: 30,
};

describe('truncation at every byte position', () => {
  const samples: MessageType[] = [
    'key.deliver',
    'enroll.relay',
    'sg.signers',
    'gkdk.issue',
    'error',
    'key.delivery.report',
  ];
  it.each(samples)('%s: every strict prefix is MALFORMED, never a crash', (t) => {
    const frame = encodeMessage(sampleMessage(t));
    for (let i = 0; i < frame.length; i++) {
      expectCpnsError(() => decodeMessage(frame.subarray(0, i)), MALFORMED);
    }
    expect(decodeMessage(frame).t).toBe(t);
  });
});

describe('envelope', () => {
  it('unknown t is SCHEMA on field t', () => {
    expectCpnsError(() => decodeRaw({ v: 1, t: 'key.steal' }), SCHEMA, 't');
    expectCpnsError(() => decodeRaw({ v: 1, t: 7 }), SCHEMA, 't');
    expectCpnsError(() => decodeRaw({ v: 1 }), SCHEMA, 't');
    expectCpnsError(() => decodeRaw({ v: 1, t: 'toString' }), SCHEMA, 't');
  });

  it('v other than 1 is UNSUPPORTED_VERSION, checked before t', () => {
    expectCpnsError(() => decodeRaw({ v: 2, t: 'ok', ref: 1 }), UNSUPPORTED_VERSION, 'v');
    expectCpnsError(() => decodeRaw({ v: 0, t: 'ok', ref: 1 }), UNSUPPORTED_VERSION, 'v');
    expectCpnsError(() => decodeRaw({ v: 2, t: 'future.thing', x: 'y' }), UNSUPPORTED_VERSION, 'v');
    expectCpnsError(() => decodeRaw({ v: '1', t: 'ok', ref: 1 }), SCHEMA, 'v');
    expectCpnsError(() => decodeRaw({ v: -1, t: 'ok', ref: 1 }), SCHEMA, 'v');
    expectCpnsError(() => decodeRaw({ t: 'ok', ref: 1 }), SCHEMA, 'v');
  });

  it('the top level must be a map', () => {
    for (const v of [[], 1, 'ok', new Uint8Array(2), true]) {
      expectCpnsError(() => decodeMessage(rawEncode(v)), SCHEMA, null);
    }
  });

  it('request id: optional uint on every message', () => {
    expect(decodeRaw({ v: 1, t: 'ok', id: 9, ref: 1 })).toStrictEqual({ v: 1, t: 'ok', id: 9, ref: 1 });
    expectCpnsError(() => decodeRaw({ v: 1, t: 'ok', id: -1, ref: 1 }), SCHEMA, 'id');
    expectCpnsError(() => decodeRaw({ v: 1, t: 'ok', id: 'a', ref: 1 }), SCHEMA, 'id');
  });
});

/** A value of a different CBOR type than the schema expects. */
function wrongValue(schema: Schema<unknown>): unknown {
  switch (schema.info.kind) {
    case 'str':
    case 'enum':
    case 'bool':
      return 987654;
    case 'uint':
    case 'bytes':
      return 'WRONGVALUE';
    case 'literal':
      return typeof schema.info.value === 'number' ? 'WRONGVALUE' : 987654;
    case 'array':
      return {};
    case 'object':
      return [];
  }
}

describe('per-field checks for every message type', () => {
  it.each(messageTypes)('%s: wrong type, missing field, extra field', (t) => {
    const info = messageSchemas[t].info;
    if (info.kind !== 'object') throw new Error('object expected');
    const sample = sampleMessage(t) as Record<string, unknown>;
    expect(decodeRaw(sample)).toStrictEqual(sample);
    for (const [k, f] of Object.entries(info.shape)) {
      // v is the version: a wrong type is SCHEMA, checked by the envelope.
      const bad = { ...sample, [k]: wrongValue(unwrap(f)) };
      const err = expectCpnsError(() => decodeRaw(bad), SCHEMA, k);
      expect(err.message).not.toMatch(/WRONGVALUE|987654/);
      if (!('optional' in f)) {
        const missing = { ...sample };
        delete missing[k];
        expectCpnsError(() => decodeRaw(missing), SCHEMA, k);
        expectCpnsError(() => validateMessage(missing), SCHEMA, k);
      }
    }
    // Unknown field names are not echoed; a field of another message type is named.
    expectCpnsError(() => decodeRaw({ ...sample, bogusField: 1 }), SCHEMA, null);
    const foreign = 'ackedAt' in info.shape ? 'csr' : 'ackedAt';
    expectCpnsError(() => decodeRaw({ ...sample, [foreign]: 1 }), SCHEMA, foreign);
    // The same checks apply on encode: we never send what a peer would reject.
    expectCpnsError(() => encodeMessage({ ...sample, bogusField: 1 } as never), SCHEMA, null);
  });

  it('nested fields are named by their path', () => {
    const anchors = [
      { sender: new Uint8Array(16), instance: new Uint8Array(8), counter: 1 },
      { sender: new Uint8Array(16), instance: new Uint8Array(8), counter: -1 },
    ];
    expectCpnsError(
      () => decodeRaw({ ...keyDeliver, senderAnchors: anchors }),
      SCHEMA,
      'senderAnchors[1].counter',
    );
    const shortInstance = [{ sender: new Uint8Array(16), instance: new Uint8Array(7), counter: 1 }];
    expectCpnsError(
      () => decodeRaw({ ...keyDeliver, senderAnchors: shortInstance }),
      SCHEMA,
      'senderAnchors[0].instance',
    );
    expectCpnsError(
      () =>
        decodeRaw({
          ...keyDeliver,
          senderAnchors: [{ sender: new Uint8Array(16), instance: new Uint8Array(8) }],
        }),
      SCHEMA,
      'senderAnchors[0].counter',
    );
    expectCpnsError(() => decodeRaw({ ...keyDeliver, targets: [PNE, GW] }), SCHEMA, 'targets[1]');
    const relay = {
      v: 1,
      t: 'enroll.relay',
      request: { token: 'abc', role: 'admin', csr: pem('CERTIFICATE REQUEST', 200) },
    };
    expectCpnsError(() => decodeRaw(relay), SCHEMA, 'request.role');
    expectCpnsError(
      () =>
        decodeRaw({
          v: 1,
          t: 'sg.signers',
          sgId: SG,
          signers: [{ pneId: PNE, key: new Uint8Array(32), extra: 1 }],
        }),
      SCHEMA,
      'signers[0]',
    );
    expectCpnsError(
      () =>
        decodeRaw({
          v: 1,
          t: 'key.delivery.report',
          sgId: SG,
          epoch: 1,
          entries: [
            { pneId: PNE, method: 'unicast', ackedAt: 1 },
            { pneId: PNE, method: 'unicast', ackedAt: 'yes' },
          ],
        }),
      SCHEMA,
      'entries[1].ackedAt',
    );
    expectCpnsError(
      () => decodeRaw({ v: 1, t: 'gw.register', capabilities: { media: ['wifi', 'lte'] } }),
      SCHEMA,
      'capabilities.media[1]',
    );
  });
});

describe('integers', () => {
  it('epochs are uint32: 2^32-1 ok, 2^32 and above SCHEMA', () => {
    expect(decodeRaw({ ...keyDeliver, epoch: 0xffffffff })).toMatchObject({ epoch: 0xffffffff });
    expectCpnsError(() => decodeRaw({ ...keyDeliver, epoch: 0x1_0000_0000 }), SCHEMA, 'epoch');
    expectCpnsError(() => decodeRaw({ ...keyDeliver, epoch: 2 ** 52 }), SCHEMA, 'epoch');
    expectCpnsError(() => decodeRaw({ ...keyDeliver, previousEpoch: 2 ** 40 }), SCHEMA, 'previousEpoch');
  });

  it('negative integers are SCHEMA where a uint is expected', () => {
    expectCpnsError(() => decodeRaw({ ...keyDeliver, epoch: -1 }), SCHEMA, 'epoch');
    expectCpnsError(() => decodeRaw({ v: 1, t: 'ok', ref: -5000000000 }), SCHEMA, 'ref');
  });

  it('NaN, Infinity and fractions are refused on encode (SCHEMA) and on decode (MALFORMED)', () => {
    for (const ref of [Number.NaN, Number.POSITIVE_INFINITY, 1.5, 2 ** 53, -0.5]) {
      expectCpnsError(() => encodeMessage({ t: 'ok', ref }), SCHEMA, 'ref');
      expectCpnsError(() => decodeRaw({ v: 1, t: 'ok', ref }), [MALFORMED, SCHEMA], 'ref');
    }
  });

  it('rekeyIntervalSec must be >= 1', () => {
    const create = {
      v: 1,
      t: 'sg.create',
      name: 'g',
      joinPolicy: 'open',
      suite: 'aes-256-gcm',
      sourceAuth: false,
    };
    expect(decodeRaw({ ...create, rekeyIntervalSec: 1 })).toMatchObject({ rekeyIntervalSec: 1 });
    expectCpnsError(() => decodeRaw({ ...create, rekeyIntervalSec: 0 }), SCHEMA, 'rekeyIntervalSec');
  });
});

describe('identifiers', () => {
  const badUuids: [string, ErrorCode][] = [
    ['123E4567-E89B-12D3-A456-426614174000', SCHEMA], // uppercase
    ['123e4567e89b12d3a456426614174000', SCHEMA], // no dashes (too short)
    ['123e4567-e89b-12d3-a456-42661417400', SCHEMA], // 35 chars
    ['123e4567-e89b-12d3-a456-4266141740000', TOO_LARGE], // 37 chars
    ['123e4567-e89b-12d3-a456_426614174000', SCHEMA],
    ['g23e4567-e89b-12d3-a456-426614174000', SCHEMA],
    ['{23e4567-e89b-12d3-a456-42661417400}', SCHEMA],
    ['', SCHEMA],
  ];
  it.each(badUuids)('sgId %j is refused', (sgId, code) => {
    expectCpnsError(() => decodeRaw({ v: 1, t: 'sg.join', sgId }), code, 'sgId');
  });

  it('pneId and gwId must carry their own prefix', () => {
    expectCpnsError(() => decodeRaw({ v: 1, t: 'pne.detach', pneId: GW }), SCHEMA, 'pneId');
    expectCpnsError(() => decodeRaw({ v: 1, t: 'pne.detach', pneId: `urn:cpns:gw:${SG}x` }), SCHEMA, 'pneId');
    expectCpnsError(() => decodeRaw({ v: 1, t: 'pne.detach', pneId: PNE.toUpperCase() }), SCHEMA, 'pneId');
    const gkdk = {
      v: 1,
      t: 'gkdk.issue',
      gwId: PNE,
      treeId: SG,
      treeVersion: 1,
      leaf: 0,
      gkdk: new Uint8Array(8),
    };
    expectCpnsError(() => decodeRaw(gkdk), TOO_LARGE, 'gwId');
  });

  it('PEM fields must look like PEM', () => {
    const req = { v: 1, t: 'enroll.request', token: 'tok', role: 'pne' };
    expect(decodeRaw({ ...req, csr: pem('CERTIFICATE REQUEST', 300) }).t).toBe('enroll.request');
    expectCpnsError(() => decodeRaw({ ...req, csr: pem('CERTIFICATE', 300) }), SCHEMA, 'csr');
    expectCpnsError(() => decodeRaw({ ...req, csr: 'hello' }), SCHEMA, 'csr');
    const resp = { v: 1, t: 'enroll.response', caCert: pem('CERTIFICATE', 100) };
    const chain = pem('CERTIFICATE', 100) + pem('CERTIFICATE', 120);
    expect(decodeRaw({ ...resp, cert: chain }).t).toBe('enroll.response');
    expectCpnsError(() => decodeRaw({ ...resp, cert: `${chain}junk` }), SCHEMA, 'cert');
  });
});

describe('bounds: exactly max is accepted, max+1 is TOO_LARGE', () => {
  const cases: [string, (n: number) => Record<string, unknown>, number, string][] = [
    [
      'token (128 B)',
      (n) => ({
        v: 1,
        t: 'enroll.request',
        token: 'x'.repeat(n),
        role: 'gw',
        csr: pem('CERTIFICATE REQUEST', 200),
      }),
      128,
      'token',
    ],
    [
      'csr (8 KiB)',
      (n) => ({ v: 1, t: 'enroll.request', token: 't', role: 'gw', csr: pem('CERTIFICATE REQUEST', n) }),
      8192,
      'csr',
    ],
    [
      'sg name (64 UTF-8 bytes)',
      (n) => ({
        v: 1,
        t: 'sg.create',
        name: `${'é'.repeat(30)}${'a'.repeat(n - 60)}`,
        joinPolicy: 'invite',
        suite: 'aes-256-gcm',
        sourceAuth: true,
      }),
      64,
      'name',
    ],
    [
      'error message (256 B)',
      (n) => ({ v: 1, t: 'error', code: 'BAD_MAC', message: 'm'.repeat(n) }),
      256,
      'message',
    ],
    ['error code (64 B)', (n) => ({ v: 1, t: 'error', code: 'E'.repeat(n), message: '' }), 64, 'code'],
    [
      'error field (128 B)',
      (n) => ({ v: 1, t: 'error', code: 'E', message: '', field: 'f'.repeat(n) }),
      128,
      'field',
    ],
    [
      'gkdk (8 KiB)',
      (n) => ({
        v: 1,
        t: 'gkdk.issue',
        gwId: GW,
        treeId: SG,
        treeVersion: 1,
        leaf: 3,
        gkdk: new Uint8Array(n),
        signKey: new Uint8Array(32),
        media: [{ name: 'wifi', group: '239.1.2.3', port: 5000 }],
      }),
      8192,
      'gkdk',
    ],
    [
      'senderAnchors (4096)',
      (n) => ({
        ...keyDeliver,
        senderAnchors: Array.from({ length: n }, () => ({
          sender: new Uint8Array(16),
          instance: new Uint8Array(8),
          counter: 1,
        })),
      }),
      4096,
      'senderAnchors',
    ],
    [
      'targets (4096)',
      (n) => ({ ...keyDeliver, targets: Array.from({ length: n }, () => PNE) }),
      4096,
      'targets',
    ],
    [
      'sg.signers signers (4096)',
      (n) => ({
        v: 1,
        t: 'sg.signers',
        sgId: SG,
        signers: Array.from({ length: n }, () => ({ pneId: PNE, key: new Uint8Array(32) })),
      }),
      4096,
      'signers',
    ],
    [
      'key.delivery.report entries (4096)',
      (n) => ({
        v: 1,
        t: 'key.delivery.report',
        sgId: SG,
        epoch: 1,
        entries: Array.from({ length: n }, () => ({ pneId: PNE, method: 'broadcast', ackedAt: 1 })),
      }),
      4096,
      'entries',
    ],
    [
      'media (8)',
      (n) => ({ v: 1, t: 'pne.attach', pneId: PNE, media: Array.from({ length: n }, () => 'bt') }),
      8,
      'media',
    ],
  ];
  it.each(cases)('%s', (_name, build, max, field) => {
    expect(decodeRaw(build(max)).t).toBeTypeOf('string');
    expect(encodeMessage(build(max) as never).length).toBeGreaterThan(0);
    expectCpnsError(() => decodeRaw(build(max + 1)), TOO_LARGE, field);
    expectCpnsError(() => encodeMessage(build(max + 1) as never), TOO_LARGE, field);
  });

  it('fixed-length byte strings: wrong length is SCHEMA', () => {
    for (const n of [0, 31, 33]) {
      expectCpnsError(() => decodeRaw({ ...keyDeliver, key: new Uint8Array(n) }), SCHEMA, 'key');
    }
  });

  it('byte strings with a minimum length: one below it is SCHEMA', () => {
    const issue = {
      v: 1,
      t: 'gkdk.issue',
      gwId: GW,
      treeId: SG,
      treeVersion: 1,
      leaf: 3,
      signKey: new Uint8Array(32),
      media: [],
    };
    expect(decodeRaw({ ...issue, gkdk: new Uint8Array(1) }).t).toBe('gkdk.issue');
    expectCpnsError(() => decodeRaw({ ...issue, gkdk: new Uint8Array(0) }), SCHEMA, 'gkdk');
  });

  it('empty or control-character text is refused where not allowed', () => {
    const create = { v: 1, t: 'sg.create', joinPolicy: 'open', suite: 'aes-256-gcm', sourceAuth: false };
    expectCpnsError(() => decodeRaw({ ...create, name: '' }), SCHEMA, 'name');
    expectCpnsError(() => decodeRaw({ ...create, name: 'a\nb' }), SCHEMA, 'name');
    expectCpnsError(() => decodeRaw({ ...create, name: 'a\u0000' }), SCHEMA, 'name');
    expectCpnsError(() => encodeMessage({ ...create, name: 'a\uD800b' } as never), SCHEMA, 'name');
    expect(decodeRaw({ ...create, name: 'Família 🎮' })).toMatchObject({ name: 'Família 🎮' });
  });
});

describe('error texts never carry input bytes', () => {
  const M = 'EVILMARKER';
  const hostile: [string, () => unknown][] = [
    [
      'overlong token',
      () => decodeRaw({ v: 1, t: 'enroll.request', token: M.repeat(20), role: 'gw', csr: 'x' }),
    ],
    [
      'token with a space',
      () => decodeRaw({ v: 1, t: 'enroll.request', token: `${M} x`, role: 'gw', csr: 'x' }),
    ],
    ['unknown type', () => decodeRaw({ v: 1, t: M })],
    ['enum value', () => decodeRaw({ ...keyDeliver, reason: M })],
    ['unknown key', () => decodeRaw({ v: 1, t: 'ok', ref: 1, [M]: M })],
    ['unknown nested key', () => decodeRaw({ ...keyDeliver, senderAnchors: [{ [M]: 1 }] })],
    [
      'duplicate unknown key',
      () =>
        decodeMessage(
          Buffer.from(
            `a2 6a${Buffer.from(M).toString('hex')} 01 6a${Buffer.from(M).toString('hex')} 01`.replace(
              / /g,
              '',
            ),
            'hex',
          ),
        ),
    ],
    ['long invalid key', () => decodeRaw({ v: 1, [`${M}_${M}_${M}_${M}`]: 1 })],
    [
      'invalid UTF-8 around marker',
      () =>
        decodeMessage(
          Buffer.concat([Buffer.from('a161746b', 'hex'), Buffer.from(M), Buffer.from('ff', 'hex')]),
        ),
    ],
    ['sgId', () => decodeRaw({ v: 1, t: 'sg.join', sgId: M })],
    ['encode with hostile value', () => encodeMessage({ t: 'error', code: M.toLowerCase(), message: M })],
    [
      'name with control char',
      () =>
        decodeRaw({
          v: 1,
          t: 'sg.create',
          name: `${M}\u0007`,
          joinPolicy: 'open',
          suite: 'aes-256-gcm',
          sourceAuth: false,
        }),
    ],
  ];
  it.each(hostile)('%s', (_name, fn) => {
    let caught: unknown;
    try {
      fn();
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(CpnsError);
    const err = caught as CpnsError;
    for (const text of [err.message, err.field ?? '', String(err.stack), JSON.stringify(err)]) {
      expect(text.toUpperCase()).not.toContain(M);
    }
  });
});
