import { describe, expect, it } from 'vitest';
import {
  BROADCAST_REASONS,
  BROADCAST_VERSION,
  buildBroadcast,
  computeCover,
  ENTRY_BYTES,
  encodeSubsetId,
  gkdkSize,
  HEADER_BYTES,
  MAX_DATAGRAM_BYTES,
  MAX_ENTRIES_PER_DATAGRAM,
  MAX_FRAGMENTS,
  MAX_GKDK_BYTES,
  openBroadcast,
  parseBroadcast,
  parseGkdk,
  SdTree,
  serializeGkdk,
  signedMessage,
} from '../../../src/core/broadcast/index.js';
import { rekeyReasons } from '../../../src/core/codec/index.js';
import { ed25519PrivateFromSeed, ed25519Sign } from '../../../src/core/crypto/ed25519.js';
import { isCpnsError } from '../../../src/core/errors.js';
import { GW_KEYS, groupKey, makePn, SG_ID } from './helpers.js';
import kat from './kat.json' with { type: 'json' };
import { buildKat, KAT_INPUT } from './kat-build.js';

function errorOf(f: () => unknown): { code: string; field: string | undefined; message: string } | string {
  try {
    f();
  } catch (e) {
    if (isCpnsError(e)) return { code: e.code, field: e.field, message: e.message };
    return `non-CpnsError: ${String(e)}`;
  }
  return 'no error';
}

const resign = (body: Buffer) => Buffer.concat([body, ed25519Sign(GW_KEYS.privateKey, signedMessage(body))]);

describe('frozen known-answer vector (kat.json)', () => {
  it('datagram, GKDK and tree state bytes are unchanged', () => {
    const out = buildKat();
    expect(out).toEqual(kat.output);
  });

  it('the frozen datagram opens for members with the frozen GKDK, byte-exact fields', () => {
    const d = Buffer.from(kat.output.datagrams[0]!, 'hex');
    const gkdk = parseGkdk(Buffer.from(kat.output.gkdkP5, 'hex'));
    const pub = ed25519PrivateFromSeed(Buffer.from(KAT_INPUT.ed25519Seed, 'hex')).publicKey;
    const r = openBroadcast(d, { gkdk, gwPublicKey: pub, currentEpoch: KAT_INPUT.epoch - 1 });
    expect(r.groupKey.toString('hex')).toBe(KAT_INPUT.groupKey);
    expect(r.sgId.toString('hex')).toBe(KAT_INPUT.sgId);
    expect(r).toMatchObject({ reason: 'periodic', graceSec: 600, activateIn: 30 });
    const p = parseBroadcast(d);
    expect(d[0]).toBe(2);
    expect(d.subarray(1, 17).toString('hex')).toBe(KAT_INPUT.gwId);
    expect(d.subarray(17, 33).toString('hex')).toBe(KAT_INPUT.treeId);
    expect(d.readUInt32BE(33)).toBe(3);
    expect(d[37]).toBe(4);
    expect(d.readUInt32BE(54)).toBe(KAT_INPUT.epoch);
    expect(d.readUInt16BE(62)).toBe(4);
    expect(d[64]).toBe(4); // 'periodic' = 1 + index 3
    expect(d.readUInt32BE(65)).toBe(600);
    expect(d.readUInt32BE(69)).toBe(30);
    expect(HEADER_BYTES).toBe(73);
    expect(d.length).toBe(73 + p.entries.length * ENTRY_BYTES + 64);
    expect(p.entries.map((e) => e.subsetId.toString(16))).toEqual(['200013', '300014', '300016', '300018']);
  });

  it("the retired v1 datagram is refused (UNSUPPORTED_VERSION); its wrapped keys equal v2's (KEK unchanged)", () => {
    const v1 = Buffer.from(kat.retired.v1[0]!, 'hex');
    const v2 = Buffer.from(kat.output.datagrams[0]!, 'hex');
    const gkdk = parseGkdk(Buffer.from(kat.output.gkdkP5, 'hex'));
    const pub = ed25519PrivateFromSeed(Buffer.from(KAT_INPUT.ed25519Seed, 'hex')).publicKey;
    expect(errorOf(() => openBroadcast(v1, { gkdk, gwPublicKey: pub }))).toMatchObject({
      code: 'UNSUPPORTED_VERSION',
      field: 'version',
    });
    // v1 = header 64 | entries | signature; v2 = header 64 | reason, grace, activation (9) | entries | signature
    expect(v1.subarray(1, 64).equals(v2.subarray(1, 64))).toBe(true);
    expect(v1.subarray(64, -64).equals(v2.subarray(73, -64))).toBe(true);
  });
});

describe('wire v2 fields: reason, grace, activation', () => {
  const pn = makePn(16, 8);
  const bc = (extra: object) =>
    buildBroadcast({
      gwSigningKey: GW_KEYS.privateKey,
      tree: pn.tree,
      sgId: SG_ID,
      epoch: 7,
      groupKey: groupKey(7),
      memberPneIds: ['p0', 'p3', 'p5'],
      ...extra,
    });
  const open = (d: Buffer) => openBroadcast(d, { gkdk: pn.gkdk.get('p3')!, gwPublicKey: GW_KEYS.publicKey });

  it('every rekey reason of the codec has a frozen wire code; round trip through the signed datagram', () => {
    expect([...BROADCAST_REASONS]).toEqual([...rekeyReasons]);
    for (const [k, reason] of BROADCAST_REASONS.entries()) {
      const [d] = bc({ reason, graceSec: 0xffffffff, activateIn: k });
      expect(d![64]).toBe(k + 1);
      expect(open(d!)).toMatchObject({ reason, graceSec: 0xffffffff, activateIn: k, epoch: 7 });
    }
  });

  it('defaults: no reason (code 0), grace 0, active at once — the strict case', () => {
    const [d] = bc({});
    expect(d!.subarray(64, 73).equals(Buffer.alloc(9))).toBe(true);
    expect(open(d!)).toMatchObject({ reason: undefined, graceSec: 0, activateIn: 0 });
    expect(parseBroadcast(d!)).toMatchObject({ version: BROADCAST_VERSION, reason: undefined, graceSec: 0 });
  });

  it('each fragment of a multi-datagram broadcast carries the fields', () => {
    const big = makePn(1024, 1024);
    const ds = buildBroadcast({
      gwSigningKey: GW_KEYS.privateKey,
      tree: big.tree,
      sgId: SG_ID,
      epoch: 2,
      groupKey: groupKey(2),
      memberPneIds: Array.from({ length: 60 }, (_, x) => `p${2 * x + 1}`),
      reason: 'operator',
      graceSec: 10,
    });
    expect(ds.length).toBe(3);
    for (const d of ds)
      expect(parseBroadcast(d)).toMatchObject({ reason: 'operator', graceSec: 10, activateIn: 0 });
  });

  it('out-of-range values are INVALID_ARGUMENT at the GW', () => {
    expect(errorOf(() => bc({ graceSec: -1 }))).toMatchObject({
      code: 'INVALID_ARGUMENT',
      field: 'graceSec',
    });
    expect(errorOf(() => bc({ graceSec: 2 ** 32 }))).toMatchObject({
      code: 'INVALID_ARGUMENT',
      field: 'graceSec',
    });
    expect(errorOf(() => bc({ activateIn: 1.5 }))).toMatchObject({
      code: 'INVALID_ARGUMENT',
      field: 'activateIn',
    });
    expect(errorOf(() => bc({ reason: 'bogus' }))).toMatchObject({
      code: 'INVALID_ARGUMENT',
      field: 'reason',
    });
  });

  it('the signature covers them: changing grace, activation or reason → BAD_SIGNATURE', () => {
    const [d] = bc({ reason: 'remove', graceSec: 0 });
    for (const [off, v] of [
      [64, 4], // remove -> periodic
      [68, 10], // grace 0 -> 10 s
      [72, 1], // activation
    ] as const) {
      const m = Buffer.from(d!);
      m[off] = v;
      expect(errorOf(() => open(m))).toMatchObject({ code: 'BAD_SIGNATURE' });
    }
  });
});

describe('limits at exactly the limit and limit + 1', () => {
  // members = every odd leaf among the first 2k: k singleton subsets S_{parent, sibling}
  const oddMembers = (k: number) => Array.from({ length: k }, (_, x) => 2 * x + 1);
  const pn = makePn(1024, 1024);
  const bc = (leaves: number[]) =>
    buildBroadcast({
      gwSigningKey: GW_KEYS.privateKey,
      tree: pn.tree,
      sgId: SG_ID,
      epoch: 1,
      groupKey: groupKey(1),
      memberPneIds: leaves.map((u) => `p${u}`),
    });

  it('24 entries fit one datagram (1169 B); 25 entries need two', () => {
    expect(MAX_ENTRIES_PER_DATAGRAM).toBe(24);
    expect(computeCover(1024, oddMembers(24)).length).toBe(24);
    const one = bc(oddMembers(24));
    expect(one.map((d) => d.length)).toEqual([73 + 24 * 43 + 64]);
    expect(one[0]!.length).toBe(1169);
    expect(parseBroadcast(one[0]!).entries.length).toBe(24);
    const two = bc(oddMembers(25));
    expect(two.map((d) => parseBroadcast(d).entries.length)).toEqual([24, 1]);
  });

  it('largest cover of a 1024 tree (N/2 = 512 entries) → 22 datagrams, all <= 1200 B, members open', () => {
    const mem = oddMembers(512);
    const ds = bc(mem);
    expect(ds.length).toBe(22);
    for (const d of ds) expect(d.length).toBeLessThanOrEqual(MAX_DATAGRAM_BYTES);
    for (const u of [1, 511, 1023]) {
      const opened = ds.flatMap((d) => {
        try {
          return [openBroadcast(d, { gkdk: pn.gkdk.get(`p${u}`)!, gwPublicKey: GW_KEYS.publicKey })];
        } catch {
          return [];
        }
      });
      expect(opened.length).toBe(1);
    }
  });

  it('entry count 24 parses, 25 is TOO_LARGE (even when correctly signed)', () => {
    const body24 = Buffer.from(parseBroadcast(bc(oddMembers(24))[0]!).body);
    expect(parseBroadcast(resign(body24)).entries.length).toBe(24);
    // 25 entries: 73 + 25·43 + 64 = 1212 bytes > 1200 as well; both limits reject it
    const body25 = Buffer.concat([body24, body24.subarray(73 + 23 * 43, 73 + 24 * 43)]);
    body25.writeUInt16BE(25, 62);
    expect(errorOf(() => parseBroadcast(resign(body25)))).toMatchObject({
      code: 'TOO_LARGE',
      field: 'datagram',
    });
    const hdr25 = Buffer.from(resign(body24));
    hdr25.writeUInt16BE(25, 62);
    expect(errorOf(() => parseBroadcast(hdr25))).toMatchObject({ code: 'TOO_LARGE', field: 'entryCount' });
  });

  it('datagram of 1200 bytes is not TOO_LARGE (length mismatch: MALFORMED); 1201 is TOO_LARGE', () => {
    const d1200 = Buffer.alloc(1200);
    d1200[0] = BROADCAST_VERSION;
    d1200.writeUInt16BE(24, 62);
    expect(errorOf(() => parseBroadcast(d1200))).toMatchObject({ code: 'MALFORMED', field: 'datagram' });
    const d1201 = Buffer.alloc(1201);
    d1201[0] = BROADCAST_VERSION;
    expect(errorOf(() => parseBroadcast(d1201))).toMatchObject({ code: 'TOO_LARGE', field: 'datagram' });
    expect(
      errorOf(() => openBroadcast(d1201, { gkdk: pn.gkdk.get('p0')!, gwPublicKey: GW_KEYS.publicKey })),
    ).toMatchObject({
      code: 'TOO_LARGE',
    });
  });

  it('fragment count MAX_FRAGMENTS parses, MAX_FRAGMENTS + 1 is TOO_LARGE', () => {
    const body = Buffer.from(parseBroadcast(bc(oddMembers(3))[0]!).body);
    body.writeUInt16BE(MAX_FRAGMENTS, 60);
    body.writeUInt16BE(MAX_FRAGMENTS - 1, 58);
    expect(parseBroadcast(resign(body)).fragmentCount).toBe(1366);
    body.writeUInt16BE(MAX_FRAGMENTS + 1, 60);
    expect(errorOf(() => parseBroadcast(resign(body)))).toMatchObject({
      code: 'TOO_LARGE',
      field: 'fragmentCount',
    });
  });

  it('tree capacity 2^16 works end to end; 2^17 is INVALID_ARGUMENT; GKDK size at the limit', () => {
    const big = SdTree.create({ gwId: Buffer.alloc(16, 1), capacity: 65536 });
    for (let k = 0; k < 5; k++) big.assignLeaf(`b${k}`);
    const g = big.gkdkFor('b3');
    expect(g.labels.length).toBe(136 * 16);
    const ser = serializeGkdk(g);
    expect(ser.length).toBe(MAX_GKDK_BYTES);
    expect(parseGkdk(ser).labels.equals(g.labels)).toBe(true);
    expect(errorOf(() => parseGkdk(Buffer.concat([ser, Buffer.alloc(1)])))).toMatchObject({
      code: 'TOO_LARGE',
      field: 'gkdk',
    });
    const [d] = buildBroadcast({
      gwSigningKey: GW_KEYS.privateKey,
      tree: big,
      sgId: SG_ID,
      epoch: 1,
      groupKey: groupKey(4),
      memberPneIds: ['b1', 'b3'],
    });
    expect(openBroadcast(d!, { gkdk: g, gwPublicKey: GW_KEYS.publicKey }).groupKey).toEqual(groupKey(4));
    expect(errorOf(() => SdTree.create({ gwId: Buffer.alloc(16), capacity: 131072 }))).toMatchObject({
      code: 'INVALID_ARGUMENT',
      field: 'capacity',
    });
  });

  it('GKDK size for N = 1024 is 938 bytes (56 labels incl. K_ALL)', () => {
    expect(gkdkSize(10)).toBe(938);
    expect(serializeGkdk(pn.gkdk.get('p0')!).length).toBe(938);
  });
});

describe('malformed datagrams (table-driven): typed error and field, never a crash', () => {
  const pn = makePn(16, 16);
  const [valid] = buildBroadcast({
    gwSigningKey: GW_KEYS.privateKey,
    tree: pn.tree,
    sgId: SG_ID,
    epoch: 5,
    groupKey: groupKey(5),
    memberPneIds: ['p0', 'p1', 'p2', 'p5', 'p9', 'p12'],
  });
  const body = () => Buffer.from(parseBroadcast(valid!).body);
  const withHeader = (f: (b: Buffer) => void) => {
    const b = body();
    f(b);
    return resign(b);
  };
  const entry = (subsetId: number) => {
    const e = Buffer.alloc(43);
    e.writeUIntBE(subsetId, 0, 3);
    return e;
  };
  const withEntries = (ids: number[], fragCount = 1) => {
    const b = Buffer.concat([body().subarray(0, HEADER_BYTES), ...ids.map(entry)]);
    b.writeUInt16BE(ids.length, 62);
    b.writeUInt16BE(fragCount, 60);
    return resign(b);
  };

  const cases: Array<[string, unknown, string, string]> = [
    ['empty', Buffer.alloc(0), 'MALFORMED', 'version'],
    ['version 1 (retired)', Buffer.from([1]), 'UNSUPPORTED_VERSION', 'version'],
    ['version 3', Buffer.from([3]), 'UNSUPPORTED_VERSION', 'version'],
    [
      'version 1 full size',
      Buffer.concat([Buffer.from([1]), valid!.subarray(1)]),
      'UNSUPPORTED_VERSION',
      'version',
    ],
    [
      'version 0 full size',
      Buffer.concat([Buffer.from([0]), valid!.subarray(1)]),
      'UNSUPPORTED_VERSION',
      'version',
    ],
    ['136 bytes', Buffer.concat([Buffer.from([2]), Buffer.alloc(135)]), 'MALFORMED', 'datagram'],
    [
      'header+signature, no entries',
      Buffer.concat([Buffer.from([2]), Buffer.alloc(136)]),
      'MALFORMED',
      'entryCount',
    ],
    ['truncated by one byte', valid!.subarray(0, valid!.length - 1), 'MALFORMED', 'datagram'],
    ['one trailing byte', Buffer.concat([valid!, Buffer.alloc(1)]), 'MALFORMED', 'datagram'],
    ['1201 bytes', Buffer.alloc(1201, 1), 'TOO_LARGE', 'datagram'],
    ['not bytes', 'hello', 'MALFORMED', 'datagram'],
    ['entry count 0xffff', withHeader((b) => b.writeUInt16BE(0xffff, 62)), 'TOO_LARGE', 'entryCount'],
    // One past the last reason code (codes are 1 + index in BROADCAST_REASONS).
    [
      'reason code past the last',
      withHeader((b) => b.writeUInt8(BROADCAST_REASONS.length + 1, 64)),
      'MALFORMED',
      'reason',
    ],
    ['reason code 255', withHeader((b) => b.writeUInt8(255, 64)), 'MALFORMED', 'reason'],
    ['log2 capacity 0', withHeader((b) => b.writeUInt8(0, 37)), 'MALFORMED', 'log2Capacity'],
    ['log2 capacity 17', withHeader((b) => b.writeUInt8(17, 37)), 'MALFORMED', 'log2Capacity'],
    ['fragment count 0', withHeader((b) => b.writeUInt16BE(0, 60)), 'MALFORMED', 'fragmentCount'],
    ['fragment index = count', withHeader((b) => b.writeUInt16BE(1, 58)), 'MALFORMED', 'fragmentIndex'],
    ['subset j = root', withEntries([1]), 'MALFORMED', 'entries[0].subsetId'],
    ['subset j beyond 2N', withEntries([32]), 'MALFORMED', 'entries[0].subsetId'],
    ['subset d_i >= d_j', withEntries([(2 << 20) | 5]), 'MALFORMED', 'entries[0].subsetId'],
    ['subset reserved bits', withEntries([0xf00000 | 20]), 'MALFORMED', 'entries[0].subsetId'],
    [
      'entries not sorted by i',
      withEntries([encodeSubsetId({ i: 3, j: 14 }), encodeSubsetId({ i: 2, j: 9 })]),
      'MALFORMED',
      'entries[1].subsetId',
    ],
    [
      'duplicate i',
      withEntries([encodeSubsetId({ i: 2, j: 9 }), encodeSubsetId({ i: 2, j: 8 })]),
      'MALFORMED',
      'entries[1].subsetId',
    ],
    [
      'ALL with another entry',
      withEntries([0, encodeSubsetId({ i: 2, j: 9 })]),
      'MALFORMED',
      'entries[0].subsetId',
    ],
    ['ALL in a fragmented broadcast', withEntries([0], 2), 'MALFORMED', 'entries[0].subsetId'],
  ];

  it.each(cases)('%s → %s (%s)', (_, input, code, field) => {
    const viaParse = errorOf(() => parseBroadcast(input as Uint8Array));
    expect(viaParse).toMatchObject({ code, field });
    // openBroadcast: the GW signature is valid on the re-signed cases, so the same structural error surfaces
    const viaOpen = errorOf(() =>
      openBroadcast(input as Uint8Array, { gkdk: pn.gkdk.get('p0')!, gwPublicKey: GW_KEYS.publicKey }),
    );
    expect(typeof viaOpen).toBe('object');
    expect(['MALFORMED', 'TOO_LARGE', 'UNSUPPORTED_VERSION', 'BAD_SIGNATURE']).toContain(
      (viaOpen as { code: string }).code,
    );
  });

  it('random garbage never throws anything but a CpnsError with a fixed message', async () => {
    const fc = (await import('fast-check')).default;
    const gkdk = pn.gkdk.get('p0')!;
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1300 }), fc.boolean(), (bytes, current) => {
        const b = Buffer.from(bytes);
        if (current && b.length > 0) b[0] = BROADCAST_VERSION;
        for (const f of [
          () => parseBroadcast(b),
          () => openBroadcast(b, { gkdk, gwPublicKey: GW_KEYS.publicKey }),
          () => parseGkdk(b),
          () => SdTree.restore(b),
        ]) {
          const r = errorOf(f);
          if (typeof r === 'string') return false;
          if (b.length >= 4 && r.message.includes(b.subarray(1, 4).toString('hex'))) return false;
        }
        return true;
      }),
      { numRuns: 300 },
    );
  });
});

describe('GKDK serialization', () => {
  const pn = makePn(64, 3);
  const g = pn.gkdk.get('p2')!;
  const ser = serializeGkdk(g);
  it('round-trips', () => {
    expect(ser.length).toBe(gkdkSize(6));
    expect(parseGkdk(ser)).toEqual(g);
  });
  it.each([
    ['empty', Buffer.alloc(0), 'MALFORMED', 'version'],
    ['version 2', Buffer.concat([Buffer.from([2]), ser.subarray(1)]), 'UNSUPPORTED_VERSION', 'version'],
    ['truncated header', ser.subarray(0, 57), 'MALFORMED', 'gkdk'],
    ['truncated labels', ser.subarray(0, ser.length - 1), 'MALFORMED', 'labels'],
    ['depth 0', Buffer.from(ser).fill(0, 37, 38), 'MALFORMED', 'log2Capacity'],
    [
      'depth 17',
      (() => {
        const b = Buffer.from(ser);
        b[37] = 17;
        return b;
      })(),
      'MALFORMED',
      'log2Capacity',
    ],
    [
      'leaf out of range',
      (() => {
        const b = Buffer.from(ser);
        b.writeUInt32BE(64, 38);
        return b;
      })(),
      'MALFORMED',
      'leaf',
    ],
    ['too large', Buffer.alloc(MAX_GKDK_BYTES + 1, 1), 'TOO_LARGE', 'gkdk'],
  ] as const)('%s → %s', (_, input, code, field) => {
    expect(errorOf(() => parseGkdk(input))).toMatchObject({ code, field });
  });
});
