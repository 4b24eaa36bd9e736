/**
 * The cluster events' codec (src/cluster/events.ts, docs/cluster.md "Events"): strict validation of hostile input,
 * size bounded before decoding, typed codes, fixed messages; no key material has a field to travel in.
 */
import { describe, expect, it } from 'vitest';
import {
  type ClusterEvent,
  decodeEvent,
  EVENT_LIMITS,
  EVENT_TYPES,
  encodeEvent,
  subjectOf,
} from '../../src/cluster/events.js';
import { isCpnsError } from '../../src/core/errors.js';

const SG = '0b6f1a52-6f43-4c39-9a39-1f9c4f1d8e01';
const GW = 'urn:cpns:gw:7d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6';
const PNE = (i: number) => `urn:cpns:pne:00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;
const base = { at: 1_700_000_000_000, node: 'node1' };

const SAMPLES: readonly ClusterEvent[] = [
  { ...base, type: 'sg.created', sgId: SG },
  { ...base, type: 'sg.deleted', sgId: SG },
  { ...base, type: 'membership.changed', sgId: SG, added: [PNE(1)], removed: [PNE(2)], reason: 'remove' },
  { ...base, type: 'key.epoch', sgId: SG, epoch: 9, reason: 'member_left' },
  { ...base, type: 'policy.changed', sgId: SG },
  { ...base, type: 'identity.revoked', identity: GW },
  { ...base, type: 'pne.attached', pneId: PNE(5), gwId: GW },
  { ...base, type: 'signer.key', pneId: PNE(6), key: 'ab'.repeat(32) },
  { ...base, type: 'gw.lease', gwId: GW, nodeId: 'node2', generation: 3 },
];

const codeOf = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    if (isCpnsError(e)) return e.code;
    throw e;
  }
  return 'OK';
};

describe('cluster events', () => {
  it('every type round-trips, on its own subject only', () => {
    expect(SAMPLES.map((e) => e.type).sort()).toEqual([...EVENT_TYPES].sort());
    for (const e of SAMPLES) {
      expect(decodeEvent(subjectOf(e.type), encodeEvent(e))).toEqual(e);
      expect(codeOf(() => decodeEvent('cpns.ev.other', encodeEvent(e)))).toBe('SCHEMA');
    }
  });

  it('has no field for key material: an extra field is refused on encode and on decode', () => {
    const withKey = { ...SAMPLES[3]!, key: 'AAAA' } as unknown as ClusterEvent;
    expect(codeOf(() => encodeEvent(withKey))).toBe('SCHEMA');
    const bytes = Buffer.from(JSON.stringify({ v: 1, ...withKey }));
    expect(codeOf(() => decodeEvent('cpns.ev.key.epoch', bytes))).toBe('SCHEMA');
  });

  it('key.epoch may carry the update id (a UUID), and nothing else optional', () => {
    const ev = { ...SAMPLES[3]!, updateId: '2f0c1f6e-3c1a-4a9b-8c7d-6e5f4a3b2c1d' } as ClusterEvent;
    expect(decodeEvent('cpns.ev.key.epoch', encodeEvent(ev))).toEqual(ev);
    const bad = { ...SAMPLES[3]!, updateId: 'not-a-uuid' } as unknown as ClusterEvent;
    expect(codeOf(() => encodeEvent(bad))).toBe('SCHEMA');
    const elsewhere = {
      ...SAMPLES[0]!,
      updateId: '2f0c1f6e-3c1a-4a9b-8c7d-6e5f4a3b2c1d',
    } as unknown as ClusterEvent;
    expect(codeOf(() => encodeEvent(elsewhere))).toBe('SCHEMA');
  });

  it('checks the size before decoding, and bounds lists and tokens', () => {
    const big = new Uint8Array(EVENT_LIMITS.maxEventBytes + 1).fill(0x7b); // '{{{{…': never parsed
    expect(codeOf(() => decodeEvent('cpns.ev.sg.created', big))).toBe('TOO_LARGE');
    const many = Array.from({ length: EVENT_LIMITS.maxListEntries + 1 }, (_, i) => PNE(i));
    expect(
      codeOf(() =>
        encodeEvent({
          ...base,
          type: 'membership.changed',
          sgId: SG,
          added: many,
          removed: [],
          reason: 'join',
        }),
      ),
    ).toBe('TOO_LARGE');
    expect(
      codeOf(() => encodeEvent({ ...base, type: 'key.epoch', sgId: SG, epoch: 1, reason: 'x'.repeat(65) })),
    ).toBe('SCHEMA');
  });

  it('refuses wrong shapes with stable codes and fixed messages (no input bytes in them)', () => {
    const evil = 'EVIL\u0000<x>';
    const cases: [unknown, string][] = [
      ['[]', 'MALFORMED'],
      ['null', 'MALFORMED'],
      [`{"v":1,"type":"${evil}"`, 'MALFORMED'],
      [{ v: 2, ...SAMPLES[0] }, 'UNSUPPORTED_VERSION'],
      [{ v: 1, ...SAMPLES[0], type: evil }, 'SCHEMA'],
      [{ v: 1, ...SAMPLES[0], sgId: evil }, 'SCHEMA'],
      [{ v: 1, ...SAMPLES[0], sgId: SG.toUpperCase() }, 'SCHEMA'],
      [{ v: 1, ...SAMPLES[0], node: evil }, 'SCHEMA'],
      [{ v: 1, ...SAMPLES[3], epoch: 0 }, 'SCHEMA'],
      [{ v: 1, ...SAMPLES[3], epoch: 2 ** 53 }, 'SCHEMA'],
      [{ v: 1, ...SAMPLES[3], epoch: '9' }, 'SCHEMA'],
      [{ v: 1, ...SAMPLES[2], added: [PNE(1), PNE(1)] }, 'SCHEMA'],
      [{ v: 1, ...SAMPLES[2], added: [evil] }, 'SCHEMA'],
      [{ v: 1, type: 'sg.created', at: 1, node: 'n' }, 'SCHEMA'],
      [`{"v":1,"type":"sg.created","at":1,"node":"n","sgId":"${SG}","__proto__":{"x":1}}`, 'SCHEMA'],
    ];
    for (const [input, code] of cases) {
      const bytes = Buffer.from(typeof input === 'string' ? input : JSON.stringify(input));
      let err: unknown;
      try {
        decodeEvent('cpns.ev.sg.created', bytes);
      } catch (e) {
        err = e;
      }
      expect(isCpnsError(err) && err.code, String(input)).toBe(code);
      if (isCpnsError(err)) {
        expect(err.message).not.toContain('EVIL');
        expect(String(err.field)).not.toContain('EVIL');
      }
    }
  });
});
