/**
 * The PN GW's decisions (src/gateway/decisions.ts) without sockets or clock: what a key.deliver does to the key
 * held, who gets a key or a group message here, unicast or broadcast per PNE, fallback, and activation.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  activateInSec,
  attachedTargets,
  broadcastStillDue,
  type DistributionPne,
  fallbackDue,
  keyDeliverAction,
  needsEpoch,
  planDistribution,
  unicastDue,
} from '../../src/gateway/decisions.js';
import type { PnePhase } from '../../src/gateway/state.js';
import { DEFAULT_POLICY, planDelivery } from '../../src/protocol/policy.js';

const IDS = Array.from({ length: 8 }, (_, i) => `urn:cpns:pne:p${i}`);
const MEDIA = ['wifi', 'bt', 'eth'] as const;
const TREES = ['t1:1', 't1:2'] as const;

const opt = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
const delivery = fc.record({
  sent: opt(fc.nat(6)),
  acked: opt(fc.nat(6)),
  broadcastEpoch: opt(fc.nat(6)),
});
const pnes = fc.uniqueArray(
  fc.record({
    id: fc.constantFrom(...IDS),
    media: fc.subarray([...MEDIA]),
    gkdkTree: opt(fc.constantFrom(...TREES)),
    delivery,
  }),
  { selector: (p) => p.id, maxLength: IDS.length },
);
const distribution = fc.record({
  epoch: fc.integer({ min: 1, max: 6 }),
  staged: fc.boolean(),
  broadcaster: fc.boolean(),
  treeTag: opt(fc.constantFrom(...TREES)),
  pnes,
});

describe('a key.deliver from the server (docs/protocol.md "Group Key delivery")', () => {
  it('keys only move forward; [] erases; the same epoch keeps the key held', () => {
    expect(keyDeliverAction(undefined, 1, undefined)).toEqual({ do: 'ignore' }); // not a GW's delivery
    expect(keyDeliverAction(5, 4, ['p'])).toEqual({ do: 'ignore' });
    expect(keyDeliverAction(5, 4, [])).toEqual({ do: 'ignore' });
    expect(keyDeliverAction(5, 5, [])).toEqual({ do: 'erase' });
    expect(keyDeliverAction(undefined, 1, [])).toEqual({ do: 'erase' });
    expect(keyDeliverAction(5, 5, ['p'])).toEqual({ do: 'install', keepKey: true });
    expect(keyDeliverAction(5, 6, ['p'])).toEqual({ do: 'install', keepKey: false });
    expect(keyDeliverAction(undefined, 1, ['p'])).toEqual({ do: 'install', keepKey: false });
  });

  it('never installs or erases under an older epoch', () => {
    fc.assert(
      fc.property(opt(fc.nat(10)), fc.nat(10), opt(fc.subarray(IDS)), (held, epoch, targets) => {
        const a = keyDeliverAction(held, epoch, targets);
        if (held !== undefined && epoch < held) expect(a.do).toBe('ignore');
        if (a.do === 'install') expect(a.keepKey).toBe(held === epoch);
      }),
    );
  });
});

describe('who gets it here: the attached targets', () => {
  const conns = fc.uniqueArray(
    fc.tuple(fc.constantFrom(...IDS), fc.constantFrom<PnePhase>('connected', 'attached', 'detached')),
    { selector: (c) => c[0] },
  );

  it('exactly the targets whose session is attached, never the sender (local fan-out)', () => {
    fc.assert(
      fc.property(fc.subarray(IDS), conns, opt(fc.constantFrom(...IDS)), (targets, cs, sender) => {
        const map = new Map(cs.map(([id, phase]) => [id, { id, phase }]));
        const out = attachedTargets(targets, map, sender).map((c) => c.id);
        expect(out).toEqual(targets.filter((t) => t !== sender && map.get(t)?.phase === 'attached'));
      }),
    );
  });
});

describe('unicast or broadcast per PNE (docs/broadcast.md §12 "Per delivery")', () => {
  const ids = (xs: readonly { id: string }[]) => xs.map((x) => x.id);

  it('every PNE that needs the epoch gets exactly one way; the others none', () => {
    fc.assert(
      fc.property(distribution, (i) => {
        const p = planDistribution(i);
        const chosen = [...ids(p.unicast), ...p.broadcast.map((m) => m.pneId)];
        expect(new Set(chosen).size).toBe(chosen.length);
        expect(new Set(chosen)).toEqual(new Set(ids(i.pnes.filter((c) => needsEpoch(c.delivery, i.epoch)))));
      }),
    );
  });

  it('without a broadcaster, or for a key ahead of its activation, everything goes by unicast', () => {
    fc.assert(
      fc.property(distribution, (i) => {
        if (i.broadcaster && !i.staged) return;
        expect(planDistribution(i).broadcast).toEqual([]);
      }),
    );
  });

  it("a PNE's first key of an SG always goes by unicast, whatever the policy", () => {
    fc.assert(
      fc.property(distribution, fc.subarray([...MEDIA]), (i, gwMedia) => {
        const p = planDistribution(i);
        const first = new Set(ids(i.pnes.filter((c) => c.delivery.acked === undefined)));
        for (const m of p.broadcast) expect(first.has(m.pneId)).toBe(false);
        // and planDelivery only ever splits the broadcast members
        const plan = planDelivery({ ...DEFAULT_POLICY, broadcastThreshold: 1 }, p.broadcast, gwMedia);
        for (const m of plan.broadcast) expect(first.has(m.pneId)).toBe(false);
      }),
    );
  });

  it("a broadcast member is GKDK-capable only for the GW's current tree", () => {
    fc.assert(
      fc.property(distribution, (i) => {
        const byId = new Map<string, DistributionPne>(i.pnes.map((c) => [c.id, c]));
        for (const m of planDistribution(i).broadcast) {
          const c = byId.get(m.pneId)!;
          expect(m.hasGkdk).toBe(c.gkdkTree === i.treeTag);
          expect(m.media).toEqual(c.media);
        }
      }),
    );
  });

  it('needs the epoch: not sent, not acked, not broadcast to it', () => {
    expect(needsEpoch({ sent: undefined, acked: undefined, broadcastEpoch: undefined }, 1)).toBe(true);
    expect(needsEpoch({ sent: 3, acked: 2, broadcastEpoch: undefined }, 3)).toBe(false);
    expect(needsEpoch({ sent: 2, acked: 3, broadcastEpoch: undefined }, 3)).toBe(false);
    expect(needsEpoch({ sent: 2, acked: 2, broadcastEpoch: 3 }, 3)).toBe(false);
    expect(needsEpoch({ sent: 2, acked: 2, broadcastEpoch: 2 }, 3)).toBe(true);
  });
});

describe('queued broadcast and fallback (docs/broadcast.md §12 "Acks and tracking")', () => {
  const due = fc.record({
    attached: fc.boolean(),
    target: fc.boolean(),
    delivery,
    epoch: fc.integer({ min: 1, max: 6 }),
  });

  it('only attached targets that lack the epoch; fallback never to a PNE that acked it', () => {
    fc.assert(
      fc.property(due, (i) => {
        const lacks = (i.delivery.acked ?? -1) < i.epoch;
        expect(fallbackDue(i)).toBe(i.attached && i.target && lacks);
        expect(broadcastStillDue(i)).toBe(
          i.attached && i.target && lacks && (i.delivery.sent ?? -1) < i.epoch,
        );
      }),
    );
  });

  it('one unicast per PNE and epoch', () => {
    expect(unicastDue({ sent: undefined }, 1)).toBe(true);
    expect(unicastDue({ sent: 1 }, 1)).toBe(false);
    expect(unicastDue({ sent: 1 }, 2)).toBe(true);
  });
});

describe('activation left (docs/broadcast.md §12 "Periodic updates ahead of activation")', () => {
  it('none once active; else whole seconds, rounded up, at least 1', () => {
    expect(activateInSec(undefined, 1_000)).toBeUndefined();
    expect(activateInSec(1_000, 1_000)).toBeUndefined();
    expect(activateInSec(1_001, 1_000)).toBe(1);
    expect(activateInSec(31_000, 1_000)).toBe(30);
    fc.assert(
      fc.property(fc.nat(2 ** 40), fc.nat(10 ** 7), (now, ahead) => {
        const s = activateInSec(now + ahead, now);
        if (ahead === 0) expect(s).toBeUndefined();
        else {
          expect(s).toBeGreaterThanOrEqual(1);
          expect(s! * 1000).toBeGreaterThanOrEqual(ahead);
          expect((s! - 1) * 1000).toBeLessThan(ahead);
        }
      }),
    );
  });
});
