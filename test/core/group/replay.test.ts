import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../../src/core/errors.js';
import { GroupReceiver, GroupSender, ReplayWindow, readHeader } from '../../../src/core/group/index.js';
import { ALICE, code, SG, setup } from './helpers.js';

describe('replay protection per sender instance', () => {
  it('a replayed message is rejected; reordering inside the window is accepted', () => {
    const t = setup();
    const msgs = [0, 1, 2, 3, 4].map((i) => t.sender.protect(SG, t.gk(), Buffer.from([i])));
    expect(t.receiver.open(msgs[0]!).plaintext[0]).toBe(0);
    expect(code(() => t.receiver.open(msgs[0]!))).toBe(ErrorCode.REPLAY);
    expect(t.receiver.open(msgs[3]!).plaintext[0]).toBe(3);
    expect(t.receiver.open(msgs[1]!).plaintext[0]).toBe(1);
    expect(code(() => t.receiver.open(msgs[3]!))).toBe(ErrorCode.REPLAY);
    expect(t.receiver.open(msgs[2]!).plaintext[0]).toBe(2);
    expect(t.receiver.open(msgs[4]!).plaintext[0]).toBe(4);
  });

  it('a counter older than the window is rejected', () => {
    const t = setup();
    const first = t.sender.protect(SG, t.gk(), Buffer.from('old'));
    for (let i = 0; i < 256; i++) t.sender.protect(SG, t.gk(), Buffer.alloc(0));
    const newest = t.sender.protect(SG, t.gk(), Buffer.from('new'));
    expect(readHeader(newest).counter).toBe(257);
    t.receiver.open(newest);
    expect(code(() => t.receiver.open(first))).toBe(ErrorCode.REPLAY);
  });

  it('a forged message with a far-future counter does not move the window (state only after the MAC)', () => {
    const t = setup();
    const legit = [0, 1].map(() => t.sender.protect(SG, t.gk(), Buffer.from('ok')));
    t.receiver.open(legit[0]!);
    const forged = new GroupSender({
      senderId: ALICE,
      instance: readHeader(legit[0]!).instance,
      startCounter: 1e9,
    }).protect(SG, { ...t.gk(), key: Buffer.alloc(32, 9) }, Buffer.from('x'));
    expect(code(() => t.receiver.open(forged))).toBe(ErrorCode.BAD_MAC);
    expect(t.receiver.open(legit[1]!).plaintext.toString()).toBe('ok');
  });

  it('restart policy: a receiver that restarted accepts nothing at or below the server-given anchor', () => {
    const t = setup();
    const before = [0, 1, 2].map(() => t.sender.protect(SG, t.gk(), Buffer.from('before restart')));
    for (const m of before) t.receiver.open(m);
    // the receiver restarts: fresh state, key re-fetched with the anchors the server relayed so far
    const fresh = setup({ key: t.key });
    const h = readHeader(before[2]!);
    fresh.receiver.anchor(SG, 1, h.senderId, h.instance, h.counter);
    for (const m of before) expect(code(() => fresh.receiver.open(m))).toBe(ErrorCode.REPLAY);
    const after = t.sender.protect(SG, t.gk(), Buffer.from('after restart'));
    expect(fresh.receiver.open(after).plaintext.toString()).toBe('after restart');
    expect(code(() => fresh.receiver.open(after))).toBe(ErrorCode.REPLAY);
  });

  it('replay state is per epoch and is erased when the epoch retires', () => {
    const t = setup();
    t.receiver.open(t.sender.protect(SG, t.gk(), Buffer.from('a')));
    expect(t.receiver.trackedSenders).toBe(1);
    t.ring.install(SG, 2, Buffer.alloc(32, 1), t.suite, { graceMs: 0 });
    expect(t.receiver.trackedSenders).toBe(0);
  });

  it('sender-instance table limit: exactly the limit is tracked, one more is refused (TOO_LARGE)', () => {
    const t = setup();
    const rx = new GroupReceiver({ keyRing: t.ring, maxSenderInstances: 3 });
    for (let i = 0; i < 3; i++) {
      rx.open(new GroupSender({ senderId: Buffer.alloc(16, i) }).protect(SG, t.gk(), Buffer.from('x')));
    }
    expect(rx.trackedSenders).toBe(3);
    const fourth = new GroupSender({ senderId: Buffer.alloc(16, 9) }).protect(SG, t.gk(), Buffer.from('x'));
    expect(code(() => rx.open(fourth))).toBe(ErrorCode.TOO_LARGE);
  });
});

describe('ReplayWindow against a slow reference model', () => {
  it('property: accepts exactly the counters a Set-based model accepts', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(32, 64, 256),
        fc.array(fc.integer({ min: 0, max: 1200 }), { maxLength: 400 }),
        (size, counters) => {
          const w = new ReplayWindow(size);
          const seen = new Set<number>();
          let top = -1;
          for (const c of counters) {
            const expected = !seen.has(c) && c > top - size;
            expect(w.check(c)).toBe(expected);
            if (expected) {
              w.commit(c);
              seen.add(c);
              top = Math.max(top, c);
            }
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('anchoredAt(f) rejects every counter <= f and accepts f+1', () => {
    const w = ReplayWindow.anchoredAt(1000, 64);
    for (const c of [0, 900, 936, 937, 999, 1000]) expect(w.check(c)).toBe(false);
    expect(w.check(1001)).toBe(true);
  });
});
