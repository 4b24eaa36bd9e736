import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Suite } from '../../../src/core/crypto/aead.js';
import { CpnsError, ErrorCode } from '../../../src/core/errors.js';
import { GroupReceiver, GroupSender, readHeader } from '../../../src/core/group/index.js';
import { ALICE, BOB, SG, setup } from './helpers.js';

describe('periodic update distributed ahead of activation (members switch together)', () => {
  it('senders keep the current epoch until activation; receivers accept the staged epoch early', () => {
    const t = setup();
    const next = randomBytes(32);
    expect(t.ring.stage(SG, 2, next, Suite.AES_256_GCM, 1_000_000 + 5000, { graceMs: 2000 })).toBe(true);
    expect(t.ring.staged(SG)).toBe(2);
    expect(t.ring.current(SG)!.epoch).toBe(1);
    // a peer whose clock runs ahead already sends under epoch 2: accepted
    const early = new GroupSender({ senderId: BOB }).protect(
      SG,
      { epoch: 2, key: next, suite: Suite.AES_256_GCM },
      Buffer.from('early'),
    );
    expect(t.receiver.open(early).plaintext.toString()).toBe('early');
    const before = t.sender.protect(SG, t.gk(), Buffer.from('before'));
    expect(readHeader(before).epoch).toBe(1);
    t.advance(5000);
    expect(t.ring.current(SG)!.epoch).toBe(2);
    expect(t.ring.staged(SG)).toBeUndefined();
    // the old epoch stays acceptable for the grace period only
    expect(t.receiver.open(before).plaintext.toString()).toBe('before');
    const late = new GroupSender({ senderId: ALICE }).protect(
      SG,
      { epoch: 1, key: t.key, suite: Suite.AES_256_GCM },
      Buffer.from('late'),
    );
    t.advance(2001);
    expect(() => t.receiver.open(late)).toThrow(CpnsError);
  });

  it('a staged epoch not newer than current is refused; an immediate install supersedes the staged key', () => {
    const t = setup({ epoch: 3 });
    expect(t.ring.stage(SG, 3, randomBytes(32), Suite.AES_256_GCM, 0)).toBe(false);
    expect(t.ring.stage(SG, 4, randomBytes(32), Suite.AES_256_GCM, 1_000_000 + 60_000)).toBe(true);
    // a member leaves meanwhile: epoch 5 installed at once, the staged epoch 4 is dropped
    t.ring.install(SG, 5, randomBytes(32), Suite.AES_256_GCM, { graceMs: 0 });
    expect(t.ring.staged(SG)).toBeUndefined();
    expect(t.ring.current(SG)!.epoch).toBe(5);
    const rx = new GroupReceiver({ keyRing: t.ring });
    const m4 = new GroupSender({ senderId: BOB }).protect(
      SG,
      { epoch: 4, key: Buffer.alloc(32), suite: Suite.AES_256_GCM },
      Buffer.from('x'),
    );
    try {
      rx.open(m4);
      expect.unreachable();
    } catch (e) {
      expect((e as CpnsError).code).toBe(ErrorCode.EXPIRED_EPOCH);
    }
  });
});
