import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Suite } from '../../../src/core/crypto/aead.js';
import { ed25519Generate } from '../../../src/core/crypto/ed25519.js';
import { CpnsError, ErrorCode } from '../../../src/core/errors.js';
import {
  GroupKeyRing,
  GroupReceiver,
  GroupSender,
  HEADER_BYTES,
  MAX_COUNTER,
  OFF,
  readHeader,
} from '../../../src/core/group/index.js';
import { ALICE, BOB, code, SG, setup } from './helpers.js';

describe('Group Key message protection (seed §5.3.3 "Usage of Group Key")', () => {
  for (const suite of [Suite.AES_256_GCM, Suite.CHACHA20_POLY1305]) {
    it(`round-trips with suite ${suite} at 0 B, 64 B, 1 KiB, 16 KiB`, () => {
      const t = setup({ suite });
      for (const n of [0, 64, 1024, 16384]) {
        const pt = randomBytes(n);
        const msg = t.sender.protect(SG, t.gk(), pt);
        expect(msg.length).toBe(HEADER_BYTES + n + 16);
        const opened = t.receiver.open(msg);
        expect(opened.plaintext.equals(pt)).toBe(true);
        expect(opened.header.senderId.equals(ALICE)).toBe(true);
        expect(opened.header.epoch).toBe(1);
        expect(opened.header.suite).toBe(suite);
      }
    });
  }

  it('encrypts: the plaintext does not appear in the message', () => {
    const t = setup();
    const pt = Buffer.from('the secret playlist of the family'.repeat(4));
    const msg = t.sender.protect(SG, t.gk(), pt);
    expect(msg.includes(pt.subarray(0, 16))).toBe(false);
  });

  it('never reuses a counter; two sender instances of the same PNE use different keys', () => {
    const t = setup();
    const a = t.sender.protect(SG, t.gk(), Buffer.from('x'));
    const b = t.sender.protect(SG, t.gk(), Buffer.from('x'));
    expect(readHeader(a).counter).toBe(0);
    expect(readHeader(b).counter).toBe(1);
    const restarted = new GroupSender({ senderId: ALICE });
    const c = restarted.protect(SG, t.gk(), Buffer.from('x'));
    expect(readHeader(c).counter).toBe(0);
    expect(readHeader(c).instance.equals(readHeader(a).instance)).toBe(false);
    expect(c.subarray(HEADER_BYTES).equals(a.subarray(HEADER_BYTES))).toBe(false);
    expect(t.receiver.open(c).plaintext.toString()).toBe('x');
  });

  it('forged MAC: flipping any single bit of header, ciphertext or tag is rejected, never decrypted', () => {
    const t = setup();
    const msg = t.sender.protect(SG, t.gk(), Buffer.from('pay 10 coins'));
    const seen = new Set<string>();
    for (let i = 0; i < msg.length; i++) {
      for (const bit of [0x01, 0x80]) {
        const bad = Buffer.from(msg);
        bad[i]! ^= bit;
        const c = code(() => t.receiver.open(bad));
        expect(c).not.toBe('OK');
        seen.add(c);
      }
    }
    expect(seen.has(ErrorCode.BAD_MAC)).toBe(true);
    // the untouched message still opens: failed attempts left no state behind
    expect(t.receiver.open(msg).plaintext.toString()).toBe('pay 10 coins');
  });

  it('non-member in the same PN: a device holding another key for the SG id cannot open (BAD_MAC)', () => {
    const t = setup();
    const msg = t.sender.protect(SG, t.gk(), Buffer.from('members only'));
    const outsider = new GroupKeyRing();
    outsider.install(SG, 1, randomBytes(32), Suite.AES_256_GCM);
    expect(code(() => new GroupReceiver({ keyRing: outsider }).open(msg))).toBe(ErrorCode.BAD_MAC);
    expect(code(() => new GroupReceiver({ keyRing: new GroupKeyRing() }).open(msg))).toBe(
      ErrorCode.UNKNOWN_GROUP,
    );
  });

  it('removed member: holds epoch 1 only; messages of epoch 2 are UNKNOWN_EPOCH and its key gives BAD_MAC', () => {
    const t = setup();
    const oldKey = Buffer.from(t.key);
    const leaver = new GroupKeyRing();
    leaver.install(SG, 1, oldKey, Suite.AES_256_GCM);
    const leaverRx = new GroupReceiver({ keyRing: leaver });
    t.ring.install(SG, 2, randomBytes(32), Suite.AES_256_GCM, { graceMs: 0 });
    const msg = t.sender.protect(SG, t.gk(), Buffer.from('after the leave'));
    expect(readHeader(msg).epoch).toBe(2);
    expect(code(() => leaverRx.open(msg))).toBe(ErrorCode.UNKNOWN_EPOCH);
    // even if it relabels its old key as epoch 2, the MAC fails
    leaver.install(SG, 2, oldKey, Suite.AES_256_GCM);
    expect(code(() => leaverRx.open(msg))).toBe(ErrorCode.BAD_MAC);
  });

  it('removed member injecting under the old epoch after a leave update (grace 0): EXPIRED_EPOCH', () => {
    const t = setup();
    const leaverSender = new GroupSender({ senderId: BOB });
    const oldGk = { epoch: 1, key: Buffer.from(t.key), suite: Suite.AES_256_GCM } as const;
    t.ring.install(SG, 2, randomBytes(32), Suite.AES_256_GCM, { graceMs: 0 });
    const injected = leaverSender.protect(SG, oldGk, Buffer.from('evil'));
    expect(code(() => t.receiver.open(injected))).toBe(ErrorCode.EXPIRED_EPOCH);
  });

  it('previous epoch accepted only within the grace period of a periodic update', () => {
    const t = setup();
    const late = t.sender.protect(SG, t.gk(), Buffer.from('sent just before the update'));
    const later = t.sender.protect(SG, t.gk(), Buffer.from('also before'));
    t.ring.install(SG, 2, randomBytes(32), Suite.AES_256_GCM, { graceMs: 5000 });
    expect(t.receiver.open(late).plaintext.toString()).toBe('sent just before the update');
    t.advance(5001);
    expect(code(() => t.receiver.open(later))).toBe(ErrorCode.EXPIRED_EPOCH);
  });

  it('keys only move forward: re-installing an older epoch is ignored', () => {
    const t = setup({ epoch: 5 });
    expect(t.ring.install(SG, 4, randomBytes(32), Suite.AES_256_GCM)).toBe(false);
    expect(t.ring.install(SG, 5, randomBytes(32), Suite.AES_256_GCM)).toBe(false);
    expect(t.ring.current(SG)!.epoch).toBe(5);
  });

  it('catch-up skipping epochs drops the old key at once (no grace for skipped epochs)', () => {
    const t = setup();
    const m = t.sender.protect(SG, t.gk(), Buffer.from('old'));
    t.ring.install(SG, 7, randomBytes(32), Suite.AES_256_GCM, { graceMs: 60_000 });
    expect(code(() => t.receiver.open(m))).toBe(ErrorCode.EXPIRED_EPOCH);
  });

  it('deleting the Service Group erases its keys', () => {
    const t = setup();
    const m = t.sender.protect(SG, t.gk(), Buffer.from('x'));
    const keyRef = t.gk().key;
    t.ring.remove(SG);
    expect(keyRef.equals(Buffer.alloc(32))).toBe(true);
    expect(code(() => t.receiver.open(m))).toBe(ErrorCode.UNKNOWN_GROUP);
  });

  it('rejects a suite different from the Service Group suite', () => {
    const t = setup({ suite: Suite.AES_256_GCM });
    const m = t.sender.protect(SG, { ...t.gk(), suite: Suite.CHACHA20_POLY1305 }, Buffer.from('x'));
    expect(code(() => t.receiver.open(m))).toBe(ErrorCode.UNSUPPORTED_SUITE);
  });

  it('counter exhaustion is a typed error, not a wrap-around', () => {
    const t = setup();
    const s = new GroupSender({ senderId: ALICE, startCounter: MAX_COUNTER });
    expect(readHeader(s.protect(SG, t.gk(), Buffer.alloc(1))).counter).toBe(MAX_COUNTER);
    expect(code(() => s.protect(SG, t.gk(), Buffer.alloc(1)))).toBe(ErrorCode.COUNTER_EXHAUSTED);
  });

  it('malformed input table: typed errors, never a crash', () => {
    const t = setup();
    const good = t.sender.protect(SG, t.gk(), Buffer.from('hello'));
    const cases: [string, Buffer, string][] = [
      ['empty', Buffer.alloc(0), ErrorCode.MALFORMED],
      ['header only', good.subarray(0, HEADER_BYTES), ErrorCode.MALFORMED],
      ['header + 15 bytes', good.subarray(0, HEADER_BYTES + 15), ErrorCode.MALFORMED],
      ['version 2', Buffer.concat([Buffer.from([2]), good.subarray(1)]), ErrorCode.UNSUPPORTED_VERSION],
      ['suite 9', patch(good, OFF.suite, 9), ErrorCode.UNSUPPORTED_SUITE],
      ['unknown flag', patch(good, OFF.flags, 0x02), ErrorCode.MALFORMED],
      ['reserved set', patch(good, OFF.reserved, 1), ErrorCode.MALFORMED],
      ['counter >= 2^48', patch(good, OFF.counter, 1), ErrorCode.MALFORMED],
      ['unknown epoch', patch(good, OFF.epoch + 3, 9), ErrorCode.UNKNOWN_EPOCH],
      ['oversized', Buffer.alloc(70_000), ErrorCode.TOO_LARGE],
    ];
    for (const [name, input, expected] of cases) {
      expect([name, code(() => t.receiver.open(input))]).toEqual([name, expected]);
    }
  });

  it('size limit: exactly maxMessageBytes is accepted, one more byte is TOO_LARGE', () => {
    const ring = new GroupKeyRing();
    ring.install(SG, 1, randomBytes(32), Suite.AES_256_GCM);
    const max = HEADER_BYTES + 100 + 16;
    const rx = new GroupReceiver({ keyRing: ring, maxMessageBytes: max });
    const s = new GroupSender({ senderId: ALICE });
    expect(rx.open(s.protect(SG, ring.current(SG)!, Buffer.alloc(100))).plaintext.length).toBe(100);
    expect(code(() => rx.open(s.protect(SG, ring.current(SG)!, Buffer.alloc(101))))).toBe(
      ErrorCode.TOO_LARGE,
    );
  });

  it('error messages never contain input bytes', () => {
    const t = setup();
    const marker = Buffer.from('EVILMARKER');
    const inputs = [
      Buffer.concat([marker, Buffer.alloc(100)]),
      Buffer.concat([
        t.sender.protect(SG, t.gk(), Buffer.alloc(4)).subarray(0, HEADER_BYTES),
        marker,
        Buffer.alloc(16),
      ]),
    ];
    for (const input of inputs) {
      try {
        t.receiver.open(input);
      } catch (e) {
        expect(e).toBeInstanceOf(CpnsError);
        expect(String((e as Error).message)).not.toContain('EVILMARKER');
        expect(String((e as Error).message)).not.toMatch(/[0-9a-f]{16}/);
      }
    }
  });

  it('property: random protect/open round-trips for both suites and any payload', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(Suite.AES_256_GCM, Suite.CHACHA20_POLY1305),
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.uint8Array({ maxLength: 2048 }),
        (suite, sg, sender, epoch, pt) => {
          const ring = new GroupKeyRing();
          ring.install(sg, epoch, randomBytes(32), suite);
          const msg = new GroupSender({ senderId: sender }).protect(sg, ring.current(sg)!, pt);
          const opened = new GroupReceiver({ keyRing: ring }).open(msg);
          expect(Buffer.from(pt).equals(opened.plaintext)).toBe(true);
          expect(opened.header.epoch).toBe(epoch);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('property: arbitrary bytes only ever produce CpnsError', () => {
    const t = setup();
    const good = t.sender.protect(SG, t.gk(), Buffer.from('x'));
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.boolean(), (bytes, keepHeader) => {
        const input = keepHeader
          ? Buffer.concat([good.subarray(0, HEADER_BYTES), Buffer.from(bytes)])
          : Buffer.from(bytes);
        try {
          t.receiver.open(input);
        } catch (e) {
          expect(e).toBeInstanceOf(CpnsError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('source authentication (per-SG Ed25519 policy)', () => {
  function signedSetup() {
    const alice = ed25519Generate();
    const bob = ed25519Generate();
    const keys = new Map([
      [ALICE.toString('hex'), alice.publicKey],
      [BOB.toString('hex'), bob.publicKey],
    ]);
    const ring = new GroupKeyRing();
    ring.install(SG, 1, randomBytes(32), Suite.AES_256_GCM, { sourceAuth: true });
    const rx = new GroupReceiver({ keyRing: ring, senderPublicKey: (id) => keys.get(id.toString('hex')) });
    return { ring, rx, alice, bob };
  }

  it('signed messages verify and open', () => {
    const { ring, rx, alice } = signedSetup();
    const s = new GroupSender({ senderId: ALICE, signingKey: alice.privateKey });
    const m = s.protect(SG, ring.current(SG)!, Buffer.from('hi'), { sign: true });
    expect(m.length).toBe(HEADER_BYTES + 2 + 16 + 64);
    const o = rx.open(m);
    expect(o.signed).toBe(true);
    expect(o.plaintext.toString()).toBe('hi');
  });

  it('an unsigned message to an SG that requires signatures is refused', () => {
    const { ring, rx } = signedSetup();
    const m = new GroupSender({ senderId: ALICE }).protect(SG, ring.current(SG)!, Buffer.from('hi'));
    expect(code(() => rx.open(m))).toBe(ErrorCode.SIGNATURE_REQUIRED);
  });

  it('a member impersonating another member (valid Group Key MAC, own signing key) is refused', () => {
    const { ring, rx, bob } = signedSetup();
    // Bob holds the Group Key, so he can produce a valid MAC with senderId = Alice, but not Alice's signature.
    const forged = new GroupSender({ senderId: ALICE, signingKey: bob.privateKey }).protect(
      SG,
      ring.current(SG)!,
      Buffer.from('I am Alice'),
      { sign: true },
    );
    expect(code(() => rx.open(forged))).toBe(ErrorCode.BAD_SIGNATURE);
  });

  it('stripping the signature (clearing the flag) breaks the MAC or the policy', () => {
    const { ring, rx, alice } = signedSetup();
    const m = new GroupSender({ senderId: ALICE, signingKey: alice.privateKey }).protect(
      SG,
      ring.current(SG)!,
      Buffer.from('hi'),
      { sign: true },
    );
    const stripped = Buffer.from(m.subarray(0, m.length - 64));
    stripped[OFF.flags] = 0;
    expect(code(() => rx.open(stripped))).toBe(ErrorCode.SIGNATURE_REQUIRED);
  });

  it('an unknown signer is refused', () => {
    const { ring, rx } = signedSetup();
    const stranger = ed25519Generate();
    const id = Buffer.alloc(16, 7);
    const m = new GroupSender({ senderId: id, signingKey: stranger.privateKey }).protect(
      SG,
      ring.current(SG)!,
      Buffer.from('hi'),
      { sign: true },
    );
    expect(code(() => rx.open(m))).toBe(ErrorCode.SIGNATURE_REQUIRED);
  });
});

function patch(buf: Buffer, offset: number, value: number): Buffer {
  const b = Buffer.from(buf);
  b[offset] = value;
  return b;
}
