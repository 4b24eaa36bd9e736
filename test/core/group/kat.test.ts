import { createCipheriv, hkdfSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Suite } from '../../../src/core/crypto/aead.js';
import { ed25519PrivateFromSeed } from '../../../src/core/crypto/ed25519.js';
import { GroupKeyRing, GroupReceiver, GroupSender } from '../../../src/core/group/index.js';

const kat = JSON.parse(readFileSync(new URL('./kat.json', import.meta.url), 'utf8'));
const hex = (s: string) => Buffer.from(s, 'hex');

/**
 * Slow, readable reference of docs/group-messages.md, written from the document and not from the code:
 * HKDF-SHA256 key schedule, TLS-1.3-style nonce, header as AAD.
 */
function referenceProtect(suite: number, counter: number): Buffer {
  const header = Buffer.concat([
    Buffer.from([1, suite, 0, 0]),
    Buffer.from([0, 0, 0, kat.epoch]),
    hex(kat.sgId),
    hex(kat.senderId),
    hex(kat.instance),
    Buffer.from([0, 0, 0, 0, 0, 0, 0, counter]),
  ]);
  const info = Buffer.concat([
    Buffer.from('cpns sg msg'),
    Buffer.from([1, suite, 0, 0, 0, kat.epoch]),
    hex(kat.sgId),
    hex(kat.senderId),
    hex(kat.instance),
  ]);
  const okm = Buffer.from(
    hkdfSync('sha256', hex(kat.groupKey), Buffer.from('CPNS group message v1'), info, 44),
  );
  const nonce = Buffer.from(okm.subarray(32, 44));
  nonce[11]! ^= counter;
  const alg = suite === 1 ? 'aes-256-gcm' : 'chacha20-poly1305';
  const c = createCipheriv(alg as 'aes-256-gcm', okm.subarray(0, 32), nonce, { authTagLength: 16 });
  c.setAAD(header);
  const ct = Buffer.concat([c.update(Buffer.from(kat.plaintext)), c.final()]);
  return Buffer.concat([header, ct, c.getAuthTag()]);
}

describe('group message known-answer vectors (frozen)', () => {
  for (const v of kat.vectors as { suite: Suite; counter: number; signed: boolean; message: string }[]) {
    it(`suite ${v.suite}, counter ${v.counter}, signed=${v.signed}`, () => {
      const kp = ed25519PrivateFromSeed(hex(kat.signingSeed));
      const sender = new GroupSender({
        senderId: hex(kat.senderId),
        instance: hex(kat.instance),
        startCounter: v.counter,
        signingKey: kp.privateKey,
      });
      const gk = { epoch: kat.epoch, key: hex(kat.groupKey), suite: v.suite };
      const msg = sender.protect(hex(kat.sgId), gk, Buffer.from(kat.plaintext), { sign: v.signed });
      expect(msg.toString('hex')).toBe(v.message);
      if (!v.signed) expect(referenceProtect(v.suite, v.counter).toString('hex')).toBe(v.message);

      const ring = new GroupKeyRing();
      ring.install(hex(kat.sgId), kat.epoch, hex(kat.groupKey), v.suite, { sourceAuth: v.signed });
      const rx = new GroupReceiver({ keyRing: ring, senderPublicKey: () => kp.publicKey });
      expect(rx.open(hex(v.message)).plaintext.toString()).toBe(kat.plaintext);
    });
  }
});
