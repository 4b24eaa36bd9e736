/**
 * Inputs of the frozen wire-format vector (kat.json). Everything is fixed, and Ed25519 is deterministic, so the
 * output bytes are stable; wire.test.ts asserts byte equality against kat.json.
 */
import { buildBroadcast, SdTree, serializeGkdk } from '../../../src/core/broadcast/index.js';
import { ed25519PrivateFromSeed } from '../../../src/core/crypto/ed25519.js';

export const KAT_INPUT = {
  gwId: '0f1e2d3c4b5a69788796a5b4c3d2e1f0',
  treeId: '22222222222222222222222222222222',
  treeVersion: 3,
  capacity: 16,
  masterSecret: '1111111111111111111111111111111111111111111111111111111111111111',
  ed25519Seed: '4242424242424242424242424242424242424242424242424242424242424242',
  assigned: ['p0', 'p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7', 'p8', 'p9'],
  released: ['p4'],
  members: ['p0', 'p1', 'p2', 'p5', 'p7', 'p9'],
  sgId: '5a5a5a5a000011112222333344445555',
  epoch: 0x01020304,
  groupKey: '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f',
} as const;

export function buildKat() {
  const h = (s: string) => Buffer.from(s, 'hex');
  const tree = SdTree.create({
    gwId: h(KAT_INPUT.gwId),
    capacity: KAT_INPUT.capacity,
    masterSecret: h(KAT_INPUT.masterSecret),
    treeId: h(KAT_INPUT.treeId),
    treeVersion: KAT_INPUT.treeVersion,
  });
  for (const id of KAT_INPUT.assigned) tree.assignLeaf(id);
  for (const id of KAT_INPUT.released) tree.releaseLeaf(id);
  const datagrams = buildBroadcast({
    gwSigningKey: ed25519PrivateFromSeed(h(KAT_INPUT.ed25519Seed)).privateKey,
    tree,
    sgId: h(KAT_INPUT.sgId),
    epoch: KAT_INPUT.epoch,
    groupKey: h(KAT_INPUT.groupKey),
    memberPneIds: KAT_INPUT.members,
  });
  return {
    datagrams: datagrams.map((d) => d.toString('hex')),
    gkdkP5: serializeGkdk(tree.gkdkFor('p5')).toString('hex'),
    treeState: tree.serialize().toString('hex'),
  };
}
