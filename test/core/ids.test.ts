import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  bytesToUuid,
  HeaderIdText,
  isUuid,
  LastHeaderBytes,
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

describe('HeaderIdText (text ids of a run of group messages)', () => {
  const header = (sg: string, sender: Uint8Array): Buffer => {
    const b = Buffer.alloc(56);
    uuidToBytes(sg).copy(b, 8);
    Buffer.from(sender).copy(b, 24);
    return b;
  };
  it('gives the text of each message header, whether its ids change or repeat', () => {
    const t = new HeaderIdText(senderIdentity);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 2 })), { maxLength: 30 }),
        (seq) => {
          const sgs = [randomUUID(), randomUUID(), NIL_UUID];
          const senders = [uuidToBytes(randomUUID()), uuidToBytes(randomUUID()), uuidToBytes(NIL_UUID)];
          for (const [g, s] of seq) {
            const r = t.of(header(sgs[g]!, senders[s]!));
            expect(r.sgId).toBe(sgs[g]);
            expect(r.sender).toBe(senderIdentity(senders[s]!));
          }
        },
      ),
    );
  });
  it('the server form names the sender by its PNE identity', () => {
    const sender = uuidToBytes(randomUUID());
    const sg = randomUUID();
    const r = new HeaderIdText(pneIdentityOf).of(header(sg, sender));
    expect(r.sgId).toBe(sg);
    expect(r.sender).toBe(pneIdentityOf(sender));
  });
});

describe('LastHeaderBytes (the compare behind HeaderIdText and the server relay ids)', () => {
  it('repeats only when every byte of its range repeats; bytes outside the range do not count', () => {
    const last = new LastHeaderBytes(4, 48);
    const a = Buffer.alloc(56, 7);
    expect(last.same(a)).toBe(false); // nothing seen yet
    expect(last.same(Buffer.from(a))).toBe(true);
    for (const i of [4, 47]) {
      const b = Buffer.from(a);
      b[i] = 6;
      expect(last.same(b), `byte ${i}`).toBe(false);
      expect(last.same(a)).toBe(false); // b was remembered; a differs from it
    }
    const outside = Buffer.from(a);
    outside[3] = 6;
    outside[48] = 6;
    expect(last.same(outside)).toBe(true);
    last.forget();
    expect(last.same(a)).toBe(false);
  });

  it('HeaderIdText whose sender format throws keeps nothing: the next message is formatted again', () => {
    let fail = true;
    const t = new HeaderIdText((b) => {
      if (fail) throw new Error('boom');
      return senderIdentity(b);
    });
    const msg = Buffer.alloc(56);
    const sg = randomUUID();
    uuidToBytes(sg).copy(msg, 8);
    expect(() => t.of(msg)).toThrow('boom');
    fail = false;
    expect(t.of(msg).sgId).toBe(sg);
    expect(t.sender).toBe('server');
  });
});
