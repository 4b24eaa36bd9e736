/**
 * The server's decisions (src/server/decisions.ts) without sockets, store or clock: who gets which key at which
 * GW, relay fan-out, grace and lead of an update, what triggers one, and relay admission (rule R1).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { rekeyReasons } from '../../src/core/codec/index.js';
import { ErrorCode } from '../../src/core/errors.js';
import {
  type AttachmentView,
  activationOf,
  admitRelay,
  epochAdmission,
  isReplay,
  joinUpdateDue,
  keyDeliveries,
  keyTargets,
  onJoin,
  periodicIntervalMs,
  previousEpochUntil,
  provenAt,
  type RelayInput,
  rekeyOnDeparture,
  rekeyTiming,
  relayEnvelope,
  relayGws,
  SERVER_SENDER,
  servingGwOf,
} from '../../src/server/decisions.js';
import { SERVER_DEFAULTS } from '../../src/server/defaults.js';

const PNES = Array.from({ length: 8 }, (_, i) => `urn:cpns:pne:p${i}`);
const GWS = Array.from({ length: 4 }, (_, i) => `urn:cpns:gw:g${i}`);
const LEAVE_TYPE = ['leave', 'remove', 'detach', 'revoke'] as const;

const subset = <T>(xs: readonly T[]) => fc.subarray([...xs]);

/** A random server view: inventory (PNE → GW), GW sessions (some GWs without one) and their proven PNEs. */
const world = fc
  .record({
    pneAt: fc.array(fc.tuple(fc.constantFrom(...PNES), fc.constantFrom(...GWS)), { maxLength: 10 }),
    conns: fc.array(fc.tuple(fc.constantFrom(...GWS), subset(PNES)), { maxLength: 4 }),
    members: subset(PNES),
    pending: subset(PNES),
    targetGws: subset(GWS),
  })
  .map((w) => ({
    attachments: {
      pneAt: new Map(w.pneAt),
      gwConns: new Map(w.conns.map(([g, a]) => [g, { attached: new Set(a) }])),
    } satisfies AttachmentView,
    members: new Set(w.members),
    pendingJoiners: new Set(w.pending),
    targetGws: new Set(w.targetGws),
  }));

/** Rule A1 spelled out: m is in g's PN and proven on g's session. */
const provenBehind = (v: AttachmentView, m: string, g: string) =>
  v.pneAt.get(m) === g && v.gwConns.get(g)?.attached.has(m) === true;

describe('attachment: proven at G (rule A1)', () => {
  it('a PNE is proven at a GW only if in its PN and on its session', () => {
    const pneAt = new Map([['p', 'g1']]);
    expect(provenAt(pneAt, 'p', 'g1', new Set(['p']))).toBe(true);
    expect(provenAt(pneAt, 'p', 'g1', new Set())).toBe(false); // claimed, not proven
    expect(provenAt(pneAt, 'p', 'g2', new Set(['p']))).toBe(false); // proven on a session, not in its PN
    expect(provenAt(new Map(), 'p', 'g1', new Set(['p']))).toBe(false);
  });

  it('the serving GW is the one the PNE is proven at, else none', () => {
    fc.assert(
      fc.property(world, fc.constantFrom(...PNES), ({ attachments: v }, p) => {
        const gw = servingGwOf(v, p);
        if (gw === undefined) expect(GWS.some((g) => provenBehind(v, p, g))).toBe(false);
        else expect(provenBehind(v, p, gw)).toBe(true);
      }),
    );
  });
});

describe('key targets (docs/protocol.md "Group Key delivery")', () => {
  it('the key targets of a GW are exactly its proven-attached members that are not waiting for a join update', () => {
    fc.assert(
      fc.property(world, (w) => {
        const byGw = keyTargets(w);
        for (const g of GWS) {
          const expected = [...w.members].filter(
            (m) => !w.pendingJoiners.has(m) && provenBehind(w.attachments, m, g),
          );
          expect(new Set(byGw.get(g) ?? [])).toEqual(new Set(expected));
          if (expected.length === 0) expect(byGw.has(g)).toBe(false);
        }
      }),
    );
  });

  it('a PNE is a target at one GW at most, and only if a member', () => {
    fc.assert(
      fc.property(world, (w) => {
        const all = [...keyTargets(w).values()].flat();
        expect(new Set(all).size).toBe(all.length);
        for (const p of all) expect(w.members.has(p)).toBe(true);
      }),
    );
  });

  it('the removed member is never a key target, wherever it is attached', () => {
    fc.assert(
      fc.property(world, fc.constantFrom(...PNES), (w, removed) => {
        const members = new Set(w.members);
        members.delete(removed);
        for (const d of keyDeliveries({ ...w, members })) expect(d.targets).not.toContain(removed);
      }),
    );
  });

  it('a pending joiner never gets a key from before its join', () => {
    fc.assert(
      fc.property(world, (w) => {
        for (const d of keyDeliveries(w))
          for (const p of d.targets) expect(w.pendingJoiners.has(p)).toBe(false);
      }),
    );
  });

  it('every GW with targets, and every GW targeted before, gets one key.deliver; a GW with none left gets []', () => {
    fc.assert(
      fc.property(world, (w) => {
        const byGw = keyTargets(w);
        const ds = keyDeliveries(w);
        const gws = ds.map((d) => d.gw);
        expect(new Set(gws).size).toBe(gws.length);
        expect(new Set(gws)).toEqual(new Set([...byGw.keys(), ...w.targetGws]));
        for (const d of ds) expect(d.targets).toEqual(byGw.get(d.gw) ?? []);
      }),
    );
  });

  it('catch-up of one GW delivers to that GW only, with its full target list', () => {
    fc.assert(
      fc.property(world, fc.constantFrom(...GWS), (w, g) => {
        expect(keyDeliveries({ ...w, onlyGw: g })).toEqual([{ gw: g, targets: keyTargets(w).get(g) ?? [] }]);
      }),
    );
  });
});

describe('relay fan-out', () => {
  it('goes to every GW serving a member, never back to the GW it came from', () => {
    fc.assert(
      fc.property(world, fc.option(fc.constantFrom(...GWS), { nil: undefined }), (w, from) => {
        const out = relayGws(w.members, w.attachments, from);
        const expected = new Set(
          GWS.filter((g) => g !== from && [...w.members].some((m) => provenBehind(w.attachments, m, g))),
        );
        expect(out).toEqual(expected);
      }),
    );
  });
});

describe('grace and activation lead (docs/protocol.md "Implementation decisions", Grace)', () => {
  const opts = fc.record({
    leaveGraceSec: fc.nat(600),
    periodicGraceSec: fc.nat(600),
    periodicLeadSec: fc.nat(600),
  });
  const defaults = {
    leaveGraceSec: SERVER_DEFAULTS.leaveGraceSec,
    periodicGraceSec: SERVER_DEFAULTS.periodicGraceSec,
    periodicLeadSec: SERVER_DEFAULTS.periodicLeadSec,
  };

  it('leave ⇒ immediate update with no grace (defaults)', () => {
    for (const r of LEAVE_TYPE)
      expect(rekeyTiming(r, undefined, defaults)).toEqual({ leadSec: 0, graceSec: 0 });
  });

  it('a leave-type update is never distributed ahead and gets leaveGraceSec', () => {
    fc.assert(
      fc.property(fc.constantFrom(...LEAVE_TYPE), opts, (r, o) => {
        expect(rekeyTiming(r, undefined, o)).toEqual({ leadSec: 0, graceSec: o.leaveGraceSec });
      }),
    );
  });

  it('create and the restart rotation get no grace and no lead', () => {
    fc.assert(
      fc.property(fc.constantFrom(...rekeyReasons), opts, (r, o) => {
        expect(rekeyTiming(r, 'restart', o)).toEqual({ leadSec: 0, graceSec: 0 });
        expect(rekeyTiming('create', undefined, o)).toEqual({ leadSec: 0, graceSec: 0 });
      }),
    );
  });

  it('periodic, operator and join updates get periodicGraceSec; only periodic ones a lead', () => {
    fc.assert(
      fc.property(opts, fc.constantFrom('scheduler', 'operator', undefined), (o, audit) => {
        expect(rekeyTiming('periodic', audit, o)).toEqual({
          leadSec: o.periodicLeadSec,
          graceSec: o.periodicGraceSec,
        });
        expect(rekeyTiming('operator', audit, o)).toEqual({ leadSec: 0, graceSec: o.periodicGraceSec });
        expect(rekeyTiming('join', audit, o)).toEqual({ leadSec: 0, graceSec: o.periodicGraceSec });
      }),
    );
  });

  it('the previous epoch is accepted until activation plus grace; activation only with a lead', () => {
    fc.assert(
      fc.property(fc.nat(2 ** 40), fc.nat(600), fc.nat(600), (now, leadSec, graceSec) => {
        expect(previousEpochUntil(now, { leadSec, graceSec })).toBe(now + (leadSec + graceSec) * 1000);
        const a = activationOf(now, leadSec);
        if (leadSec === 0) expect(a).toBeUndefined();
        else expect(a).toEqual({ at: now + leadSec * 1000, inSec: leadSec });
      }),
    );
  });
});

describe('rekey triggers (docs/protocol.md "Implementation decisions", backward secrecy on join)', () => {
  it('join ⇒ update by default (one per window); off ⇒ the current key', () => {
    expect(onJoin(true, false)).toBe('open-window');
    expect(onJoin(true, true)).toBe('ride-window');
    expect(onJoin(false, false)).toBe('deliver-current');
    expect(onJoin(false, true)).toBe('deliver-current');
  });

  it('the window update runs only while joiners wait and the SG is the same', () => {
    expect(joinUpdateDue(true, 2)).toBe(true);
    expect(joinUpdateDue(true, 0)).toBe(false); // a newer epoch served them
    expect(joinUpdateDue(false, 2)).toBe(false); // deleted or replaced
  });

  it('periodic: a timer only with an interval', () => {
    expect(periodicIntervalMs(null)).toBeUndefined();
    expect(periodicIntervalMs(0)).toBeUndefined();
    expect(periodicIntervalMs(30)).toBe(30_000);
  });

  it('a departure updates exactly the SGs with a member among the departed', () => {
    fc.assert(
      fc.property(subset(PNES), subset(PNES), (members, gone) => {
        const expected = members.some((m) => gone.includes(m));
        expect(rekeyOnDeparture(new Set(members), new Set(gone))).toBe(expected);
      }),
    );
  });
});

describe('relay admission (rule R1)', () => {
  const group = { members: new Set(['a', 'b']), epoch: 5, prevEpoch: 4, prevUntil: 1_000 };
  const ok: RelayInput = {
    group,
    sender: 'a',
    senderProvenHere: true,
    epoch: 5,
    counter: 10,
    relayMark: 9,
    now: 500,
  };

  it('before the header: registered GW, bounded size', () => {
    expect(relayEnvelope(false, 10, 100)).toEqual({ code: ErrorCode.UNEXPECTED_MESSAGE });
    expect(relayEnvelope(true, 101, 100)).toEqual({ code: ErrorCode.TOO_LARGE, field: 'message' });
    expect(relayEnvelope(true, 100, 100)).toBeUndefined();
  });

  it('admits a proven member at the current epoch above the mark', () => {
    expect(admitRelay(ok)).toBeUndefined();
    expect(admitRelay({ ...ok, relayMark: undefined })).toBeUndefined();
  });

  it('refuses with the documented code, in rule order', () => {
    expect(admitRelay({ ...ok, group: undefined })).toEqual({ code: ErrorCode.NOT_FOUND, field: 'sgId' });
    expect(admitRelay({ ...ok, senderProvenHere: false, sender: 'z' })).toEqual({
      code: ErrorCode.FORBIDDEN,
      field: 'senderId',
    });
    expect(admitRelay({ ...ok, sender: undefined })).toEqual({
      code: ErrorCode.FORBIDDEN,
      field: 'senderId',
    });
    expect(admitRelay({ ...ok, sender: 'z', epoch: 99 })).toEqual({
      code: ErrorCode.NOT_MEMBER,
      field: 'senderId',
    });
    expect(admitRelay({ ...ok, epoch: 6, counter: 0 })).toEqual({
      code: ErrorCode.UNKNOWN_EPOCH,
      field: 'epoch',
    });
    expect(admitRelay({ ...ok, epoch: 4, now: 1_001 })).toEqual({
      code: ErrorCode.EXPIRED_EPOCH,
      field: 'epoch',
    });
    expect(admitRelay({ ...ok, counter: 9 })).toEqual({ code: ErrorCode.REPLAY, field: 'counter' });
  });

  it("the server's own message (from another cluster node): no member or GW check, epoch and replay as for any", () => {
    const server: RelayInput = { ...ok, sender: SERVER_SENDER, senderProvenHere: true };
    expect(admitRelay(server)).toBeUndefined();
    expect(admitRelay({ ...server, group: undefined })).toEqual({ code: ErrorCode.NOT_FOUND, field: 'sgId' });
    expect(admitRelay({ ...server, epoch: 6 })).toEqual({ code: ErrorCode.UNKNOWN_EPOCH, field: 'epoch' });
    expect(admitRelay({ ...server, counter: 9 })).toEqual({ code: ErrorCode.REPLAY, field: 'counter' });
  });

  it('epochs: current, previous in grace; not future, not expired, not older', () => {
    expect(epochAdmission(5, group, 0)).toBeUndefined();
    expect(epochAdmission(4, group, 1_000)).toBeUndefined();
    expect(epochAdmission(4, group, 1_001)?.code).toBe(ErrorCode.EXPIRED_EPOCH);
    expect(epochAdmission(3, group, 0)?.code).toBe(ErrorCode.EXPIRED_EPOCH);
    expect(epochAdmission(6, group, 0)?.code).toBe(ErrorCode.UNKNOWN_EPOCH);
    expect(epochAdmission(4, { ...group, prevEpoch: undefined }, 0)?.code).toBe(ErrorCode.EXPIRED_EPOCH);
  });

  it('an admitted frame is from a proven member, in the window, above the mark', () => {
    const input = fc.record({
      group: fc.option(
        fc.record({
          members: subset(['a', 'b', 'c']).map((m) => new Set(m)),
          epoch: fc.integer({ min: 1, max: 6 }),
          prevEpoch: fc.option(fc.integer({ min: 1, max: 6 }), { nil: undefined }),
          prevUntil: fc.nat(100),
        }),
        { nil: undefined },
      ),
      sender: fc.option(fc.constantFrom('a', 'b', 'c', 'd'), { nil: undefined }),
      senderProvenHere: fc.boolean(),
      epoch: fc.integer({ min: 0, max: 7 }),
      counter: fc.nat(20),
      relayMark: fc.option(fc.nat(20), { nil: undefined }),
      now: fc.nat(100),
    });
    fc.assert(
      fc.property(input, (i) => {
        if (admitRelay(i) !== undefined) return;
        expect(i.group).toBeDefined();
        expect(i.senderProvenHere).toBe(true);
        expect(i.group!.members.has(i.sender!)).toBe(true);
        expect(
          i.epoch === i.group!.epoch || (i.epoch === i.group!.prevEpoch && i.now <= i.group!.prevUntil),
        ).toBe(true);
        expect(i.relayMark === undefined || i.counter > i.relayMark).toBe(true);
      }),
    );
  });

  it('replay: strict high-water mark', () => {
    expect(isReplay(5, undefined)).toBe(false);
    expect(isReplay(5, 4)).toBe(false);
    expect(isReplay(5, 5)).toBe(true);
    expect(isReplay(4, 5)).toBe(true);
  });
});
