import { describe, expect, it } from 'vitest';
import { MAX_PNE_ID_BYTES, SdTree } from '../../../src/core/broadcast/index.js';
import { isCpnsError } from '../../../src/core/errors.js';

function errorOf(f: () => unknown): { code: string; field: string | undefined } | string {
  try {
    f();
  } catch (e) {
    if (isCpnsError(e)) return { code: e.code, field: e.field };
    return `non-CpnsError: ${String(e)}`;
  }
  return 'no error';
}

const gwId = Buffer.alloc(16, 5);

describe('SdTree leaf bookkeeping (reference §11 items 1–3)', () => {
  it('assigns left to right, idempotently, and never reissues a released leaf', () => {
    const t = SdTree.create({ gwId, capacity: 4 });
    expect(t.assignLeaf('a')).toBe(0);
    expect(t.assignLeaf('b')).toBe(1);
    expect(t.assignLeaf('a')).toBe(0);
    expect(t.releaseLeaf('a')).toBe(true);
    expect(t.releaseLeaf('a')).toBe(false);
    expect(t.leafOf('a')).toBeUndefined();
    expect(t.assignLeaf('c')).toBe(2);
    expect(t.assignLeaf('a')).toBe(3); // a returning PNE gets a fresh leaf
    expect(t.spentCount).toBe(1);
    expect(t.freeCount).toBe(0);
    expect(errorOf(() => t.assignLeaf('d'))).toMatchObject({ code: 'TREE_FULL' });
    expect(t.needsRebuild(100)).toBe(true); // full
    expect(t.assignments()).toEqual([
      { pneId: 'b', leaf: 1 },
      { pneId: 'c', leaf: 2 },
      { pneId: 'a', leaf: 3 },
    ]);
  });

  it('needsRebuild by spent count', () => {
    const t = SdTree.create({ gwId, capacity: 16 });
    for (const id of ['a', 'b', 'c']) t.assignLeaf(id);
    t.releaseLeaf('a');
    expect(t.needsRebuild(2)).toBe(false);
    t.releaseLeaf('b');
    expect(t.needsRebuild(2)).toBe(true);
  });

  it('rebuild: new version and master secret, holders compacted, spent leaves gone, can grow', () => {
    const t = SdTree.create({ gwId, capacity: 4 });
    for (const id of ['a', 'b', 'c', 'd']) t.assignLeaf(id);
    t.releaseLeaf('b');
    const r = t.rebuild({ capacity: 8 });
    expect(r.treeVersion).toBe(t.treeVersion + 1);
    expect(r.treeId.equals(t.treeId)).toBe(true);
    expect(r.capacity).toBe(8);
    expect(r.assignments()).toEqual([
      { pneId: 'a', leaf: 0 },
      { pneId: 'c', leaf: 1 },
      { pneId: 'd', leaf: 2 },
    ]);
    expect(r.spentCount).toBe(0);
    expect(r.rootLabel(1).equals(t.rootLabel(1))).toBe(false);
    expect(errorOf(() => r.rebuild({ capacity: 2 }))).toMatchObject({ code: 'TREE_FULL' });
    const wrap = SdTree.create({ gwId, capacity: 4, treeVersion: 0xffffffff });
    const w = wrap.rebuild();
    expect(w.treeVersion).toBe(0);
    expect(w.treeId.equals(wrap.treeId)).toBe(false);
  });

  it('PNE id of 255 UTF-8 bytes is accepted, 256 is INVALID_ARGUMENT; empty is INVALID_ARGUMENT', () => {
    const t = SdTree.create({ gwId, capacity: 4 });
    expect(t.assignLeaf('x'.repeat(MAX_PNE_ID_BYTES))).toBe(0);
    expect(errorOf(() => t.assignLeaf('x'.repeat(MAX_PNE_ID_BYTES + 1)))).toMatchObject({
      code: 'INVALID_ARGUMENT',
      field: 'pneId',
    });
    expect(errorOf(() => t.assignLeaf('é'.repeat(128)))).toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(errorOf(() => t.assignLeaf(''))).toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(errorOf(() => t.gkdkFor('nobody'))).toMatchObject({ code: 'INVALID_ARGUMENT', field: 'pneId' });
  });

  it('create validates its arguments', () => {
    expect(errorOf(() => SdTree.create({ gwId: Buffer.alloc(15), capacity: 4 }))).toMatchObject({
      field: 'gwId',
    });
    expect(errorOf(() => SdTree.create({ gwId, capacity: 4, masterSecret: Buffer.alloc(31) }))).toMatchObject(
      {
        field: 'masterSecret',
      },
    );
    expect(errorOf(() => SdTree.create({ gwId, capacity: 6 }))).toMatchObject({ field: 'capacity' });
    expect(errorOf(() => SdTree.create({ gwId, capacity: 2 }))).toBe('no error');
    expect(errorOf(() => SdTree.create({ gwId, capacity: 1 }))).toMatchObject({ field: 'capacity' });
    const t = SdTree.create({ gwId, capacity: 8 });
    expect(errorOf(() => t.subsetKey({ i: 9, j: 2 }))).toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(errorOf(() => t.subsetKey({ i: 2, j: 2 }))).toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(errorOf(() => t.subsetKey({ i: 2, j: 16 }))).toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});

describe('SdTree state serialization (GW persists it encrypted)', () => {
  const t = SdTree.create({ gwId, capacity: 16 });
  for (const id of ['a', 'b', 'ünïcode', 'd']) t.assignLeaf(id);
  t.releaseLeaf('b');
  const state = t.serialize();

  it('round-trips: same ids, keys, leaves, spent count, GKDKs', () => {
    const r = SdTree.restore(state);
    expect(r.serialize().equals(state)).toBe(true);
    expect(r.assignments()).toEqual(t.assignments());
    expect(r.spentCount).toBe(1);
    expect(r.freeCount).toBe(12);
    expect(r.gkdkFor('d')).toEqual(t.gkdkFor('d'));
    expect(r.subsetKey({ i: 2, j: 9 }).equals(t.subsetKey({ i: 2, j: 9 }))).toBe(true);
    expect(r.assignLeaf('e')).toBe(4);
  });

  const mut = (f: (b: Buffer) => void) => {
    const b = Buffer.from(state);
    f(b);
    return b;
  };
  it.each([
    ['empty', Buffer.alloc(0), 'MALFORMED', 'version'],
    ['version 9', mut((b) => b.writeUInt8(9, 0)), 'UNSUPPORTED_VERSION', 'version'],
    ['truncated header', state.subarray(0, 77), 'MALFORMED', 'state'],
    ['depth 17', mut((b) => b.writeUInt8(17, 37)), 'MALFORMED', 'log2Capacity'],
    ['nextFresh > capacity', mut((b) => b.writeUInt32BE(17, 70)), 'MALFORMED', 'nextFresh'],
    ['count > nextFresh', mut((b) => b.writeUInt32BE(5, 74)), 'MALFORMED', 'assignedCount'],
    ['count larger than data', mut((b) => b.writeUInt32BE(4, 74)), 'MALFORMED', 'assignments'],
    ['leaf >= nextFresh', mut((b) => b.writeUInt32BE(4, 78)), 'MALFORMED', 'assignments.leaf'],
    ['id length 0', mut((b) => b.writeUInt8(0, 82)), 'MALFORMED', 'assignments.pneId'],
    ['id length past end', mut((b) => b.writeUInt8(200, 82)), 'MALFORMED', 'assignments.pneId'],
    ['invalid UTF-8', mut((b) => b.writeUInt8(0xff, 83)), 'MALFORMED', 'assignments.pneId'],
    ['trailing byte', Buffer.concat([state, Buffer.alloc(1)]), 'MALFORMED', 'state'],
  ] as const)('%s → %s', (_, input, code, field) => {
    expect(errorOf(() => SdTree.restore(input))).toMatchObject({ code, field });
  });
});
