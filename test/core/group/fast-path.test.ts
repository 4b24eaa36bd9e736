import { generateKeyPairSync, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Suite } from '../../../src/core/crypto/aead.js';
import { ErrorCode } from '../../../src/core/errors.js';
import { GroupKeyRing, GroupReceiver, GroupSender, readHeader } from '../../../src/core/group/index.js';
import { nonceFor } from '../../../src/core/group/message-key.js';
import { ALICE, BOB, code, SG, setup } from './helpers.js';

describe('protectParts', () => {
  for (const suite of [Suite.AES_256_GCM, Suite.CHACHA20_POLY1305]) {
    it(`suite ${suite}: the pieces are byte for byte the message protect returns`, () => {
      const t = setup({ suite });
      const instance = randomBytes(8);
      const a = new GroupSender({ senderId: ALICE, instance, startCounter: 7 });
      const b = new GroupSender({ senderId: ALICE, instance, startCounter: 7 });
      for (const size of [0, 1, 64, 1024, 16384]) {
        const pt = randomBytes(size);
        const whole = a.protect(SG, t.gk(), pt);
        const p = b.protectParts(SG, t.gk(), pt);
        expect(p.signature).toBeUndefined();
        expect(p.length).toBe(whole.length);
        expect(Buffer.concat([p.header, p.ciphertext, p.tag]).equals(whole)).toBe(true);
        expect(t.receiver.open(whole).plaintext.equals(pt)).toBe(true);
      }
      expect(b.nextCounter).toBe(a.nextCounter);
    });
  }

  it('signed: the signature covers header, ciphertext and tag; the message opens', () => {
    const alice = generateKeyPairSync('ed25519');
    const ring = new GroupKeyRing();
    ring.install(SG, 1, randomBytes(32), Suite.AES_256_GCM, { sourceAuth: true });
    const rx = new GroupReceiver({ keyRing: ring, senderPublicKey: () => alice.publicKey });
    const s = new GroupSender({ senderId: ALICE, signingKey: alice.privateKey });
    const p = s.protectParts(SG, ring.current(SG)!, Buffer.from('hi'), { sign: true });
    const msg = Buffer.concat([p.header, p.ciphertext, p.tag, p.signature!]);
    expect(msg.length).toBe(p.length);
    expect(rx.open(msg).signed).toBe(true);
  });

  it('same argument checks as protect', () => {
    const t = setup();
    expect(code(() => t.sender.protectParts(SG.subarray(1), t.gk(), Buffer.alloc(1)))).toBe(
      ErrorCode.INVALID_ARGUMENT,
    );
    expect(code(() => t.sender.protectParts(SG, t.gk(), Buffer.alloc(1), { sign: true }))).toBe(
      ErrorCode.INVALID_ARGUMENT,
    );
  });
});

describe('receiver: the last sender instance is recognised by its header bytes', () => {
  it('alternating senders: each replay is still refused', () => {
    const t = setup();
    const bob = new GroupSender({ senderId: BOB });
    const seen: Buffer[] = [];
    for (let i = 0; i < 6; i++) {
      const m = (i % 2 ? bob : t.sender).protect(SG, t.gk(), Buffer.from([i]));
      expect(t.receiver.open(m).plaintext[0]).toBe(i);
      seen.push(m);
    }
    for (const m of seen) expect(code(() => t.receiver.open(m))).toBe(ErrorCode.REPLAY);
    expect(t.receiver.trackedSenders).toBe(2);
  });

  it('an anchor given after the instance spoke applies to its next message', () => {
    const t = setup();
    const m1 = t.sender.protect(SG, t.gk(), Buffer.from('a'));
    t.receiver.open(m1);
    const h = readHeader(m1);
    t.receiver.anchor(SG, 1, h.senderId, h.instance, 10);
    for (let i = 0; i < 10; i++) {
      const m = t.sender.protect(SG, t.gk(), Buffer.from('b'));
      expect(code(() => t.receiver.open(m))).toBe(ErrorCode.REPLAY);
    }
    expect(code(() => t.receiver.open(t.sender.protect(SG, t.gk(), Buffer.from('c'))))).toBe('OK');
  });

  it('a retired epoch is refused even for the instance that spoke last', () => {
    const t = setup();
    t.receiver.open(t.sender.protect(SG, t.gk(), Buffer.from('a')));
    const old = t.gk();
    const late = t.sender.protect(SG, old, Buffer.from('late'));
    t.ring.install(SG, 2, randomBytes(32), Suite.AES_256_GCM, { graceMs: 0 });
    expect(code(() => t.receiver.open(late))).toBe(ErrorCode.EXPIRED_EPOCH);
    expect(t.receiver.trackedSenders).toBe(0);
    expect(code(() => t.receiver.open(t.sender.protect(SG, t.gk(), Buffer.from('new'))))).toBe('OK');
  });

  it('a forged message of the last instance neither opens nor moves its window', () => {
    const t = setup();
    t.receiver.open(t.sender.protect(SG, t.gk(), Buffer.from('a')));
    const next = t.sender.protect(SG, t.gk(), Buffer.from('b'));
    const forged = Buffer.from(next);
    forged[forged.length - 1]! ^= 1;
    expect(code(() => t.receiver.open(forged))).toBe(ErrorCode.BAD_MAC);
    expect(code(() => t.receiver.open(next))).toBe('OK');
  });
});

describe('open: the sender instance a message came from', () => {
  it('is one object per (epoch, SG, sender, instance), with the header ids, and another for another instance', () => {
    const t = setup();
    const a = new GroupSender({ senderId: ALICE });
    const a2 = new GroupSender({ senderId: ALICE });
    const b = new GroupSender({ senderId: BOB });
    const m1 = t.receiver.open(a.protect(SG, t.gk(), Buffer.from('1')));
    const m2 = t.receiver.open(a.protect(SG, t.gk(), Buffer.from('2')));
    const n = t.receiver.open(b.protect(SG, t.gk(), Buffer.from('3')));
    const m3 = t.receiver.open(a.protect(SG, t.gk(), Buffer.from('4')));
    const o = t.receiver.open(a2.protect(SG, t.gk(), Buffer.from('5')));
    expect(m2.from).toBe(m1.from);
    expect(m3.from).toBe(m1.from);
    expect(n.from).not.toBe(m1.from);
    expect(o.from).not.toBe(m1.from);
    expect(m1.from.sgId.equals(SG)).toBe(true);
    expect(m1.from.senderId.equals(ALICE)).toBe(true);
    expect(m1.from.instance.equals(a.instance)).toBe(true);
    expect(m1.from.epoch).toBe(1);
    expect(n.from.senderId.equals(BOB)).toBe(true);
    expect(Object.isFrozen(m1.from)).toBe(true);
  });

  it('writing into its bytes does not change how later messages of the instance are matched', () => {
    const t = setup();
    const a = new GroupSender({ senderId: ALICE });
    const m1 = t.receiver.open(a.protect(SG, t.gk(), Buffer.from('1')));
    m1.from.senderId.fill(0);
    m1.from.sgId.fill(0);
    const m2 = t.receiver.open(a.protect(SG, t.gk(), Buffer.from('2')));
    expect(m2.from).toBe(m1.from);
    expect(t.receiver.trackedSenders).toBe(1);
  });
});

describe('nonceFor', () => {
  it('is iv XOR (0^4 || counter as uint64 BE) for every counter below 2^48', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 12, maxLength: 12 }),
        fc.integer({ min: 0, max: 2 ** 48 - 1 }),
        (iv, c) => {
          const ctr = Buffer.alloc(12);
          ctr.writeBigUInt64BE(BigInt(c), 4);
          const want = Buffer.from(iv.map((b, i) => b ^ ctr[i]!));
          expect(nonceFor(Buffer.from(iv), c, Buffer.alloc(12)).equals(want)).toBe(true);
        },
      ),
    );
  });
});
