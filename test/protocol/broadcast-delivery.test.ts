import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type BroadcastKey,
  BroadcastKeyListener,
  GatewayBroadcaster,
  GatewayBroadcastState,
  type GkdkIssue,
  type MemberInfo,
  planDelivery,
} from '../../src/protocol/index.js';
import { BroadcastMedium } from '../../src/transport/udp.js';

const closers: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

const gwId = () => randomBytes(16);
const port = () => 20000 + Math.floor(Math.random() * 30000);

async function gatewayMedia() {
  const wifi = await BroadcastMedium.open({
    name: 'wifi',
    group: '239.255.77.1',
    port: port(),
    listen: false,
  });
  const bt = await BroadcastMedium.open({ name: 'bt', group: '239.255.77.2', port: port(), listen: false });
  closers.push(
    () => wifi.close(),
    () => bt.close(),
  );
  return [wifi, bt];
}

interface TestPne {
  id: string;
  media: string[];
  issue?: GkdkIssue;
  listener?: BroadcastKeyListener;
  keys: BroadcastKey[];
  epochs: Map<string, number>;
}

async function listen(p: TestPne, issue: GkdkIssue): Promise<void> {
  const l = await BroadcastKeyListener.open({
    media: issue.media,
    supported: p.media,
    currentEpoch: (sg) => p.epochs.get(sg),
  });
  l.setGkdk(issue);
  l.on('key', (k: BroadcastKey) => {
    if ((p.epochs.get(k.sgId) ?? -1) >= k.epoch) return;
    p.epochs.set(k.sgId, k.epoch);
    p.keys.push(k);
  });
  p.listener = l;
  closers.push(() => l.close());
}

async function pn(
  n: number,
  mediaOf: (i: number) => string[],
  dataDir = mkdtempSync(join(tmpdir(), 'cpns-gw-')),
) {
  const state = GatewayBroadcastState.open(dataDir, gwId(), 16);
  const media = await gatewayMedia();
  const gw = new GatewayBroadcaster({
    state,
    media,
    policy: { broadcast: true, broadcastThreshold: 2, ackTimeoutMs: 300 },
  });
  closers.push(() => gw.close());
  const pnes: TestPne[] = [];
  for (let i = 0; i < n; i++) {
    const p: TestPne = { id: `urn:cpns:pne:${randomUUID()}`, media: mediaOf(i), keys: [], epochs: new Map() };
    const issue = gw.issueFor(p.id, p.media);
    if (issue) {
      p.issue = issue;
      await listen(p, issue);
    }
    pnes.push(p);
  }
  return { gw, pnes, state, dataDir };
}

const info = (p: TestPne, gw: GatewayBroadcaster): MemberInfo => ({
  pneId: p.id,
  media: p.media,
  hasGkdk: gw.hasLeaf(p.id),
});
const until = async (cond: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
};
const settle = () => new Promise((r) => setTimeout(r, 150));

describe('broadcast Group Key delivery over UDP multicast (seed §5.3.3, GKEK/GKDK)', () => {
  it('reaches exactly the members; non-members and a PNE that left the PN receive the datagrams and fail', async () => {
    // 10 PNEs: 0-3 wifi, 4-6 bt, 7 both, 8-9 no broadcast medium (unicast only)
    const { gw, pnes } = await pn(10, (i) =>
      i < 4 ? ['wifi'] : i < 7 ? ['bt'] : i === 7 ? ['wifi', 'bt'] : [],
    );
    const departed = pnes[3]!;
    gw.release(departed.id); // left the PN: keeps its old GKDK and keeps listening
    const members = [0, 1, 4, 5, 7, 8].map((i) => pnes[i]!);
    const nonMembers = [2, 6].map((i) => pnes[i]!);
    const sgId = randomUUID();
    const key = randomBytes(32);
    const r = await gw.deliver({ sgId, epoch: 5, key, members: members.map((p) => info(p, gw)) });
    expect(r.broadcast.sort()).toEqual([0, 1, 4, 5, 7].map((i) => pnes[i]!.id).sort());
    expect(r.unicast).toEqual([pnes[8]!.id]);
    await until(() => [0, 1, 4, 5, 7].every((i) => pnes[i]!.keys.length === 1));
    await settle();
    for (const i of [0, 1, 4, 5, 7]) {
      expect(pnes[i]!.keys[0]!.groupKey.equals(key)).toBe(true);
      expect(pnes[i]!.keys[0]!.epoch).toBe(5);
    }
    for (const p of [...nonMembers, departed]) {
      expect(p.keys).toEqual([]);
      expect(p.listener!.drops.get('NOT_IN_COVER')).toBeGreaterThanOrEqual(1); // it did receive and try
    }
    expect(pnes[7]!.listener!.mediaNames.sort()).toEqual(['bt', 'wifi']); // two media at once, one key
    expect(pnes[7]!.listener!.drops.get('STALE_EPOCH')).toBe(1); // the copy on the second medium
  });

  it('a member that lost the datagram gets the key by unicast fallback after the ack timeout', async () => {
    const { gw, pnes } = await pn(4, () => ['wifi']);
    await pnes[2]!.listener!.close(); // its radio missed everything
    const fallbacks: string[][] = [];
    gw.on('fallback', (_sg: string, _e: number, ids: string[]) => fallbacks.push(ids));
    const sgId = randomUUID();
    await gw.deliver({ sgId, epoch: 1, key: randomBytes(32), members: pnes.map((p) => info(p, gw)) });
    await until(() => [0, 1, 3].every((i) => pnes[i]!.keys.length === 1));
    for (const i of [0, 1, 3]) expect(gw.ack(sgId, 1, pnes[i]!.id)).toBe('broadcast');
    expect(gw.ack(sgId, 1, pnes[0]!.id)).toBeUndefined(); // a duplicate ack counts once
    await until(() => fallbacks.length === 1, 2000);
    expect(fallbacks[0]).toEqual([pnes[2]!.id]);
  });

  it('no fallback when every member acked', async () => {
    const { gw, pnes } = await pn(3, () => ['bt']);
    let fell = false;
    gw.on('fallback', () => {
      fell = true;
    });
    const sgId = randomUUID();
    await gw.deliver({ sgId, epoch: 2, key: randomBytes(32), members: pnes.map((p) => info(p, gw)) });
    await until(() => pnes.every((p) => p.keys.length === 1));
    for (const p of pnes) gw.ack(sgId, 2, p.id);
    await new Promise((r) => setTimeout(r, 450));
    expect(fell).toBe(false);
  });

  it('forged and replayed datagrams are dropped and counted, never installed', async () => {
    const { gw, pnes, state } = await pn(3, () => ['wifi']);
    const sender = await BroadcastMedium.open({
      name: 'wifi',
      group: pnes[0]!.issue!.media[0]!.group,
      port: pnes[0]!.issue!.media[0]!.port,
      listen: false,
    });
    closers.push(() => sender.close());
    // capture what the GW sends by building the same broadcast through the core
    const { buildBroadcast } = await import('../../src/core/broadcast/index.js');
    const sgId = randomUUID();
    const sg = Buffer.from(sgId.replace(/-/g, ''), 'hex');
    const d = buildBroadcast({
      gwSigningKey: state.signing.privateKey,
      tree: state.tree,
      sgId: sg,
      epoch: 9,
      groupKey: randomBytes(32),
      memberPneIds: pnes.map((p) => p.id),
    })[0]!;
    const forged = Buffer.from(d);
    forged[70]! ^= 0x01;
    await sender.send(forged);
    await settle();
    expect(pnes[0]!.listener!.drops.get('BAD_SIGNATURE')).toBe(1);
    await sender.send(d);
    await until(() => pnes[0]!.keys.length === 1);
    await sender.send(d); // replay of the same epoch
    await settle();
    expect(pnes[0]!.keys.length).toBe(1);
    expect(pnes[0]!.listener!.drops.get('STALE_EPOCH')).toBe(1);
    void gw;
  });

  it('tree rebuild re-issues GKDKs; old GKDK holders cannot open new broadcasts', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'cpns-gw-'));
    const state = GatewayBroadcastState.open(dataDir, gwId(), 8);
    const media = await gatewayMedia();
    const gw = new GatewayBroadcaster({
      state,
      media,
      policy: { broadcast: true, broadcastThreshold: 1, ackTimeoutMs: 300 },
      maxSpentLeaves: 2,
    });
    closers.push(() => gw.close());
    const reissued: string[][] = [];
    gw.on('reissue', (ids: string[]) => reissued.push(ids));
    const ids = Array.from({ length: 4 }, () => `urn:cpns:pne:${randomUUID()}`);
    const oldIssues = ids.map((id) => gw.issueFor(id, ['wifi'])!);
    const oldVersion = oldIssues[0]!.treeVersion;
    gw.release(ids[0]!);
    expect(reissued).toEqual([]);
    gw.release(ids[1]!); // 2 spent -> rebuild
    expect(reissued).toEqual([[ids[2], ids[3]]]);
    const fresh = gw.issueAll();
    expect(fresh.get(ids[2]!)!.treeVersion).toBe(oldVersion + 1);
    const stale: TestPne = { id: ids[2]!, media: ['wifi'], keys: [], epochs: new Map() };
    const renewed: TestPne = { id: ids[3]!, media: ['wifi'], keys: [], epochs: new Map() };
    await listen(stale, oldIssues[2]!);
    await listen(renewed, fresh.get(ids[3]!)!);
    const sgId = randomUUID();
    const members: MemberInfo[] = [ids[2]!, ids[3]!].map((pneId) => ({
      pneId,
      media: ['wifi'],
      hasGkdk: true,
    }));
    await gw.deliver({ sgId, epoch: 1, key: randomBytes(32), members });
    await until(() => renewed.keys.length === 1);
    await settle();
    expect(stale.keys).toEqual([]);
    expect(stale.listener!.drops.get('WRONG_TREE')).toBe(1);
  });

  it('the GW state persists across restarts, encrypted at rest', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'cpns-gw-'));
    const id = gwId();
    const a = GatewayBroadcastState.open(dataDir, id, 16);
    a.tree.assignLeaf('urn:cpns:pne:1');
    a.tree.assignLeaf('urn:cpns:pne:2');
    a.tree.releaseLeaf('urn:cpns:pne:1');
    a.save();
    const b = GatewayBroadcastState.open(dataDir, id, 16);
    expect(b.tree.treeId.equals(a.tree.treeId)).toBe(true);
    expect(b.tree.leafOf('urn:cpns:pne:2')).toBe(1);
    expect(b.tree.spentCount).toBe(1);
    expect(b.signPublicRaw.equals(a.signPublicRaw)).toBe(true);
    expect(b.tree.gkdkFor('urn:cpns:pne:2').labels.equals(a.tree.gkdkFor('urn:cpns:pne:2').labels)).toBe(
      true,
    );
    const file = readFileSync(join(dataDir, 'broadcast-state.bin'));
    expect(file.includes(a.tree.serialize().subarray(0, 48))).toBe(false);
    expect(file.includes(Buffer.from('urn:cpns:pne:2'))).toBe(false);
    expect(() => GatewayBroadcastState.open(dataDir, gwId(), 16)).toThrow(/another GW/);
  });
});

describe('delivery policy (operator: medium and number of member PNEs)', () => {
  const m = (n: number, media: string[], hasGkdk = true): MemberInfo[] =>
    Array.from({ length: n }, (_, i) => ({ pneId: `p${i}`, media, hasGkdk }));
  const policy = { broadcast: true, broadcastThreshold: 3, ackTimeoutMs: 1000 };

  it('broadcasts at exactly the threshold, unicasts one below it', () => {
    expect(planDelivery(policy, m(3, ['wifi']), ['wifi']).broadcast.length).toBe(3);
    expect(planDelivery(policy, m(2, ['wifi']), ['wifi']).broadcast.length).toBe(0);
    expect(planDelivery(policy, m(2, ['wifi']), ['wifi']).unicast.length).toBe(2);
  });

  it('members without a shared medium or without a GKDK get unicast; broadcast disabled means all unicast', () => {
    const members = [
      ...m(3, ['wifi']),
      { pneId: 'x', media: ['bt'], hasGkdk: true },
      { pneId: 'y', media: ['wifi'], hasGkdk: false },
    ];
    const plan = planDelivery(policy, members, ['wifi']);
    expect(plan.broadcast.map((p) => p.pneId)).toEqual(['p0', 'p1', 'p2']);
    expect(plan.unicast.map((p) => p.pneId)).toEqual(['x', 'y']);
    expect(plan.media).toEqual(['wifi']);
    expect(planDelivery({ ...policy, broadcast: false }, members, ['wifi']).broadcast).toEqual([]);
  });
});
