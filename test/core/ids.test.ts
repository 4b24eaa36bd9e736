import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  bytesToUuid,
  isUuid,
  NIL_UUID,
  pneIdentityOf,
  senderIdentity,
  toPneIdentity,
  uuidOf,
  uuidToBytes,
} from '../../src/core/ids.js';

describe('ids (one module for the product)', () => {
  it('text <-> 16 bytes round-trips for any UUID', () => {
    fc.assert(
      fc.property(fc.uuid(), (u) => {
        expect(uuidToBytes(u)).toHaveLength(16);
        expect(bytesToUuid(uuidToBytes(u))).toBe(u.toLowerCase());
      }),
    );
  });

  it('identities: uuidOf, pneIdentityOf, senderIdentity (nil = the server)', () => {
    const u = randomUUID();
    expect(uuidOf(`urn:cpns:pne:${u}`)).toBe(u);
    expect(pneIdentityOf(uuidToBytes(u))).toBe(`urn:cpns:pne:${u}`);
    expect(senderIdentity(uuidToBytes(u))).toBe(`urn:cpns:pne:${u}`);
    expect(senderIdentity(Buffer.alloc(16))).toBe('server');
    expect(isUuid(NIL_UUID)).toBe(true);
  });

  it.each([
    ['a bare UUID', (u: string) => u, true],
    ['an upper-case UUID with blanks', (u: string) => ` ${u.toUpperCase()} `, true],
    ['a PNE urn', (u: string) => `urn:cpns:pne:${u}`, true],
    ['a GW urn', (u: string) => `urn:cpns:gw:${u}`, false],
    ['a truncated UUID', (u: string) => u.slice(0, 35), false],
    ['a urn with a suffix', (u: string) => `urn:cpns:pne:${u}x`, false],
  ])('toPneIdentity: %s -> %s', (_name, make, ok) => {
    const u = randomUUID();
    if (ok) expect(toPneIdentity(make(u))).toBe(`urn:cpns:pne:${u}`);
    else expect(() => toPneIdentity(make(u))).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
});
