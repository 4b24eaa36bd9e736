/** The server's in-memory ack tracker (src/server/ack-tracker.ts): pending members per SG's current epoch. */
import { describe, expect, it } from 'vitest';
import { AckTracker } from '../../src/server/ack-tracker.js';

const SG = 'sg-1';
const all = () => true;

describe('AckTracker', () => {
  it('pending until the last member acks: the start time comes back once', () => {
    const t = new AckTracker();
    t.start(SG, 3, ['a', 'b', 'c'], 1000);
    expect(t.state(SG)).toEqual({ epoch: 3, unacked: 3, timing: true });
    expect(t.ack(SG, 3, 'a', all)).toBeUndefined();
    expect(t.ack(SG, 3, 'b', all)).toBeUndefined();
    expect(t.ack(SG, 3, 'c', all)).toBe(1000);
    expect(t.state(SG)).toEqual({ epoch: 3, unacked: 0, timing: false });
    // A retransmitted ack, or a late one, does not observe it again.
    expect(t.ack(SG, 3, 'c', all)).toBeUndefined();
    expect(t.ack(SG, 3, 'a', all)).toBeUndefined();
  });

  it('lagging: the pending members online here, at most max, while the epoch is timed', () => {
    const t = new AckTracker();
    t.start(SG, 2, ['a', 'b', 'c', 'd'], 1000);
    t.ack(SG, 2, 'a', all);
    const online = (p: string) => p !== 'd';
    expect(t.lagging(SG, 2, online, 1)).toEqual({ count: 2, some: ['b'] });
    expect(t.lagging(SG, 2, online, 10)).toEqual({ count: 2, some: ['b', 'c'] });
    expect(t.lagging(SG, 1, online, 10)).toBeUndefined();
    t.ack(SG, 2, 'b', online);
    expect(t.ack(SG, 2, 'c', online)).toBe(1000);
    expect(t.lagging(SG, 2, online, 10)).toBeUndefined();
  });

  it('an ack of another epoch than the tracked one changes nothing', () => {
    const t = new AckTracker();
    t.start(SG, 5, ['a'], 1000);
    expect(t.ack(SG, 4, 'a', all)).toBeUndefined();
    expect(t.ack('other-sg', 5, 'a', all)).toBeUndefined();
    expect(t.state(SG)?.unacked).toBe(1);
    expect(t.ack(SG, 5, 'a', all)).toBe(1000);
  });

  it('a new epoch drops the old one: its late acks do not count', () => {
    const t = new AckTracker();
    t.start(SG, 1, ['a', 'b'], 1000);
    expect(t.ack(SG, 1, 'a', all)).toBeUndefined();
    t.start(SG, 2, ['a', 'b'], 2000);
    expect(t.state(SG)).toEqual({ epoch: 2, unacked: 2, timing: true });
    expect(t.ack(SG, 1, 'b', all)).toBeUndefined();
    expect(t.ack(SG, 2, 'a', all)).toBeUndefined();
    expect(t.ack(SG, 2, 'b', all)).toBe(2000);
  });

  it('offline members do not hold the latency up; a member back online does again', () => {
    const t = new AckTracker();
    const online = new Set(['a', 'b', 'c']);
    const holds = (p: string) => online.has(p);
    t.start(SG, 1, ['a', 'b', 'c'], 1000);
    online.delete('b');
    expect(t.ack(SG, 1, 'a', holds)).toBeUndefined(); // c is online and pending
    online.delete('c');
    online.add('b');
    t.online('b');
    expect(t.ack(SG, 1, 'a', holds)).toBeUndefined(); // b is back
    expect(t.ack(SG, 1, 'b', holds)).toBe(1000); // c is offline: not waited for
    expect(t.state(SG)?.unacked).toBe(1);
    // c acks later (caught up): counted, no second observation.
    expect(t.ack(SG, 1, 'c', holds)).toBeUndefined();
    expect(t.state(SG)?.unacked).toBe(0);
  });

  it('every member offline but the acker: observed at its ack', () => {
    const t = new AckTracker();
    t.start(SG, 1, ['a', 'b', 'c'], 1000);
    expect(t.ack(SG, 1, 'a', (p) => p === 'a')).toBe(1000);
  });

  it('a removed member is no longer pending; one added is pending unless it acked the epoch already', () => {
    const t = new AckTracker();
    t.start(SG, 1, ['a', 'b'], 1000);
    t.removed(SG, 'b');
    expect(t.state(SG)?.unacked).toBe(1);
    t.added(SG, 'd');
    expect(t.ack(SG, 1, 'a', all)).toBeUndefined(); // d owes the epoch now
    expect(t.ack(SG, 1, 'd', all)).toBe(1000);
    // Removed and added back in the same epoch after acking it: still acked...
    t.start(SG, 2, ['a', 'b'], 2000);
    expect(t.ack(SG, 2, 'a', all)).toBeUndefined();
    t.added(SG, 'a');
    expect(t.state(SG)?.unacked).toBe(1);
    // ... unless it was removed in between (it owes the epoch again).
    t.removed(SG, 'a');
    t.added(SG, 'a');
    expect(t.state(SG)?.unacked).toBe(2);
  });

  it('a rebuilt epoch (no start time) is tracked without a latency; SG deletion drops it', () => {
    const t = new AckTracker();
    t.start(SG, 7, ['a', 'b', 'c'], undefined, ['b']);
    expect(t.state(SG)).toEqual({ epoch: 7, unacked: 2, timing: false });
    expect(t.ack(SG, 7, 'a', all)).toBeUndefined();
    expect(t.ack(SG, 7, 'c', all)).toBeUndefined();
    expect(t.state(SG)?.unacked).toBe(0);
    t.drop(SG);
    expect(t.state(SG)).toBeUndefined();
    t.added(SG, 'x'); // nothing tracked: no-op
    t.removed(SG, 'x');
    t.online('x');
    expect(t.state(SG)).toBeUndefined();
  });

  it('acking all M members costs O(M) looks at the others, however many are offline', () => {
    for (const m of [1000, 4000]) {
      const t = new AckTracker();
      const ids = Array.from({ length: m }, (_, i) => `p${i}`);
      t.start(SG, 1, ids, 0);
      let looks = 0;
      const holds = (p: string) => {
        looks++;
        return Number(p.slice(1)) % 2 === 0; // half the members are offline
      };
      let observed = 0;
      for (const p of ids) if (t.ack(SG, 1, p, holds) !== undefined) observed++;
      expect(observed).toBe(1);
      expect(looks).toBeLessThanOrEqual(2 * m);
    }
  });
});
